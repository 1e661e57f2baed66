#!/usr/bin/env python3
"""gRPC online-serving benchmark: Larder's `feast.serving.ServingService/GetOnlineFeatures` (on
its Flight port) against Feast 0.67's own gRPC feature server (`feast listen`,
`GrpcFeatureServer/GetOnlineFeatures`), in one run, on the very same data: Feast applies and
materializes the `feast init` template, and Larder serves that deployment as it is (Feast's
registry.db and SQLite tables; see "Taking over a Feast deployment" in the README).

    benches/grpc_serving.sh              # sets up everything, then runs this
    FEAST_PYTHON=... python benches/grpc_serving.py --larder BIN --feast-python PY [--seconds 10]

The load is closed-loop: P client processes (Feast's generated Python stubs, one channel
each) send requests back to back for the given time. Prints req/s, p50 and p99 per case for
both servers and Larder's ratio. The client is Python, on the same 2 cores as the server: for a
fast server the client is the bottleneck, so Larder's figures are a floor.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]
CASES = [(1, 1), (1, 4), (10, 1), (10, 4)]  # (entities, client processes)

CLIENT = r"""
import json, sys, time
import grpc
from feast.protos.feast.serving import ServingService_pb2 as S
from feast.protos.feast.types import Value_pb2 as V
target, service, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
features = sys.argv[5].split(",")
channel = grpc.insecure_channel(target)
if service == "larder":
    from feast.protos.feast.serving import ServingService_pb2_grpc as G
    call = G.ServingServiceStub(channel).GetOnlineFeatures
else:
    from feast.protos.feast.serving import GrpcServer_pb2_grpc as G
    call = G.GrpcFeatureServerStub(channel).GetOnlineFeatures
ids = V.RepeatedValue(val=[V.Value(int64_val=1001 + i % 5) for i in range(n)])
req = S.GetOnlineFeaturesRequest(features=S.FeatureList(val=features), entities={"driver_id": ids})
for _ in range(20):
    r = call(req)
assert len(r.results) == len(features) + 1 and all(len(c.values) == n for c in r.results), r
lat = []
end = time.perf_counter() + seconds
while True:
    t0 = time.perf_counter()
    if t0 >= end:
        break
    call(req)
    lat.append(time.perf_counter() - t0)
print("RESULT " + json.dumps(lat))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, cwd, env=None):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"{cmd} failed:\n{p.stdout}\n{p.stderr}")
    return p


def wait_grpc(python: str, target: str, proc, timeout=120):
    probe = ("import grpc, sys; grpc.channel_ready_future(grpc.insecure_channel(sys.argv[1])).result(timeout=2)")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode})")
        if subprocess.run([python, "-c", probe, target], capture_output=True).returncode == 0:
            return
        time.sleep(0.3)
    sys.exit(f"{target} did not start")


def load(python: str, target: str, service: str, entities: int, procs: int, seconds: float) -> dict:
    clients = [subprocess.Popen([python, "-c", CLIENT, target, service, str(entities), str(seconds), ",".join(FEATURES)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(procs)]
    lat = []
    for c in clients:
        out, err = c.communicate(timeout=seconds + 120)
        if c.returncode != 0:
            sys.exit(f"client failed: {err}")
        lat += json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"rps": len(lat) / seconds, "p50": pct(0.50), "p99": pct(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--feast-python", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    feast_bin = Path(args.feast_python).parent / "feast"
    tmp = Path(tempfile.mkdtemp(prefix="larder-grpc-bench-"))
    procs = []
    try:
        run([feast_bin, "init", "demo"], cwd=tmp)
        repo = tmp / "demo" / "feature_repo"
        now = datetime.now(timezone.utc).replace(microsecond=0)
        run([feast_bin, "apply"], cwd=repo)
        run([feast_bin, "materialize", (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S"),
             now.strftime("%Y-%m-%dT%H:%M:%S")], cwd=repo)
        feast_port, http_port, flight_port = free_port(), free_port(), free_port()
        env = dict(os.environ, LARDER_PYTHON=args.feast_python)
        larder = subprocess.Popen([args.larder, "serve", "--port", str(http_port), "--flight-port", str(flight_port),
                                   "--no-stream"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp / "larder.log", "w"), start_new_session=True)
        procs.append(larder)
        feast = subprocess.Popen([str(feast_bin), "listen", "-a", f"127.0.0.1:{feast_port}", "-w", "8"], cwd=repo,
                                 stdout=subprocess.DEVNULL, stderr=open(tmp / "feast.log", "w"),
                                 start_new_session=True)
        procs.append(feast)
        larder_target, feast_target = f"127.0.0.1:{flight_port}", f"127.0.0.1:{feast_port}"
        wait_grpc(args.feast_python, larder_target, larder)
        wait_grpc(args.feast_python, feast_target, feast)
        print(f"gRPC GetOnlineFeatures, {len(FEATURES)} features, {args.seconds:.0f} s per case, closed loop")
        print(f"{'case':<26}{'Feast req/s':>12}{'p50 ms':>8}{'p99 ms':>8}{'Larder req/s':>14}{'p50 ms':>8}"
              f"{'p99 ms':>8}{'ratio':>8}")
        for entities, clients in CASES:
            f = load(args.feast_python, feast_target, "feast", entities, clients, args.seconds)
            lr = load(args.feast_python, larder_target, "larder", entities, clients, args.seconds)
            case = f"{entities} entities, {clients} clients"
            print(f"{case:<26}{f['rps']:>12.0f}{f['p50']:>8.2f}{f['p99']:>8.2f}{lr['rps']:>14.0f}{lr['p50']:>8.2f}"
                  f"{lr['p99']:>8.2f}{lr['rps'] / f['rps']:>7.1f}x")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
