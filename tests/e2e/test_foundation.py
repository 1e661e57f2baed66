"""End to end on the real binary: apply -> materialize -> serve, values checked against an
independent pandas computation over the Parquet data."""

import math
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from conftest import Larder, Server
from e2e.repo_factory import expected_latest, make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START = NOW - timedelta(days=2)
END = NOW
EPOCH = "1970-01-01T00:00:00Z"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def feast_ts(t: pd.Timestamp) -> str:
    t = pd.Timestamp(t).tz_convert("UTC")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t.microsecond == 0 and t.nanosecond == 0 else t.isoformat()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    data = make_repo(repo, NOW)
    larder = Larder(repo)
    applied = larder.run("apply")
    materialized = larder.run("materialize", iso(START), iso(END))
    server = Server(larder)
    yield {"repo": repo, "data": data, "larder": larder, "server": server, "apply": applied, "materialize": materialized}
    server.stop()


def columns(resp):
    body = resp.json()
    return {name: col for name, col in zip(body["metadata"]["feature_names"], body["results"])}


def test_apply_prints_the_plan_and_a_second_plan_is_empty(deployed):
    out = deployed["apply"].stdout
    for line in ["Created entity driver", "Created entity customer", "Created feature view driver_stats",
                 "Created feature view customer_profile", "Created feature service svc", "Registry version 1"]:
        assert line in out, out
    assert "No changes to the registry." in deployed["larder"].run("plan").stdout


def test_materialize_reports_rows(deployed):
    out = deployed["materialize"].stdout
    assert "driver_stats: 20 rows" in out, out
    assert "customer_profile: 3 rows" in out, out


def test_online_values_match_an_independent_computation(deployed):
    drivers = deployed["data"]["drivers"]
    exp = expected_latest(drivers, "driver_id", "event_timestamp", pd.Timestamp(START), pd.Timestamp(END), "created")
    ids = list(range(1, 21)) + [999_999]
    resp = deployed["server"].online({
        "features": ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:trips"],
        "entities": {"driver_id": ids},
    })
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["metadata"]["feature_names"] == ["driver_id", "conv_rate", "acc_rate", "trips"]
    cols = columns(resp)
    assert cols["driver_id"]["values"] == ids
    assert cols["driver_id"]["statuses"] == ["PRESENT"] * len(ids)
    for i, d in enumerate(ids):
        if d not in exp.index:
            for f in ["conv_rate", "acc_rate", "trips"]:
                assert cols[f]["values"][i] is None
                assert cols[f]["statuses"][i] == "NOT_FOUND"
                assert cols[f]["event_timestamps"][i] == EPOCH
            continue
        row = exp.loc[d]
        for f in ["conv_rate", "acc_rate"]:
            got, want = cols[f]["values"][i], row[f]
            assert cols[f]["statuses"][i] == "PRESENT"
            if pd.isna(want):
                assert got is None, (d, f, got)
            else:
                assert math.isclose(got, float(want), rel_tol=1e-6), (d, f, got, want)
        assert cols["trips"]["values"][i] == int(row["trips"])
        assert cols["conv_rate"]["event_timestamps"][i] == feast_ts(row["event_timestamp"])
    assert 999_999 not in exp.index


def test_created_timestamp_breaks_ties_and_nulls_are_kept(deployed):
    resp = deployed["server"].online({"features": ["driver_stats:conv_rate", "driver_stats:trips"], "entities": {"driver_id": [1, 2, 3]}})
    cols = columns(resp)
    drivers = deployed["data"]["drivers"]
    last = drivers["event_timestamp"].max()
    base2 = drivers[(drivers.driver_id == 2) & (drivers.event_timestamp == last)].sort_values("created").iloc[-1]
    assert cols["conv_rate"]["values"][0] == 0.125 and cols["trips"]["values"][0] == 777
    assert cols["trips"]["values"][1] == int(base2["trips"]) and cols["trips"]["values"][1] != 888
    assert cols["conv_rate"]["values"][2] is None and cols["conv_rate"]["statuses"][2] == "PRESENT"


def test_values_older_than_the_ttl_are_outside_max_age(deployed):
    resp = deployed["server"].online({
        "features": ["customer_profile:balance", "customer_profile:tier", "customer_profile:scores"],
        "entities": {"customer_id": ["A", "B", "C", "nobody"]},
    })
    assert resp.status_code == 200, resp.text
    cols = columns(resp)
    cust = deployed["data"]["customers"]
    newest_a = cust[cust.customer_id == "A"].sort_values("ts").iloc[-1]
    assert cols["balance"]["statuses"] == ["PRESENT", "OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "NOT_FOUND"]
    assert cols["balance"]["values"] == [newest_a["balance"], None, None, None]
    assert cols["tier"]["values"][0] == newest_a["tier"]
    assert cols["scores"]["values"][0] == [int(x) for x in newest_a["scores"]]
    newest_b = cust[cust.customer_id == "B"]["ts"].max()
    assert cols["balance"]["event_timestamps"][1] == feast_ts(newest_b)


def test_feature_service_with_full_feature_names(deployed):
    resp = deployed["server"].online({
        "feature_service": "svc",
        "entities": {"customer_id": ["A"], "driver_id": [1]},
        "full_feature_names": True,
    })
    assert resp.status_code == 200, resp.text
    names = resp.json()["metadata"]["feature_names"]
    assert names == ["customer_id", "driver_id", "driver_stats__conv_rate", "customer_profile__balance",
                     "customer_profile__tier", "customer_profile__scores"]
    assert columns(resp)["driver_stats__conv_rate"]["values"] == [0.125]


def test_health_and_openapi(deployed):
    import requests
    url = deployed["server"].url
    assert requests.get(url + "/health").status_code == 200
    spec = requests.get(url + "/openapi.json").json()
    assert "/get-online-features" in spec["paths"]
    # Routes are grouped by what they are for, not by the Rust module that holds them.
    declared = {t["name"] for t in spec["tags"]}
    assert declared == {"online", "offline", "ingest", "materialization", "registry", "operations"}, declared
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert len(op["tags"]) == 1 and op["tags"][0] in declared, (path, method, op.get("tags"))
    assert spec["paths"]["/get-online-features"]["post"]["tags"] == ["online"]
    docs = requests.get(url + "/docs/")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()




# --- bad input: every case gets a 4xx that names the problem, never a 500 -------------------

def test_malformed_json(deployed):
    r = deployed["server"].post("/get-online-features", data='{"features": [')
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("body,loc", [
    ({"features": "driver_stats:conv_rate", "entities": {"driver_id": [1]}}, ["body", "features"]),
    ({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": 1}}, ["body", "entities", "driver_id"]),
    ({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": ["one"]}}, ["body", "entities", "driver_id", 0]),
    ({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1, 2.5]}}, ["body", "entities", "driver_id", 1]),
    ({"features": ["customer_profile:tier"], "entities": {"customer_id": [7]}}, ["body", "entities", "customer_id", 0]),
    ({"features": ["driver_stats:conv_rate"], "entities": {"customer_id": ["A"]}}, ["body", "entities", "driver_id"]),
    ({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": []}}, ["body", "entities", "driver_id"]),
    ({"features": ["driver_stats:conv_rate"], "entities": {}}, ["body", "entities"]),
    ({"features": [], "entities": {"driver_id": [1]}}, ["body", "features"]),
    ({"features": ["conv_rate"], "entities": {"driver_id": [1]}}, ["body", "features", 0]),
    ({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1], "customer_id": ["A", "B"]}}, ["body", "entities", "customer_id"]),
    ({"features": ["driver_stats:conv_rate", "driver_stats:conv_rate", "customer_profile:balance"],
      "entities": {"driver_id": [1], "customer_id": ["A"]}, "full_feature_names": "yes"}, ["body", "full_feature_names"]),
])
def test_invalid_requests_name_the_field(deployed, body, loc):
    r = deployed["server"].online(body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc, r.text


def test_feature_name_collision_needs_full_feature_names(deployed):
    body = {"features": ["driver_stats:trips", "driver_trips:trips"], "entities": {"driver_id": [1]}}
    r = deployed["server"].online(body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "full_feature_names"], r.text
    r = deployed["server"].online({**body, "full_feature_names": True})
    assert r.status_code == 200, r.text
    cols = columns(r)
    assert list(cols) == ["driver_id", "driver_stats__trips", "driver_trips__trips"]
    assert cols["driver_stats__trips"]["values"] == cols["driver_trips__trips"]["values"] == [777]


@pytest.mark.parametrize("body,cls,name", [
    ({"features": ["no_such_view:x"], "entities": {"driver_id": [1]}}, "FeatureViewNotFoundException", "no_such_view"),
    ({"features": ["driver_stats:no_such_feature"], "entities": {"driver_id": [1]}}, "FeastObjectNotFoundException", "no_such_feature"),
    ({"feature_service": "no_such_service", "entities": {"driver_id": [1]}}, "FeatureServiceNotFoundException", "no_such_service"),
])
def test_unknown_names_are_404_with_feast_error_detail(deployed, body, cls, name):
    import json
    r = deployed["server"].online(body)
    assert r.status_code == 404, r.text
    detail = json.loads(r.json())  # Feast's body: a JSON string holding the detail
    assert detail["module"] == "feast.errors" and detail["class"] == cls
    assert name in detail["message"] and "e2e_project" in detail["message"]


def test_oversized_body_is_refused(deployed):
    ids = list(range(2_000_000))
    r = deployed["server"].online({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": ids}})
    assert r.status_code == 413
    # The server is still fine afterwards.
    assert deployed["server"].online({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1]}}).status_code == 200


def test_too_many_entities_is_refused(deployed):
    r = deployed["server"].online({"features": ["driver_stats:conv_rate"], "entities": {"driver_id": list(range(10_001))}})
    assert r.status_code == 422 and "limit" in r.text


# --- registry versions, validation, incremental materialization --------------------------------

def test_versions_history_and_dump(tmp_path):
    make_repo(tmp_path, NOW, ttl_days=30)
    larder = Larder(tmp_path)
    larder.run("apply")
    defs = tmp_path / "definitions.py"
    defs.write_text(defs.read_text().replace("timedelta(days=30)", "timedelta(days=7)"))
    plan = larder.run("plan").stdout
    assert "Updated feature view driver_stats" in plan and "ttl_seconds: 2592000 -> 604800" in plan, plan
    larder.run("apply")
    hist = larder.run("registry", "history").stdout
    assert "version 1" in hist and "version 2" in hist and "ttl_seconds: 2592000 -> 604800" in hist, hist
    import json
    assert json.loads(larder.run("registry", "dump").stdout)["feature_views"][1]["ttl_seconds"] == 604800
    assert json.loads(larder.run("registry", "dump", "--version", "1").stdout)["feature_views"][1]["ttl_seconds"] == 2592000


def test_invalid_definitions_are_refused_with_the_reason(tmp_path):
    make_repo(tmp_path, NOW)
    larder = Larder(tmp_path)
    defs = tmp_path / "definitions.py"
    defs.write_text(defs.read_text().replace('Field(name="tier", dtype=String)', 'Field(name="tier", dtype=Int64)')
                    .replace('Field(name="trips", dtype=Int64)', 'Field(name="trips_x", dtype=Int64)'))
    p = larder.run("apply", check=False)
    assert p.returncode == 1
    assert "feature view customer_profile: feature `tier` is declared INT64 but the source column is STRING" in p.stderr, p.stderr
    assert "feature view driver_stats: feature `trips_x` is not a column of source driver_source" in p.stderr, p.stderr
    assert not (tmp_path / "data/registry.json").exists()


def test_python_errors_in_definitions_name_the_file(tmp_path):
    make_repo(tmp_path, NOW)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    p = Larder(tmp_path).run("apply", check=False)
    assert p.returncode == 1 and "broken.py" in p.stderr and "boom" in p.stderr, p.stderr


def test_incremental_materialization_and_newest_wins(tmp_path):
    data = make_repo(tmp_path, NOW)
    larder = Larder(tmp_path)
    larder.run("apply")
    mid = START + timedelta(hours=12)
    larder.run("materialize", iso(START), iso(mid), "-v", "driver_stats")
    out = larder.run("materialize-incremental", iso(END), "-v", "driver_stats").stdout
    assert f"from {mid.isoformat()}" in out.replace("+00:00", "+00:00"), out
    # An older window afterwards must not move keys back in time.
    larder.run("materialize", iso(START), iso(mid), "-v", "driver_stats")
    server = Server(larder)
    try:
        resp = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [5]}})
        exp = expected_latest(data["drivers"], "driver_id", "event_timestamp", pd.Timestamp(START), pd.Timestamp(END), "created")
        assert columns(resp)["trips"]["values"] == [int(exp.loc[5]["trips"])]
        # A new apply is seen by the running server without a restart.
        defs = tmp_path / "definitions.py"
        defs.write_text(defs.read_text() + '\nextra = FeatureView(name="extra", entities=[driver], schema=[Field(name="trips", dtype=Int64)], source=driver_source)\n')
        larder.run("apply")
        deadline = time.time() + 10
        while time.time() < deadline:
            r = server.online({"features": ["extra:trips"], "entities": {"driver_id": [5]}})
            if r.status_code == 200:
                break
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert columns(r)["trips"]["statuses"] == ["NOT_FOUND"]
    finally:
        server.stop()


def test_the_arrow_answer_has_the_json_answers_cells(deployed, monkeypatch):
    """`Accept: application/vnd.apache.arrow.stream` answers the same cells as JSON (values,
    statuses, times), with a list, a string and a missing key among them; the SDK asks for it
    from ARROW_ONLINE_ROWS entity rows and gives the same `to_dict()`."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import requests

    from larder import FeatureStore
    from larder import feature_store as fs

    server = deployed["server"]
    customers = sorted(deployed["data"]["customers"]["customer_id"].unique().tolist()) + ["nobody"]
    ids = list(range(1, 21)) + [999_999]
    n = max(len(ids), len(customers))
    request = {
        "features": ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:trips",
                     "customer_profile:balance", "customer_profile:tier", "customer_profile:scores"],
        "entities": {"driver_id": (ids * n)[:n], "customer_id": (customers * n)[:n]},
    }
    as_json = columns(server.online(request))
    resp = requests.post(server.url + "/get-online-features", json=request,
                         headers={"Accept": "application/vnd.apache.arrow.stream"}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = ipc.open_stream(pa.py_buffer(resp.content)).read_all()
    assert table.num_rows == n
    assert table.column_names[0::3] == list(as_json), table.column_names
    statuses = set()
    for name, col in as_json.items():
        assert table.column(name).to_pylist() == col["values"], name
        assert table.column(name + "__status").to_pylist() == col["statuses"], name
        stamps = table.column(name + "__event_timestamp").cast("int64").to_pylist()
        assert stamps == [pd.Timestamp(t).value for t in col["event_timestamps"]], name
        statuses |= set(col["statuses"])
    assert {"PRESENT", "NOT_FOUND"} <= statuses, statuses

    store = FeatureStore(url=server.url)
    rows = [{"driver_id": d, "customer_id": c} for d, c in zip(request["entities"]["driver_id"], request["entities"]["customer_id"])]
    monkeypatch.setattr(fs, "ARROW_ONLINE_ROWS", 10**9)
    by_json = store.get_online_features(request["features"], rows)
    monkeypatch.setattr(fs, "ARROW_ONLINE_ROWS", 1)
    by_arrow = store.get_online_features(request["features"], rows)
    assert by_arrow._table is not None and by_json._table is None
    assert by_arrow.to_dict(include_event_timestamps=True) == by_json.to_dict(include_event_timestamps=True)


def test_feast_style_list_and_describe_commands(deployed):
    """`larder <kind> list|describe NAME`, as Feast's CLI has them, beside a running server; the
    tables name every object of the repo's definitions, `describe` prints one in full (YAML)."""
    import yaml

    larder = deployed["larder"]
    views = larder.run("feature-views", "list").stdout.splitlines()
    assert views[0].split() == ["NAME", "ENTITIES", "TYPE"], views
    rows = {line.split()[0]: line.split()[1:] for line in views[1:]}
    assert rows == {"customer_profile": ["customer", "FeatureView"], "driver_stats": ["driver", "FeatureView"],
                    "driver_trips": ["driver", "FeatureView"]}, rows
    entities = [line.split()[0] for line in larder.run("entities", "list").stdout.splitlines()[1:]]
    assert entities == ["customer", "driver"], entities
    sources = larder.run("data-sources", "list").stdout
    assert "driver_source" in sources and "FileSource" in sources, sources
    services = larder.run("feature-services", "list").stdout
    assert "svc" in services and "driver_stats:conv_rate" in services and "customer_profile:*" in services, services

    described = yaml.safe_load(larder.run("feature-views", "describe", "driver_stats").stdout)
    assert described["name"] == "driver_stats"
    assert [f["name"] for f in described["features"]] == ["conv_rate", "acc_rate", "trips"], described
    assert described["ttl_seconds"] == 30 * 86400, described
    missing = larder.run("entities", "describe", "nobody", check=False)
    assert missing.returncode != 0 and "Entity nobody does not exist" in missing.stderr, missing.stderr


def test_registry_diff_between_two_versions(tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo, NOW, ttl_days=30)
    larder = Larder(repo)
    larder.run("apply")
    make_repo(repo, NOW, ttl_days=7)  # the same repo with another ttl on the driver views
    larder.run("apply")
    diff = larder.run("registry", "diff", "1", "2").stdout
    assert "Updated feature view driver_stats" in diff and "Updated feature view driver_trips" in diff, diff
    assert "customer_profile" not in diff, diff
    assert "No changes to the registry." in larder.run("registry", "diff", "2", "2").stdout
    missing = larder.run("registry", "diff", "1", "9", check=False)
    assert missing.returncode != 0 and "9" in missing.stderr, missing.stderr
