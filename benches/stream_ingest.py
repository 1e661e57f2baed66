#!/usr/bin/env python3
"""Stream ingestion benchmark, one run, same broker, same events, same machine:

- sustained ingest rate (events/s): a backlog of N JSON events on a 2-partition topic, drained
  by Larder's own consumer (`larder serve`: a plain stream view and an aggregated one on the same
  source, online + offline copy) and by Feast 0.67's pattern (Feast runs no consumer: a Python
  consumer pushing each micro-batch with `FeatureStore.push` to its online store);
- event-to-online-visible latency (p50/p99) at a fixed rate: probe events among background load;
  for Larder from produce to the value read back over HTTP (by a separate reader process, so
  that it shares no GIL with the producer), for Feast from produce to the end of the `push`
  that wrote it (which favours Feast: no read).

    benches/stream_ingest.sh          # sets up everything, then runs this
    python benches/stream_ingest.py --larder BIN --feast-python PY [--events 200000] [--rate 1000] [--duration 15]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benches"))
from kafka_broker import Broker  # noqa: E402
from online_serving import free_port, wait_http  # noqa: E402

LARDER_DEFS = """\
from datetime import timedelta
from larder import Aggregation, Entity, Field, FileSource, KafkaSource, StreamFeatureView
from larder.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"])
batch = FileSource(name="ev_batch", path="data/ev", timestamp_field="event_timestamp")
src = KafkaSource(name="ev_stream", bootstrap_servers="{servers}", topic="{topic}", timestamp_field="event_timestamp",
                  batch_source=batch)
ev_last = StreamFeatureView(name="ev_last", entities=[user], source=src,
                            schema=[Field(name="user_id", dtype=Int64), Field(name="amount", dtype=Float64),
                                    Field(name="seq", dtype=Int64)])
ev_agg = StreamFeatureView(name="ev_agg", entities=[user], source=src, schema=[Field(name="user_id", dtype=Int64)],
                           aggregations=[Aggregation(column="amount", function="sum", time_window=timedelta(hours=1),
                                                     slide_interval=timedelta(minutes=1)),
                                         Aggregation(column="amount", function="count", time_window=timedelta(hours=1),
                                                     slide_interval=timedelta(minutes=1))])
"""

FEAST_DEFS = """\
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"])
batch = FileSource(name="ev_batch", path="{data}", timestamp_field="event_timestamp")
push = PushSource(name="ev_push", batch_source=batch)
ev_last = FeatureView(name="ev_last", entities=[user], source=push, ttl=timedelta(days=1),
                      schema=[Field(name="user_id", dtype=Int64), Field(name="amount", dtype=Float64),
                              Field(name="seq", dtype=Int64)])
"""

# Runs under Feast's Python: consume the topic, push each micro-batch to Feast's online store.
FEAST_CONSUMER = r"""
import json, sys, time
import pandas as pd
from confluent_kafka import Consumer
from feast import FeatureStore

repo, servers, topic, group, total, mode = sys.argv[1:7]
total = int(total)
store = FeatureStore(repo_path=repo)
c = Consumer({"bootstrap.servers": servers, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
assigned = []
c.subscribe([topic], on_assign=lambda consumer, parts: assigned.extend(parts))
while not assigned:  # joined the group: from here on, latency is the pipeline's, not the join's
    c.poll(0.1)
seen, started, lat = 0, None, []
print("ready", flush=True)
while seen < total:
    msgs = c.consume(num_messages=5000, timeout=0.05)
    if not msgs:
        continue
    if started is None:
        started = time.perf_counter()
    rows = [json.loads(m.value()) for m in msgs if m.error() is None]
    df = pd.DataFrame(rows)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    store.push("ev_push", df[["user_id", "amount", "seq", "event_timestamp"]])
    done = time.time_ns()
    lat += [(done - r["sent_ns"]) / 1e6 for r in rows if r["user_id"] < 0]
    c.commit(asynchronous=False)
    seen += len(rows)
elapsed = time.perf_counter() - started
print(json.dumps({"elapsed": elapsed, "latencies_ms": lat}), flush=True)
"""


def event(user: int, seq: int, amount: float) -> dict:
    return {"user_id": user, "amount": amount, "seq": seq,
            "event_timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", "sent_ns": time.time_ns()}


def fill(broker: Broker, topic: str, n: int):
    p = broker.producer(**{"linger.ms": 20, "batch.num.messages": 10000})
    for i in range(n):
        body = json.dumps(event(1 + i % 10000, i, float(i % 100))).encode()
        while True:
            try:
                p.produce(topic, key=str(i % 10000).encode(), value=body)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)


def metric(url: str, name: str, **labels) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


PROBE_USERS = 20  # probes cycle over users -1..-20, so each stays readable for a second


def load(broker: Broker, topic: str, rate: int, duration: float, on_probe):
    """Background events at `rate`/s for `duration` s; every 50 ms a probe (users -1..-20 in
    turn) whose send time is given to `on_probe(seq, sent_ns)`."""
    # A few ms of linger, as a real producer at this rate has: one request per message would
    # measure the broker's request rate, not the pipeline.
    p = broker.producer(**{"linger.ms": 2})
    t0 = time.perf_counter()
    i, probe = 0, 0
    next_probe = t0
    while time.perf_counter() - t0 < duration:
        now = time.perf_counter()
        target = int((now - t0) * rate)
        while i < target:
            p.produce(topic, key=str(i % 1000).encode(), value=json.dumps(event(1 + i % 1000, i, 1.0)).encode())
            i += 1
        if now >= next_probe:
            probe += 1
            sent = time.time_ns()
            user = -((probe - 1) % PROBE_USERS) - 1
            e = event(user, sent, 1.0)  # a probe's seq is its send time
            e["sent_ns"] = sent
            p.produce(topic, key=str(user).encode(), value=json.dumps(e).encode())
            p.poll(0)
            on_probe(probe, sent)
            next_probe += 0.05
        p.poll(0)
        time.sleep(0.0005)
    p.flush(30)
    return i + probe


# Reads the probe users as fast as it can; prints the latencies (ms) of every new probe value
# on SIGTERM.
POLLER = r"""
import json, signal, sys, time, urllib.request
url = sys.argv[1]
body = json.dumps({"features": ["ev_last:seq"], "entities": {"user_id": [-(i + 1) for i in range(20)]}}).encode()
seen, lat = set(), []
def done(*_):
    print(json.dumps(lat), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    req = urllib.request.Request(url + "/get-online-features", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        values = json.loads(r.read())["results"][1]["values"]
    now = time.time_ns()
    for v in values:
        if v is not None and v not in seen:
            seen.add(v)
            lat.append((now - v) / 1e6)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", required=True)
    ap.add_argument("--feast-python", required=True)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--offline-flush-ms", type=int, default=5000, help="Larder's stream.offline_flush_ms")
    ap.add_argument("--larder-only", action="store_true", help="skip Feast (for quick comparisons of Larder builds)")
    args = ap.parse_args()
    os.environ.setdefault("LARDER_PYTHON", sys.executable)
    work = Path(tempfile.mkdtemp(prefix="larder-stream-bench-"))
    broker = Broker(work / "tansu.log")
    procs = []
    try:
        schema = pa.schema([("user_id", pa.int64()), ("amount", pa.float64()), ("seq", pa.int64()),
                            ("event_timestamp", pa.timestamp("us", tz="UTC"))])
        results = {}
        # --- Larder: backlog drain ---
        broker.create_topic("ev_larder", 2)
        fill(broker, "ev_larder", args.events)
        repo = work / "larder"
        (repo / "data" / "ev").mkdir(parents=True)
        pq.write_table(schema.empty_table(), repo / "data" / "ev" / "seed.parquet")
        (repo / "feature_store.yaml").write_text(
            "project: bench\nregistry: data/registry.json\nprovider: local\nonline_store:\n  type: rocksdb\n"
            "  path: data/online\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n"
            f"stream:\n  offline_flush_ms: {args.offline_flush_ms}\n")
        (repo / "repo.py").write_text(LARDER_DEFS.format(servers=broker.servers, topic="ev_larder"))
        subprocess.run([args.larder, "-c", repo, "apply"], check=True, capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        procs.append(subprocess.Popen([args.larder, "-c", repo, "serve", "--port", str(port), "--flight-port", "0",
                                       "--log-level", "warn"], stdout=subprocess.DEVNULL))
        wait_http(url + "/health")
        while min(metric(url, "larder_stream_events_total", view=v, outcome="ingested") for v in ("ev_last", "ev_agg")) \
                < args.events:
            time.sleep(0.05)
        results["larder_drain"] = time.perf_counter() - t0
        cpu = cpu_seconds(procs[-1].pid)
        print(f"Larder drained {args.events} events (2 views + offline copy) in {results['larder_drain']:.2f} s "
              f"= {args.events / results['larder_drain']:.0f} events/s, {cpu:.2f} CPU s (start-up included) "
              f"= {args.events / cpu:.0f} events per CPU second", flush=True)
        # --- Larder: latency at a fixed rate; the reader is its own process (no GIL shared
        # with the producer), and a probe's value is its send time. ---
        poller = subprocess.Popen([sys.executable, "-c", POLLER, url], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        load(broker, "ev_larder", args.rate, args.duration, lambda s, t: None)
        time.sleep(2)
        poller.terminate()
        lat = json.loads(poller.communicate(timeout=30)[0].strip().splitlines()[-1])
        results["larder_lat"] = lat
        print(f"Larder latency at {args.rate} ev/s: p50 {pct(lat, .5):.1f} ms p99 {pct(lat, .99):.1f} ms "
              f"max {max(lat):.1f} ms ({len(lat)} probes)", flush=True)
        if args.larder_only:
            return

        # --- Feast 0.67: push-based consumer ---
        broker.create_topic("ev_feast", 2)
        fill(broker, "ev_feast", args.events)
        frepo = work / "feast"
        frepo.mkdir()
        pq.write_table(schema.empty_table(), frepo / "seed.parquet")
        (frepo / "feature_store.yaml").write_text(
            "project: bench\nregistry: registry.db\nprovider: local\nonline_store:\n  type: sqlite\n"
            "  path: online.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n")
        (frepo / "repo.py").write_text(FEAST_DEFS.format(data=frepo / "seed.parquet"))
        feast = str(Path(args.feast_python).parent / "feast")
        subprocess.run([feast, "apply"], cwd=frepo, check=True, capture_output=True)
        script = work / "feast_consumer.py"
        script.write_text(FEAST_CONSUMER)
        out = subprocess.run([args.feast_python, script, frepo, broker.servers, "ev_feast", "g-drain",
                              str(args.events), "drain"], check=True, capture_output=True, text=True)
        results["feast_drain"] = json.loads(out.stdout.splitlines()[-1])["elapsed"]
        print(f"Feast drained {args.events} events (push to sqlite) in {results['feast_drain']:.2f} s "
              f"= {args.events / results['feast_drain']:.0f} events/s", flush=True)
        broker.create_topic("ev_feast_lat", 2)
        expected = int(args.rate * args.duration) + int(args.duration / 0.05) + 1
        proc = subprocess.Popen([args.feast_python, script, frepo, broker.servers, "ev_feast_lat", "g-lat",
                                 str(expected), "latency"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2)
        sent = load(broker, "ev_feast_lat", args.rate, args.duration, lambda s, t: None)
        if sent < expected:
            fill(broker, "ev_feast_lat", expected - sent)
        flat = json.loads(proc.communicate(timeout=300)[0].splitlines()[-1])["latencies_ms"]
        print(f"Feast latency at {args.rate} ev/s: p50 {pct(flat, .5):.1f} ms p99 {pct(flat, .99):.1f} ms "
              f"({len(flat)} probes)", flush=True)

        ld, fd = results["larder_drain"], results["feast_drain"]
        print("\n| stream ingest | Larder | Feast 0.67 (push consumer) | ratio |\n|---|---|---|---|")
        print(f"| backlog of {args.events} events, events/s | {args.events / ld:.0f} | {args.events / fd:.0f} | "
              f"{fd / ld:.1f}x |")
        print(f"| visible latency p50 at {args.rate}/s, ms | {pct(lat, .5):.1f} | {pct(flat, .5):.1f} | "
              f"{pct(flat, .5) / pct(lat, .5):.1f}x |")
        print(f"| visible latency p99 at {args.rate}/s, ms | {pct(lat, .99):.1f} | {pct(flat, .99):.1f} | "
              f"{pct(flat, .99) / pct(lat, .99):.1f}x |")
        print(f"(median of Larder latencies {statistics.median(lat):.1f} ms over {len(lat)} probes)")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
