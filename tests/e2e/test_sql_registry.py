"""A registry shared by several servers: Feast's `registry_type: sql` on a real PostgreSQL
server (initdb + pg_ctl on a free port), two `larder serve` processes sharing it and one Redis."""

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Larder, PostgresServer, RedisServer, Server, larder_bin
from e2e.repo_factory import make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START, END = NOW - timedelta(days=2), NOW
EXTRA = ('\nextra = FeatureView(name="extra", entities=[driver], schema=[Field(name="trips", dtype=Int64)], '
         'source=driver_source)\n')


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    pg = PostgresServer()
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    repo = tmp_path_factory.mktemp("sqlrepo")
    make_repo(repo, NOW, online_store=f"online_store:\n  type: redis\n  connection_string: \"{redis.connection_string}\"\n")
    cfg = repo / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace(
        "registry: data/registry.json\n",
        f"registry:\n  registry_type: sql\n  path: {pg.url.replace('postgresql://', 'postgresql+psycopg://')}\n  cache_ttl_seconds: 1\n"))
    yield {"pg": pg, "redis": redis, "repo": repo, "larder": Larder(repo)}
    redis.stop()
    pg.stop()


def test_two_servers_see_one_apply_without_a_restart(shared):
    larder = shared["larder"]
    assert "Registry version 1" in larder.run("apply").stdout
    larder.run("materialize", iso(START), iso(END))
    servers = [Server(larder), Server(larder)]
    try:
        for s in servers:
            r = s.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}})
            assert r.status_code == 200, r.text
            assert r.json()["results"][1]["values"] == [777]
            assert s.online({"features": ["extra:trips"], "entities": {"driver_id": [1]}}).status_code == 404
        defs = shared["repo"] / "definitions.py"
        defs.write_text(defs.read_text() + EXTRA)
        assert "Registry version 2" in larder.run("apply").stdout
        deadline = time.time() + 10
        seen = [False, False]
        while time.time() < deadline and not all(seen):
            for i, s in enumerate(servers):
                seen[i] = s.online({"features": ["extra:trips"], "entities": {"driver_id": [1]}}).status_code == 200
            time.sleep(0.2)
        assert all(seen), "both servers serve the new view within the cache ttl"
    finally:
        for s in servers:
            s.stop()


def test_history_and_materialization_records_live_in_postgres(shared):
    larder = shared["larder"]
    hist = larder.run("registry", "history").stdout
    assert "Created feature view extra" in hist, hist
    # materialize-incremental continues from the end recorded in PostgreSQL.
    out = larder.run("materialize-incremental", iso(END + timedelta(hours=1)), "-v", "driver_stats").stdout
    assert f"from {END.isoformat()}" in out, out
    dump = json.loads(larder.run("registry", "dump", "--version", "1").stdout)
    assert "extra" not in [v["name"] for v in dump["feature_views"]]
    rows = subprocess.run(["psql", shared["pg"].url, "-Atc", "SELECT count(*) FROM larder_registry_history"],
                          capture_output=True, text=True)
    assert rows.stdout.strip() == "2", rows.stdout + rows.stderr


def latest_version(larder):
    hist = larder.run("registry", "history").stdout
    return hist, max(int(line.split()[1]) for line in hist.splitlines() if line.startswith("version "))


def test_a_killed_apply_leaves_the_old_or_the_new_version(shared):
    larder = shared["larder"]
    defs = shared["repo"] / "definitions.py"
    base = defs.read_text()
    t0 = time.time()
    larder.run("plan")
    plan_secs = time.time() - t0
    try:
        for i in range(6):
            _, before = latest_version(larder)
            defs.write_text(base + f'\nextra_{i} = FeatureView(name="extra_{i}", entities=[driver], '
                                   f'schema=[Field(name="trips", dtype=Int64)], source=driver_source)\n')
            p = subprocess.Popen([larder_bin(), "-c", str(shared["repo"]), "apply"], env=larder.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Spread the kills over the whole apply, the database transaction at its end included.
            time.sleep(plan_secs * (0.5 + 0.15 * i))
            p.kill()
            p.wait()
            hist, after = latest_version(larder)
            names = {v["name"] for v in json.loads(larder.run("registry", "dump").stdout)["feature_views"]}
            if f"extra_{i}" in names:
                assert after == before + 1 and f"Created feature view extra_{i}" in hist, hist
            else:
                assert after == before, (before, after)
    finally:
        defs.write_text(base)


def test_teardown_removes_the_registry_rows(shared):
    larder = shared["larder"]
    larder.run("teardown")
    rows = subprocess.run(["psql", shared["pg"].url, "-Atc", "SELECT count(*) FROM larder_registry_state"],
                          capture_output=True, text=True)
    assert rows.stdout.strip() == "0", rows.stdout + rows.stderr
    assert shared["redis"].cli("DBSIZE") == "0"
