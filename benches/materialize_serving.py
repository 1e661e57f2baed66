#!/usr/bin/env python3
"""Bulk materialization and serving beside it, one run, one machine:

- materialization rate (rows written per second) of a source of `--rows` rows over `--keys`
  distinct keys into the embedded store, run inside `larder serve` (`POST /materialize`);
- online read latency (wrk, `--conns` connections, 1 entity x 3 features) while idle and while
  the same materialization runs again: p50 / p99 / max, the ratio during/idle, and the errors
  (any non-200 answer counts).

    benches/materialize_serving.sh      # sets up everything, then runs this
    python benches/materialize_serving.py --larder BIN [--rows 10000000] [--keys 1000000] [--conns 1]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_serving import free_port, parse_latency, wait_http  # noqa: E402

DEFS = """\
from datetime import timedelta
from larder import Entity, FeatureView, Field, FileSource
from larder.types import Float32, Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
src = FileSource(name="src", path="data/source", timestamp_field="event_timestamp", created_timestamp_column="created")
stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=3650), source=src,
                    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
                            Field(name="acc_rate", dtype=Float64), Field(name="trips", dtype=Int64)])
"""

T0 = 1_700_000_000  # seconds; the rows span the 10 days after it


def write_source(dst: Path, rows: int, keys: int):
    dst.mkdir(parents=True)
    rng = np.random.default_rng(7)
    chunk = 2_000_000
    for i, lo in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - lo)
        ids = (np.arange(lo, lo + n) % keys) + 1
        ts = (T0 + rng.integers(0, 10 * 86400, n)) * 1_000_000
        table = pa.table({
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "created": pa.array(ts + 1_000_000, pa.timestamp("us", tz="UTC")),
            "conv_rate": pa.array(rng.random(n, dtype=np.float32)),
            "acc_rate": pa.array(rng.random(n)),
            "trips": pa.array(rng.integers(0, 1000, n), pa.int64()),
        })
        pq.write_table(table, dst / f"part-{i:04d}.parquet", row_group_size=500_000)


def post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def materialize(url: str) -> float:
    """Runs the whole window as a job; its wall time in seconds."""
    t = time.perf_counter()
    job = post(url, "/materialize?async=true", {"start_ts": "2023-11-01T00:00:00Z", "end_ts": "2023-12-01T00:00:00Z"})
    while True:
        with urllib.request.urlopen(f"{url}/jobs/{job['id']}", timeout=10) as r:
            report = json.loads(r.read())
        if report["status"] != "running":
            assert report["status"] == "succeeded", report
            return time.perf_counter() - t
        time.sleep(0.05)


def wrk(url: str, conns: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        body = json.dumps({"features": ["stats:conv_rate", "stats:acc_rate", "stats:trips"], "entities": {"driver_id": [42]}})
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = [[{body}]]\n")
        script = f.name
    out = subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", f"{max(1, int(seconds))}s", "--latency", "-s", script,
                          url + "/get-online-features"], capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    mx = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    v, unit = float(mx.group(1)), mx.group(2)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": parse_latency(out, "50"), "p99": parse_latency(out, "99"),
            "max": v / 1000 if unit == "us" else v * 1000 if unit == "s" else v,
            "errors": (int(errors.group(1)) if errors else 0) + (1 if socket_errors else 0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("LARDER_PYTHON", sys.executable)
    work = Path(tempfile.mkdtemp(prefix="larder-mat-bench-"))
    proc = None
    try:
        write_source(work / "data" / "source", args.rows, args.keys)
        (work / "feature_store.yaml").write_text(
            "project: bench\nregistry: data/registry.json\nprovider: local\nonline_store:\n  type: rocksdb\n"
            "  path: data/online\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n")
        (work / "repo.py").write_text(DEFS)
        subprocess.run([args.larder, "-c", work, "apply"], check=True, capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([args.larder, "-c", work, "serve", "--port", str(port), "--flight-port", "0",
                                 "--log-level", "warn"], stdout=subprocess.DEVNULL)
        wait_http(url + "/health")
        first = materialize(url)
        print(f"materialize {args.rows} rows over {args.keys} keys (first run, idle server): {first:.2f} s = "
              f"{args.rows / first:,.0f} source rows/s, {args.keys / first:,.0f} rows written/s", flush=True)
        wrk(url, args.conns, 2)  # warm-up
        idle = wrk(url, args.conns, 10)
        print(f"reads idle: {idle}", flush=True)
        during = {}
        took = {}

        def run_job():
            took["s"] = materialize(url)

        job = threading.Thread(target=run_job)
        job.start()
        time.sleep(0.2)
        during = wrk(url, args.conns, max(1.0, 0.8 * first))
        job.join()
        print(f"reads during the materialization: {during}", flush=True)
        print(f"materialize again while serving: {took['s']:.2f} s", flush=True)
        print("\n| online reads, 1 x 3, %d conn | idle | during materialization | ratio |\n|---|---|---|---|" % args.conns)
        for k in ("p50", "p99", "max"):
            print(f"| {k}, ms | {idle[k]:.2f} | {during[k]:.2f} | {during[k] / idle[k]:.1f}x |")
        print(f"| req/s | {idle['rps']:.0f} | {during['rps']:.0f} | |")
        print(f"| errors | {idle['errors']} | {during['errors']} | |")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
