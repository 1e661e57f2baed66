"""Example feature repo in the style of Feast's driver quickstart.

It is Feast's API: replace ``larder`` with ``feast`` in the imports and Feast reads it too.
The data in data/ come from generate_data.py (deterministic).
"""

from datetime import timedelta

import pandas as pd

from larder import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
)
from larder.on_demand_feature_view import on_demand_feature_view
from larder.types import Array, Float32, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], description="A driver of the fleet")
# No value_type: inferred from the view schema (String), as Feast does.
customer = Entity(name="customer", join_keys=["customer_id"])

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

customer_profile_source = FileSource(
    name="customer_profile_source",
    path="data/customer_profile.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    # 0 means values never expire online; the demo data are historical.
    ttl=timedelta(0),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32, description="Conversion rate"),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    source=driver_stats_source,
    tags={"team": "driver_performance"},
    owner="ml-platform@example.com",
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    # Online reads older than two days are reported OUTSIDE_MAX_AGE.
    ttl=timedelta(days=2),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="current_balance", dtype=Float32),
        Field(name="lifetime_trip_count", dtype=Int64),
        Field(name="tier", dtype=String),
        Field(name="recent_ratings", dtype=Array(Float64)),
    ],
    source=customer_profile_source,
    tags={"team": "customer"},
)

driver_stats_push_source = PushSource(name="driver_stats_push", batch_source=driver_stats_source)

driver_hourly_stats_fresh = FeatureView(
    name="driver_hourly_stats_fresh",
    entities=[driver],
    ttl=timedelta(0),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    source=driver_stats_push_source,
)

input_request = RequestSource(name="vals_to_add", schema=[Field(name="val_to_add", dtype=Int64)])


@on_demand_feature_view(
    sources=[driver_hourly_stats, input_request],
    schema=[Field(name="conv_rate_plus_val", dtype=Float64)],
    mode="pandas",
)
def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["conv_rate_plus_val"] = inputs["conv_rate"] + inputs["val_to_add"]
    return df


driver_activity_v1 = FeatureService(name="driver_activity_v1", features=[driver_hourly_stats, customer_profile])

driver_activity_v2 = FeatureService(
    name="driver_activity_v2",
    features=[driver_hourly_stats[["conv_rate", "avg_daily_trips"]], customer_profile],
)
