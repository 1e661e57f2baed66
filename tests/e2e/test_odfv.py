"""On-demand feature views served by `/get-online-features`: SQL expressions (evaluated with
DataFusion in the server) and Feast's pandas and python UDFs (run by the Python worker the
server starts), checked against values computed here from the same response's inputs."""

import math
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import Larder, Server
from e2e.repo_factory import expected_latest, make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START, END = NOW - timedelta(days=2), NOW

ODFV_DEFS = '''
import pandas as pd
from larder import OnDemandFeatureView, RequestSource, on_demand_feature_view
from larder.types import Float64, Int64

vals = RequestSource(name="vals_to_add", schema=[Field(name="val_to_add", dtype=Int64)])

@on_demand_feature_view(sources=[driver_stats, vals], schema=[Field(name="conv_plus_val", dtype=Float64)], mode="pandas")
def conv_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_plus_val"] = inputs["conv_rate"] + inputs["val_to_add"]
    return out

@on_demand_feature_view(sources=[driver_stats, vals], schema=[Field(name="trips_times_val", dtype=Int64)], mode="python")
def trips_python(inputs):
    return {"trips_times_val": [None if t is None else t * v for t, v in zip(inputs["trips"], inputs["val_to_add"])]}

@on_demand_feature_view(sources=[driver_stats, vals], schema=[Field(name="checked", dtype=Int64)], mode="python")
def strict_python(inputs):
    if any(v < 0 for v in inputs["val_to_add"]):
        raise ValueError("val_to_add must not be negative")
    return {"checked": inputs["val_to_add"]}

@on_demand_feature_view(sources=[driver_stats, vals], schema=[Field(name="slow_echo", dtype=Int64)], mode="python")
def slow_python(inputs):
    import time
    if 7777 in inputs["val_to_add"]:
        time.sleep(1.5)
    return {"slow_echo": inputs["val_to_add"]}

conv_sql = OnDemandFeatureView(
    name="conv_sql", sources=[driver_stats, vals], mode="sql",
    schema=[Field(name="conv_plus_val_sql", dtype=Float64), Field(name="acc_ratio", dtype=Float64)],
    expressions={"conv_plus_val_sql": "CAST(conv_rate AS DOUBLE) + val_to_add",
                 "acc_ratio": "driver_stats__acc_rate / (val_to_add + 1)"},
)

odfv_service = FeatureService(name="odfv_service", features=[driver_stats[["trips"]], conv_sql, conv_pandas])
'''


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    repo = tmp_path_factory.mktemp("odfv")
    data = make_repo(repo, NOW)
    (repo / "definitions.py").write_text((repo / "definitions.py").read_text() + ODFV_DEFS)
    larder = Larder(repo)
    larder.run("apply")
    larder.run("materialize", START.strftime("%Y-%m-%dT%H:%M:%S"), END.strftime("%Y-%m-%dT%H:%M:%S"))
    server = Server(larder)
    exp = expected_latest(data["drivers"], "driver_id", "event_timestamp", pd.Timestamp(START), pd.Timestamp(END), "created")
    state = {"server": server, "exp": exp, "larder": larder}
    yield state
    state["server"].stop()


def cols(resp):
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return {n: c for n, c in zip(body["metadata"]["feature_names"], body["results"])}


IDS = [1, 2, 3, 999]
VALS = [10, 20, 30, 40]


def expected(exp, fn):
    return [fn(exp.loc[d], v) if d in exp.index else None for d, v in zip(IDS, VALS)]


def close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None or (isinstance(w, float) and math.isnan(w)):
            assert g is None, (got, want)
        else:
            assert g is not None and math.isclose(g, w, rel_tol=1e-6), (got, want)


def conv(r):
    return float("nan") if pd.isna(r["conv_rate"]) else float(r["conv_rate"])


def test_sql_transformation(deployed):
    c = cols(deployed["server"].online({"features": ["conv_sql:conv_plus_val_sql", "conv_sql:acc_ratio"],
                                        "entities": {"driver_id": IDS, "val_to_add": VALS}}))
    assert list(c) == ["driver_id", "conv_plus_val_sql", "acc_ratio"]
    close(c["conv_plus_val_sql"]["values"], expected(deployed["exp"], lambda r, v: conv(r) + v))
    close(c["acc_ratio"]["values"], expected(deployed["exp"], lambda r, v: float(r["acc_rate"]) / (v + 1)))
    assert c["acc_ratio"]["statuses"] == ["PRESENT"] * 4


def test_pandas_and_python_udfs(deployed):
    c = cols(deployed["server"].online({
        "features": ["driver_stats:trips", "conv_pandas:conv_plus_val", "trips_python:trips_times_val"],
        "entities": {"driver_id": IDS, "val_to_add": VALS}}))
    assert list(c) == ["driver_id", "trips", "conv_plus_val", "trips_times_val"]
    close(c["conv_plus_val"]["values"], expected(deployed["exp"], lambda r, v: conv(r) + v))
    assert c["trips_times_val"]["values"][:3] == [int(deployed["exp"].loc[d]["trips"]) * v for d, v in zip(IDS[:3], VALS[:3])]
    assert c["trips_times_val"]["values"][3] is None


def test_feature_service_with_on_demand_views_and_full_names(deployed):
    c = cols(deployed["server"].online({"feature_service": "odfv_service", "full_feature_names": True,
                                        "entities": {"driver_id": IDS, "val_to_add": VALS}}))
    assert list(c) == ["driver_id", "driver_stats__trips", "conv_sql__conv_plus_val_sql", "conv_sql__acc_ratio",
                       "conv_pandas__conv_plus_val"]
    close(c["conv_pandas__conv_plus_val"]["values"], c["conv_sql__conv_plus_val_sql"]["values"])


def test_missing_request_data_is_422_naming_it(deployed):
    r = deployed["server"].online({"features": ["conv_sql:acc_ratio"], "entities": {"driver_id": [1]}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "entities", "val_to_add"], r.text
    r = deployed["server"].online({"features": ["conv_sql:acc_ratio"], "entities": {"driver_id": [1], "val_to_add": ["x"]}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "entities", "val_to_add", 0], r.text


def test_unknown_on_demand_output_is_404(deployed):
    r = deployed["server"].online({"features": ["conv_sql:nope"], "entities": {"driver_id": [1], "val_to_add": [1]}})
    assert r.status_code == 404 and "nope" in r.text


def test_a_failing_udf_is_reported_and_the_worker_lives_on(deployed):
    server = deployed["server"]
    r = server.online({"features": ["strict_python:checked"], "entities": {"driver_id": [1], "val_to_add": [-1]}})
    assert r.status_code == 500 and "val_to_add must not be negative" in r.text, r.text
    c = cols(server.online({"features": ["strict_python:checked"], "entities": {"driver_id": [1], "val_to_add": [5]}}))
    assert c["checked"]["values"] == [5]


def test_training_sets_compute_the_same_values_as_online_serving(deployed):
    from larder import FeatureStore

    server = deployed["server"]
    feats = ["conv_sql:conv_plus_val_sql", "conv_sql:acc_ratio", "conv_pandas:conv_plus_val", "trips_python:trips_times_val"]
    online = cols(server.online({"features": feats, "entities": {"driver_id": IDS[:3], "val_to_add": VALS[:3]}}))
    entity_df = pd.DataFrame({"driver_id": IDS[:3], "event_timestamp": [pd.Timestamp(END)] * 3, "val_to_add": VALS[:3]})
    df = FeatureStore(url=server.url).get_historical_features(entity_df=entity_df, features=feats).to_df()
    assert list(df.columns) == ["driver_id", "event_timestamp", "val_to_add", "conv_plus_val_sql", "acc_ratio",
                                "conv_plus_val", "trips_times_val"]
    for f in ["conv_plus_val_sql", "acc_ratio", "conv_plus_val", "trips_times_val"]:
        close([None if pd.isna(x) else x for x in df[f].tolist()], online[f]["values"])
    # Full feature names, through Arrow Flight too.
    store = FeatureStore(url=server.url, flight_url=server.flight_url)
    df = store.get_historical_features(entity_df=entity_df, features=feats[:1], full_feature_names=True).to_df()
    assert list(df.columns)[-1] == "conv_sql__conv_plus_val_sql"


def test_training_set_without_the_request_column_is_refused(deployed):
    from larder import FeatureStore, LarderError

    entity_df = pd.DataFrame({"driver_id": [1], "event_timestamp": [pd.Timestamp(END)]})
    with pytest.raises(LarderError) as e:
        FeatureStore(url=deployed["server"].url).get_historical_features(entity_df=entity_df, features=["conv_sql:acc_ratio"]).to_df()
    assert e.value.status == 422 and "val_to_add" in e.value.message


def test_a_request_cancelled_mid_transformation_does_not_shift_later_answers(deployed):
    """A request that times out while the Python worker computes its answer must not leave that
    answer on the worker's connection, where the next request would read it as its own."""
    deployed["server"].stop()
    server = deployed["server"] = Server(deployed["larder"], "--request-timeout-secs", "1")
    slow = server.online({"features": ["slow_python:slow_echo"], "entities": {"driver_id": [1], "val_to_add": [7777]}})
    assert slow.status_code == 504, slow.text
    time.sleep(1.0)  # the worker has answered the timed-out request by now
    for vals in ([5, 6], [7, 8], [9, 10]):
        r = server.online({"features": ["slow_python:slow_echo"], "entities": {"driver_id": [1, 2], "val_to_add": vals}})
        assert cols(r)["slow_echo"]["values"] == vals

