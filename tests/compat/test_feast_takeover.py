"""Taking over a running Feast deployment: Feast 0.67 (from PyPI) applies and materializes the
`feast init` template itself, writing its protobuf registry (`data/registry.db`, or its SQL
registry in a PostgreSQL the test starts) and its SQLite
online tables (or its Redis hashes); Larder, started on that same repo with nothing changed, serves the same online
values and training sets — beside Feast's own server, without re-applying or re-materializing —
and writes nothing into Feast's files. `larder import-feast` then moves the definitions and the
materialization record into a Larder registry."""

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import requests

from compat.test_feast_repos import (  # noqa: F401  (fixtures)
    END, FEATURES, HISTORICAL, ONLINE_REQUEST, SERVICE_REQUEST, START, assert_online_equal, assert_training_equal,
    columns, copy_repo, entity_df, feast_cli, feast_python, feast_serve, feast_serving, iso, post, run, template,
)
from conftest import Larder, Server, free_port
from e2e.test_s3 import s3, s3_env  # noqa: F401  (the S3 server fixture)

FEAST_FILES = ("registry.db", "online_store.db")


def feast_deployment(template, feast_python, root: Path) -> Path:
    """The template applied and materialized by Feast itself."""
    repo = copy_repo(template, root / "repo")
    cli = feast_cli(feast_python)
    run([cli, "apply"], cwd=repo)
    run([cli, "materialize", iso(START), iso(END)], cwd=repo)
    return repo


def assert_follows_feast_apply(repo: Path, cli, server: Server):
    """Feast changes its registry (a new entity); the running Larder serves it without a restart."""
    defs = repo / "feature_definitions.py"
    defs.write_text(defs.read_text() + "\nfrom feast import ValueType\nextra_entity = Entity("
                    "name='extra_entity', join_keys=['extra_id'], value_type=ValueType.INT64)\n")
    run([cli, "apply"], cwd=repo)
    deadline = time.time() + 15
    while True:
        names = [e["name"] for e in requests.get(server.url + "/registry", timeout=5).json()["doc"]["entities"]]
        if "extra_entity" in names:
            return
        assert time.time() < deadline, names
        time.sleep(0.3)


def feast_bytes(repo: Path) -> dict:
    return {n: (repo / "data" / n).read_bytes() for n in FEAST_FILES}


def test_larder_serves_a_feast_deployment_as_feast_left_it(template, feast_python, tmp_path):
    repo = feast_deployment(template, feast_python, tmp_path)
    cli = feast_cli(feast_python)
    edf = entity_df(tmp_path / "entity_df.parquet")
    want_training = tmp_path / "feast_training.parquet"
    run([feast_python, "-c", HISTORICAL, repo, edf, want_training, ",".join(FEATURES)], cwd=repo)
    before = feast_bytes(repo)

    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    server = Server(larder)
    # Feast's own server on the same repo at the same time: a migration serves from both.
    port = free_port()
    log = open(tmp_path / "feast_serve.log", "w")
    feast = subprocess.Popen([str(cli), "serve", "-p", str(port)], cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    try:
        from compat.test_feast_repos import post, wait_http

        feast_url = f"http://127.0.0.1:{port}"
        wait_http(feast_url, feast, tmp_path / "feast_serve.log")
        for body in (ONLINE_REQUEST, SERVICE_REQUEST):
            got = server.online(body).json()
            want = post(feast_url, body)
            assert_online_equal(got, want)
        present = [s for c in server.online(ONLINE_REQUEST).json()["results"][1:] for s in c["statuses"]]
        assert present.count("PRESENT") >= 5, present

        from larder import FeatureStore

        training = FeatureStore(url=server.url).get_historical_features(
            entity_df=pd.read_parquet(edf), features=FEATURES).to_df()
        assert_training_equal(training, pd.read_parquet(want_training))

        # The registry Larder serves is Feast's: its objects, by name, are Feast's own listing.
        listing = subprocess.run([feast_python, "-c", (
            "import json; from feast import FeatureStore; s = FeatureStore('.');"
            "print(json.dumps({'views': sorted(v.name for v in s.list_all_feature_views()),"
            " 'odfvs': sorted(v.name for v in s.list_on_demand_feature_views()),"
            " 'services': sorted(f.name for f in s.list_feature_services()),"
            " 'entities': sorted(e.name for e in s.list_entities())}))")],
            cwd=repo, capture_output=True, text=True, check=True)
        feast_names = json.loads(listing.stdout.strip().splitlines()[-1])
        doc = json.loads(larder.run("registry", "dump").stdout)
        assert sorted(v["name"] for v in doc["feature_views"]) == \
            sorted(set(feast_names["views"]) - set(feast_names["odfvs"]))
        assert sorted(v["name"] for v in doc["on_demand_feature_views"]) == feast_names["odfvs"]
        assert sorted(f["name"] for f in doc["feature_services"]) == feast_names["services"]
        assert sorted(e["name"] for e in doc["entities"]) == [e for e in feast_names["entities"] if e != "__dummy"]
    finally:
        server.stop()
        feast.terminate()
        feast.wait(timeout=30)
    assert feast_bytes(repo) == before, "Larder wrote into Feast's registry or online store"

    # Changing a Feast registry is Feast's job: Larder refuses and says what to do instead.
    p = larder.run("apply", check=False)
    assert p.returncode != 0 and "import-feast" in p.stderr, p.stderr
    assert feast_bytes(repo) == before


def test_import_feast_moves_definitions_and_materializations_to_larder(template, feast_python, tmp_path):
    feast_repo = feast_deployment(template, feast_python, tmp_path / "feast")
    # What Larder registers for the same Python files itself.
    own = copy_repo(template, tmp_path / "own")
    own_larder = Larder(own)
    own_larder.env["LARDER_PYTHON"] = feast_python
    own_larder.run("apply")
    own_doc = json.loads(own_larder.run("registry", "dump").stdout)

    repo = copy_repo(template, tmp_path / "moved")
    cfg = repo / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace("registry: data/registry.db", "registry: data/larder_registry.json"))
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    # Importing onto the Feast file itself is refused.
    same = Larder(feast_repo)
    p = same.run("import-feast", feast_repo / "data" / "registry.db", check=False)
    assert p.returncode != 0 and "registry" in p.stderr, p.stderr

    out = larder.run("import-feast", feast_repo / "data" / "registry.db").stdout
    assert "Imported" in out and "Created feature view driver_hourly_stats" in out, out
    history = larder.run("registry", "history").stdout
    assert "version 1" in history and "import-feast" in history, history
    # Feast's registry, converted, is what Larder's own apply of the same files registers.
    assert json.loads(larder.run("registry", "dump").stdout) == own_doc

    # materialize-incremental continues where Feast's `materialize` ended (without Feast's
    # record it would start at END - ttl, a day earlier).
    later = END + timedelta(hours=1)
    out = larder.run("materialize-incremental", iso(later)).stdout
    line = next(x for x in out.splitlines() if x.startswith("driver_hourly_stats:"))
    assert f"from {END.isoformat()} to {later.isoformat()}" in line, out


READ_RIDERS = """
import json, sys
from feast import FeatureStore
s = FeatureStore(repo_path=sys.argv[1])
print("RESULT " + json.dumps(s.get_online_features(
    features=["rider_stats:score", "rider_stats:city", "rider_stats:rides"],
    entity_rows=[{"rider_id": r} for r in (1, 4242)]).to_dict()))
"""


REDIS_DIGEST = """
import hashlib, sys
import redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
h = hashlib.sha256()
keys = sorted(r.scan_iter(count=1000))
for k in keys:
    h.update(k)
    for f, v in sorted(r.hgetall(k).items()):
        h.update(f + b"=" + v)
print("RESULT", len(keys), h.hexdigest())
"""


def redis_state(feast_python, redis) -> str:
    """The number of keys of the Redis database and a digest of every hash (redis-py from
    Feast's virtualenv)."""
    p = run([feast_python, "-c", REDIS_DIGEST, redis.port], cwd=".")
    return next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))


def test_larder_serves_and_writes_feasts_redis_layout(feast_python, tmp_path):
    from compat.test_feast_repos import RIDER_REQUEST, RIDERS, feast_serve, redis_repo
    from conftest import RedisServer

    redis = RedisServer(tmp_path)
    try:
        repo = redis_repo(tmp_path / "repo", redis.port)
        cli = feast_cli(feast_python)
        run([cli, "apply"], cwd=repo)
        run([cli, "materialize", iso(START), iso(END)], cwd=repo)
        service = {"feature_service": "rider_service", "entities": {"rider_id": RIDERS}}
        want, want_service = feast_serve(cli, repo, RIDER_REQUEST, service)
        before = redis_state(feast_python, redis)
        assert not before.startswith("RESULT 0 "), "Feast materialized nothing into Redis"

        larder = Larder(repo)
        # Served as Feast's Python server serves (ttl not enforced online).
        larder.env["LARDER_ONLINE_TTL"] = "ignore"
        server = Server(larder)
        try:
            # Feast's Redis store answers an unknown key PRESENT with a null: the one accepted case.
            assert_online_equal(server.online(RIDER_REQUEST).json(), want, redis_missing_present=True)
            assert_online_equal(server.online(service).json(), want_service, redis_missing_present=True)
            assert redis_state(feast_python, redis) == before, "reading wrote into Feast's Redis"
            # What Larder writes, in Feast's layout, Feast reads.
            r = requests.post(server.url + "/write-to-online-store", json={
                "feature_view_name": "rider_stats",
                "df": {"rider_id": [4242], "event_timestamp": [iso(END)], "score": [0.125], "city": ["brest"],
                       "rides": [9]}}, timeout=30)
            assert r.status_code == 200, r.text
        finally:
            server.stop()
        p = run([feast_python, "-c", READ_RIDERS, repo], cwd=repo)
        got = json.loads(next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))[7:])
        assert got["rider_id"] == [1, 4242]
        assert got["score"][1] == 0.125 and got["city"][1] == "brest" and got["rides"][1] == 9, got
        # ... and Feast's own value for rider 1 is untouched.
        assert got["score"][0] == columns(want)["score"]["values"][0], got
    finally:
        redis.stop()


def test_larder_serves_feasts_sql_registry_in_postgres(template, feast_python, tmp_path):
    """Feast's SQL registry (`registry_type: sql` on a PostgreSQL the test starts), applied and
    materialized by Feast: Larder, on the same yaml, reads Feast's tables and serves Feast's
    values; a `feast apply` that adds an object is seen by the running server."""
    from compat.test_feast_repos import post, wait_http
    from conftest import PostgresServer

    pg = PostgresServer()
    try:
        repo = copy_repo(template, tmp_path / "repo")
        cfg = repo / "feature_store.yaml"
        text = cfg.read_text()
        assert "registry: data/registry.db\n" in text
        url = pg.url.replace("postgresql://larder@", "postgresql+psycopg://larder:unused@")
        cfg.write_text(text.replace("registry: data/registry.db\n",
                                    f"registry:\n    registry_type: sql\n    path: {url}\n    cache_ttl_seconds: 1\n"))
        cli = feast_cli(feast_python)
        run([cli, "apply"], cwd=repo)
        run([cli, "materialize", iso(START), iso(END)], cwd=repo)
        assert not (repo / "data" / "registry.db").exists()
        port = free_port()
        log = open(tmp_path / "feast_serve.log", "w")
        feast = subprocess.Popen([str(cli), "serve", "-p", str(port)], cwd=repo, stdout=log,
                                 stderr=subprocess.STDOUT)
        larder = Larder(repo)
        larder.env["LARDER_PYTHON"] = feast_python
        server = Server(larder)
        try:
            feast_url = f"http://127.0.0.1:{port}"
            wait_http(feast_url, feast, tmp_path / "feast_serve.log")
            for body in (ONLINE_REQUEST, SERVICE_REQUEST):
                assert_online_equal(server.online(body).json(), post(feast_url, body))
            assert_follows_feast_apply(repo, cli, server)
        finally:
            server.stop()
            feast.terminate()
            feast.wait(timeout=30)
        p = larder.run("apply", check=False)
        assert p.returncode != 0 and "Feast's SQL registry" in p.stderr, p.stderr
    finally:
        pg.stop()


def test_larder_serves_feasts_sql_registry_in_sqlite(template, feast_python, tmp_path):
    """Feast's SQL registry on SQLite (`registry_type: sql`, `path: sqlite:///data/registry.db`,
    as Feast's docs write it), applied and materialized by Feast: Larder, on the same yaml,
    reads Feast's tables read-only (the file is byte for byte as Feast left it) and serves
    Feast's values; a `feast apply` that adds an object is seen by the running server."""
    repo = copy_repo(template, tmp_path / "repo")
    cfg = repo / "feature_store.yaml"
    text = cfg.read_text()
    assert "registry: data/registry.db\n" in text
    cfg.write_text(text.replace("registry: data/registry.db\n",
                                "registry:\n    registry_type: sql\n    path: sqlite:///data/feast_sql_registry.db\n"
                                "    cache_ttl_seconds: 1\n"))
    cli = feast_cli(feast_python)
    run([cli, "apply"], cwd=repo)
    run([cli, "materialize", iso(START), iso(END)], cwd=repo)
    sql_file = repo / "data" / "feast_sql_registry.db"
    assert sql_file.exists() and not (repo / "data" / "registry.db").exists()
    before = sql_file.read_bytes()
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    server = Server(larder)
    try:
        with feast_serving(cli, repo, tmp_path / "feast_serve.log") as feast_url:
            for body in (ONLINE_REQUEST, SERVICE_REQUEST):
                assert_online_equal(server.online(body).json(), post(feast_url, body))
        assert sql_file.read_bytes() == before, "Larder wrote into Feast's SQL registry"
        assert_follows_feast_apply(repo, cli, server)
    finally:
        server.stop()
    p = larder.run("apply", check=False)
    assert p.returncode != 0 and "Feast's SQL registry" in p.stderr, p.stderr


def test_a_feast_registry_on_s3_is_served_as_feast_left_it(template, feast_python, s3, tmp_path):
    """Feast's registry file on S3 (`registry: s3://...`, as Feast's S3 registry store keeps it):
    the bytes Feast wrote for the template, in a bucket of a local S3 server; Larder serves the
    online values Feast materialized and refuses to change Feast's registry."""
    import boto3

    repo = feast_deployment(template, feast_python, tmp_path)
    cli = feast_cli(feast_python)
    (feast_answer,) = feast_serve(cli, repo, ONLINE_REQUEST)
    client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="feast")
    registry_bytes = (repo / "data" / "registry.db").read_bytes()
    client.put_object(Bucket="feast", Key="prod/registry.db", Body=registry_bytes)
    (repo / "data" / "registry.db").unlink()  # only S3 has the registry now
    cfg = repo / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace("registry: data/registry.db", "registry: s3://feast/prod/registry.db"))
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    s3_env(larder, s3)
    server = Server(larder)
    try:
        assert_online_equal(server.online(ONLINE_REQUEST).json(), feast_answer)
    finally:
        server.stop()
    p = larder.run("apply", check=False)
    assert p.returncode != 0 and "import-feast" in p.stderr and "s3://feast/prod/registry.db" in p.stderr, p.stderr
    assert client.get_object(Bucket="feast", Key="prod/registry.db")["Body"].read() == registry_bytes
