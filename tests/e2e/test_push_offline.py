"""`POST /push` with `to: offline | online_and_offline`: rows are appended to the push source's
batch source as Parquet, atomically, and later training sets and materializations see them."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import Larder, Server
from e2e.repo_factory import make_repo
from e2e.test_ingest import PUSH_DEFS, read
from larder import FeatureStore

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    repo = tmp_path_factory.mktemp("push_offline")
    make_repo(repo, NOW)
    defs = repo / "definitions.py"
    defs.write_text(defs.read_text() + PUSH_DEFS)
    larder = Larder(repo)
    larder.run("apply")
    s = Server(larder)
    yield {"server": s, "repo": repo, "larder": larder, "store": FeatureStore(url=s.url)}
    s.stop()


def appended(repo):
    d = repo / "data/drivers.parquet.appends"
    return sorted(p.name for p in d.glob("*.parquet")) if d.exists() else []


def training(store, rows, features=("driver_fresh:trips", "driver_fresh:conv_rate")):
    entity_df = pd.DataFrame({"driver_id": [r[0] for r in rows],
                              "event_timestamp": pd.to_datetime([r[1] for r in rows], utc=True)})
    return store.get_historical_features(entity_df=entity_df, features=list(features)).to_df()


def test_offline_push_reaches_training_sets_but_not_the_online_store(deployed):
    server, store = deployed["server"], deployed["store"]
    t = NOW - timedelta(minutes=30)
    r = server.post("/push", {"push_source_name": "driver_push", "to": "offline",
                              "df": {"driver_id": [5001, 5002], "event_timestamp": [iso(t), iso(t)],
                                     "conv_rate": [0.25, 0.5], "acc_rate": [0.1, 0.2], "trips": [41, 42]}})
    assert r.status_code == 200, r.text
    assert len(appended(deployed["repo"])) == 1
    df = training(store, [(5001, t + timedelta(minutes=1)), (5002, t - timedelta(minutes=1)), (5001, t)])
    assert df["trips"].tolist()[0] == 41 and df["conv_rate"].tolist()[0] == pytest.approx(0.25)
    assert pd.isna(df["trips"].tolist()[1]), "a row is not visible before its event time"
    assert df["trips"].tolist()[2] == 41, "event time <= entity time is inclusive"
    assert read(server, [5001])["trips"]["statuses"] == ["NOT_FOUND"]


def test_online_and_offline_push_goes_to_both(deployed):
    server, store = deployed["server"], deployed["store"]
    t = NOW - timedelta(minutes=10)
    r = server.post("/push", {"push_source_name": "driver_push", "to": "online_and_offline",
                              "df": {"driver_id": [5003], "event_timestamp": [iso(t)], "trips": [43]}})
    assert r.status_code == 200, r.text
    assert read(server, [5003])["trips"]["values"] == [43]
    df = training(store, [(5003, NOW)])
    assert df["trips"].tolist() == [43]
    # conv_rate was not pushed: null offline (the column is kept, typed).
    assert pd.isna(df["conv_rate"].tolist()[0])


def test_views_sharing_the_batch_source_see_offline_pushes(deployed):
    # driver_stats reads the push source's batch source directly.
    df = training(deployed["store"], [(5001, NOW), (5002, NOW)], features=("driver_stats:trips",))
    assert df["trips"].tolist() == [41, 42]


def test_a_bad_row_writes_nothing_anywhere(deployed):
    server, repo = deployed["server"], deployed["repo"]
    before = appended(repo)
    t = iso(NOW - timedelta(minutes=1))
    r = server.post("/push", {"push_source_name": "driver_push", "to": "online_and_offline",
                              "df": {"driver_id": [5004, 5005], "event_timestamp": [t, t], "trips": [1, "many"]}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "df", "trips", 1], r.text
    assert appended(repo) == before
    assert read(server, [5004])["trips"]["statuses"] == ["NOT_FOUND"]
    r = server.post("/push", {"push_source_name": "driver_push", "to": "offline",
                              "df": {"driver_id": [5004], "event_timestamp": [t], "speed": [3.0]}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "df", "speed"], r.text
    r = server.post("/push", {"push_source_name": "driver_push", "to": "offline",
                              "df": {"driver_id": [5004], "trips": [3]}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "df", "event_timestamp"], r.text
    assert appended(repo) == before


FRESH_DEFS = """
from datetime import timedelta
from larder import Entity, FeatureView, Field, FileSource, PushSource
from larder.types import Float64, Int64, String

rider = Entity(name="rider", join_keys=["rider_id"])
rides = FileSource(name="rides", path="data/rides.parquet", timestamp_field="event_timestamp",
                   created_timestamp_column="created")
rides_push = PushSource(name="rides_push", batch_source=rides)
rider_stats = FeatureView(
    name="rider_stats", entities=[rider], ttl=timedelta(days=1),
    schema=[Field(name="rider_id", dtype=Int64), Field(name="fare", dtype=Float64), Field(name="city", dtype=String)],
    source=rides_push,
)
"""


def test_a_push_source_whose_batch_source_has_no_data_yet(tmp_path):
    """A new push source's batch file does not exist yet: apply creates it empty with the
    columns the definitions declare; offline pushes land in it and reach training sets and a
    materialization. A plain FileSource whose file is missing is still an error, named."""
    import pyarrow.parquet as pq

    (tmp_path / "definitions.py").write_text(FRESH_DEFS)
    (tmp_path / "feature_store.yaml").write_text(
        "project: fresh\nregistry: data/registry.json\nprovider: local\n"
        "online_store:\n  type: rocksdb\n  path: data/online\nentity_key_serialization_version: 3\n")
    larder = Larder(tmp_path)
    out = larder.run("apply")
    assert "Created " in out.stdout and "rides.parquet" in out.stdout, out.stdout
    schema = pq.read_schema(tmp_path / "data" / "rides.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("rider_id", "int64"), ("fare", "double"), ("city", "string"),
        ("event_timestamp", "timestamp[us, tz=UTC]"), ("created", "timestamp[us, tz=UTC]")], schema
    t = NOW - timedelta(minutes=20)
    server = Server(larder)
    try:
        r = server.post("/push", {"push_source_name": "rides_push", "to": "offline",
                                  "df": {"rider_id": [7, 8], "event_timestamp": [iso(t), iso(t)],
                                         "created": [iso(t), iso(t)], "fare": [12.5, 3.25], "city": ["Oslo", None]}})
        assert r.status_code == 200, r.text
        store = FeatureStore(url=server.url)
        entity_df = pd.DataFrame({"rider_id": [7, 8, 9], "event_timestamp": pd.to_datetime([NOW] * 3, utc=True)})
        df = store.get_historical_features(entity_df=entity_df, features=["rider_stats:fare", "rider_stats:city"]).to_df()
        assert df["fare"].tolist()[:2] == [12.5, 3.25] and pd.isna(df["fare"].tolist()[2])
        assert df["city"].tolist()[0] == "Oslo"
        r = server.post("/materialize", {"start_ts": iso(NOW - timedelta(hours=1)), "end_ts": iso(NOW)})
        assert r.status_code == 200, r.text
        got = server.online({"features": ["rider_stats:fare"], "entities": {"rider_id": [7, 8, 9]}}).json()
        assert got["results"][1]["values"] == [12.5, 3.25, None], got
    finally:
        server.stop()

    # A plain file source (no push or stream source writes to it) must exist.
    (tmp_path / "definitions.py").write_text(FRESH_DEFS + """
trips = FileSource(name="trips", path="data/trips.parquet", timestamp_field="event_timestamp")
trip_stats = FeatureView(name="trip_stats", entities=[rider], schema=[Field(name="km", dtype=Float64)], source=trips)
""")
    p = larder.run("apply", check=False)
    assert p.returncode != 0 and "trips.parquet" in p.stderr and "does not exist" in p.stderr, p.stderr
    assert not (tmp_path / "data" / "trips.parquet").exists()
