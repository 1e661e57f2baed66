//! `larder init NAME`: a new feature repo that works at once, as `feast init` writes one:
//! `feature_store.yaml` (the embedded online store, Parquet files offline), definitions in
//! Feast's API importing `larder`, and hourly driver statistics for the 15 days before now
//! (so that `materialize-incremental now` and training sets have recent data).

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use datafusion::arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};

/// The templates `larder init -t` knows.
pub const TEMPLATES: &[&str] = &["local"];

/// The drivers of the template's data.
const DRIVERS: std::ops::RangeInclusive<i64> = 1001..=1005;
/// How far back the template's data go.
const DAYS: i64 = 15;

const CONFIG: &str = "\
# Larder reads Feast's feature_store.yaml keys. Paths are relative to this directory.
project: PROJECT
registry: data/registry.json
provider: local
online_store:
  type: rocksdb
  path: data/online_store
offline_store:
  type: file
entity_key_serialization_version: 3
";

const DEFINITIONS: &str = r#""""Feature definitions of PROJECT, in Feast's API (with `feast` in the imports, Feast reads them too).

The data in data/driver_stats.parquet are hourly statistics of five drivers over the 15 days
before `larder init` ran.
"""

from datetime import timedelta

from larder import Entity, FeatureService, FeatureView, Field, FileSource, OnDemandFeatureView, RequestSource
from larder.types import Float32, Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"], description="A driver")

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64, description="Average daily trips"),
    ],
    online=True,
    source=driver_stats_source,
    tags={"team": "driver_performance"},
)

# Values sent with each request, and a feature computed from them and stored features.
input_request = RequestSource(
    name="vals_to_add",
    schema=[Field(name="val_to_add", dtype=Int64), Field(name="val_to_add_2", dtype=Int64)],
)

transformed_conv_rate = OnDemandFeatureView(
    name="transformed_conv_rate",
    sources=[driver_hourly_stats, input_request],
    mode="sql",
    schema=[Field(name="conv_rate_plus_val1", dtype=Float64), Field(name="conv_rate_plus_val2", dtype=Float64)],
    expressions={
        "conv_rate_plus_val1": "CAST(conv_rate AS DOUBLE) + val_to_add",
        "conv_rate_plus_val2": "CAST(conv_rate AS DOUBLE) + val_to_add_2",
    },
)

driver_activity_v1 = FeatureService(
    name="driver_activity_v1",
    features=[driver_hourly_stats[["conv_rate"]], transformed_conv_rate],
)
driver_activity_v2 = FeatureService(name="driver_activity_v2", features=[driver_hourly_stats, transformed_conv_rate])
"#;

/// Writes the repo `name` into the new directory `dir` from `template`, with data ending at
/// `now`; refuses a directory that exists and is not empty.
#[allow(clippy::disallowed_methods, reason = "the CLI, before any server runs")]
pub fn write_repo(dir: &Path, name: &str, template: &str, now: DateTime<Utc>) -> Result<()> {
    if !TEMPLATES.contains(&template) {
        return Err(Error::invalid(
            "template",
            format!("unknown template `{template}`; templates: {}", TEMPLATES.join(", ")),
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
        return Err(Error::invalid(
            "name",
            format!("`{name}` is not a project name (ASCII letters, digits and `_`)"),
        ));
    }
    let io = |what: &Path, e: std::io::Error| Error::Unavailable(format!("{}: {e}", what.display()));
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| io(dir, e))?.next().is_some() {
        return Err(Error::invalid(
            "name",
            format!("the directory {} already exists and is not empty", dir.display()),
        ));
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| io(&data, e))?;
    let write = |file: &Path, text: String| std::fs::write(file, text).map_err(|e| io(file, e));
    write(&dir.join("feature_store.yaml"), CONFIG.replace("PROJECT", name))?;
    write(&dir.join("feature_repo.py"), DEFINITIONS.replace("PROJECT", name))?;
    write(
        &dir.join(".gitignore"),
        "data/online_store/\ndata/registry.json\n".to_string(),
    )?;
    let parquet = data.join("driver_stats.parquet");
    let file = std::fs::File::create(&parquet).map_err(|e| io(&parquet, e))?;
    let batch = driver_stats(now)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| Error::Internal(e.to_string()))?;
    writer.write(&batch).map_err(|e| Error::Internal(e.to_string()))?;
    writer.close().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(())
}

/// Hourly rows of every driver for the [`DAYS`] days up to `now` (floored to the hour), created
/// 5 minutes after their event time; values from a fixed-seed generator, so that two repos
/// made at the same hour hold the same data.
fn driver_stats(now: DateTime<Utc>) -> Result<RecordBatch> {
    let end = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let hours = DAYS * 24;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: enough for demo values.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
    };
    let (mut ids, mut ts, mut created, mut conv, mut acc, mut trips) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for d in DRIVERS {
        for h in 0..=hours {
            let t = (end - TimeDelta::hours(hours - h)).timestamp_micros();
            ids.push(d);
            ts.push(t);
            created.push(t + 5 * 60 * 1_000_000);
            conv.push((next() % 10_000) as f32 / 10_000.0);
            acc.push((next() % 10_000) as f32 / 10_000.0);
            trips.push((next() % 1000) as i64);
        }
    }
    let utc = |v: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) };
    let schema = Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("conv_rate", DataType::Float32, false),
        Field::new("acc_rate", DataType::Float32, false),
        Field::new("avg_daily_trips", DataType::Int64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        utc(ts),
        utc(created),
        Arc::new(Float32Array::from(conv)),
        Arc::new(Float32Array::from(acc)),
        Arc::new(Int64Array::from(trips)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_end_at_the_hour_before_now_and_cover_fifteen_days() {
        let now: DateTime<Utc> = "2026-12-01T10:37:00Z".parse().unwrap();
        let b = driver_stats(now).unwrap();
        let per_driver = (DAYS * 24 + 1) as usize;
        assert_eq!(b.num_rows(), per_driver * DRIVERS.count());
        let ts = b
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let newest = ts.values().iter().max().copied().unwrap();
        let oldest = ts.values().iter().min().copied().unwrap();
        let end: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        assert_eq!(newest, end.timestamp_micros());
        assert_eq!(newest - oldest, DAYS * 86_400 * 1_000_000);
    }

    #[test]
    fn a_non_empty_directory_or_an_unknown_template_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        let e = write_repo(dir.path(), "demo", "local", Utc::now()).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        let fresh = dir.path().join("new");
        let e = write_repo(&fresh, "demo", "spark", Utc::now()).unwrap_err();
        assert!(e.to_string().contains("unknown template"), "{e}");
        let e = write_repo(&fresh, "no-dash", "local", Utc::now()).unwrap_err();
        assert!(e.to_string().contains("project name"), "{e}");
        write_repo(&fresh, "demo", "local", Utc::now()).unwrap();
        assert!(std::fs::read_to_string(fresh.join("feature_store.yaml"))
            .unwrap()
            .contains("project: demo"));
    }
}
