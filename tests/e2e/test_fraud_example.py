"""The fraud example (`examples/fraud/`), as a user runs it: its generator produces card
transactions to a real Kafka-protocol broker, `larder serve` consumes them, and the scoring
features (windowed aggregations, the last transaction, amount deviation and geo velocity) equal
a computation by hand from the transactions the generator wrote out, online and offline."""

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import ROOT, Larder, Server
from kafka_broker import Broker

EXAMPLE = ROOT / "examples" / "fraud"
DAY, HOUR, SLIDE_1H = 86400, 3600, 300


def window(events, t, width, slide):
    """Amounts of `events` in the window at time `t` (seconds): slide-aligned, as documented."""
    lo = (t // slide) * slide - width + slide
    return [e["amount"] for e in events if lo <= e["unix_ts"] <= t]


def haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin(math.radians(lat2 - lat1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(a))


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fraud")
    broker = Broker(tmp / "tansu.log")
    repo = tmp / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    events_file = tmp / "events.jsonl"
    subprocess.run([sys.executable, str(repo / "generate.py"), "--servers", broker.servers, "--events", "40000",
                    "--cards", "8", "--days", "30", "--out", str(events_file), "--repo", str(repo)],
                   check=True, capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    larder = Larder(repo)
    larder.env["FRAUD_KAFKA"] = broker.servers
    larder.run("apply")
    server = Server(larder)
    yield {"server": server, "events": events, "repo": repo}
    server.stop()
    broker.stop()


def ingested(server, view):
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("larder_stream_events_total{") and f'view="{view}"' in l and 'outcome="ingested"' in l)


def wait_ingested(fraud, timeout=120):
    deadline = time.time() + timeout
    for view in ("card_windows", "last_transaction"):
        while ingested(fraud["server"], view) < len(fraud["events"]):
            assert time.time() < deadline, (view, ingested(fraud["server"], view), fraud["server"].output()[-3000:])
            time.sleep(0.2)


def test_scoring_features_online_equal_a_computation_by_hand(fraud):
    wait_ingested(fraud)
    events = fraud["events"]
    cards = sorted({e["card_id"] for e in events})
    # The transactions being scored: somewhere else for odd cards (a long jump), at home for even.
    now = time.time()
    scored = {c: {"tx_amount": 10.0 * c + 0.5, "tx_lat": 40.0 + c, "tx_lon": (-70.0 if c % 2 else 2.0) + c,
                  "tx_unix_ts": now} for c in cards}
    body = {"feature_service": "fraud_scoring",
            "entities": {"card_id": cards, **{k: [scored[c][k] for c in cards] for k in scored[cards[0]]}}}
    for _attempt in range(3):
        before = int(time.time())
        r = fraud["server"].online(body)
        after = int(time.time())
        if before // SLIDE_1H == after // SLIDE_1H and before // DAY == after // DAY:
            break
    assert r.status_code == 200, r.text
    out = r.json()
    got = {n: res["values"] for n, res in zip(out["metadata"]["feature_names"], out["results"])}
    assert set(got) >= {"mean_amount_30d", "count_amount_1h", "sum_amount_1h", "merchant_id", "amount_minus_mean_30d",
                        "amount_over_mean_30d", "km_from_last", "kmh_since_last"}, list(got)
    for i, c in enumerate(cards):
        mine = [e for e in events if e["card_id"] == c]
        month = window(mine, before, 30 * DAY, DAY)
        hour = window(mine, before, HOUR, SLIDE_1H)
        mean = sum(month) / len(month)
        last = max(mine, key=lambda e: e["unix_ts"])
        s = scored[c]
        km = haversine(last["lat"], last["lon"], s["tx_lat"], s["tx_lon"])
        want = {
            "mean_amount_30d": mean, "count_amount_1h": len(hour), "sum_amount_1h": sum(hour) if hour else None,
            "merchant_id": last["merchant_id"], "amount_minus_mean_30d": s["tx_amount"] - mean,
            "amount_over_mean_30d": s["tx_amount"] / mean, "km_from_last": km,
            "kmh_since_last": km / ((s["tx_unix_ts"] - last["unix_ts"]) / 3600.0),
        }
        for name, value in want.items():
            assert close(got[name][i], value), (c, name, got[name][i], value)
    # The scenario is one where the features matter: some card has recent activity, and a
    # jump abroad shows as an impossible speed.
    assert any(n > 0 for n in got["count_amount_1h"])
    assert max(got["kmh_since_last"]) > 1000


def test_training_rows_get_the_same_features_as_of_their_time(fraud):
    from larder import FeatureStore

    wait_ingested(fraud)
    events = fraud["events"]
    offline_dir = fraud["repo"] / "data" / "transactions"
    deadline = time.time() + 60
    while len(pd.read_parquet(offline_dir)) < len(events):
        assert time.time() < deadline, "the offline copy did not catch up"
        time.sleep(0.3)
    t0 = events[len(events) // 2]["unix_ts"]
    rows = [(c, int(t0) + k * 7 * HOUR) for c in (1, 2, 5) for k in range(3)]
    entity_df = pd.DataFrame({
        "card_id": [c for c, _ in rows],
        "event_timestamp": pd.to_datetime([t for _, t in rows], unit="s", utc=True),
        "tx_amount": [99.0] * len(rows), "tx_lat": [0.0] * len(rows), "tx_lon": [0.0] * len(rows),
        "tx_unix_ts": [float(t) for _, t in rows],
    })
    store = FeatureStore(url=fraud["server"].url)
    df = store.get_historical_features(
        entity_df=entity_df, features=["card_windows:mean_amount_30d", "amount_deviation:amount_minus_mean_30d"],
    ).to_df()
    assert len(df) == len(rows)
    for (c, t), (_, row) in zip(rows, df.iterrows()):
        month = window([e for e in events if e["card_id"] == c], t, 30 * DAY, DAY)
        mean = sum(month) / len(month)
        assert close(row["mean_amount_30d"], mean), (c, t, row["mean_amount_30d"], mean)
        assert close(row["amount_minus_mean_30d"], 99.0 - mean), (c, t)
