"""The SDK's write methods against a real server: apply/plan, push (every mode),
write_to_online_store, materialize(_incremental) run by the server while it serves, teardown."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import Larder, Server
from e2e.repo_factory import expected_latest, make_repo
from e2e.test_ingest import PUSH_DEFS
from larder import Entity, FeatureStore, FeatureView, Field, FileSource, LarderError, PushMode
from larder.types import Int64

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START, END = NOW - timedelta(days=2), NOW


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    repo = tmp_path_factory.mktemp("sdk_writes")
    data = make_repo(repo, NOW)
    (repo / "definitions.py").write_text((repo / "definitions.py").read_text() + PUSH_DEFS)
    larder = Larder(repo)
    larder.run("apply")
    server = Server(larder)
    yield {"store": FeatureStore(url=server.url), "data": data, "repo": repo, "larder": larder}
    server.stop()


def test_materialize_through_the_server_while_it_serves(env):
    store = env["store"]
    # Nothing online yet.
    before = store.get_online_features(["driver_stats:trips"], [{"driver_id": 5}]).to_dict()
    assert before["trips"] == [None]
    mid = START + timedelta(hours=12)
    done = store.materialize(START, mid, feature_views=["driver_stats"])
    assert [d["feature_view"] for d in done] == ["driver_stats"] and done[0]["rows"] > 0
    done = store.materialize_incremental(END, feature_views=["driver_stats"])
    assert pd.Timestamp(done[0]["start"]) == pd.Timestamp(mid)
    exp = expected_latest(env["data"]["drivers"], "driver_id", "event_timestamp", pd.Timestamp(START), pd.Timestamp(END), "created")
    got = store.get_online_features(["driver_stats:trips"], [{"driver_id": d} for d in range(1, 21)]).to_dict()
    assert got["trips"] == [int(exp.loc[d]["trips"]) for d in range(1, 21)]
    with pytest.raises(LarderError) as e:
        store.materialize(END, START)
    assert e.value.status == 422
    with pytest.raises(LarderError) as e:
        store.materialize(START, END, feature_views=["nope"])
    assert e.value.status == 404 and "nope" in e.value.message


def test_push_in_every_mode_and_write_to_online_store(env):
    store = env["store"]
    t = NOW - timedelta(minutes=5)
    df = pd.DataFrame({"driver_id": [9001, 9002], "event_timestamp": [t, t], "conv_rate": [0.5, float("nan")],
                       "acc_rate": [0.25, 0.75], "trips": [7, 8]})
    df["conv_rate"] = df["conv_rate"].astype("float32")
    store.push("driver_push", df, to=PushMode.ONLINE_AND_OFFLINE)
    online = store.get_online_features(["driver_fresh:trips", "driver_fresh:conv_rate"],
                                       [{"driver_id": 9001}, {"driver_id": 9002}]).to_dict()
    assert online["trips"] == [7, 8] and online["conv_rate"][0] == 0.5 and online["conv_rate"][1] is None
    store.push("driver_push", {"driver_id": [9003], "event_timestamp": [t.isoformat()], "trips": [9]}, to=PushMode.OFFLINE)
    hist = store.get_historical_features(
        entity_df=pd.DataFrame({"driver_id": [9001, 9003], "event_timestamp": [NOW, NOW]}),
        features=["driver_fresh:trips"]).to_df()
    assert hist["trips"].tolist() == [7, 9]
    assert store.get_online_features(["driver_fresh:trips"], [{"driver_id": 9003}]).to_dict()["trips"] == [None]
    store.write_to_online_store("driver_trips", pd.DataFrame({"driver_id": [9004], "event_timestamp": [t], "trips": [44]}))
    assert store.get_online_features(["driver_trips:trips"], [{"driver_id": 9004}]).to_dict()["trips"] == [44]
    with pytest.raises(LarderError) as e:
        store.push("driver_push", {"driver_id": ["x"], "event_timestamp": [t.isoformat()]})
    assert e.value.status == 422 and "driver_id" in e.value.message


def test_apply_and_plan_from_python(env):
    store = env["store"]
    driver = Entity(name="driver", join_keys=["driver_id"])
    source = FileSource(name="driver_source", path="data/drivers.parquet", timestamp_field="event_timestamp",
                        created_timestamp_column="created")
    new_view = FeatureView(name="trips_only", entities=[driver], schema=[Field(name="trips", dtype=Int64)], source=source)
    changes = store.plan([new_view])
    assert any("trips_only" in c for c in changes), changes
    assert "trips_only" not in [v.name for v in store.list_feature_views()]
    out = store.apply([new_view])
    assert out["version"] == 2 and any("trips_only" in c for c in out["changes"])
    assert "trips_only" in [v.name for v in store.list_feature_views()]
    assert "driver_stats" in [v.name for v in store.list_feature_views()], "partial apply keeps the rest"
    assert store.apply([new_view])["version"] is None, "a second apply changes nothing"
    assert store.get_online_features(["trips_only:trips"], [{"driver_id": 1}]).to_dict()["trips"] == [None]
    out = store.apply([], objects_to_delete=[new_view])
    assert out["version"] == 3 and "trips_only" not in [v.name for v in store.list_feature_views()]
    bad = FeatureView(name="broken", entities=[driver], schema=[Field(name="no_such_column", dtype=Int64)], source=source)
    with pytest.raises(LarderError) as e:
        store.apply([bad])
    assert e.value.status == 422 and "no_such_column" in e.value.message


def test_teardown_from_python(env):
    store = env["store"]
    store.teardown()
    with pytest.raises(LarderError) as e:
        store.get_online_features(["driver_stats:trips"], [{"driver_id": 1}])
    assert e.value.status == 503
