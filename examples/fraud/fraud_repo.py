"""Fraud scoring features (Larder's second example repo).

Transactions arrive on the Kafka topic ``transactions`` as JSON:

    {"card_id": 17, "amount": 42.5, "merchant_id": 3, "lat": 48.85, "lon": 2.35,
     "unix_ts": 1767225600.0, "ts": "2026-01-01T00:00:00Z"}

Per card, Larder keeps online (and appends to ``data/transactions/`` offline):

- ``card_windows``: the 30-day mean amount, and the count and sum of the last hour;
- ``last_transaction``: where and when the card was last used.

At scoring time the request carries the transaction being scored, and two on-demand views
compare it with the card's history (SQL, evaluated in the server):

- ``amount_deviation``: the amount minus, and over, the 30-day mean;
- ``geo_velocity``: the great-circle distance (haversine, km) from the last transaction and the
  speed it implies (km/h).

``FRAUD_KAFKA`` names the brokers (default ``localhost:9092``).
"""

import os
from datetime import timedelta

from larder import (
    Aggregation,
    Entity,
    FeatureService,
    Field,
    FileSource,
    JsonFormat,
    KafkaSource,
    OnDemandFeatureView,
    RequestSource,
    StreamFeatureView,
)
from larder.types import Float64, Int64

card = Entity(name="card", join_keys=["card_id"], description="A payment card")

transactions_offline = FileSource(
    name="transactions_offline", path="data/transactions", timestamp_field="event_timestamp",
)
transactions = KafkaSource(
    name="transactions",
    bootstrap_servers=os.environ.get("FRAUD_KAFKA", "localhost:9092"),
    topic="transactions",
    timestamp_field="ts",
    batch_source=transactions_offline,
    message_format=JsonFormat(
        schema_json="card_id bigint, amount double, merchant_id bigint, lat double, lon double, unix_ts double, "
        "ts timestamp"
    ),
    # A transaction more than 10 minutes behind the newest one of its partition is refused as late.
    watermark_delay_threshold=timedelta(minutes=10),
)

card_windows = StreamFeatureView(
    name="card_windows",
    entities=[card],
    source=transactions,
    schema=[Field(name="card_id", dtype=Int64)],
    aggregations=[
        Aggregation(column="amount", function="mean", time_window=timedelta(days=30), slide_interval=timedelta(days=1)),
        Aggregation(column="amount", function="count", time_window=timedelta(hours=1),
                    slide_interval=timedelta(minutes=5)),
        Aggregation(column="amount", function="sum", time_window=timedelta(hours=1),
                    slide_interval=timedelta(minutes=5)),
    ],
    tags={"team": "fraud"},
)  # features: mean_amount_30d, count_amount_1h, sum_amount_1h

last_transaction = StreamFeatureView(
    name="last_transaction",
    entities=[card],
    source=transactions,
    ttl=timedelta(days=30),
    schema=[
        Field(name="card_id", dtype=Int64),
        Field(name="lat", dtype=Float64),
        Field(name="lon", dtype=Float64),
        Field(name="unix_ts", dtype=Float64),
        Field(name="merchant_id", dtype=Int64),
    ],
    tags={"team": "fraud"},
)

scored = RequestSource(
    name="scored_transaction",
    schema=[
        Field(name="tx_amount", dtype=Float64),
        Field(name="tx_lat", dtype=Float64),
        Field(name="tx_lon", dtype=Float64),
        Field(name="tx_unix_ts", dtype=Float64),
    ],
)

amount_deviation = OnDemandFeatureView(
    name="amount_deviation",
    sources=[card_windows, scored],
    mode="sql",
    schema=[Field(name="amount_minus_mean_30d", dtype=Float64), Field(name="amount_over_mean_30d", dtype=Float64)],
    expressions={
        "amount_minus_mean_30d": "tx_amount - mean_amount_30d",
        "amount_over_mean_30d": "tx_amount / NULLIF(mean_amount_30d, 0)",
    },
)

# Haversine on a sphere of radius 6371 km; the speed is null when no time has passed.
DISTANCE_KM = (
    "2 * 6371 * asin(sqrt(power(sin(radians(tx_lat - lat) / 2), 2)"
    " + cos(radians(lat)) * cos(radians(tx_lat)) * power(sin(radians(tx_lon - lon) / 2), 2)))"
)
geo_velocity = OnDemandFeatureView(
    name="geo_velocity",
    sources=[last_transaction, scored],
    mode="sql",
    schema=[Field(name="km_from_last", dtype=Float64), Field(name="kmh_since_last", dtype=Float64)],
    expressions={
        "km_from_last": DISTANCE_KM,
        "kmh_since_last": f"({DISTANCE_KM}) / NULLIF((tx_unix_ts - unix_ts) / 3600.0, 0)",
    },
)

fraud_scoring = FeatureService(
    name="fraud_scoring",
    features=[card_windows, last_transaction[["merchant_id"]], amount_deviation, geo_velocity],
    description="What the fraud model reads for one transaction",
)
