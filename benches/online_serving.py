#!/usr/bin/env python3
"""Online-serving load benchmark, one run, one load generator (wrk), four servers:

- ``floor``: a bare axum server (``bench-floor/``) that parses the same JSON and
  answers a canned Feast-shaped body of the same size: what HTTP and JSON alone cost here;
- ``larder``: ``larder serve`` on the embedded RocksDB store;
- ``larder-redis``: ``larder serve`` on a local redis-server;
- ``feast``: Feast 0.67 from PyPI (``feast serve``, 2 workers) on the same redis-server.

Shapes: the driver repo's 1 and 10 entities x 3 features at 1 and 8 connections, and Feast's
published benchmark shapes, 1 / 100 / 500 entities x 50 features over 5 feature views, at one
connection (a repo generated here, the same for every server). Every server's answers are
compared with Larder's before anything is measured.

Prints req/s, p50 and p99 per server and case, Larder's req/s as a share of the floor's, and
requests per CPU-second of each server process (its saturation throughput per core).

    benches/online_serving.sh            # sets up everything, then runs this
    python benches/online_serving.py --larder BIN --floor BIN --feast-python PY [--duration 10]
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
DRIVER_FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]
WIDE_FEATURES = [f"wide_{f // 10}:f{f}" for f in range(50)]
# (repo, entities, features, connections)
CASES = [("driver", 1, 3, 1), ("driver", 1, 3, 8), ("driver", 10, 3, 1), ("driver", 10, 3, 8),
         ("wide", 1, 50, 1), ("wide", 100, 50, 1), ("wide", 500, 50, 1)]
TICKS = os.sysconf("SC_CLK_TCK")


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


def body(repo: str, n_entities: int, n_features: int) -> str:
    if repo == "driver":
        return json.dumps({"features": DRIVER_FEATURES[:n_features], "entities": {"driver_id": [1001 + i for i in range(n_entities)]}})
    return json.dumps({"features": WIDE_FEATURES[:n_features], "entities": {"driver_id": list(range(1, n_entities + 1))}})


def answer(url: str, payload: str) -> dict:
    req = urllib.request.Request(url + "/get-online-features", data=payload.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    return {n: c for n, c in zip(out["metadata"]["feature_names"], out["results"])}


def same_answers(a: dict, b: dict, what: str):
    assert sorted(a) == sorted(b), (what, sorted(a), sorted(b))
    for name in a:
        assert a[name]["statuses"] == b[name]["statuses"], (what, name)
        for x, y in zip(a[name]["values"], b[name]["values"]):
            if isinstance(x, float) or isinstance(y, float):
                assert abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1), (what, name, x, y)
            else:
                assert x == y, (what, name, x, y)


def parse_latency(text: str, label: str) -> float:
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        raise RuntimeError(f"no {label}% in wrk output:\n{text}")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def cpu_seconds(pids: list) -> float:
    """User + system CPU time of processes and their children so far."""
    total = 0.0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def tree(pid: int) -> list:
    """A process and its descendants (Feast's workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


def run_wrk(url: str, payload: str, conns: int, duration: int, pid: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = [[{payload}]]\n")
        f.write('function response(status, headers, body) if status ~= 200 then wrk.thread:stop() end end\n')
        script = f.name
    pids = tree(pid)
    cpu0 = cpu_seconds(pids)
    out = subprocess.run(
        ["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{duration}s", "--latency", "-s", script, url + "/get-online-features"],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = cpu_seconds(pids) - cpu0
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": parse_latency(out, "50"), "p99": parse_latency(out, "99"),
            "errors": int(errors.group(1)) if errors else 0, "per_cpu_second": total / cpu if cpu > 0 else 0.0}


def wide_repo(dst: Path, python: str, flavour: str, online_yaml: str, registry: str):
    """Five views of ten features (float32, float64, int64) over one Parquet source of 1,000 drivers."""
    dst.mkdir(parents=True)
    (dst / "data").mkdir()
    subprocess.run([python, "-c", """
import sys, pandas as pd, numpy as np
n = 1000
df = pd.DataFrame({"driver_id": np.arange(1, n + 1, dtype="int64"),
                   "event_timestamp": pd.Timestamp("2024-01-10", tz="UTC")})
for f in range(50):
    v = np.arange(1, n + 1) * 0.001 + f
    df[f"f{f}"] = [v.astype("float32"), v, v.astype("int64")][f % 3]
df.to_parquet(sys.argv[1], index=False)
""", str(dst / "data" / "wide.parquet")], check=True)
    views = []
    for v in range(5):
        fields = ", ".join(f'Field(name="f{f}", dtype={["Float32", "Float64", "Int64"][f % 3]})' for f in range(v * 10, v * 10 + 10))
        views.append(f'wide_{v} = FeatureView(name="wide_{v}", entities=[driver], ttl=timedelta(days=3650), schema=[{fields}], source=source, online=True)')
    (dst / "wide_repo.py").write_text(f"""from datetime import timedelta
from {flavour} import Entity, FeatureView, Field, FileSource
from {flavour}.types import Float32, Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
source = FileSource(name="wide_source", path="data/wide.parquet", timestamp_field="event_timestamp")
""" + "\n".join(views) + "\n")
    (dst / "feature_store.yaml").write_text(
        f"project: wide\nregistry: {registry}\nprovider: local\n{online_yaml}offline_store:\n  type: file\nentity_key_serialization_version: 3\n")


def driver_repo(dst: Path, flavour: str, online_yaml: str, registry: str):
    shutil.copytree(ROOT / "feature_repo", dst, ignore=shutil.ignore_patterns("registry*", "online_store*", "__pycache__", "generate_data.py"))
    if flavour == "feast":
        for py in dst.glob("*.py"):
            py.write_text(py.read_text().replace("from larder", "from feast"))
    (dst / "feature_store.yaml").write_text(
        f"project: driver_demo\nregistry: {registry}\nprovider: local\n{online_yaml}offline_store:\n  type: file\nentity_key_serialization_version: 3\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--feast-python", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    feast = str(Path(args.feast_python).parent / "feast")
    procs = []
    work = Path(tempfile.mkdtemp(prefix="larder-bench-"))
    windows = {"driver": ("2024-01-01T00:00:00", "2024-01-15T00:00:00"), "wide": ("2024-01-09T00:00:00", "2024-01-11T00:00:00")}
    try:
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        redis_yaml = f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{rport}\n"
        servers = {}

        fport = free_port()
        procs.append(subprocess.Popen([args.floor, str(fport)], stdout=subprocess.DEVNULL))
        servers["floor"] = {r: (f"http://127.0.0.1:{fport}", procs[-1].pid) for r in windows}

        for name, online_yaml in [("larder", "online_store:\n  type: rocksdb\n  path: data/online_store\n"), ("larder-redis", redis_yaml)]:
            servers[name] = {}
            for repo in windows:
                d = work / f"{name}_{repo}"
                registry = "data/registry.json"
                if repo == "driver":
                    driver_repo(d, "larder", online_yaml, registry)
                else:
                    wide_repo(d, args.feast_python, "larder", online_yaml, registry)
                subprocess.run([args.larder, "-c", d, "apply"], check=True, capture_output=True)
                subprocess.run([args.larder, "-c", d, "materialize", *windows[repo]], check=True, capture_output=True)
                port = free_port()
                procs.append(subprocess.Popen([args.larder, "-c", d, "serve", "--port", str(port), "--flight-port", "0", "--log-level", "warn"], stdout=subprocess.DEVNULL))
                servers[name][repo] = (f"http://127.0.0.1:{port}", procs[-1].pid)

        servers["feast"] = {}
        for repo in windows:
            d = work / f"feast_{repo}"
            # Feast's Redis keys end with the project's name: the two repos do not meet.
            yaml = redis_yaml
            if repo == "driver":
                driver_repo(d, "feast", yaml, "data/feast_registry.db")
            else:
                wide_repo(d, args.feast_python, "feast", yaml, "data/feast_registry.db")
            subprocess.run([feast, "apply"], cwd=d, check=True, capture_output=True)
            subprocess.run([feast, "materialize", *windows[repo]], cwd=d, check=True, capture_output=True)
            port = free_port()
            procs.append(subprocess.Popen([feast, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--max-requests", "0"],
                                          cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            servers["feast"][repo] = (f"http://127.0.0.1:{port}", procs[-1].pid)

        for name in servers:
            for url, _ in servers[name].values():
                wait_http(url + "/health")

        # Same answers from every store before measuring (the floor's are canned).
        for repo, n, nf in [("driver", 10, 3), ("wide", 100, 50)]:
            reference = answer(servers["larder"][repo][0], body(repo, n, nf))
            for name in ["larder-redis", "feast"]:
                same_answers(reference, answer(servers[name][repo][0], body(repo, n, nf)), f"{name} {repo}")
            assert all(s == "PRESENT" for c in reference.values() for s in c["statuses"]), repo

        results = []
        for repo, n, nf, conns in CASES:
            payload = body(repo, n, nf)
            for name in ["floor", "larder", "larder-redis", "feast"]:
                url, pid = servers[name][repo]
                run_wrk(url, payload, conns, 2, pid)  # warm-up
                r = run_wrk(url, payload, conns, args.duration, pid)
                r.update(server=name, entities=n, features=nf, connections=conns)
                results.append(r)
                print(f"{name:12s} {n:3d} x {nf:2d}, {conns} conn: {r['rps']:9.0f} req/s  p50 {r['p50']:8.3f} ms  p99 {r['p99']:8.3f} ms  "
                      f"{r['per_cpu_second']:8.0f} req/CPU-s  errors {r['errors']}", flush=True)

        def get(name, n, nf, conns):
            return next(r for r in results if r["server"] == name and (r["entities"], r["features"], r["connections"]) == (n, nf, conns))

        print("\n| case | floor req/s | Larder req/s (% of floor) | Larder p50 / p99 ms | Larder-Redis req/s | Larder-Redis p50 / p99 ms | Feast req/s | Feast p50 / p99 ms | req/CPU-s floor / Larder / Larder-Redis / Feast |")
        print("|---|---|---|---|---|---|---|---|---|")
        for _, n, nf, conns in CASES:
            fl, l, lr, f = (get(s, n, nf, conns) for s in ["floor", "larder", "larder-redis", "feast"])
            print(f"| {n} x {nf}, {conns} conn | {fl['rps']:.0f} | {l['rps']:.0f} ({100 * l['rps'] / fl['rps']:.0f}%) | {l['p50']:.3f} / {l['p99']:.3f} | "
                  f"{lr['rps']:.0f} | {lr['p50']:.3f} / {lr['p99']:.3f} | {f['rps']:.0f} | {f['p50']:.2f} / {f['p99']:.2f} | "
                  f"{fl['per_cpu_second']:.0f} / {l['per_cpu_second']:.0f} / {lr['per_cpu_second']:.0f} / {f['per_cpu_second']:.0f} |")
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
