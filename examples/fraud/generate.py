#!/usr/bin/env python3
"""Card transactions for the fraud example, produced to Kafka as JSON.

    python generate.py --servers localhost:9092 --events 100000            # a history, as fast as possible
    python generate.py --servers localhost:9092 --rate 5000 --seconds 60   # live traffic at 5,000/s

A history spreads `--events` transactions evenly over the last `--days` days, in time order (so
none is late for the source's watermark); live traffic stamps each with the time it is sent.
Each card spends most of its time near its home city and now and then pays somewhere else (a
jump the geo-velocity feature shows). `--out FILE` also writes every produced transaction as
JSON lines, so that a test can recompute the features by hand. Creates the topic (and the
offline copy's directory with its schema) when missing. Needs `confluent-kafka` and `pyarrow`.
"""

import argparse
import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

CITIES = [(48.8566, 2.3522), (51.5074, -0.1278), (40.7128, -74.0060), (35.6762, 139.6503), (-33.8688, 151.2093),
          (52.5200, 13.4050), (41.9028, 12.4964), (19.4326, -99.1332), (1.3521, 103.8198), (55.7558, 37.6173)]


def iso(unix_ts: float) -> str:
    return datetime.fromtimestamp(unix_ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def transaction(rng: random.Random, cards: int, unix_ts: float) -> dict:
    card = rng.randrange(1, cards + 1)
    home = CITIES[card % len(CITIES)]
    city = home if rng.random() > 0.05 else rng.choice(CITIES)
    return {
        "card_id": card,
        "amount": round(rng.lognormvariate(3.5, 1.0), 2),
        "merchant_id": rng.randrange(1, 500),
        "lat": round(city[0] + rng.uniform(-0.2, 0.2), 5),
        "lon": round(city[1] + rng.uniform(-0.2, 0.2), 5),
        "unix_ts": unix_ts,
        "ts": iso(unix_ts),
    }


def ensure_offline_dir(repo: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = repo / "data" / "transactions"
    if d.exists():
        return
    d.mkdir(parents=True)
    schema = pa.schema([("card_id", pa.int64()), ("amount", pa.float64()), ("merchant_id", pa.int64()),
                        ("lat", pa.float64()), ("lon", pa.float64()), ("unix_ts", pa.float64()),
                        ("event_timestamp", pa.timestamp("us", tz="UTC"))])
    pq.write_table(schema.empty_table(), d / "seed.parquet")


def ensure_topic(servers: str, topic: str, partitions: int):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers})
    if topic in admin.list_topics(timeout=10).topics:
        return
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        f.result(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default="localhost:9092")
    ap.add_argument("--topic", default="transactions")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--cards", type=int, default=1000)
    ap.add_argument("--events", type=int, default=100_000, help="a history of this many transactions")
    ap.add_argument("--days", type=float, default=30.0, help="the history's span")
    ap.add_argument("--rate", type=float, default=0.0, help="live traffic: transactions per second")
    ap.add_argument("--seconds", type=float, default=60.0, help="live traffic: for how long")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="also write the transactions here (JSON lines)")
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()

    from confluent_kafka import Producer

    ensure_offline_dir(args.repo)
    ensure_topic(args.servers, args.topic, args.partitions)
    rng = random.Random(args.seed)
    producer = Producer({"bootstrap.servers": args.servers, "linger.ms": 5, "compression.type": "lz4"})
    out = open(args.out, "w") if args.out else None

    def send(tx):
        payload = json.dumps(tx)
        while True:
            try:
                producer.produce(args.topic, key=str(tx["card_id"]), value=payload)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if out:
            out.write(payload + "\n")

    sent = 0
    if args.rate > 0:
        start = time.time()
        while time.time() - start < args.seconds:
            due = int((time.time() - start) * args.rate)
            while sent < due:
                send(transaction(rng, args.cards, time.time()))
                sent += 1
            time.sleep(0.001)
    else:
        now = time.time()
        first = now - args.days * 86400
        step = (now - first) / max(args.events, 1)
        for i in range(args.events):
            send(transaction(rng, args.cards, round(first + i * step, 6)))
        sent = args.events
    producer.flush(30)
    if out:
        out.close()
    print(f"Produced {sent} transactions to {args.topic} on {args.servers}.")


if __name__ == "__main__":
    main()
