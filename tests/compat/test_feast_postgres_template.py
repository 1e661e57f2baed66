"""Feast's `postgres` template (`feast init -t postgres`), unmodified: a PostgreSQLSource read
by Feast's PostgreSQL offline store, Feast's PostgreSQL online store and its SQL registry in the
same database. Feast 0.67 writes the repo and uploads its data into a PostgreSQL server the test
starts; Larder applies, materializes and serves the repo with its own feature_store.yaml, and
every online cell and every training-set cell equals what Feast answers for the same data
(Feast runs on a copy of the database, made before either applied anything)."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import requests

from compat.test_feast_repos import (  # noqa: F401  (fixtures)
    END, START, assert_online_equal, assert_training_equal, entity_df, feast_cli, feast_python, feast_side, iso,
    run,
)
from conftest import Larder, PostgresServer, Server

FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "transformed_conv_rate:conv_rate_plus_val1",
    "transformed_conv_rate:conv_rate_plus_val2",
]
ENTITIES = {"driver_id": [1001, 1002, 1003, 1004, 1005, 4242], "val_to_add": [1, 2, 3, 4, 5, 6],
            "val_to_add_2": [10, 20, 30, 40, 50, 60]}
ONLINE_REQUEST = {"features": FEATURES, "entities": ENTITIES}
SERVICE_REQUEST = {"feature_service": "driver_activity_v2", "entities": ENTITIES}


@pytest.fixture(scope="module")
def postgres():
    pg = PostgresServer()
    yield pg
    pg.stop()


# What the template's bootstrap uploads, done here: Feast 0.67's bootstrap builds the driver data
# with three dict-valued columns (driver_metadata, ...) that psycopg cannot adapt, so its own
# upload fails ("cannot adapt type 'dict'"). The same frame, those columns as JSON text (the
# template's views do not use them), goes through the same Feast helper.
UPLOAD = """
import json, sys
from datetime import datetime, timedelta
from feast.driver_test_data import create_driver_hourly_stats_df
from feast.infra.utils.postgres.connection_utils import df_to_postgres_table
from feast.infra.utils.postgres.postgres_config import PostgreSQLConfig
end = datetime.now().replace(microsecond=0, second=0, minute=0)
df = create_driver_hourly_stats_df([1001, 1002, 1003, 1004, 1005], end - timedelta(days=15), end)
for c in ("driver_metadata", "driver_config", "driver_profile"):
    df[c] = [json.dumps(v) if isinstance(v, dict) else v for v in df[c]]
config = PostgreSQLConfig(host="127.0.0.1", port=int(sys.argv[1]), database="larder_side", db_schema="public",
                          user="larder", password="unused", sslmode="disable")
df_to_postgres_table(config=config, df=df, table_name="feast_driver_hourly_stats")
"""


@pytest.fixture(scope="module")
def postgres_template(postgres, feast_python, tmp_path_factory):
    """`feast init -t postgres`, its prompts answered for the test's server (database
    `larder_side`, TLS off) and the template's data uploaded there (see UPLOAD); then
    `feast_side`, a copy of that database, for Feast's own run."""
    pg = postgres
    pg._run("createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "larder", "larder_side")
    root = tmp_path_factory.mktemp("feast_init_postgres")
    answers = f"127.0.0.1\n{pg.port}\nlarder_side\npublic\nlarder\nunused\ndisable\nn\n"
    p = subprocess.run([str(feast_cli(feast_python)), "init", "pgdemo", "-t", "postgres"], cwd=root,
                       input=answers, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    run([feast_python, "-c", UPLOAD, pg.port], cwd=root)
    repo = root / "pgdemo" / "feature_repo"
    yaml = (repo / "feature_store.yaml").read_text()
    assert "type: postgres" in yaml and "larder_side" in yaml and "DB_" not in yaml, yaml
    pg._run("createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "larder", "-T", "larder_side", "feast_side")
    return repo


def psql(pg, database, sql):
    p = pg._run("psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "larder", "-d", database, "-At", "-c", sql)
    return p.stdout.strip()


@pytest.fixture(scope="module")
def feast_postgres_answers(postgres_template, feast_python, tmp_path_factory):
    """What Feast 0.67 answers for the template, on its copy of the database."""
    tmp = tmp_path_factory.mktemp("feast_pg_side")
    repo = tmp / "repo"
    subprocess.run(["cp", "-r", str(postgres_template), str(repo)], check=True)
    cfg = repo / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace("larder_side", "feast_side"))
    return feast_side(feast_python, repo, entity_df(tmp / "entity_df.parquet"), FEATURES, (START, END),
                      ONLINE_REQUEST, SERVICE_REQUEST)


def test_the_postgres_template_unmodified_matches_feast(postgres, postgres_template, feast_postgres_answers,
                                                         feast_python):
    repo = postgres_template
    before = {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()}
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    # Larder's registry and online tables sit in the template's own database.
    tables = psql(postgres, "larder_side", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split()
    assert "feast_driver_hourly_stats" in tables and "larder_registry_state" in tables, tables
    out = larder.run("materialize", iso(START), iso(END))
    assert "driver_hourly_stats" in out.stdout + out.stderr
    server = Server(larder)
    try:
        assert_online_equal(server.online(ONLINE_REQUEST).json(), feast_postgres_answers["online"])
        assert_online_equal(server.online(SERVICE_REQUEST).json(), feast_postgres_answers["service"])
        from larder import FeatureStore

        training = FeatureStore(url=server.url).get_historical_features(
            entity_df=pd.read_parquet(feast_postgres_answers["entity_df"]), features=FEATURES).to_df()
        assert_training_equal(training, feast_postgres_answers["training"])

        # Feast's PostgreSQL offline store cannot be written to (no offline_write_batch), nor can
        # Larder's: a push to the offline store is refused before anything is written, online
        # included; a push to the online store goes through.
        now = pd.Timestamp.now(tz="UTC").isoformat()
        df = {"driver_id": [1001], "event_timestamp": [now], "created": [now], "conv_rate": [0.5],
              "acc_rate": [0.25], "avg_daily_trips": [7]}
        before_online = server.online(ONLINE_REQUEST).json()
        r = server.post("/push", {"push_source_name": "driver_stats_push_source", "df": df, "to": "online_and_offline"})
        assert r.status_code == 501, r.text
        assert "PostgreSQL source driver_hourly_stats_source" in r.text, r.text
        assert server.online(ONLINE_REQUEST).json() == before_online
        rows_before = psql(postgres, "larder_side", "SELECT count(*) FROM feast_driver_hourly_stats")
        r = server.post("/push", {"push_source_name": "driver_stats_push_source", "df": df, "to": "online"})
        assert r.status_code == 200, r.text
        fresh = server.online({"features": ["driver_hourly_stats_fresh:conv_rate"],
                               "entities": {"driver_id": [1001]}}).json()
        assert fresh["results"][1]["values"] == [0.5], fresh
        assert psql(postgres, "larder_side", "SELECT count(*) FROM feast_driver_hourly_stats") == rows_before
    finally:
        server.stop()
    after = {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()}
    assert before == after, "the repo's own files are left as they are"


def test_a_postgres_source_that_postgres_cannot_read_is_named_at_apply(postgres, postgres_template, feast_python,
                                                                       tmp_path):
    """A query PostgreSQL refuses is the user's error, named with the source and PostgreSQL's own
    message — at apply, before anything is registered."""
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(postgres_template), str(repo)], check=True)
    cfg = repo / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace("larder_side", "registry"))
    defs = repo / "feature_definitions.py"
    defs.write_text(defs.read_text().replace("SELECT * FROM feast_driver_hourly_stats",
                                             "SELECT * FROM no_such_table"))
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    p = larder.run("apply", check=False)
    assert p.returncode != 0
    assert "driver_hourly_stats_source" in p.stderr and "no_such_table" in p.stderr, p.stderr
    assert "does not exist" in p.stderr, p.stderr
    assert "panicked" not in p.stderr
    tables = psql(postgres, "registry", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split()
    state = psql(postgres, "registry", "SELECT count(*) FROM larder_registry_state") \
        if "larder_registry_state" in tables else "0"
    assert state == "0", "nothing was registered"


def test_a_postgres_source_with_every_column_type(postgres, feast_python, tmp_path):
    """Columns of the types real tables have (smallint, numeric, date, varchar, jsonb, arrays,
    nulls) are read as Feast types them, materialized and served: the values inserted, not
    Larder's own reading of them."""
    db = "types"
    postgres._run("createdb", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "larder", db)
    psql(postgres, db, """
        CREATE TABLE readings (
            id bigint, ts timestamptz, small smallint, price numeric(10, 2), day date, label varchar(20),
            doc jsonb, counts integer[], weights double precision[], ok boolean);
        INSERT INTO readings VALUES
            (1, '2026-01-01 10:00:00+00', 3, 12.25, '2025-12-31', 'old', '{"a": 1}', '{1,2}', '{0.5}', true),
            (1, '2026-01-02 10:00:00+00', 4, 13.50, '2026-01-01', 'new', '{"a": 2}', '{3,5}', '{1.5,2.5}', false),
            (2, '2026-01-02 11:00:00+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    """)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        f"project: pgtypes\nprovider: local\nregistry: data/registry.db\n"
        f"online_store:\n  type: sqlite\n  path: data/online.db\n"
        f"offline_store:\n  type: postgres\n  host: 127.0.0.1\n  port: {postgres.port}\n  database: {db}\n"
        f"  db_schema: public\n  user: larder\n  password: unused\n  sslmode: disable\n"
        "entity_key_serialization_version: 3\n")
    (repo / "defs.py").write_text(
        "from datetime import timedelta\n"
        "from feast import Entity, FeatureView\n"
        "from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource\n"
        "thing = Entity(name='thing', join_keys=['id'])\n"
        "readings = PostgreSQLSource(name='readings', table='readings', timestamp_field='ts')\n"
        "view = FeatureView(name='readings', entities=[thing], source=readings, ttl=timedelta(0))\n")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    larder.run("materialize", "2025-12-01T00:00:00", "2026-02-01T00:00:00")
    server = Server(larder)
    try:
        features = ["small", "price", "day", "label", "doc", "counts", "weights", "ok"]
        body = server.online({"features": [f"readings:{f}" for f in features], "entities": {"id": [1, 2]}}).json()
        got = {n: c["values"] for n, c in zip(body["metadata"]["feature_names"], body["results"])}
        assert got["id"] == [1, 2]
        assert got["small"] == [4, None]
        assert got["price"] == [13.5, None]
        assert got["day"] == [1767225600, None], got["day"]  # 2026-01-01 as Feast's int seconds
        assert got["label"] == ["new", None]
        assert [None if v is None else requests.models.complexjson.loads(v) for v in got["doc"]] == [{"a": 2}, None]
        assert got["counts"] == [[3, 5], None]
        assert got["weights"] == [[1.5, 2.5], None]
        assert got["ok"] == [False, None]
        registry = requests.get(server.url + "/registry", timeout=5).json()["doc"]
        (view,) = registry["feature_views"]
        types = {f["name"]: f["dtype"] for f in view["features"]}
        assert types == {"small": "INT32", "price": "DOUBLE", "day": "UNIX_TIMESTAMP", "label": "STRING",
                         "doc": "STRING", "counts": "INT32_LIST", "weights": "DOUBLE_LIST", "ok": "BOOL"}, types
    finally:
        server.stop()
