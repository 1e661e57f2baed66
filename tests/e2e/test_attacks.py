"""Regression tests for the defects found by attacking a running server (issue 13): each test
makes the attack on a real `larder serve`, expects the refusal, and checks that the server is
still healthy and the data intact afterwards."""

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests

from conftest import Larder, Server, free_port
from e2e.repo_factory import make_repo
from e2e.test_ingest import PUSH_DEFS
from e2e.test_operations import SLOW_DEFS, wait_job
from larder import FeatureStore, LarderError

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def attack_repo(root: Path) -> Larder:
    make_repo(root, NOW)
    (root / "definitions.py").write_text((root / "definitions.py").read_text() + PUSH_DEFS + SLOW_DEFS)
    larder = Larder(root)
    larder.run("apply")
    larder.run("materialize", iso(NOW - timedelta(days=4)), iso(NOW))
    return larder


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The repo of the module's shared server."""
    return attack_repo(tmp_path_factory.mktemp("attacks"))


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
    """A repo for tests that start a server of their own (one at a time: RocksDB is exclusive)."""
    return attack_repo(tmp_path_factory.mktemp("attacks_solo"))


@pytest.fixture(scope="module")
def server(repo):
    s = Server(repo)
    yield s
    s.stop()


def healthy(server):
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
    assert requests.get(server.url + "/registry", timeout=5).status_code == 200
    r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
    assert r.status_code == 200 and r.json()["results"][1]["values"][0] is not None, r.text


def raw(port, data: bytes, timeout=5.0) -> bytes:
    """Sends raw bytes on a new connection and returns the head of the server's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while b"\r\n\r\n" not in out:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


# 1. SQL in entity_df writes files --------------------------------------------------------------

WRITES = [
    "COPY (SELECT 'x' AS a) TO '{target}' STORED AS CSV",
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{target}'",
    "CREATE TABLE t AS SELECT 1 AS a",
    "INSERT INTO driver_source VALUES (1)",
    "DROP TABLE driver_source",
    "SET datafusion.execution.batch_size = 1",
    "SELECT 1 AS driver_id; COPY (SELECT 'x' AS a) TO '{target}' STORED AS CSV",
    "EXPLAIN ANALYZE COPY (SELECT 'x' AS a) TO '{target}' STORED AS CSV",
    "SELECT * FROM '{registry}'",
    "CREATE VIEW v AS SELECT 1",
]


@pytest.mark.parametrize("transport", ["http", "flight"])
def test_sql_entity_df_runs_only_read_only_queries(repo, server, tmp_path, transport):
    registry = repo.repo / "data/registry.json"
    before = sha(registry)
    target = tmp_path / "written.csv"
    store = FeatureStore(url=server.url, flight_url=server.flight_url if transport == "flight" else None)
    for sql in WRITES:
        sql = sql.format(target=target, registry=registry)
        with pytest.raises((LarderError, flight.FlightError)) as err:
            store.get_historical_features(entity_df=sql, features=["driver_stats:trips"]).to_df()
        if isinstance(err.value, LarderError):
            assert err.value.status == 422, (sql, err.value)
        assert "entity_df_sql" in str(err.value), (sql, str(err.value))
        assert not target.exists(), sql
    # The same COPY aimed at the registry itself.
    with pytest.raises((LarderError, flight.FlightError)):
        store.get_historical_features(entity_df=f"COPY (SELECT 'x' AS a) TO '{registry}' STORED AS CSV",
                                      features=["driver_stats:trips"]).to_df()
    assert sha(registry) == before
    # A read-only query over a registered source still works, and joins as usual.
    df = store.get_historical_features(
        entity_df="SELECT driver_id, event_timestamp FROM driver_source WHERE driver_id IN (1, 2) "
                  "ORDER BY event_timestamp DESC LIMIT 4",
        features=["driver_stats:trips"]).to_df()
    assert len(df) == 4 and df["trips"].notna().all(), df
    healthy(server)


def test_sql_entity_df_is_bounded_by_rows_and_memory(solo, tmp_path):
    larder = Larder(solo.repo)
    larder.env.update(LARDER_OFFLINE_MEMORY_MB="256", LARDER_ENTITY_DF_MAX_ROWS="5000")
    s = Server(larder)
    try:
        store = FeatureStore(url=s.url)
        t0 = time.time()
        with pytest.raises(LarderError) as err:
            store.get_historical_features(
                entity_df="SELECT 1001 AS driver_id, now() AS event_timestamp FROM generate_series(1, 200000000)",
                features=["driver_stats:trips"]).to_df()
        assert err.value.status == 422 and "5000 rows" in str(err.value), err.value
        assert time.time() - t0 < 10
        # Under the row limit but over the memory pool: refused as it streams in.
        s.stop()
        larder.env.update(LARDER_OFFLINE_MEMORY_MB="64", LARDER_ENTITY_DF_MAX_ROWS="100000000")
        s = Server(larder)
        store = FeatureStore(url=s.url)
        with pytest.raises(LarderError) as err:
            store.get_historical_features(
                entity_df="SELECT 1001 AS driver_id, now() AS event_timestamp, repeat('x', 100) AS pad "
                          "FROM generate_series(1, 20000000)",
                features=["driver_stats:trips"]).to_df()
        assert err.value.status == 422 and "memory limit" in str(err.value), err.value
        peak_kb = int(next(l for l in Path(f"/proc/{s.proc.pid}/status").read_text().splitlines()
                           if l.startswith("VmHWM")).split()[1])
        assert peak_kb < 1024 * 1024, f"peak RSS {peak_kb} kB"
        healthy(s)
    finally:
        s.stop()


# 3. Slow-loris and idle connections ------------------------------------------------------------

def test_slow_and_idle_connections_are_closed_and_health_still_answers(solo):
    s = Server(solo, "--header-read-timeout-secs", "1", "--idle-timeout-secs", "2", "--max-connections", "40")
    try:
        slow, idle = [], []
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", s.port))
            c.sendall(b"G")
            slow.append(c)
        for _ in range(30):
            idle.append(socket.create_connection(("127.0.0.1", s.port)))
        # Slow-loris: one byte now and then; the head never completes within the timeout.
        for _ in range(3):
            time.sleep(0.4)
            for c in slow:
                try:
                    c.sendall(b"E")
                except OSError:
                    pass
        deadline = time.time() + 5
        ok = False
        while time.time() < deadline and not ok:
            try:
                ok = requests.get(s.url + "/health", timeout=1).status_code == 200
            except requests.RequestException:
                time.sleep(0.1)
        assert ok, "/health did not answer while idle connections were open"
        time.sleep(1.5)
        for c in slow + idle:
            c.settimeout(2)
            try:
                data = c.recv(1024)
            except (ConnectionResetError, socket.timeout) as e:
                assert not isinstance(e, socket.timeout), "the server kept a slow or idle connection open"
                data = b""
            # Closed (maybe with a 408 first), never left open.
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
            c.close()
        healthy(s)
    finally:
        s.stop()


# 4. The concurrency limit is global ------------------------------------------------------------

def test_concurrency_limit_holds_over_all_routes(solo):
    s = Server(solo, "--max-concurrent-requests", "2")
    try:
        s.online({"features": ["slow:slept"], "entities": {"driver_id": [1], "seconds": [0.01]}})
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            s.online({"features": ["slow:slept"], "entities": {"driver_id": [1], "seconds": [1.5]}})))
            for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        for path in ["/registry", "/registry/history", "/freshness"]:
            r = requests.get(s.url + path, timeout=5)
            assert r.status_code == 503 and "concurrent requests" in r.text, (path, r.status_code, r.text)
        r = s.post("/push", {"push_source_name": "driver_push", "to": "online", "df": {
            "driver_id": [1], "event_timestamp": [iso(NOW)], "conv_rate": [0.5], "acc_rate": [0.5], "trips": [1]}})
        assert r.status_code == 503, r.text
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
        healthy(s)
    finally:
        s.stop()


# 5. Bodies: declared length, 100-continue, truncated, malformed, stalled -------------------------

def head(path, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n").encode()


def test_body_failures_get_their_own_status(solo):
    s = Server(solo, "--body-timeout-secs", "1", "--max-concurrent-requests", "1", "--max-body-bytes", "1000")
    try:
        t0 = time.time()
        assert status_of(raw(s.port, head("/push", "Content-Length: 1073741824\r\n"))) == 413
        assert time.time() - t0 < 2
        answer = raw(s.port, head("/push", "Content-Length: 999999999\r\nExpect: 100-continue\r\n"))
        assert status_of(answer) == 413 and b"100 Continue" not in answer, answer
        # Malformed chunk sizes: 400, not 413.
        answer = raw(s.port, head("/push", "Transfer-Encoding: chunked\r\n") + b"zz\r\nabc\r\n0\r\n\r\n")
        assert status_of(answer) == 400, answer
        # Truncated: the client sends part of the declared body and closes its side.
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(head("/push", "Content-Length: 100\r\n") + b'{"push_source_name": ')
            c.shutdown(socket.SHUT_WR)
            answer = c.recv(4096)
        assert answer == b"" or status_of(answer) == 400, answer
        # Stalled: 408 after the body timeout; meanwhile it holds no request slot (limit 1).
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(head("/push", "Content-Length: 100\r\n") + b'{"push')
            t0 = time.time()
            ok = s.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
            assert ok.status_code == 200, ok.text
            answer = c.recv(4096)
            assert status_of(answer) == 408 and 0.8 < time.time() - t0 < 3, answer
        # Too large while streaming (chunked, no length declared): 413.
        chunk = b"258\r\n" + b"x" * 600 + b"\r\n"
        answer = raw(s.port, head("/push", "Transfer-Encoding: chunked\r\n") + chunk + chunk + b"0\r\n\r\n")
        assert status_of(answer) == 413 and b"limit of 1000 bytes" in answer, answer
        healthy(s)
    finally:
        s.stop()


# 6 and 7. Event times out of range, float32 overflow --------------------------------------------

def push(server, **cols):
    df = {"driver_id": [7], "event_timestamp": [iso(NOW)], "conv_rate": [0.5], "acc_rate": [0.5], "trips": [3]}
    df.update(cols)
    return server.post("/push", {"push_source_name": "driver_push", "to": "online", "df": df})


def fresh(server, driver=7):
    r = server.online({"features": ["driver_fresh:conv_rate", "driver_fresh:trips"], "entities": {"driver_id": [driver]}})
    assert r.status_code == 200, r.text
    return [c["values"][0] for c in r.json()["results"][1:]]


@pytest.mark.parametrize("bad", ["9999-01-01T00:00:00", 1e300, -1e300, "1677-09-21T00:12:44", 7258118400])
def test_out_of_range_event_times_are_refused_and_cannot_poison_a_key(server, bad):
    r = push(server, event_timestamp=[bad])
    assert r.status_code == 422, r.text
    loc = r.json()["detail"][0]["loc"]
    assert loc == ["body", "df", "event_timestamp", 0] and "outside the accepted range" in r.text, r.text
    r = push(server, event_timestamp=[iso(NOW - timedelta(minutes=1))], trips=[41])
    assert r.status_code == 200, r.text
    assert fresh(server)[1] == 41, "a real write after the refused one must be served"


def test_float32_overflow_is_refused(server):
    assert push(server, trips=[5], event_timestamp=[iso(NOW - timedelta(seconds=30))]).status_code == 200
    r = push(server, conv_rate=[1e39], trips=[6])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "df", "conv_rate", 0], r.text
    assert "Float32" in r.text
    assert fresh(server) == [0.5, 5]
    assert push(server, conv_rate=[3.0e38], trips=[8]).status_code == 200


# 8. A CLI apply that removes a view while `serve` holds RocksDB ---------------------------------

def test_cli_apply_removing_a_view_while_serving_is_refused(tmp_path):
    root = tmp_path / "repo"
    make_repo(root, NOW)
    larder = Larder(root)
    larder.run("apply")
    larder.run("materialize", iso(NOW - timedelta(days=4)), iso(NOW))
    defs = (root / "definitions.py").read_text()
    s = Server(larder)
    try:
        assert s.online({"features": ["driver_trips:trips"], "entities": {"driver_id": [1]}}).json()["results"][1]["values"][0] is not None
        history = larder.run("registry", "history").stdout
        start = defs.index("driver_trips = FeatureView(")
        end = defs.index("svc = FeatureService")
        (root / "definitions.py").write_text(defs[:start] + defs[end:])
        p = larder.run("apply", check=False)
        assert p.returncode != 0 and "driver_trips" in (p.stdout + p.stderr), p.stdout + p.stderr
        assert "nothing was changed" in p.stdout + p.stderr
        assert larder.run("registry", "history").stdout == history, "no version may be recorded"
        assert s.online({"features": ["driver_trips:trips"], "entities": {"driver_id": [1]}}).status_code == 200
    finally:
        s.stop()
    # Without the server the apply goes through and deletes the rows; re-creating the view
    # serves nothing until it is materialized again.
    larder.run("apply")
    (root / "definitions.py").write_text(defs)
    larder.run("apply")
    s = Server(larder)
    try:
        r = s.online({"features": ["driver_trips:trips"], "entities": {"driver_id": [1]}})
        assert r.status_code == 200 and r.json()["results"][1]["values"] == [None], r.text
    finally:
        s.stop()


# 9. Concurrent applies record the changes they really made -------------------------------------

def test_concurrent_applies_record_true_change_logs(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    repos = []
    for i in range(3):
        root = tmp_path / f"repo{i}"
        make_repo(root, NOW)
        cfg = (root / "feature_store.yaml").read_text()
        cfg = cfg.replace("registry: data/registry.json", f"registry: {shared}/registry.json")
        (root / "feature_store.yaml").write_text(cfg)
        repos.append(root)

    def variant(root, round_no):
        extra = f'\nextra_{root.name}_{round_no} = Entity(name="extra_{root.name}_{round_no}", join_keys=["driver_id"])\n'
        base = (root / "definitions.py").read_text().split("\n#-variant-\n")[0]
        (root / "definitions.py").write_text(base + "\n#-variant-\n" + extra)

    for round_no in range(4):
        for r in repos:
            variant(r, round_no)
        procs = [subprocess.Popen([os.environ.get("LARDER_BIN") or str(Path.home() / ".cache/larder/target/debug/larder"),
                                   "-c", str(r), "apply"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env=Larder(r).env) for r in repos]
        for p in procs:
            out = p.communicate(timeout=300)[0]
            assert p.returncode == 0, out
    larder = Larder(repos[0])
    dumps = {}
    version = 1
    while True:
        p = larder.run("registry", "dump", "--version", str(version), check=False)
        if p.returncode != 0:
            break
        dumps[version] = json.loads(p.stdout)
        version += 1
    text = larder.run("registry", "history").stdout
    assert len(dumps) >= 4, text
    for v in range(2, len(dumps) + 1):
        old = {e["name"] for e in dumps[v - 1]["entities"]}
        new = {e["name"] for e in dumps[v]["entities"]}
        assert old != new, f"version {v} changes nothing (a phantom version)\n{text}"
        block = text.split(f"version {v} ", 1)[1].split("\nversion ", 1)[0]
        for name in new - old:
            assert f"Created entity {name}" in block, (v, name, block)
        for name in old - new:
            assert f"Deleted entity {name}" in block, (v, name, block)


# 10. Training sets refuse wrong types ----------------------------------------------------------

def test_training_set_types_are_checked_like_online_retrieval(server):
    store = FeatureStore(url=server.url)
    ts = pd.Timestamp(NOW - timedelta(hours=1))
    for bad, field in [({"driver_id": ["1"]}, "driver_id"), ({"driver_id": [1.5]}, "driver_id")]:
        df = pd.DataFrame({**bad, "event_timestamp": [ts]})
        with pytest.raises(LarderError) as err:
            store.get_historical_features(entity_df=df, features=["driver_stats:trips"]).to_df()
        assert err.value.status == 422 and f"entity_df.{field}" in str(err.value), err.value
    df = pd.DataFrame({"driver_id": [1], "seconds": ["a"], "event_timestamp": [ts]})
    with pytest.raises(LarderError) as err:
        store.get_historical_features(entity_df=df, features=["slow:slept"]).to_df()
    assert err.value.status == 422 and "entity_df.seconds" in str(err.value), err.value
    # Integer widths and integers for a float request field still fit.
    df = pd.DataFrame({"driver_id": pd.Series([1], dtype="int32"), "seconds": [0], "event_timestamp": [ts]})
    out = store.get_historical_features(entity_df=df, features=["slow:slept", "driver_stats:trips"]).to_df()
    assert out["slept"].tolist() == [0.0] and out["trips"].notna().all()


# 11. Unusable names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "a\u0000b", "v" * 10_000, "a:b", "x@v2"])
def test_apply_refuses_unusable_names(server, name):
    version = requests.get(server.url + "/registry").json()
    body = {"partial": True, "definitions": {"project": "e2e_project", "feature_views": [{
        "name": name, "entities": ["driver"], "source": "driver_source", "ttl_seconds": 3600,
        "features": [{"name": "trips", "dtype": "INT64"}]}]}}
    r = server.post("/apply", body)
    assert r.status_code == 422, r.text[:300]
    assert "name" in r.text
    after = requests.get(server.url + "/registry").json()
    assert after == version


# 12. /health with auth on hides internals -------------------------------------------------------

def test_health_with_auth_does_not_reveal_paths_or_addresses(tmp_path):
    root = tmp_path / "repo"
    port = free_port()
    make_repo(root, NOW, online_store=f"online_store:\n  type: redis\n  connection_string: \"127.0.0.1:{port}\"\n"
                                       f"  connect_timeout_ms: 200\n  operation_timeout_ms: 200\n")
    cfg = root / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + "auth:\n  type: token\n  tokens:\n"
                   "    - {name: admin, token: admin-secret-0123456789, roles: {\"*\": [admin]}}\n")
    larder = Larder(root)
    larder.run("apply")
    s = Server(larder)
    try:
        r = requests.get(s.url + "/health", timeout=10)
        assert r.status_code == 503 and r.text == "online store unavailable", r.text
        (root / "data/registry.json").write_text("{not json")
        time.sleep(1.5)
        r = requests.get(s.url + "/health", timeout=10)
        assert r.status_code == 503, r.text
        assert str(root) not in r.text and str(port) not in r.text and "127.0.0.1" not in r.text, r.text
    finally:
        s.stop()


# Also found by reading the code -----------------------------------------------------------------

def test_a_hung_udf_times_out_and_later_requests_are_served(solo):
    larder = Larder(solo.repo)
    larder.env["LARDER_UDF_TIMEOUT_SECS"] = "1"
    s = Server(larder)
    try:
        t0 = time.time()
        r = s.online({"features": ["slow:slept"], "entities": {"driver_id": [1], "seconds": [30]}})
        assert r.status_code == 503 and "did not finish within 1 s" in r.text, r.text
        assert time.time() - t0 < 5
        r = s.online({"features": ["slow:slept"], "entities": {"driver_id": [1], "seconds": [0.01]}})
        assert r.status_code == 200 and r.json()["results"][-1]["values"] == [0.01], r.text
    finally:
        s.stop()


def test_materialize_is_a_job(server):
    # As Feast's server: without `async=true` the request waits for the job and gives its report.
    r = server.post("/materialize", {"start_ts": iso(NOW - timedelta(days=4)), "end_ts": iso(NOW),
                                     "feature_views": ["driver_stats"]})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert r.json()["views"][0]["rows"] == 20, r.text
    # With it, 202 at once and the job to follow.
    r = server.post("/materialize?async=true", {"start_ts": iso(NOW - timedelta(days=4)), "end_ts": iso(NOW),
                                                "feature_views": ["driver_stats"]})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['id']}" and job["status"] in ("running", "succeeded")
    report = wait_job(server, job["id"])
    assert [v["feature_view"] for v in report["views"]] == ["driver_stats"]
    assert report["views"][0]["rows"] == 20 and report["rows_written"] == 20, report
    # Bad requests are refused before a job starts.
    r = server.post("/materialize", {"start_ts": iso(NOW), "end_ts": iso(NOW - timedelta(days=1))})
    assert r.status_code == 422 and "start_ts" in r.text, r.text
    r = server.post("/materialize", {"start_ts": iso(NOW - timedelta(days=1)), "end_ts": iso(NOW),
                                     "feature_views": ["nope"]})
    assert r.status_code == 404, r.text
    assert requests.get(server.url + "/jobs/nope").status_code == 404
    # The SDK waits for the job and returns its views.
    done = FeatureStore(url=server.url).materialize(NOW - timedelta(days=4), NOW, feature_views=["driver_stats"])
    assert done[0]["feature_view"] == "driver_stats" and done[0]["rows"] == 20


# 13. Concurrent partial applies ------------------------------------------------------------------

def test_concurrent_partial_applies_each_keep_what_the_others_added(solo):
    """Feast's default apply is partial (objects not mentioned are kept). Several at once, each
    adding its own entity: every entity is registered, none is dropped by an apply built on a
    base that another one had already changed."""
    s = Server(solo)
    try:
        before = requests.get(s.url + "/registry", timeout=10).json()
        n = 8
        start = threading.Barrier(n)
        answers = [None] * n

        def add(i):
            body = {"partial": True, "definitions": {"project": "e2e_project", "entities": [
                {"name": f"concurrent_{i}", "join_keys": [f"concurrent_{i}_id"], "value_type": "INT64"}]}}
            start.wait()
            answers[i] = s.post("/apply", body)

        threads = [threading.Thread(target=add, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert all(a is not None and a.status_code == 200 for a in answers), [a and a.text for a in answers]
        after = requests.get(s.url + "/registry", timeout=10).json()
        names = {e["name"] for e in after["doc"]["entities"]}
        assert {f"concurrent_{i}" for i in range(n)} <= names, sorted(names)
        assert {e["name"] for e in before["doc"]["entities"]} <= names
        assert after["version"] == before["version"] + n, (before["version"], after["version"])
    finally:
        s.stop()
