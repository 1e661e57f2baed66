"""Scale-out serving on a real Redis: two `larder serve` processes share one redis-server;
Redis going down gives 503 (bounded, no hang) and serving recovers by itself; a
materialization that cannot reach Redis fails clearly and is re-runnable; teardown removes
the keys."""

import math
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import requests

from conftest import Larder, RedisServer, Server, larder_bin
from e2e.repo_factory import expected_latest, make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START = NOW - timedelta(days=2)
END = NOW

PUSH_DEFS = """
from larder import PushSource
driver_push = PushSource(name="driver_push", batch_source=driver_source)
driver_fresh = FeatureView(
    name="driver_fresh", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="trips", dtype=Int64)], source=driver_push,
)
"""


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def redis_block(redis: RedisServer) -> str:
    return (f"online_store:\n  type: redis\n  connection_string: \"{redis.connection_string}\"\n"
            f"  operation_timeout_ms: 500\n  connect_timeout_ms: 300\n")


def columns(resp):
    body = resp.json()
    return {name: col for name, col in zip(body["metadata"]["feature_names"], body["results"])}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    repo = tmp_path_factory.mktemp("redis_repo")
    data = make_repo(repo, NOW, online_store=redis_block(redis))
    (repo / "definitions.py").write_text((repo / "definitions.py").read_text() + PUSH_DEFS)
    larder = Larder(repo)
    larder.run("apply")
    out = larder.run("materialize", iso(START), iso(END)).stdout
    servers = [Server(larder), Server(larder)]
    yield {"redis": redis, "larder": larder, "data": data, "servers": servers, "materialize": out}
    for s in servers:
        s.stop()
    redis.stop()


def driver_values(server, ids):
    resp = server.online({"features": ["driver_stats:conv_rate", "driver_stats:trips"], "entities": {"driver_id": ids}})
    assert resp.status_code == 200, resp.text
    return columns(resp)


def test_two_servers_share_one_redis_and_serve_the_materialized_values(deployed):
    assert "driver_stats: 20 rows" in deployed["materialize"], deployed["materialize"]
    exp = expected_latest(deployed["data"]["drivers"], "driver_id", "event_timestamp",
                          pd.Timestamp(START), pd.Timestamp(END), "created")
    ids = list(range(1, 21)) + [424242]
    for server in deployed["servers"]:
        cols = driver_values(server, ids)
        for i, d in enumerate(ids):
            if d not in exp.index:
                assert cols["trips"]["statuses"][i] == "NOT_FOUND"
                continue
            assert cols["trips"]["values"][i] == int(exp.loc[d]["trips"])
            want = exp.loc[d]["conv_rate"]
            got = cols["conv_rate"]["values"][i]
            assert (got is None) if pd.isna(want) else math.isclose(got, float(want), rel_tol=1e-6)
    # Keys live in Redis (one per driver), under Larder's prefix.
    assert int(deployed["redis"].cli("DBSIZE")) >= 20


def test_ttl_and_feature_services_work_on_redis(deployed):
    resp = deployed["servers"][0].online({"feature_service": "svc", "entities": {"customer_id": ["A", "B"], "driver_id": [1, 1]}})
    assert resp.status_code == 200, resp.text
    cols = columns(resp)
    assert cols["balance"]["statuses"] == ["PRESENT", "OUTSIDE_MAX_AGE"]
    assert cols["conv_rate"]["values"] == [0.125, 0.125]


def test_a_push_to_one_server_is_read_from_the_other(deployed):
    a, b = deployed["servers"]
    t = iso(NOW - timedelta(minutes=1))
    r = a.post("/push", {"push_source_name": "driver_push", "to": "online",
                         "df": {"driver_id": [7], "event_timestamp": [t], "trips": [4242]}})
    assert r.status_code == 200, r.text
    resp = b.online({"features": ["driver_fresh:trips"], "entities": {"driver_id": [7]}})
    assert columns(resp)["trips"]["values"] == [4242]


def test_materialize_runs_while_servers_serve(deployed):
    # Unlike the embedded store, Redis is shared: no lock between `serve` and `materialize`.
    p = deployed["larder"].run("materialize", iso(START), iso(END), "-v", "driver_stats")
    assert p.returncode == 0
    assert driver_values(deployed["servers"][1], [1])["trips"]["values"] == [777]


def test_a_hung_redis_gives_503_within_the_timeout_then_recovers(deployed):
    server, redis = deployed["servers"][0], deployed["redis"]
    redis.pause()
    try:
        t0 = time.time()
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        waited = time.time() - t0
    finally:
        redis.resume()
    assert r.status_code == 503, r.text
    assert "redis" in r.text and redis.connection_string in r.text, r.text
    assert waited < 3, waited
    deadline = time.time() + 10
    while time.time() < deadline:
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        if r.status_code == 200:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and columns(r)["trips"]["values"] == [777], r.text


def test_redis_down_gives_503_and_health_503_and_serving_recovers(tmp_path):
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    repo = tmp_path / "repo"
    make_repo(repo, NOW, online_store=redis_block(redis))
    larder = Larder(repo)
    larder.run("apply")
    larder.run("materialize", iso(START), iso(END), "-v", "driver_stats")
    server = Server(larder)
    try:
        assert requests.get(server.url + "/health").status_code == 200
        redis.stop()
        t0 = time.time()
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        assert r.status_code == 503, r.text
        assert time.time() - t0 < 3
        assert requests.get(server.url + "/health", timeout=5).status_code == 503
        assert server.proc.poll() is None, "the server stays up"
        # A materialization that cannot reach Redis fails clearly and records nothing.
        p = larder.run("materialize", iso(START), iso(END), "-v", "driver_stats", check=False)
        assert p.returncode != 0 and "redis" in p.stderr.lower(), p.stderr
        # Redis comes back (empty: it kept nothing); serving recovers without a restart and a
        # re-run of the materialization fills it again.
        redis.start()
        deadline = time.time() + 10
        while time.time() < deadline and requests.get(server.url + "/health", timeout=5).status_code != 200:
            time.sleep(0.1)
        assert requests.get(server.url + "/health").status_code == 200
        larder.run("materialize", iso(START), iso(END), "-v", "driver_stats")
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
        assert r.status_code == 200 and columns(r)["trips"]["values"] == [777], r.text
        # Teardown removes the view's keys from Redis.
        server.stop()
        larder.run("teardown")
        assert redis.cli("DBSIZE") == "0"
    finally:
        server.stop()
        redis.stop()


def test_bad_redis_settings_are_named(tmp_path):
    make_repo(tmp_path, NOW, online_store="online_store:\n  type: redis\n  connection_string: \"h:1,ssl_keyfile=k\"\n")
    p = Larder(tmp_path).run("materialize", iso(START), iso(END), check=False)
    assert p.returncode != 0 and "ssl_keyfile" in p.stderr, p.stderr


def test_a_materialization_that_loses_redis_midway_fails_clearly_and_reruns_safely(tmp_path):
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    repo = tmp_path / "repo"
    make_repo(repo, NOW, online_store=redis_block(redis))
    # A source big enough that the run takes a while: 300k drivers, one row each.
    n = 300_000
    big = pd.DataFrame({
        "driver_id": range(n), "trips": range(n),
        "event_timestamp": pd.Timestamp(NOW - timedelta(hours=1)),
    })
    big.to_parquet(repo / "data/big.parquet", index=False)
    (repo / "definitions.py").write_text((repo / "definitions.py").read_text() + """
big_source = FileSource(name="big_source", path="data/big.parquet", timestamp_field="event_timestamp")
big = FeatureView(name="big", entities=[driver], schema=[Field(name="trips", dtype=Int64)], source=big_source)
""")
    larder = Larder(repo)
    larder.run("apply")
    try:
        p = subprocess.Popen([larder_bin(), "-c", str(repo), "materialize", iso(START), iso(END), "-v", "big"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=larder.env)
        deadline = time.time() + 60
        while time.time() < deadline and int(redis.cli("DBSIZE") or 0) == 0:
            time.sleep(0.01)
        redis.pause()  # Redis stops answering midway
        try:
            _, err = p.communicate(timeout=60)
        finally:
            redis.resume()
        written = int(redis.cli("DBSIZE"))
        assert p.returncode != 0, "the run noticed that Redis stopped answering"
        assert "redis" in err.lower() and redis.connection_string in err, err
        assert 0 < written < n, written
        # Nothing was recorded, so incremental materialization would redo the window; a re-run
        # completes and every key holds its value.
        out = larder.run("materialize", iso(START), iso(END), "-v", "big").stdout
        assert f"big: {n} rows" in out, out
        assert int(redis.cli("DBSIZE")) == n
        server = Server(larder)
        try:
            ids = [0, 1234, n - 1]
            r = server.online({"features": ["big:trips"], "entities": {"driver_id": ids}})
            assert columns(r)["trips"]["values"] == ids
        finally:
            server.stop()
    finally:
        redis.stop()
