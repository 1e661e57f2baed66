#!/usr/bin/env python3
"""Soak: a fixed rate of requests (4 online reads : 1 push) against `larder serve` for a bounded
time; prints errors, p50/p99 per kind and the server's resident memory at start, middle and end.

    benches/soak.sh [--seconds 120] [--rate 400]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_serving import free_port, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--rate", type=int, default=400, help="requests per second, all kinds")
    ap.add_argument("--push-every", type=int, default=5, help="every Nth request is a push (0: reads only)")
    args = ap.parse_args()
    os.environ.setdefault("LARDER_PYTHON", sys.executable)
    work = Path(tempfile.mkdtemp(prefix="larder-soak-"))
    proc = None
    try:
        repo = work / "repo"
        shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry*", "online_store*", "__pycache__"))
        subprocess.run([args.larder, "-c", repo, "apply"], check=True, capture_output=True)
        subprocess.run([args.larder, "-c", repo, "materialize", "2024-01-01T00:00:00", "2024-01-15T00:00:00"], check=True, capture_output=True)
        port = free_port()
        proc = subprocess.Popen([args.larder, "-c", repo, "serve", "--port", str(port), "--flight-port", "0", "--log-level", "warn"],
                                stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health")
        threads, per_thread = 4, args.rate / 4
        lat = {"read": [], "push": []}
        errors = {"read": 0, "push": 0}
        lock = threading.Lock()
        deadline = time.time() + args.seconds
        memory = [("start", rss_mib(proc.pid))]

        def worker(k):
            s = requests.Session()
            i = 0
            next_t = time.time()
            while time.time() < deadline:
                i += 1
                kind = "push" if args.push_every and i % args.push_every == 0 else "read"
                if kind == "read":
                    body = {"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
                            "entities": {"driver_id": [1001 + (i + k) % 5]}}
                    path = "/get-online-features"
                else:
                    body = {"push_source_name": "driver_stats_push", "to": "online",
                            "df": {"driver_id": [1001 + k], "event_timestamp": [datetime.now(timezone.utc).isoformat()],
                                   "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [i]}}
                    path = "/push"
                t0 = time.perf_counter()
                try:
                    ok = s.post(url + path, json=body, timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    lat[kind].append(dt)
                    errors[kind] += 0 if ok else 1
                next_t += 1 / per_thread
                time.sleep(max(0.0, next_t - time.time()))

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        time.sleep(args.seconds / 2)
        memory.append(("middle", rss_mib(proc.pid)))
        for t in ts:
            t.join()
        memory.append(("end", rss_mib(proc.pid)))
        total = sum(len(v) for v in lat.values())
        print(f"{total} requests in {args.seconds} s ({total / args.seconds:.0f}/s), errors: {errors}")
        for kind, xs in lat.items():
            if not xs:
                continue
            print(f"{kind:5s} n={len(xs):6d} p50 {pct(xs, 50):.2f} ms p99 {pct(xs, 99):.2f} ms max {max(xs):.2f} ms")
        print("server RSS MiB: " + ", ".join(f"{k} {v:.1f}" for k, v in memory))
        return 1 if sum(errors.values()) else 0
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
