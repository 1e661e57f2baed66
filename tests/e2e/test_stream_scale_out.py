"""Scale-out of stream consumers: two `larder stream` processes share a stream view's
partitions through the consumer group, on one Redis online store. One is killed (-9) between two
waves of events; its partitions move to the other, which replays what the dead one had not
committed. The online aggregates then equal a naive count and sum of every event produced:
nothing lost, nothing counted twice."""

import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Larder, RedisServer, Server, larder_bin
from kafka_broker import Broker

S = 1_000_000_000

CONFIG = """\
project: scale_out
registry: data/registry.json
provider: local
online_store:
  type: redis
  connection_string: "REDIS"
offline_store:
  type: file
stream:
  max_batch_events: 200
  max_batch_wait_ms: 20
  offline_flush_ms: 60000  # offsets are committed after the offline flush: the killed one's are not
entity_key_serialization_version: 3
"""

DEFS = """\
from datetime import timedelta

from larder import Aggregation, Entity, Field, FileSource, JsonFormat, KafkaSource, StreamFeatureView
from larder.types import Int64

user = Entity(name="user", join_keys=["user_id"])
tx_batch = FileSource(name="tx_batch", path="data/tx", timestamp_field="event_timestamp")
tx_stream = KafkaSource(
    name="tx_stream", bootstrap_servers="BROKER", topic="tx", timestamp_field="ts", batch_source=tx_batch,
    message_format=JsonFormat(schema_json="user_id bigint, amount double, ts timestamp"),
)
tx_aggs = StreamFeatureView(
    name="tx_aggs", entities=[user], source=tx_stream, schema=[Field(name="user_id", dtype=Int64)],
    aggregations=[
        Aggregation(column="amount", function="sum", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
        Aggregation(column="amount", function="count", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
    ],
)
"""

USERS = list(range(1, 41))


def iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def in_window(ts_ns: int, now_ns: int) -> bool:
    """Inside the 1-day window with 1-hour slides at `now_ns` (the documented definition)."""
    t = now_ns // S
    return ((t // 3600) * 3600 - 86400 + 3600) * S <= ts_ns <= now_ns


class Consumer:
    """A `larder stream` process with its log in a file."""

    def __init__(self, larder: Larder, log: Path):
        self.log = log
        self.proc = subprocess.Popen([larder_bin(), "-c", str(larder.repo), "stream"], stdout=open(log, "w"),
                                     stderr=subprocess.STDOUT, env=larder.env)

    def batches(self) -> int:
        return self.log.read_text(errors="replace").count("micro-batch online")

    def replayed(self) -> int:
        """Events skipped because their tile already held them (a replay)."""
        return sum(int(n) for n in re.findall(r"replayed: (\d+)", self.log.read_text(errors="replace")))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def env(tmp_path):
    broker = Broker(tmp_path / "tansu.log")
    broker.create_topic("tx", 4)
    redis = RedisServer(tmp_path)
    repo = tmp_path / "repo"
    (repo / "data" / "tx").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(CONFIG.replace("REDIS", redis.connection_string))
    (repo / "definitions.py").write_text(DEFS.replace("BROKER", broker.servers))
    schema = pa.schema([("user_id", pa.int64()), ("amount", pa.float64()), ("event_timestamp", pa.timestamp("us", tz="UTC"))])
    pq.write_table(schema.empty_table(), repo / "data" / "tx" / "seed.parquet")
    larder = Larder(repo)
    larder.run("apply")
    larder.env["LARDER_LOG"] = "info,larder_server=debug"
    yield broker, larder, tmp_path
    broker.stop()
    redis.stop()


def test_two_consumers_share_partitions_and_a_killed_one_loses_and_doubles_nothing(env):
    broker, larder, tmp = env
    a = Consumer(larder, tmp / "a.log")
    b = Consumer(larder, tmp / "b.log")
    reader = Server(larder, "--no-stream", log=tmp / "reader.log")
    rng = random.Random(11)
    events = []

    def wave(n):
        now = time.time_ns()
        batch = [(rng.choice(USERS), now - rng.randrange(0, 20 * 3600) * S, rng.randrange(1, 400) / 4) for _ in range(n)]
        events.extend(batch)
        broker.produce("tx", [(u, {"user_id": u, "amount": x, "ts": iso(ts)}) for (u, ts, x) in batch])

    def wait_online(timeout):
        deadline = time.time() + timeout
        while True:
            now = time.time_ns()
            r = reader.online({"features": ["tx_aggs:count_amount_1d", "tx_aggs:sum_amount_1d"],
                               "entities": {"user_id": USERS}})
            assert r.status_code == 200, r.text
            res = r.json()["results"]
            counts, sums = res[1]["values"], res[2]["values"]
            want_counts = [sum(1 for (u, ts, _) in events if u == user and in_window(ts, now)) for user in USERS]
            want_sums = [sum(x for (u, ts, x) in events if u == user and in_window(ts, now)) or None for user in USERS]
            if counts == want_counts and sums == want_sums:
                return
            assert time.time() < deadline, (
                f"online {counts} / {sums}\nexpected {want_counts} / {want_sums}\n"
                f"A: {a.log.read_text()[-1500:]}\nB: {b.log.read_text()[-1500:]}")
            time.sleep(0.3)

    try:
        # Both joined and each has partitions: a wave is split between them.
        deadline = time.time() + 60
        while True:
            wave(400)
            time.sleep(1.0)
            if a.batches() > 0 and b.batches() > 0:
                break
            assert time.time() < deadline, f"the two consumers did not share the topic\nA: {a.log.read_text()}\nB: {b.log.read_text()}"
        wait_online(60)
        # One dies with whatever it had not committed; the other takes its partitions over.
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        before = b.batches()
        wave(2000)
        wait_online(90)
        assert b.batches() > before
        # B re-read what A had applied but not committed, and skipped it.
        assert b.replayed() > 0, b.log.read_text()[-3000:]
    finally:
        reader.stop()
        a.stop()
        b.stop()
