"""Served features logged by `larder serve` (`feature_server.feature_logging`): the template's
`driver_activity_v1` service has a `FileLoggingDestination`; what Larder serves for it is
logged there in the schema Feast itself computes for the service's logs
(`FeatureServiceLoggingSource.get_schema`, run by Feast 0.67 on its own registry of the same
repo), one row per entity row, every cell equal to the answer the client got."""

import json
import struct
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from compat.test_feast_repos import END, START, copy_repo, feast_cli, feast_python, iso, run, template  # noqa: F401
from conftest import Larder, Server

FEAST_SCHEMA = """
import json, sys
from feast import FeatureStore
from feast.feature_logging import FeatureServiceLoggingSource
store = FeatureStore(repo_path=sys.argv[1])
service = store.get_feature_service("driver_activity_v1")
schema = FeatureServiceLoggingSource(service, store.project).get_schema(store.registry)
print(json.dumps([[f.name, str(f.type)] for f in schema]))
"""

ENTITIES = {"driver_id": [1001, 1002, 4242], "val_to_add": [1, 2, 3], "val_to_add_2": [10, 20, 30]}


def logging_yaml(repo: Path, interval: int):
    cfg = repo / "feature_store.yaml"
    text = cfg.read_text().split("\nfeature_server:")[0].rstrip("\n") + "\n"
    cfg.write_text(text + f"feature_server:\n  feature_logging:\n    enabled: true\n"
                          f"    write_to_disk_interval_secs: {interval}\n")


@pytest.fixture(scope="module")
def feast_log_schema(template, feast_python, tmp_path_factory):
    repo = copy_repo(template, tmp_path_factory.mktemp("feast_log") / "repo")
    logging_yaml(repo, 1)  # Feast reads the same yaml
    run([feast_cli(feast_python), "apply"], cwd=repo)
    p = run([feast_python, "-c", FEAST_SCHEMA, repo], cwd=repo)
    return json.loads(p.stdout.strip().splitlines()[-1])


def log_files(repo: Path, known: set) -> list:
    return sorted(set((repo / "data").rglob("*.parquet")) - known)


def ask(server, request_id, full=False, service="driver_activity_v1"):
    body = {"feature_service": service, "entities": ENTITIES, "full_feature_names": full}
    r = requests.post(server.url + "/get-online-features", json=body, headers={"x-request-id": request_id},
                      timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def columns(body):
    return {n: c for n, c in zip(body["metadata"]["feature_names"], body["results"])}


def parquet_type(t: str) -> str:
    # Parquet has no second unit: pyarrow (Feast's own file store) and Larder write milliseconds.
    return t.replace("timestamp[s", "timestamp[ms")


def epoch(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def check_rows(rows, answer, request_id, full):
    """The logged rows of one request against the answer it got."""
    got = [r for r in rows if r["__request_id"] == request_id]
    assert len(got) == 3, (request_id, len(got))
    cols = columns(answer)
    status = {"PRESENT": 1, "NOT_FOUND": 3, "OUTSIDE_MAX_AGE": 4}
    for name, view, feature in [("conv_rate", "driver_hourly_stats", "conv_rate"),
                                ("conv_rate_plus_val1", "transformed_conv_rate", "conv_rate_plus_val1"),
                                ("conv_rate_plus_val2", "transformed_conv_rate", "conv_rate_plus_val2")]:
        col = cols[f"{view}__{feature}" if full else name]
        for i, row in enumerate(got):
            assert row["driver_id"] == ENTITIES["driver_id"][i]
            assert row["val_to_add"] == ENTITIES["val_to_add"][i]
            assert row["val_to_add_2"] == ENTITIES["val_to_add_2"][i]
            value = row[f"{view}__{feature}"]
            served = col["values"][i]
            if feature == "conv_rate" and served is not None:
                served = struct.unpack("<f", struct.pack("<f", served))[0]  # a float32 column
            assert value == served, (request_id, feature, i, value, served)
            assert row[f"{view}__{feature}__status"] == status[col["statuses"][i]], (feature, i)
            logged_ts = row[f"{view}__{feature}__timestamp"]
            assert int(logged_ts.timestamp()) == epoch(col["event_timestamps"][i]), (feature, i, logged_ts)
    assert got[2]["driver_hourly_stats__conv_rate__status"] == 3, "driver 4242 has no row"
    for row in got:
        assert row["__log_date"] == row["__log_timestamp"].date()


def test_served_features_are_logged_in_feasts_log_schema(template, feast_log_schema, feast_python, tmp_path):
    repo = copy_repo(template, tmp_path / "repo")
    logging_yaml(repo, 1)
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    larder.run("materialize", iso(START), iso(END))
    known = set((repo / "data").rglob("*.parquet"))
    started = datetime.now(timezone.utc)
    server = Server(larder)
    try:
        first = ask(server, "log-1")
        full = ask(server, "log-2", full=True)
        # Not logged: a request by feature references, and a service without a logging_config.
        r = server.online({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}})
        assert r.status_code == 200
        ask(server, "log-not", service="driver_activity_v2")
        # Written by the timer (every second), while the server runs.
        deadline = time.time() + 20
        while not log_files(repo, known) and time.time() < deadline:
            time.sleep(0.2)
        files = log_files(repo, known)
        assert files, "no log file within 20 s"
        time.sleep(1.5)
        files = log_files(repo, known)
    finally:
        server.stop()
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in files]
    for t in tables:
        assert [[f.name, str(f.type)] for f in t.schema] == [[n, parquet_type(ty)] for n, ty in feast_log_schema]
    rows = [r for t in tables for r in t.to_pylist()]
    assert sorted({r["__request_id"] for r in rows}) == ["log-1", "log-2"], {r["__request_id"] for r in rows}
    check_rows(rows, first, "log-1", full=False)
    check_rows(rows, full, "log-2", full=True)
    for r in rows:
        assert started <= r["__log_timestamp"] <= datetime.now(timezone.utc)

    # With an hour between writes, what was logged is written when the server stops (SIGTERM).
    logging_yaml(repo, 3600)
    known = set((repo / "data").rglob("*.parquet"))
    server = Server(larder)
    try:
        last = ask(server, "log-3")
        time.sleep(0.5)
        assert not log_files(repo, known), "written before the interval"
    finally:
        server.stop()
    files = log_files(repo, known)
    assert len(files) == 1, files
    rows = pq.read_table(files[0]).to_pylist()
    check_rows(rows, last, "log-3", full=False)
