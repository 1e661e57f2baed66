"""POST /push and /write-to-online-store in Feast's wire format, against the real server."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Larder, Server
from e2e.repo_factory import make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)

PUSH_DEFS = """
from larder import PushSource
driver_push = PushSource(name="driver_push", batch_source=driver_source)
driver_fresh = FeatureView(
    name="driver_fresh", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
            Field(name="acc_rate", dtype=Float64), Field(name="trips", dtype=Int64)],
    source=driver_push,
)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("ingest")
    make_repo(repo, NOW)
    defs = repo / "definitions.py"
    defs.write_text(defs.read_text() + PUSH_DEFS)
    larder = Larder(repo)
    larder.run("apply")
    s = Server(larder)
    yield s
    s.stop()


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def read(server, ids, view="driver_fresh"):
    r = server.online({"features": [f"{view}:conv_rate", f"{view}:trips"], "entities": {"driver_id": ids}})
    assert r.status_code == 200, r.text
    body = r.json()
    return {n: c for n, c in zip(body["metadata"]["feature_names"], body["results"])}


def test_push_then_read_and_newest_wins(server):
    t1, t0 = NOW - timedelta(minutes=5), NOW - timedelta(minutes=30)
    r = server.post("/push", {"push_source_name": "driver_push", "to": "online",
                              "df": {"driver_id": [1, 2], "event_timestamp": [iso(t1), iso(t1)],
                                     "conv_rate": [0.25, 0.75], "acc_rate": [0.5, 0.5], "trips": [10, 20]}})
    assert r.status_code == 200, r.text
    cols = read(server, [1, 2, 3])
    assert cols["conv_rate"]["values"] == [0.25, 0.75, None]
    assert cols["trips"]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert cols["trips"]["event_timestamps"][0] == t1.strftime("%Y-%m-%dT%H:%M:%SZ")
    # An older push for driver 1 does not overwrite; a newer one does.
    server.post("/push", {"push_source_name": "driver_push",
                          "df": {"driver_id": [1], "event_timestamp": [iso(t0)], "conv_rate": [0.0], "acc_rate": [0.0], "trips": [0]}})
    assert read(server, [1])["trips"]["values"] == [10]
    server.post("/push", {"push_source_name": "driver_push",
                          "df": {"driver_id": [1], "event_timestamp": [iso(NOW)], "conv_rate": [0.5], "acc_rate": [0.0], "trips": [11]}})
    assert read(server, [1])["trips"]["values"] == [11]


def test_write_to_online_store_as_feasts_remote_client_sends_it(server):
    t = NOW - timedelta(minutes=1)
    r = server.post("/write-to-online-store", {
        "feature_view_name": "driver_stats", "allow_registry_cache": False,
        "df": {"driver_id": [77], "conv_rate": [0.125], "acc_rate": [0.5], "trips": [3],
               "event_timestamp": [t.strftime("%Y-%m-%dT%H:%M:%S.%f")], "created": [None]}})
    assert r.status_code == 200 and r.json() is None, r.text
    cols = read(server, [77], view="driver_stats")
    assert cols["conv_rate"]["values"] == [0.125] and cols["trips"]["values"] == [3]


def test_unknown_push_source_is_422_with_feast_class(server):
    r = server.post("/push", {"push_source_name": "nope", "df": {"driver_id": [1]}})
    assert r.status_code == 422
    detail = json.loads(r.json())
    assert detail["class"] == "PushSourceNotFoundException" and "nope" in detail["message"]


@pytest.mark.parametrize("df,loc", [
    ({"driver_id": ["x"], "event_timestamp": ["2024-01-01T00:00:00"], "conv_rate": [0.1]}, ["body", "df", "driver_id", 0]),
    ({"driver_id": [1], "event_timestamp": ["2024-01-01T00:00:00"], "conv_rate": ["high"]}, ["body", "df", "conv_rate", 0]),
    ({"driver_id": [1], "conv_rate": [0.1]}, ["body", "df", "event_timestamp"]),
    ({"event_timestamp": ["2024-01-01T00:00:00"], "conv_rate": [0.1]}, ["body", "df", "driver_id"]),
    ({"driver_id": [1, 2], "event_timestamp": ["2024-01-01T00:00:00"]}, ["body", "df", "event_timestamp"]),
    ({"driver_id": [1], "event_timestamp": ["yesterday"]}, ["body", "df", "event_timestamp", 0]),
])
def test_bad_rows_name_the_field(server, df, loc):
    r = server.post("/push", {"push_source_name": "driver_push", "df": df})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc, r.text


def test_bad_to_is_422(server):
    df = {"driver_id": [1], "event_timestamp": [iso(NOW)], "trips": [1]}
    r = server.post("/push", {"push_source_name": "driver_push", "df": df, "to": "elsewhere"})
    assert r.status_code == 422 and "to" in r.json()["detail"][0]["loc"]


def test_write_to_unknown_view_is_404(server):
    r = server.post("/write-to-online-store", {"feature_view_name": "nope", "df": {"driver_id": [1]}})
    assert r.status_code == 404 and json.loads(r.json())["class"] == "FeatureViewNotFoundException"
