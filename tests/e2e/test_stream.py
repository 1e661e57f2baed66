"""Stream feature views fed by a real Kafka-protocol broker (tansu, started here on a free port):
freshness, windowed aggregations equal online and offline (and to a naive computation), bad
events to the dead-letter directory, and replays (a new consumer group, a kill -9) that lose
nothing and count nothing twice."""

import random
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from conftest import Larder, Server
from kafka_broker import Broker
from larder import FeatureStore

S = 1_000_000_000
# (output, function, window seconds, slide seconds): as declared in DEFS below.
AGGS = [
    ("sum_amount_1d", "sum", 86400, 3600),
    ("count_amount_1d", "count", 86400, 3600),
    ("mean_amount_6h", "mean", 6 * 3600, 3600),
    ("min_amount_1d", "min", 86400, 3600),
    ("max_amount_1h", "max", 3600, 3600),
]

CONFIG = """\
project: stream_project
registry: data/registry.json
provider: local
online_store:
  type: rocksdb
  path: data/online
offline_store:
  type: file
stream:
  group_id_prefix: GROUP
  max_batch_wait_ms: 20
  offline_flush_ms: 200
  lag_refresh_ms: 300
EXTRA
entity_key_serialization_version: 3
"""

DEFS = """\
from datetime import timedelta

from larder import Aggregation, Entity, Field, FileSource, JsonFormat, KafkaSource, PushSource, StreamFeatureView
from larder.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])
tx_batch = FileSource(name="tx_batch", path="data/tx", timestamp_field="event_timestamp")
tx_stream = KafkaSource(
    name="tx_stream", bootstrap_servers="BROKER", topic="tx", timestamp_field="ts", batch_source=tx_batch,
    message_format=JsonFormat(schema_json="user_id bigint, amount double, merchant string, ts timestamp"),
)
tx_aggs = StreamFeatureView(
    name="tx_aggs", entities=[user], source=tx_stream, schema=[Field(name="user_id", dtype=Int64)],
    aggregations=[
        Aggregation(column="amount", function="sum", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
        Aggregation(column="amount", function="count", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
        Aggregation(column="amount", function="mean", time_window=timedelta(hours=6), slide_interval=timedelta(hours=1)),
        Aggregation(column="amount", function="min", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
        Aggregation(column="amount", function="max", time_window=timedelta(hours=1)),
    ],
)
pushed_batch = FileSource(name="pushed_batch", path="data/pushed", timestamp_field="event_timestamp")
tx_pushed = StreamFeatureView(
    name="tx_pushed", entities=[user], source=PushSource(name="tx_push", batch_source=pushed_batch),
    schema=[Field(name="user_id", dtype=Int64), Field(name="amount", dtype=Float64)],
)
late_batch = FileSource(name="late_batch", path="data/late", timestamp_field="event_timestamp")
late_stream = KafkaSource(
    name="late_stream", bootstrap_servers="BROKER", topic="late", timestamp_field="ts", batch_source=late_batch,
    message_format=JsonFormat(schema_json="user_id bigint, amount double, merchant string, ts timestamp"),
    watermark_delay_threshold=timedelta(minutes=5),
)
tx_late = StreamFeatureView(
    name="tx_late", entities=[user], source=late_stream, schema=[Field(name="user_id", dtype=Int64)],
    aggregations=[
        Aggregation(column="amount", function="sum", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
        Aggregation(column="amount", function="count", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
    ],
)
tx_last = StreamFeatureView(
    name="tx_last", entities=[user], source=tx_stream,
    schema=[Field(name="user_id", dtype=Int64), Field(name="amount", dtype=Float64), Field(name="merchant", dtype=String)],
)
"""


def same(a, b) -> bool:
    """Equal values; floats up to rounding (sums are exact here, a mean is one division)."""
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=1e-12)


def iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def window_start(t_ns: int, window: int, slide: int) -> int:
    t = t_ns // S
    return ((t // slide) * slide - window + slide) * S


def naive(events, user: int, t_ns: int):
    """Each aggregation of `user` at `t_ns`, straight from the documented window definition."""
    out = {}
    for name, fn, w, s in AGGS:
        lo = window_start(t_ns, w, s)
        xs = [a for (u, ts, a) in events if u == user and lo <= ts <= t_ns]
        if fn == "count":
            out[name] = len(xs)
        elif not xs:
            out[name] = None
        else:
            out[name] = {"sum": sum(xs), "mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs)}[fn]
    return out


class Env:
    def __init__(self, tmp: Path):
        self.broker = Broker(tmp / "tansu.log")
        self.broker.create_topic("tx", 2)
        self.broker.create_topic("late", 1)
        self.repo = tmp / "repo"
        (self.repo / "data" / "tx").mkdir(parents=True)
        self.set_group("g1")
        (self.repo / "definitions.py").write_text(DEFS.replace("BROKER", self.broker.servers))
        schema = pa.schema([("user_id", pa.int64()), ("amount", pa.float64()), ("merchant", pa.string()),
                            ("event_timestamp", pa.timestamp("us", tz="UTC"))])
        pq.write_table(schema.empty_table(), self.repo / "data" / "tx" / "seed.parquet")
        (self.repo / "data" / "late").mkdir()
        pq.write_table(schema.empty_table(), self.repo / "data" / "late" / "seed.parquet")
        (self.repo / "data" / "pushed").mkdir()
        pq.write_table(pa.schema([("user_id", pa.int64()), ("amount", pa.float64()),
                                  ("event_timestamp", pa.timestamp("us", tz="UTC"))]).empty_table(),
                       self.repo / "data" / "pushed" / "seed.parquet")
        self.larder = Larder(self.repo)
        self.larder.run("apply")
        self.larder.env["LARDER_LOG"] = "info,larder_server=debug"
        self.events = []  # (user, ts ns, amount) of every good event produced
        self.log = tmp / "server.log"
        self.server = Server(self.larder, log=self.log)

    def set_group(self, group: str, extra: str = ""):
        (self.repo / "feature_store.yaml").write_text(CONFIG.replace("GROUP", group).replace("EXTRA\n", extra))

    def restart(self, kill=False):
        if kill:
            self.server.proc.send_signal(signal.SIGKILL)
            self.server.proc.wait()
        else:
            self.server.stop()
        self.server = Server(self.larder, log=self.log)

    def produce(self, events):
        self.events.extend(events)
        self.broker.produce("tx", [(u, {"user_id": u, "amount": a, "merchant": f"m{u}", "ts": iso(ts)})
                                   for (u, ts, a) in events])

    def online(self, features, users):
        r = self.server.online({"features": features, "entities": {"user_id": users}})
        assert r.status_code == 200, r.text
        body = r.json()
        names = body["metadata"]["feature_names"]
        return {n: res["values"] for n, res in zip(names, body["results"])}

    def metric(self, name: str, **labels) -> float:
        text = requests.get(self.server.url + "/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_counts(self, users, timeout=60):
        """Waits until the online counts equal the produced events' (as of now)."""
        deadline = time.time() + timeout
        while True:
            now = time.time_ns()
            want = [naive(self.events, u, now)["count_amount_1d"] for u in users]
            got = self.online(["tx_aggs:count_amount_1d"], users)["count_amount_1d"]
            if got == want:
                return
            if time.time() > deadline:
                raise AssertionError(f"online counts {got}, expected {want}\n{self.server_log()}")
            time.sleep(0.2)

    def server_log(self) -> str:
        return self.log.read_text()[-4000:]

    def offline_rows(self) -> int:
        return pq.read_table(self.repo / "data" / "tx").num_rows

    def wait_offline(self, timeout=30):
        """Waits until the offline copy holds every produced event (it is appended every
        stream.offline_flush_ms, so it lags the online store by up to that)."""
        deadline = time.time() + timeout
        while self.offline_rows() != len(self.events):
            assert time.time() < deadline, (self.offline_rows(), len(self.events))
            time.sleep(0.2)

    def stop(self):
        self.server.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("stream"))
    yield e
    e.stop()


USERS = [1, 2, 3, 4, 5]


def test_an_event_is_online_within_moments(env):
    t = time.time_ns()
    start = time.time()
    env.produce([(1, t, 12.5)])
    while True:
        got = env.online(["tx_last:amount", "tx_last:merchant"], [1])
        if got["amount"] == [12.5]:
            break
        assert time.time() - start < 20, f"not visible after 20 s: {got}"
        time.sleep(0.02)
    assert got["merchant"] == ["m1"]
    env.wait_counts([1])


def test_aggregates_are_the_same_online_offline_and_by_hand(env):
    rng = random.Random(5)
    now = time.time_ns()
    # Events over the last 30 hours; amounts in quarters keep every sum exact in any order.
    events = [(rng.choice(USERS), now - rng.randrange(0, 30 * 3600) * S - rng.randrange(S), rng.randrange(1, 400) / 4)
              for _ in range(400)]
    env.produce(events)
    env.wait_counts(USERS)
    features = [f"tx_aggs:{name}" for name, *_ in AGGS]
    store = FeatureStore(url=env.server.url)
    for _attempt in range(3):
        before = time.time_ns()
        online = env.online(features, USERS)
        after = time.time_ns()
        # The read happened between `before` and `after`: same window edges -> one answer.
        if all(window_start(before, w, s) == window_start(after, w, s) for _, _, w, s in AGGS):
            break
    else:
        raise AssertionError("could not read online between two window edges")
    for i, u in enumerate(USERS):
        want = naive(env.events, u, before)
        for name, fn, *_ in AGGS:
            assert same(online[name][i], want[name]), (u, name, online[name][i], want[name])
    # Offline at the same time: exactly what the online store served (once the offline copy
    # has caught up).
    env.wait_offline()
    entity_df = pd.DataFrame({"user_id": USERS, "event_timestamp": pd.to_datetime([before] * len(USERS), utc=True)})
    training = store.get_historical_features(entity_df=entity_df, features=features).to_df()
    for i, u in enumerate(USERS):
        row = training[training.user_id == u].iloc[0]
        for name, *_ in AGGS:
            got = None if pd.isna(row[name]) else row[name]
            assert same(got, online[name][i]), (u, name, got, online[name][i])
    # Offline at past times (window edges, inside tiles) against the naive computation.
    times = [now - h * 3600 * S + d for h in (1, 5, 13, 29) for d in (0, -S, 7 * S)]
    rows = [(u, t) for u in USERS for t in times]
    entity_df = pd.DataFrame({"user_id": [u for u, _ in rows],
                              "event_timestamp": pd.to_datetime([t for _, t in rows], utc=True)})
    training = store.get_historical_features(entity_df=entity_df, features=features).to_df()
    assert len(training) == len(rows)
    for (u, t), (_, got) in zip(rows, training.iterrows()):
        want = naive(env.events, u, t)
        for name, *_ in AGGS:
            value = None if pd.isna(got[name]) else got[name]
            assert same(value, want[name]), (u, t, name, value, want[name])
    assert env.offline_rows() == len(env.events)


def test_bad_events_go_to_the_dead_letter_directory_and_the_worker_goes_on(env):
    t = time.time_ns()
    bad = [
        (7, b"this is not json"),
        (7, {"user_id": "seven", "amount": 1.0, "ts": iso(t)}),
        (7, {"user_id": 7, "amount": 1.0}),
        (7, {"user_id": 7, "amount": "lots", "ts": iso(t)}),
        (7, {"amount": 2.0, "ts": iso(t)}),
    ]
    env.broker.produce("tx", bad)
    env.produce([(7, t, 3.0)])
    env.wait_counts([7])
    deadline = time.time() + 20
    while env.metric("larder_stream_events_total", view="tx_aggs", outcome="dead_letter") < len(bad):
        assert time.time() < deadline, "dead letters not counted"
        time.sleep(0.1)
    quarantine = pq.read_table(env.repo / "data" / "dead_letter" / "tx_aggs").to_pandas()
    assert len(quarantine) == len(bad)
    reasons = " | ".join(quarantine.sort_values("offset")["reason"])
    for needle in ["unparseable JSON", "user_id", "timestamp field `ts` is missing", "amount", "user_id"]:
        assert needle in reasons, (needle, reasons)
    assert (quarantine["payload"] == "this is not json").any()
    assert env.online(["tx_aggs:sum_amount_1d"], [7])["sum_amount_1d"] == [3.0]


def test_replay_from_a_new_consumer_group_counts_nothing_twice(env):
    users = USERS + [1, 7]
    before = env.online([f"tx_aggs:{n}" for n, *_ in AGGS], USERS)
    env.wait_offline()
    rows_before = env.offline_rows()
    replayed_target = len(env.events)
    env.set_group("g2")  # a new group starts from the earliest offset: every event comes again
    env.restart()
    deadline = time.time() + 60
    while env.metric("larder_stream_events_total", view="tx_aggs", outcome="replayed") < replayed_target:
        assert time.time() < deadline, "the replay did not finish"
        time.sleep(0.2)
    env.wait_counts(users)
    after = env.online([f"tx_aggs:{n}" for n, *_ in AGGS], USERS)
    for name, *_ in AGGS:
        if name != "max_amount_1h":  # the 1 h tumbling window may have moved on meanwhile
            assert all(same(a, b) for a, b in zip(after[name], before[name])), (name, after[name], before[name])
    assert env.offline_rows() == rows_before == len(env.events)


def test_kill_9_loses_nothing(env):
    now = time.time_ns()
    env.produce([(u, now - i * S, 1.0) for i, u in enumerate(USERS * 20)])
    env.restart(kill=True)
    env.produce([(u, now - i * S, 2.0) for i, u in enumerate(USERS * 5)])
    env.wait_counts(USERS)
    env.wait_offline()


def test_stream_views_are_listed_from_the_sdk(env):
    from larder import LarderError

    store = FeatureStore(url=env.server.url)
    assert sorted(v.name for v in store.list_stream_feature_views()) == ["tx_aggs", "tx_last", "tx_late"]
    aggs = store.get_stream_feature_view("tx_aggs")
    assert aggs.source == "tx_stream" and {a.function for a in aggs.aggregations} >= {"sum", "count"}
    assert store.get_data_source("tx_stream").topic == "tx"
    with pytest.raises(LarderError) as e:
        store.get_stream_feature_view("tx_pushed")  # on a push source: not a stream worker's view
    assert e.value.status == 404


def test_materialize_refuses_an_aggregated_view(env):
    from larder import LarderError

    store = FeatureStore(url=env.server.url)
    with pytest.raises(LarderError) as e:
        store.materialize(datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2020, 1, 2, tzinfo=timezone.utc),
                          feature_views=["tx_aggs"])
    assert e.value.status == 422 and "stream worker" in e.value.message


def test_consumer_lag_and_event_age_are_published(env):
    deadline = time.time() + 30
    while True:
        env.produce([(9, time.time_ns(), 1.0)])
        text = requests.get(env.server.url + "/metrics", timeout=10).text
        if "larder_stream_consumer_lag{" in text and "larder_stream_event_age_seconds{" in text:
            break
        assert time.time() < deadline, "stream lag metrics not published"
        time.sleep(1)
    assert 0 <= env.metric("larder_stream_event_age_seconds", view="tx_last") < 60
    # A backlog shows as lag; once it is consumed and nothing more comes, the lag (refreshed on
    # a timer, not only when messages arrive) reads 0.
    now = time.time_ns()
    env.produce([(u, now, 0.25) for u in USERS * 400])
    deadline = time.time() + 60
    while True:
        lag = env.metric("larder_stream_consumer_lag", topic="tx")
        if lag == 0 and env.online(["tx_aggs:count_amount_1d"], [1])["count_amount_1d"] == [
            naive(env.events, 1, time.time_ns())["count_amount_1d"]
        ]:
            break
        assert time.time() < deadline, f"the lag did not come back to 0: {lag}\n{env.server_log()}"
        time.sleep(0.05)
    time.sleep(1.0)  # several refreshes with nothing arriving
    assert env.metric("larder_stream_consumer_lag", topic="tx") == 0
    assert env.metric("larder_stream_consumer_lag", topic="late") == 0


def test_late_events_are_dead_lettered_and_count_nowhere(env):
    """watermark_delay_threshold=5 min on `late_stream` (one partition): an event more than
    5 minutes older than the newest seen before it is refused with reason `late`, counted, and
    neither online nor offline. The expectation is computed here, event by event."""
    m = 60 * S
    now = time.time_ns()
    offsets = [-20, -30, -24, -10, -16, -14, -40, -11]  # minutes from now, in produce order
    events = [(51, now + o * m, float(2 ** i)) for i, o in enumerate(offsets)]
    kept, late, newest = [], [], None
    for e in events:
        if newest is not None and e[1] < newest - 5 * m:
            late.append(e)
        else:
            kept.append(e)
            newest = e[1] if newest is None else max(newest, e[1])
    assert len(late) == 3 and len(kept) == 5  # the scenario has both kinds
    env.broker.produce("late", [(u, {"user_id": u, "amount": a, "merchant": "m", "ts": iso(ts)}) for (u, ts, a) in events])
    deadline = time.time() + 30
    while env.metric("larder_stream_events_total", view="tx_late", outcome="late") < len(late):
        assert time.time() < deadline, env.server_log()
        time.sleep(0.1)
    got = env.online(["tx_late:count_amount_1d", "tx_late:sum_amount_1d"], [51])
    assert got["count_amount_1d"] == [len(kept)], got
    assert got["sum_amount_1d"] == [sum(a for *_, a in kept)], got
    assert env.metric("larder_stream_events_total", view="tx_late", outcome="late") == len(late)
    quarantine = pq.read_table(env.repo / "data" / "dead_letter" / "tx_late").to_pandas()
    assert sorted(quarantine["offset"]) == [i for i, e in enumerate(events) if e in late]
    assert all(r.startswith("late: ") for r in quarantine["reason"]), list(quarantine["reason"])
    deadline = time.time() + 30
    while True:
        offline = pq.read_table(env.repo / "data" / "late").to_pandas()
        if len(offline) >= len(kept):
            break
        assert time.time() < deadline, "the offline copy did not catch up"
        time.sleep(0.2)
    assert sorted(offline["amount"]) == sorted(a for *_, a in kept)


def test_push_feeds_a_stream_view_online_offline_or_both(env):
    from larder import PushMode

    store = FeatureStore(url=env.server.url)
    t = pd.Timestamp.now(tz="UTC").floor("s")

    def push(user, amount, to):
        store.push("tx_push", pd.DataFrame({"user_id": [user], "amount": [amount], "event_timestamp": [t]}), to=to)

    push(21, 1.5, PushMode.ONLINE)
    push(22, 2.5, PushMode.OFFLINE)
    push(23, 3.5, PushMode.ONLINE_AND_OFFLINE)
    assert env.online(["tx_pushed:amount"], [21, 22, 23])["amount"] == [1.5, None, 3.5]
    entity_df = pd.DataFrame({"user_id": [21, 22, 23], "event_timestamp": [t + pd.Timedelta(seconds=1)] * 3})
    got = store.get_historical_features(entity_df=entity_df, features=["tx_pushed:amount"]).to_df()
    assert [None if pd.isna(x) else x for x in got.sort_values("user_id")["amount"]] == [None, 2.5, 3.5]


def test_dead_letters_can_go_to_a_kafka_topic(env):
    from confluent_kafka import Consumer

    env.broker.create_topic("tx_dlq", 1)
    env.set_group("g3", "  dead_letter: {type: kafka, topic: tx_dlq}\n")
    env.restart()
    t = time.time_ns()
    env.broker.produce("tx", [(31, {"user_id": 31, "amount": "NaN-ish", "ts": iso(t)})])
    env.produce([(31, t, 4.0)])
    env.wait_counts([31])
    c = Consumer({"bootstrap.servers": env.broker.servers, "group.id": "dlq-reader", "auto.offset.reset": "earliest"})
    c.subscribe(["tx_dlq"])
    # The new group replays the topic from the start, so the earlier tests' bad events are
    # dead-lettered again too: look for this one.
    deadline = time.time() + 30
    got = []
    while not got and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None and b"NaN-ish" in m.value():
            got.append(m)
    c.close()
    assert got, "no dead letter on the topic"
    headers = dict(got[0].headers())
    assert b"amount" in headers["larder-reason"] and headers["larder-view"] in (b"tx_aggs", b"tx_last")
    assert b"NaN-ish" in got[0].value()


def test_an_unreadable_registry_does_not_stop_the_stream_workers(env):
    """The supervisor used to read a failed registry load as "no stream views" and stop every
    worker; now it keeps them until it can read the registry again."""
    registry = env.repo / "data" / "registry.json"
    good = registry.read_bytes()

    def gauge():
        text = requests.get(env.server.url + "/metrics", timeout=10).text
        return next(float(l.split()[1]) for l in text.splitlines() if l.startswith("larder_stream_workers "))

    workers = gauge()
    assert workers > 0
    try:
        registry.write_text("{not a registry")
        time.sleep(3.0)  # several supervisor polls (every registry refresh, 1 s here)
        assert gauge() == workers, env.server_log()
        assert "keeping the running workers" in env.server_log()
    finally:
        registry.write_bytes(good)
    t = time.time_ns()
    env.produce([(4, t, 77.25)])
    deadline = time.time() + 20
    while env.online(["tx_last:amount"], [4])["amount"] != [77.25]:
        assert time.time() < deadline, env.server_log()
        time.sleep(0.05)
    assert gauge() == workers


def test_the_dashboard_and_alert_rules_use_only_exported_metrics(env):
    """deploy/grafana/larder-dashboard.json and deploy/prometheus/larder-alerts.yml name only
    metrics this server exports (after the traffic that creates each: reads, a rejected
    request, a push, a materialization, stream events)."""
    import json
    import re

    import yaml

    root = Path(__file__).resolve().parents[2] / "deploy"
    dashboard = json.loads((root / "grafana" / "larder-dashboard.json").read_text())
    rules = yaml.safe_load((root / "prometheus" / "larder-alerts.yml").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert all(r.get("alert") and r.get("annotations", {}).get("summary") for g in rules["groups"] for r in g["rules"])
    used = {m for e in exprs for m in re.findall(r"\blarder_[a-z_]+", e)}
    assert len(used) >= 10, used

    store = FeatureStore(url=env.server.url)
    env.online(["tx_last:amount"], [1])
    assert env.server.post("/get-online-features", data="{not json").status_code == 422
    t = pd.Timestamp.now(tz="UTC").floor("s")
    store.push("tx_push", pd.DataFrame({"user_id": [41], "amount": [1.0], "event_timestamp": [t]}))
    store.materialize(t - pd.Timedelta(days=1), t + pd.Timedelta(seconds=1), feature_views=["tx_pushed"])
    text = requests.get(env.server.url + "/metrics", timeout=10).text
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("larder_")}
    exported |= {n[: -len("_bucket")] for n in exported if n.endswith("_bucket")}
    missing = sorted(m for m in used if m not in exported)
    assert not missing, (missing, sorted(exported))
