#!/usr/bin/env python3
"""Online-serving load benchmark: Larder (RocksDB) against Feast 0.67 (`feast serve` on a local
redis-server), same repo, same data, same load generator (wrk), one run.

    benches/online_serving.sh            # sets up everything, then runs this
    python benches/online_serving.py --larder BIN --feast-python PY [--duration 10]

Prints req/s, p50 and p99 for 1 entity x 3 features and 10 entities x 3 features at 1 and 8
connections, for both servers, and the ratios.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]
CASES = [(1, 1), (1, 8), (10, 1), (10, 8)]  # (entities, connections)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def body(n_entities: int) -> str:
    return json.dumps({"features": FEATURES, "entities": {"driver_id": [1001 + i for i in range(n_entities)]}})


def check(url: str, n: int):
    req = urllib.request.Request(url + "/get-online-features", data=body(n).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        out = json.loads(r.read())
    cols = {n: c for n, c in zip(out["metadata"]["feature_names"], out["results"])}
    assert sorted(cols) == ["acc_rate", "avg_daily_trips", "conv_rate", "driver_id"], cols.keys()
    assert all(s == "PRESENT" for s in cols["conv_rate"]["statuses"]), out
    return cols


def parse_latency(text: str, label: str) -> float:
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        raise RuntimeError(f"no {label}% in wrk output:\n{text}")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def run_wrk(url: str, n: int, conns: int, duration: int, payload: str = None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = [[{payload or body(n)}]]\n")
        f.write('function response(status, headers, body) if status ~= 200 then wrk.thread:stop() end end\n')
        script = f.name
    out = subprocess.run(
        ["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{duration}s", "--latency", "-s", script, url + "/get-online-features"],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": parse_latency(out, "50"), "p99": parse_latency(out, "99"), "errors": int(errors.group(1)) if errors else 0}


def feast_repo(dst: Path, redis_port: int):
    shutil.copytree(ROOT / "feature_repo", dst, ignore=shutil.ignore_patterns("registry*", "online_store*", "__pycache__", "generate_data.py"))
    for py in dst.glob("*.py"):
        py.write_text(py.read_text().replace("from larder", "from feast"))
    (dst / "feature_store.yaml").write_text(
        "project: driver_demo\nregistry: data/feast_registry.db\nprovider: local\n"
        f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{redis_port}\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--feast-python", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    feast = str(Path(args.feast_python).parent / "feast")
    procs = []
    work = Path(tempfile.mkdtemp(prefix="larder-bench-"))
    try:
        # Larder on RocksDB.
        lrepo = work / "larder_repo"
        shutil.copytree(ROOT / "feature_repo", lrepo, ignore=shutil.ignore_patterns("registry*", "online_store*", "__pycache__"))
        env = dict(os.environ)
        subprocess.run([args.larder, "-c", lrepo, "apply"], check=True, env=env, capture_output=True)
        subprocess.run([args.larder, "-c", lrepo, "materialize", "2024-01-01T00:00:00", "2024-01-15T00:00:00"], check=True, capture_output=True)
        lport = free_port()
        procs.append(subprocess.Popen([args.larder, "-c", lrepo, "serve", "--port", str(lport), "--log-level", "warn"], stdout=subprocess.DEVNULL))
        larder_url = f"http://127.0.0.1:{lport}"
        wait_http(larder_url + "/health")

        # Feast on a local redis-server.
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        frepo = work / "feast_repo"
        feast_repo(frepo, rport)
        subprocess.run([feast, "apply"], cwd=frepo, check=True, capture_output=True)
        subprocess.run([feast, "materialize", "2024-01-01T00:00:00", "2024-01-15T00:00:00"], cwd=frepo, check=True, capture_output=True)
        fport = free_port()
        procs.append(subprocess.Popen([feast, "serve", "--host", "127.0.0.1", "--port", str(fport), "--workers", "2", "--max-requests", "0"],
                                      cwd=frepo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        feast_url = f"http://127.0.0.1:{fport}"
        wait_http(feast_url + "/health")

        # Same answers from both before measuring.
        a, b = check(larder_url, 10), check(feast_url, 10)
        for name in ["conv_rate", "acc_rate", "avg_daily_trips"]:
            for x, y in zip(a[name]["values"], b[name]["values"]):
                assert abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1), (a, b)

        results = []
        for n, conns in CASES:
            for name, url in [("feast", feast_url), ("larder", larder_url)]:
                run_wrk(url, n, conns, 2)  # warm-up
                r = run_wrk(url, n, conns, args.duration)
                r.update(server=name, entities=n, connections=conns)
                results.append(r)
                print(f"{name:7s} {n:2d} entities x 3 features, {conns} conn: {r['rps']:10.0f} req/s  p50 {r['p50']:8.3f} ms  p99 {r['p99']:8.3f} ms  errors {r['errors']}", flush=True)
        print("\n| case | Feast req/s | Larder req/s | ratio | Feast p50/p99 ms | Larder p50/p99 ms | p99 ratio |")
        print("|---|---|---|---|---|---|---|")
        for n, conns in CASES:
            f = next(r for r in results if r["server"] == "feast" and r["entities"] == n and r["connections"] == conns)
            l = next(r for r in results if r["server"] == "larder" and r["entities"] == n and r["connections"] == conns)
            print(f"| {n} x 3, {conns} conn | {f['rps']:.0f} | {l['rps']:.0f} | {l['rps'] / f['rps']:.1f}x | "
                  f"{f['p50']:.2f} / {f['p99']:.2f} | {l['p50']:.3f} / {l['p99']:.3f} | {f['p99'] / l['p99']:.1f}x lower |")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM) if p.args[0].endswith("feast") else p.terminate()
            except Exception:
                p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
