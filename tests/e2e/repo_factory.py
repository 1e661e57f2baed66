"""Builds a feature repo in a temp dir: config, definitions and Parquet data with the cases
the tests need (created-timestamp ties, nulls, string and int keys, stale rows for ttl)."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG = """\
project: e2e_project
registry: data/registry.json
provider: local
online_store:
  type: rocksdb
  path: data/online
offline_store:
  type: file
entity_key_serialization_version: 3
"""

DEFINITIONS = """\
from datetime import timedelta

from larder import Entity, FeatureService, FeatureView, Field, FileSource
from larder.types import Array, Float32, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
customer = Entity(name="customer", join_keys=["customer_id"])

driver_source = FileSource(
    name="driver_source", path="data/drivers.parquet",
    timestamp_field="event_timestamp", created_timestamp_column="created",
)
customer_source = FileSource(
    name="customer_source", path="data/customers.parquet", timestamp_field="ts",
)

driver_stats = FeatureView(
    name="driver_stats", entities=[driver], ttl=timedelta(days=TTL_DAYS),
    schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
            Field(name="acc_rate", dtype=Float64), Field(name="trips", dtype=Int64)],
    source=driver_source,
)

customer_profile = FeatureView(
    name="customer_profile", entities=[customer], ttl=timedelta(hours=1),
    schema=[Field(name="customer_id", dtype=String), Field(name="balance", dtype=Float64),
            Field(name="tier", dtype=String), Field(name="scores", dtype=Array(Int64))],
    source=customer_source,
)

driver_trips = FeatureView(
    name="driver_trips", entities=[driver], ttl=timedelta(days=TTL_DAYS),
    schema=[Field(name="trips", dtype=Int64)], source=driver_source,
)

svc = FeatureService(name="svc", features=[driver_stats[["conv_rate"]], customer_profile])
"""


def make_repo(root: Path, now: datetime, ttl_days: int = 30, seed: int = 1, online_store: str | None = None) -> dict:
    """Writes the repo (`online_store`: a YAML block replacing the RocksDB one); returns the raw
    data frames."""
    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = CONFIG
    if online_store is not None:
        config = config.replace("online_store:\n  type: rocksdb\n  path: data/online\n", online_store)
    (root / "feature_store.yaml").write_text(config)
    (root / "definitions.py").write_text(DEFINITIONS.replace("TTL_DAYS", str(ttl_days)))

    base = (now - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    rows = []
    for d in range(1, 21):
        for h in range(48):
            ts = base + timedelta(hours=h)
            rows.append((d, ts, ts + timedelta(minutes=5), float(rng.random()), float(rng.random()), int(rng.integers(0, 100))))
    # Created-timestamp ties: same (driver, event ts); the later created row must win.
    last = base + timedelta(hours=47)
    rows.append((1, last, last + timedelta(minutes=30), 0.125, 0.5, 777))
    rows.append((2, last, last + timedelta(minutes=1), 0.875, 0.5, 888))  # loses to the +5 min row
    # A null feature on the newest row of driver 3.
    rows = [r for r in rows if not (r[0] == 3 and r[1] == last)]
    rows.append((3, last, last + timedelta(minutes=5), None, 0.25, 5))
    # Driver 20's data is old: outside the window later materialized by the test, except one row.
    drivers = pd.DataFrame(rows, columns=["driver_id", "event_timestamp", "created", "conv_rate", "acc_rate", "trips"])
    drivers["conv_rate"] = drivers["conv_rate"].astype("float32")
    drivers["event_timestamp"] = pd.to_datetime(drivers["event_timestamp"], utc=True)
    drivers["created"] = pd.to_datetime(drivers["created"], utc=True)
    drivers = drivers.sample(frac=1.0, random_state=3).reset_index(drop=True)
    drivers.to_parquet(root / "data/drivers.parquet", index=False)

    crow = []
    for i, c in enumerate(["A", "B", "C"]):
        # A: fresh (inside the 1 h ttl); B and C: last row 5 h old (outside the ttl).
        newest = now - timedelta(minutes=10) if c == "A" else now - timedelta(hours=5)
        for k in range(3):
            crow.append((c, newest - timedelta(hours=k), 100.0 * i + k, f"tier-{c}-{k}", [i, k, i + k]))
    customers = pd.DataFrame(crow, columns=["customer_id", "ts", "balance", "tier", "scores"])
    customers["ts"] = pd.to_datetime(customers["ts"], utc=True).astype("datetime64[ns, UTC]")
    customers.to_parquet(root / "data/customers.parquet", index=False)
    return {"drivers": drivers, "customers": customers}


def expected_latest(df: pd.DataFrame, key: str, ts: str, start, end, created=None) -> pd.DataFrame:
    """Independent newest-row selection in pandas: rows with start <= ts <= end, the newest
    event time per key, ties broken by the newest created time."""
    w = df[(df[ts] >= start) & (df[ts] <= end)]
    order = [ts] + ([created] if created else [])
    w = w.sort_values(order, kind="mergesort")
    return w.groupby(key, sort=False).tail(1).set_index(key)
