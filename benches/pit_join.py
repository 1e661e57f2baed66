#!/usr/bin/env python3
"""Point-in-time join benchmark: Larder's DataFusion join against Feast 0.67's DuckDB offline
store on the same generated data, in one run. Not a test.

    benches/pit_join.sh [--feature-rows 10000000] [--entity-rows 1000000]

Data: `keys` drivers x hourly rows (feature rows = keys x hours), created = ts + 5 min, ttl
2 h; entity rows pick random drivers and random times (whole seconds) over the range. Prints
both wall times (entity_df in, Arrow table out; median of --runs joins, default 3), the ratio, and both peak RSS figures
(Larder: the server process; Feast: the whole client process that runs the join).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]

DEFS = """
from datetime import timedelta
from {pkg} import Entity, FeatureView, Field, FileSource
from {pkg}.types import Float32, Int64
driver = Entity(name="driver", join_keys=["driver_id"])
src = FileSource(name="driver_stats", path="{path}", timestamp_field="event_timestamp", created_timestamp_column="created")
driver_hourly_stats = FeatureView(name="driver_hourly_stats", entities=[driver], ttl=timedelta(hours=2),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
            Field(name="acc_rate", dtype=Float32), Field(name="avg_daily_trips", dtype=Int64)], source=src)
"""

FEAST_RUN = """
import json, resource, sys, time
import pandas as pd
from feast import FeatureStore
store = FeatureStore(repo_path=".")
edf = pd.read_parquet(sys.argv[1])
times = []
for _ in range(int(sys.argv[4])):
    t = time.time()
    table = store.get_historical_features(entity_df=edf, features=json.loads(sys.argv[2])).to_arrow()
    times.append(time.time() - t)
dt = sorted(times)[len(times) // 2]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import pyarrow.parquet as pq
pq.write_table(table, sys.argv[3])
print(json.dumps({"seconds": dt, "all": times, "rows": table.num_rows, "peak_rss_mb": peak}))
"""


def generate(out: Path, feature_rows: int, entity_rows: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    hours = 100
    keys = max(1, feature_rows // hours)
    start = pd.Timestamp("2024-01-01T00:00:00Z")
    ts = start + pd.to_timedelta(np.tile(np.arange(hours), keys), unit="h")
    n = keys * hours
    df = pd.DataFrame({
        "driver_id": np.repeat(np.arange(1, keys + 1, dtype="int64"), hours),
        "event_timestamp": ts,
        "conv_rate": rng.random(n, dtype="float32"),
        "acc_rate": rng.random(n, dtype="float32"),
        "avg_daily_trips": rng.integers(0, 1000, n, dtype="int64"),
    })
    df["created"] = df["event_timestamp"] + pd.Timedelta(minutes=5)
    df.to_parquet(out / "driver_stats.parquet", index=False, row_group_size=1_000_000)
    secs = rng.integers(0, hours * 3600 + 7200, entity_rows)
    edf = pd.DataFrame({
        "driver_id": rng.integers(1, keys + 1, entity_rows, dtype="int64"),
        "event_timestamp": start + pd.to_timedelta(secs, unit="s"),
        "label": rng.random(entity_rows),
    })
    edf["event_timestamp"] = edf["event_timestamp"].astype("datetime64[ns, UTC]")
    edf.to_parquet(out / "entity_df.parquet", index=False)
    return n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--feast-python", required=True)
    ap.add_argument("--feature-rows", type=int, default=10_000_000)
    ap.add_argument("--entity-rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="joins per side; the median is reported")
    args = ap.parse_args()
    os.environ.setdefault("LARDER_PYTHON", sys.executable)  # the exporter needs the SDK
    work = Path(tempfile.mkdtemp(prefix="larder-pit-"))
    try:
        data = work / "data"
        data.mkdir()
        t = time.time()
        n = generate(data, args.feature_rows, args.entity_rows)
        print(f"generated {n:,} feature rows and {args.entity_rows:,} entity rows in {time.time() - t:.1f} s", flush=True)

        # Larder: a fresh server, so its peak RSS is the join's.
        lrepo = work / "larder"
        lrepo.mkdir()
        (lrepo / "feature_store.yaml").write_text("project: bench\nregistry: data/registry.json\nprovider: local\n")
        (lrepo / "defs.py").write_text(DEFS.format(pkg="larder", path=str(data / "driver_stats.parquet")))
        subprocess.run([args.larder, "-c", lrepo, "apply"], check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([args.larder, "-c", lrepo, "serve", "--port", str(port), "--log-level", "warn"], stdout=subprocess.DEVNULL)
        try:
            from larder import FeatureStore
            store = FeatureStore(url=f"http://127.0.0.1:{port}")
            for _ in range(100):
                try:
                    store.list_feature_views()
                    break
                except Exception:
                    time.sleep(0.1)
            edf = pd.read_parquet(data / "entity_df.parquet")
            times = []
            for _ in range(args.runs):
                t = time.time()
                table = store.get_historical_features(entity_df=edf, features=FEATURES).to_arrow()
                times.append(time.time() - t)
            larder_s = sorted(times)[len(times) // 2]
            larder_mb = peak_rss_mb(server.pid)
            matched = table.num_rows - table.column("conv_rate").null_count
        finally:
            server.terminate()
            server.wait()
        print(f"larder: runs {', '.join(f'{x:.2f}' for x in times)} s, median {larder_s:.2f} s, {table.num_rows:,} rows ({matched:,} matched), server peak RSS {larder_mb:.0f} MiB", flush=True)

        # Feast with its DuckDB offline store.
        frepo = work / "feast"
        frepo.mkdir()
        (frepo / "feature_store.yaml").write_text(
            "project: bench\nregistry: data/registry.db\nprovider: local\noffline_store:\n  type: duckdb\n"
            "online_store:\n  type: sqlite\n  path: data/online.db\nentity_key_serialization_version: 3\n")
        (frepo / "defs.py").write_text(DEFS.format(pkg="feast", path=str(data / "driver_stats.parquet")))
        feast = str(Path(args.feast_python).parent / "feast")
        subprocess.run([feast, "apply"], cwd=frepo, check=True, capture_output=True)
        (frepo / "run.py").write_text(FEAST_RUN)
        p = subprocess.run([args.feast_python, "run.py", str(data / "entity_df.parquet"), json.dumps(FEATURES),
                            str(work / "feast_out.parquet"), str(args.runs)],
                           cwd=frepo, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr[-3000:])
            raise SystemExit("feast failed")
        feast_r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"feast duckdb: runs {', '.join(f'{x:.2f}' for x in feast_r['all'])} s, median {feast_r['seconds']:.2f} s, {feast_r['rows']:,} rows, process peak RSS {feast_r['peak_rss_mb']:.0f} MiB")
        # Same answers: both training sets, in one row order, cell by cell.
        key = ["driver_id", "event_timestamp", "label"]
        cols = key + [f.split(":")[1] for f in FEATURES]
        ours = table.to_pandas()[cols].sort_values(key, kind="stable").reset_index(drop=True)
        theirs = pd.read_parquet(work / "feast_out.parquet")[cols].sort_values(key, kind="stable").reset_index(drop=True)
        ours["event_timestamp"] = pd.to_datetime(ours["event_timestamp"], utc=True)
        theirs["event_timestamp"] = pd.to_datetime(theirs["event_timestamp"], utc=True)
        for c in cols[3:]:
            a, b = ours[c].astype("float64"), theirs[c].astype("float64")
            same = (a == b) | (a.isna() & b.isna())
            if not same.all():
                raise SystemExit(f"{c}: {int((~same).sum())} rows differ from Feast's, e.g.\n{ours[~same].head()}\n{theirs[~same].head()}")
        print(f"results: identical to Feast's, {len(ours):,} rows x {len(cols) - 3} features")
        print("\n| join | Feast DuckDB | Larder | ratio |\n|---|---|---|---|")
        print(f"| {n:,} x {args.entity_rows:,} time (median of {args.runs}) | {feast_r['seconds']:.2f} s | {larder_s:.2f} s | {feast_r['seconds'] / larder_s:.2f}x faster |")
        print(f"| peak RSS | {feast_r['peak_rss_mb']:.0f} MiB | {larder_mb:.0f} MiB | {feast_r['peak_rss_mb'] / larder_mb:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
