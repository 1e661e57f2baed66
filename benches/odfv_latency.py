#!/usr/bin/env python3
"""Latency added by on-demand views: the same request (1 and 10 entities) for
`driver_hourly_stats:conv_rate` alone, and with an on-demand output computed by SQL (in the
server), by a pandas UDF and by a python UDF (the Python worker). Prints p50/p99 and the added
p50 over the plain request.

    benches/odfv_latency.sh     # builds, then runs this
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_serving import free_port, run_wrk, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ODFVS = '''
import pandas as pd
from larder import OnDemandFeatureView, RequestSource, on_demand_feature_view
from larder.types import Float64, Int64

bench_vals = RequestSource(name="bench_vals", schema=[Field(name="val_to_add", dtype=Int64)])

@on_demand_feature_view(sources=[driver_hourly_stats, bench_vals], schema=[Field(name="plus_pandas", dtype=Float64)], mode="pandas")
def odfv_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["plus_pandas"] = inputs["conv_rate"] + inputs["val_to_add"]
    return out

@on_demand_feature_view(sources=[driver_hourly_stats, bench_vals], schema=[Field(name="plus_python", dtype=Float64)], mode="python")
def odfv_python(inputs):
    return {"plus_python": [c + v for c, v in zip(inputs["conv_rate"], inputs["val_to_add"])]}

odfv_sql = OnDemandFeatureView(name="odfv_sql", sources=[driver_hourly_stats, bench_vals], mode="sql",
    schema=[Field(name="plus_sql", dtype=Float64)], expressions={"plus_sql": "conv_rate + val_to_add"})
'''
CASES = {
    "plain": ["driver_hourly_stats:conv_rate"],
    "sql": ["driver_hourly_stats:conv_rate", "odfv_sql:plus_sql"],
    "pandas": ["driver_hourly_stats:conv_rate", "odfv_pandas:plus_pandas"],
    "python": ["driver_hourly_stats:conv_rate", "odfv_python:plus_python"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--duration", type=int, default=10)
    args = ap.parse_args()
    os.environ.setdefault("LARDER_PYTHON", sys.executable)  # the exporter and the UDF worker need the SDK
    work = Path(tempfile.mkdtemp(prefix="larder-odfv-bench-"))
    proc = None
    try:
        repo = work / "repo"
        shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry*", "online_store*", "__pycache__"))
        defs = next(p for p in repo.glob("*.py") if "FeatureView(" in p.read_text())
        defs.write_text(defs.read_text() + ODFVS)
        subprocess.run([args.larder, "-c", repo, "apply"], check=True, capture_output=True)
        subprocess.run([args.larder, "-c", repo, "materialize", "2024-01-01T00:00:00", "2024-01-15T00:00:00"], check=True, capture_output=True)
        port = free_port()
        proc = subprocess.Popen([args.larder, "-c", repo, "serve", "--port", str(port), "--log-level", "warn", "--flight-port", "0"],
                                stdout=subprocess.DEVNULL, env=dict(os.environ, LARDER_PYTHON=sys.executable))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health")
        rows = []
        for n in (1, 10):
            ids = [1001 + i for i in range(n)]
            plain_p50 = None
            for name, feats in CASES.items():
                payload = json.dumps({"features": feats, "entities": {"driver_id": ids, "val_to_add": list(range(n))}})
                run_wrk(url, n, 1, 2, payload)
                r = run_wrk(url, n, 1, args.duration, payload)
                assert r["errors"] == 0, r
                plain_p50 = r["p50"] if name == "plain" else plain_p50
                rows.append((n, name, r, r["p50"] - plain_p50))
                print(f"{n:2d} entities {name:7s} {r['rps']:8.0f} req/s p50 {r['p50']:.3f} ms p99 {r['p99']:.3f} ms", flush=True)
        print("\n| entities | transformation | req/s (1 conn) | p50 ms | p99 ms | added p50 ms |\n|---|---|---|---|---|---|")
        for n, name, r, added in rows:
            print(f"| {n} | {name} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {added:+.3f} |")
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
