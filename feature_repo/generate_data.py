"""Writes the example repo's Parquet data, deterministically (fixed seed, fixed dates).

    python generate_data.py [--out data] [--seed 7]

driver_stats.parquet: drivers 1001..1010, one row per hour from 2024-01-01T00:00Z to
2024-01-14T23:00Z, created = event time + 5 min, plus one late correction per driver at
2024-01-14T23:00 with created + 30 min (it must win the tie). customer_profile.parquet:
customers C001..C005, one row per day.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def drivers(rng: np.random.Generator) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01T00:00:00Z", "2024-01-14T23:00:00Z", freq="h")
    ids = np.arange(1001, 1011)
    df = pd.DataFrame(
        {
            "driver_id": np.repeat(ids, len(ts)).astype("int64"),
            "event_timestamp": np.tile(ts, len(ids)),
        }
    )
    n = len(df)
    df["created"] = df["event_timestamp"] + pd.Timedelta(minutes=5)
    df["conv_rate"] = rng.random(n).astype("float32")
    df["acc_rate"] = rng.random(n).astype("float32")
    df["avg_daily_trips"] = rng.integers(0, 1000, n).astype("int64")
    last = df[df["event_timestamp"] == ts[-1]].copy()
    last["created"] = last["event_timestamp"] + pd.Timedelta(minutes=30)
    last["conv_rate"] = np.float32(0.5) + (last["driver_id"].to_numpy() - 1000).astype("float32") / np.float32(100)
    df = pd.concat([df, last], ignore_index=True)
    return df.sample(frac=1.0, random_state=int(rng.integers(0, 2**31))).reset_index(drop=True)


def customers(rng: np.random.Generator) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01T00:00:00Z", "2024-01-14T00:00:00Z", freq="D")
    ids = [f"C{i:03d}" for i in range(1, 6)]
    df = pd.DataFrame({"customer_id": np.repeat(ids, len(ts)), "event_timestamp": np.tile(ts, len(ids))})
    n = len(df)
    df["created"] = df["event_timestamp"] + pd.Timedelta(hours=1)
    df["current_balance"] = (rng.random(n) * 1000).astype("float32")
    df["lifetime_trip_count"] = rng.integers(0, 5000, n).astype("int64")
    df["tier"] = rng.choice(["bronze", "silver", "gold"], n)
    df["recent_ratings"] = [list(np.round(rng.random(3) * 5, 2)) for _ in range(n)]
    return df


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    drivers(rng).to_parquet(args.out / "driver_stats.parquet", index=False)
    customers(rng).to_parquet(args.out / "customer_profile.parquet", index=False)
    print(f"wrote {args.out}/driver_stats.parquet and {args.out}/customer_profile.parquet")


if __name__ == "__main__":
    main()
