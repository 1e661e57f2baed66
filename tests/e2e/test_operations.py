"""Operating the server: Prometheus metrics, load shedding (503, no queue), request timeouts
(504), graceful shutdown on SIGTERM with requests in flight."""

import json
from pathlib import Path
import re
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from conftest import Larder, Server
from e2e.repo_factory import make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)

SLOW_DEFS = '''
from larder import RequestSource, on_demand_feature_view
from larder.types import Float64

pause = RequestSource(name="pause", schema=[Field(name="seconds", dtype=Float64)])

@on_demand_feature_view(sources=[driver_stats, pause], schema=[Field(name="slept", dtype=Float64)], mode="python")
def slow(inputs):
    import time
    time.sleep(inputs["seconds"][0])
    return {"slept": inputs["seconds"]}
'''


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    make_repo(root, NOW)
    (root / "definitions.py").write_text((root / "definitions.py").read_text() + SLOW_DEFS)
    larder = Larder(root)
    larder.run("apply")
    larder.run("materialize", iso(NOW - timedelta(days=2)), iso(NOW))
    return larder


def slow_request(server, seconds, out=None):
    r = server.online({"features": ["slow:slept"], "entities": {"driver_id": [1], "seconds": [seconds]}})
    if out is not None:
        out.append(r)
    return r


def wait_job(server, job_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        report = requests.get(f"{server.url}/jobs/{job_id}", timeout=5).json()
        if report["status"] != "running":
            assert report["status"] == "succeeded", report
            return report
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_latency_rows_and_registry_version(repo):
    server = Server(repo)
    try:
        for _ in range(3):
            assert server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}).status_code == 200
        assert server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": ["x"]}}).status_code == 422
        r = server.post("/materialize?async=true", {"start_ts": iso(NOW - timedelta(days=2)), "end_ts": iso(NOW),
                                                    "feature_views": ["driver_stats"]})
        assert r.status_code == 202, r.text
        wait_job(server, r.json()["id"])
        text = requests.get(server.url + "/metrics").text
        assert metric(text, "larder_http_requests_total", route="/get-online-features", status="200") == 3
        assert metric(text, "larder_http_requests_total", route="/get-online-features", status="422") == 1
        assert metric(text, "larder_rejected_requests_total", reason="invalid") == 1
        assert metric(text, "larder_http_request_duration_seconds_count", route="/get-online-features") == 4
        assert re.search(r'larder_http_request_duration_seconds_bucket\{.*le="0.001"', text), text
        assert metric(text, "larder_online_read_duration_seconds_count", backend="rocksdb") == 3
        assert metric(text, "larder_materialized_rows_total", view="driver_stats") == 20
        assert metric(text, "larder_registry_version") == 1
    finally:
        server.stop()


def test_load_is_shed_with_503_not_queued(repo):
    server = Server(repo, "--max-concurrent-requests", "1")
    try:
        slow_request(server, 0.01)  # start the transformation worker
        results = []
        t = threading.Thread(target=slow_request, args=(server, 1.5, results))
        t.start()
        time.sleep(0.4)
        t0 = time.time()
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        assert r.status_code == 503 and time.time() - t0 < 0.5, r.text
        assert "concurrent requests" in r.text and r.headers.get("retry-after") == "1"
        t.join()
        assert results[0].status_code == 200, results[0].text
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        assert r.status_code == 200
        text = requests.get(server.url + "/metrics").text
        assert metric(text, "larder_rejected_requests_total", reason="overloaded") == 1
    finally:
        server.stop()


def test_slow_requests_time_out_with_504(repo):
    server = Server(repo, "--request-timeout-secs", "1")
    try:
        t0 = time.time()
        r = slow_request(server, 2.5)
        assert r.status_code == 504 and time.time() - t0 < 2.0, r.text
        assert "timeout" in r.text
    finally:
        server.stop()


def test_sigterm_finishes_requests_in_flight_and_exits_0(repo):
    server = Server(repo)
    slow_request(server, 0.01)
    results = []
    t = threading.Thread(target=slow_request, args=(server, 1.0, results))
    t.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    t.join()
    assert results[0].status_code == 200, results[0].text
    assert server.proc.wait(timeout=10) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/health", timeout=2)


def test_request_ids_and_json_logs(repo):
    import json as _json
    server = Server(repo, "--log-format", "json", "--log-level", "info,larder_server=debug")
    try:
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        generated = r.headers.get("x-request-id")
        assert generated, r.headers
        r2 = requests.post(server.url + "/get-online-features", json={"features": ["nope:x"], "entities": {"driver_id": [1]}},
                           headers={"x-request-id": "client-chosen-42"})
        assert r2.status_code == 404 and r2.headers.get("x-request-id") == "client-chosen-42"
        r3 = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        assert r3.headers["x-request-id"] != generated, "ids are unique"
    finally:
        server.stop()
    lines = [l for l in server.output().splitlines() if l.startswith("{")]
    records = [_json.loads(l) for l in lines]
    ids = {rec.get("span", {}).get("request_id") for rec in records}
    assert generated in ids and "client-chosen-42" in ids, lines[-5:]
    done = [rec for rec in records if rec.get("fields", {}).get("message") == "Request done."]
    assert any(rec["span"]["route"] == "/get-online-features" and rec["fields"]["status"] == "404" for rec in done)


def test_feature_count_limit(repo):
    server = Server(repo, "--max-features", "2")
    try:
        r = server.online({"features": ["driver_stats:trips", "driver_stats:conv_rate", "driver_stats:acc_rate"],
                           "entities": {"driver_id": [1]}})
        assert r.status_code == 422 and "limit is 2" in r.text, r.text
        assert server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}).status_code == 200
    finally:
        server.stop()


def test_cli_materialization_beside_a_running_server_is_handed_to_it(tmp_path):
    """The server holds the embedded store; `larder materialize` runs the job there (and says
    so) instead of failing, and the values served are the newest rows of the window computed
    here from the raw data. Once the server is gone the CLI runs locally again."""
    from e2e.repo_factory import expected_latest

    data = make_repo(tmp_path, NOW)
    larder = Larder(tmp_path)
    larder.run("apply")
    server = Server(larder)
    drivers = list(range(1, 21))
    try:
        advert = json.loads((tmp_path / "data" / "online" / "larder-server.json").read_text())
        assert advert["url"] == server.url and advert["project"] == "e2e_project", advert
        before = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": drivers}}).json()
        assert before["results"][1]["values"] == [None] * len(drivers)
        start, end = NOW - timedelta(days=2), NOW
        p = larder.run("materialize", iso(start), iso(end), "--views", "driver_stats")
        assert "held by the server at " + server.url in p.stdout, p.stdout
        assert re.search(r"driver_stats: \d+ rows from", p.stdout), p.stdout
        want = expected_latest(data["drivers"], "driver_id", "event_timestamp", start, end, "created")
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": drivers}})
        got = r.json()["results"][1]["values"]
        assert got == [int(want.loc[d, "trips"]) if d in want.index else None for d in drivers], got
        # The job ran on the server's background threads, at a lowered OS priority (nice > 0), so
        # that serving threads come first.
        jobs = []
        for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
            if (task / "comm").read_text().strip() == "larder-job":
                jobs.append(int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]))
        assert jobs and all(nice > 0 for nice in jobs), jobs
        serving = [int((t / "stat").read_text().rsplit(")", 1)[1].split()[16])
                   for t in Path(f"/proc/{server.proc.pid}/task").iterdir()
                   if (t / "comm").read_text().strip().startswith("tokio-rt")]
        assert serving and all(nice == 0 for nice in serving), serving
        # An unknown view is the server's 404, reported by the CLI.
        p = larder.run("materialize-incremental", iso(end), "--views", "no_such_view", check=False)
        assert p.returncode != 0 and "no_such_view" in p.stderr, p.stderr
    finally:
        server.stop()
    assert not (tmp_path / "data" / "online" / "larder-server.json").exists()
    p = larder.run("materialize-incremental", iso(NOW))
    assert "held by the server" not in p.stdout, p.stdout


def test_a_repo_with_feasts_remote_online_store_is_that_servers_client(tmp_path):
    """`online_store: {type: remote, path: URL}` (Feast's client setting): `larder materialize`
    runs the job on that server, the SDK in local mode talks to it (and starts nothing), and
    `larder serve` says why it cannot serve such a repo instead of failing later."""
    import shutil

    from e2e.repo_factory import expected_latest
    from larder import FeatureStore

    data = make_repo(tmp_path / "server", NOW)
    larder = Larder(tmp_path / "server")
    larder.run("apply")
    server = Server(larder)
    try:
        client_repo = tmp_path / "client"
        shutil.copytree(tmp_path / "server", client_repo, ignore=shutil.ignore_patterns("online", "registry.json"))
        cfg = client_repo / "feature_store.yaml"
        block = "online_store:\n  type: rocksdb\n  path: data/online\n"
        assert block in cfg.read_text()
        cfg.write_text(cfg.read_text().replace(block, f"online_store:\n  type: remote\n  path: {server.url}/\n"))
        client = Larder(client_repo)
        start, end = NOW - timedelta(days=2), NOW
        p = client.run("materialize", iso(start), iso(end), "--views", "driver_stats")
        assert "feature server at " + server.url in p.stdout, p.stdout
        assert re.search(r"driver_stats: \d+ rows from", p.stdout), p.stdout
        drivers = list(range(1, 21))
        want = expected_latest(data["drivers"], "driver_id", "event_timestamp", start, end, "created")
        expected = [int(want.loc[d, "trips"]) if d in want.index else None for d in drivers]
        got = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": drivers}}).json()
        assert got["results"][1]["values"] == expected, got
        store = FeatureStore(repo_path=client_repo)
        assert store.url == server.url
        answer = store.get_online_features(features=["driver_stats:trips"],
                                           entity_rows=[{"driver_id": d} for d in drivers]).to_dict()
        assert answer["trips"] == expected, answer
        assert not (client_repo / ".larder" / "server.json").exists()
        p = client.run("serve", "--port", "0", check=False)
        assert p.returncode != 0, p.stdout
        assert "online_store.type `remote`" in p.stderr and server.url in p.stderr, p.stderr
        assert "panicked" not in p.stderr
    finally:
        server.stop()
