#!/usr/bin/env python3
"""Online store benchmark, one run, same data and same machine:

- materialization rows/s: Larder -> RocksDB, Larder -> Redis, Feast 0.67 -> the same Redis;
- online read latency (wrk, p50/p99) of `larder serve` on RocksDB and on Redis, for 1 and 10
  entities x 3 features at 1 and 8 connections.

    benches/redis_store.sh               # sets up everything, then runs this
    python benches/redis_store.py --larder BIN --feast-python PY [--rows 200000] [--duration 10]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_serving import free_port, run_wrk, wait_http  # noqa: E402

DEFS = """\
from datetime import timedelta
from {pkg} import Entity, FeatureView, Field, FileSource
from {pkg}.types import Float32, Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
source = FileSource(name="driver_source", path="{data}", timestamp_field="event_timestamp")
driver_hourly_stats = FeatureView(
    name="driver_hourly_stats", entities=[driver], ttl=timedelta(days=3650),
    schema=[Field(name="conv_rate", dtype=Float32), Field(name="acc_rate", dtype=Float64),
            Field(name="avg_daily_trips", dtype=Int64)],
    source=source,
)
"""
FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]
CASES = [(1, 1), (1, 8), (10, 1), (10, 8)]
START, END = "2024-01-01T00:00:00", "2024-01-02T00:00:00"


def make_repo(root: Path, pkg: str, data: Path, online: str, registry: str):
    root.mkdir(parents=True)
    (root / "feature_store.yaml").write_text(
        f"project: bench\nregistry: {registry}\nprovider: local\n{online}offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n")
    (root / "repo.py").write_text(DEFS.format(pkg=pkg, data=data))


def timed(cmd, **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--feast-python", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--duration", type=int, default=10)
    args = ap.parse_args()
    os.environ.setdefault("LARDER_PYTHON", sys.executable)  # the exporter and the UDF worker need the SDK
    feast = str(Path(args.feast_python).parent / "feast")
    work = Path(tempfile.mkdtemp(prefix="larder-redis-bench-"))
    procs = []
    try:
        n = args.rows
        rng = np.random.default_rng(7)
        data = work / "drivers.parquet"
        pd.DataFrame({
            "driver_id": np.arange(1001, 1001 + n, dtype="int64"),
            "event_timestamp": pd.Timestamp("2024-01-01T12:00:00Z"),
            "conv_rate": rng.random(n).astype("float32"),
            "acc_rate": rng.random(n),
            "avg_daily_trips": rng.integers(0, 1000, n),
        }).to_parquet(data, index=False)

        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        redis_online = f"online_store:\n  type: redis\n  connection_string: \"127.0.0.1:{rport}\"\n"
        repos = {
            "larder-rocksdb": (work / "l_rocks", "larder", "online_store:\n  type: rocksdb\n  path: online\n"),
            "larder-redis": (work / "l_redis", "larder", redis_online),
            "feast-redis": (work / "f_redis", "feast", redis_online),
        }
        times = {}
        for name, (root, pkg, online) in repos.items():
            make_repo(root, pkg, data, online, "registry.db" if pkg == "feast" else "registry.json")
            subprocess.run(["redis-cli", "-p", str(rport), "FLUSHALL"], check=True, capture_output=True)
            if pkg == "feast":
                subprocess.run([feast, "apply"], cwd=root, check=True, capture_output=True)
                times[name] = timed([feast, "materialize", START, END], cwd=root)
            else:
                subprocess.run([args.larder, "-c", root, "apply"], check=True, capture_output=True)
                times[name] = timed([args.larder, "-c", root, "materialize", START, END])
            print(f"materialize {name:15s} {n} rows in {times[name]:7.2f} s = {n / times[name]:10.0f} rows/s", flush=True)

        # Larder's Redis data back for serving (Feast's materialization flushed it).
        subprocess.run(["redis-cli", "-p", str(rport), "FLUSHALL"], check=True, capture_output=True)
        subprocess.run([args.larder, "-c", repos["larder-redis"][0], "materialize", START, END], check=True, capture_output=True)
        urls = {}
        for name in ["larder-rocksdb", "larder-redis"]:
            port = free_port()
            procs.append(subprocess.Popen([args.larder, "-c", repos[name][0], "serve", "--port", str(port), "--log-level", "warn",
                                           "--flight-port", "0"], stdout=subprocess.DEVNULL))
            urls[name] = f"http://127.0.0.1:{port}"
            wait_http(urls[name] + "/health")
        results = {}
        for ents, conns in CASES:
            for name, url in urls.items():
                run_wrk(url, ents, conns, 2)
                r = run_wrk(url, ents, conns, args.duration)
                results[(name, ents, conns)] = r
                print(f"{name:15s} {ents:2d} x 3, {conns} conn: {r['rps']:9.0f} req/s p50 {r['p50']:.3f} ms "
                      f"p99 {r['p99']:.3f} ms errors {r['errors']}", flush=True)

        print(f"\n| materialization, {n} rows | s | rows/s | vs Feast |\n|---|---|---|---|")
        for name, t in times.items():
            print(f"| {name} | {t:.2f} | {n / t:.0f} | {times['feast-redis'] / t:.1f}x |")
        print("\n| reads | RocksDB req/s | RocksDB p50 / p99 ms | Redis req/s | Redis p50 / p99 ms | p99 Redis/RocksDB |")
        print("|---|---|---|---|---|---|")
        for ents, conns in CASES:
            a, b = results[("larder-rocksdb", ents, conns)], results[("larder-redis", ents, conns)]
            print(f"| {ents} x 3, {conns} conn | {a['rps']:.0f} | {a['p50']:.3f} / {a['p99']:.3f} | {b['rps']:.0f} | "
                  f"{b['p50']:.3f} / {b['p99']:.3f} | {b['p99'] / a['p99']:.1f}x |")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
