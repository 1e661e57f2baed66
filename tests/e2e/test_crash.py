"""Crash safety, with real `kill -9`: of a materialization (the re-run ends in the same state as
an uninterrupted run), of a server during a push burst (every acknowledged push survives, the
store reopens), and of an apply on the file registry (old version or new, never torn)."""

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from conftest import Larder, Server, larder_bin
from e2e.repo_factory import make_repo
from e2e.test_ingest import PUSH_DEFS

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START, END = NOW - timedelta(days=2), NOW
N_BIG = 1_000_000

BIG_DEFS = """
big_source = FileSource(name="big_source", path="data/big.parquet", timestamp_field="event_timestamp")
big = FeatureView(name="big", entities=[driver], schema=[Field(name="trips", dtype=Int64)], source=big_source)
"""


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def big_repo(root):
    make_repo(root, NOW)
    rng = np.random.default_rng(5)
    pd.DataFrame({"driver_id": np.arange(N_BIG, dtype="int64"), "trips": rng.integers(0, 1 << 40, N_BIG),
                  "event_timestamp": pd.Timestamp(NOW - timedelta(hours=1))}).to_parquet(root / "data/big.parquet", index=False)
    (root / "definitions.py").write_text((root / "definitions.py").read_text() + BIG_DEFS)
    larder = Larder(root)
    larder.run("apply")
    return larder


def test_a_killed_materialization_reruns_to_the_uninterrupted_state(tmp_path):
    larder = big_repo(tmp_path)
    p = subprocess.Popen([larder_bin(), "-c", str(tmp_path), "materialize", iso(START), iso(END), "-v", "big"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=larder.env)
    time.sleep(1.5)
    p.kill()
    assert p.wait() == -9, "the run was killed midway (make the data bigger if it finished first)"
    # Nothing was recorded for the view: the registry still shows no materialized interval.
    state = json.loads((tmp_path / "data/registry.json").read_text())
    assert "big" not in state.get("materializations", {}), state.get("materializations")
    out = larder.run("materialize", iso(START), iso(END), "-v", "big").stdout
    assert f"big: {N_BIG} rows" in out, out
    data = pd.read_parquet(tmp_path / "data/big.parquet")
    server = Server(larder)
    try:
        ids = sorted(np.random.default_rng(1).choice(N_BIG, 2000, replace=False).tolist()) + [0, N_BIG - 1]
        r = server.online({"features": ["big:trips"], "entities": {"driver_id": ids}})
        assert r.status_code == 200, r.text
        got = r.json()["results"][1]["values"]
        assert got == data.set_index("driver_id").loc[ids, "trips"].tolist()
    finally:
        server.stop()


def test_acknowledged_pushes_survive_a_killed_server(tmp_path):
    make_repo(tmp_path, NOW)
    (tmp_path / "definitions.py").write_text((tmp_path / "definitions.py").read_text() + PUSH_DEFS)
    larder = Larder(tmp_path)
    larder.run("apply")
    server = Server(larder)
    acked = {}
    stop = threading.Event()

    def burst():
        v = 0
        while not stop.is_set():
            v += 1
            ids = list(range(1, 201))
            t = (NOW - timedelta(hours=1) + timedelta(milliseconds=v)).isoformat()
            try:
                r = server.post("/push", {"push_source_name": "driver_push", "to": "online",
                                          "df": {"driver_id": ids, "event_timestamp": [t] * len(ids), "trips": [v] * len(ids)}})
            except Exception:
                return
            if r.status_code == 200:
                acked["v"] = v

    t = threading.Thread(target=burst)
    t.start()
    time.sleep(1.5)
    server.proc.kill()
    server.proc.wait()
    stop.set()
    t.join()
    assert acked.get("v", 0) > 5, acked
    restarted = Server(larder)
    try:
        r = restarted.online({"features": ["driver_fresh:trips"], "entities": {"driver_id": list(range(1, 201))}})
        assert r.status_code == 200, r.text
        values = r.json()["results"][1]["values"]
        # Every key holds the last acknowledged push or one the server applied just before dying.
        assert all(v is not None and v >= acked["v"] for v in values), (acked, values[:5])
        assert len(set(values)) <= 2, "each push was applied as a whole batch"
    finally:
        restarted.stop()


def test_a_killed_apply_leaves_the_old_or_the_new_registry(tmp_path):
    make_repo(tmp_path, NOW)
    larder = Larder(tmp_path)
    larder.run("apply")
    defs = tmp_path / "definitions.py"
    base = defs.read_text()
    t0 = time.time()
    larder.run("plan")
    secs = time.time() - t0
    base_names = {v["name"] for v in json.loads(larder.run("registry", "dump").stdout)["feature_views"]}
    for i in range(6):
        before = json.loads(larder.run("registry", "dump").stdout)
        defs.write_text(base + f'\nv{i} = FeatureView(name="v{i}", entities=[driver], schema=[Field(name="trips", dtype=Int64)], source=driver_source)\n')
        p = subprocess.Popen([larder_bin(), "-c", str(tmp_path), "apply"], env=larder.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(secs * (0.5 + 0.15 * i))
        p.kill()
        p.wait()
        after = json.loads(larder.run("registry", "dump").stdout)
        names = {v["name"] for v in after["feature_views"]}
        old_names = {v["name"] for v in before["feature_views"]}
        # The definitions are the base ones plus v{i}: the registry is either as before or exactly that.
        assert names == old_names or names == base_names | {f"v{i}"}, names
        hist = larder.run("registry", "history").stdout
        if f"v{i}" in names:
            assert f"Created feature view v{i}" in hist
    defs.write_text(base)
