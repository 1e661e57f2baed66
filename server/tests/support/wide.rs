//! A store shaped like Feast's published serving benchmark: one entity (`driver_id`), five
//! feature views of ten features each (float32, float64 and int64 columns), `DRIVERS` drivers
//! materialized from a Parquet source into RocksDB (or another online store), served by the
//! real router in-process.

// Fixture files, written before the runtime serves anything.
#![allow(clippy::disallowed_methods, dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use datafusion::arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use larder_registry::RegistryDoc;
use larder_server::api::{router, ApiConfig};
use larder_server::config::RepoConfig;
use larder_server::FeatureStore;
use serde_json::json;

/// Drivers in the fixture (ids `1..=DRIVERS`).
pub const DRIVERS: i64 = 1000;
/// Feature views.
pub const VIEWS: usize = 5;
/// Features per view.
pub const FEATURES_PER_VIEW: usize = 10;
/// The event time of every row: 2024-01-01T00:00:00Z, in µs.
pub const EVENT_US: i64 = 1_704_067_200_000_000;

/// The stored value of feature `f` (0..50) for `driver`, as an f64 (float32 features store its
/// f32 rounding, int64 features its truncation).
pub fn value(driver: i64, f: usize) -> f64 {
    (driver as f64) * 0.001 + f as f64
}

/// The type of feature `f`: float32, float64 and int64 in turn.
pub fn dtype(f: usize) -> &'static str {
    ["FLOAT", "DOUBLE", "INT64"][f % 3]
}

/// The reference `view:feature` of feature `f` (0..50).
pub fn feature_ref(f: usize) -> String {
    format!("wide_{}:f{f}", f / FEATURES_PER_VIEW)
}

/// The serving fixture: the store, its router and the runtime that serves it.
pub struct Wide {
    pub rt: tokio::runtime::Runtime,
    pub app: axum::Router,
    pub store: Arc<FeatureStore>,
    _dir: tempfile::TempDir,
}

fn write_source(path: &std::path::Path) {
    let n = DRIVERS as usize;
    let mut fields = vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(1..=DRIVERS)),
        Arc::new(TimestampMicrosecondArray::from(vec![EVENT_US; n]).with_timezone("UTC")),
    ];
    for f in 0..VIEWS * FEATURES_PER_VIEW {
        let name = format!("f{f}");
        let (dt, array): (DataType, ArrayRef) = match dtype(f) {
            "FLOAT" => (
                DataType::Float32,
                Arc::new(Float32Array::from_iter_values(
                    (1..=DRIVERS).map(|d| value(d, f) as f32),
                )),
            ),
            "DOUBLE" => (
                DataType::Float64,
                Arc::new(Float64Array::from_iter_values((1..=DRIVERS).map(|d| value(d, f)))),
            ),
            _ => (
                DataType::Int64,
                Arc::new(Int64Array::from_iter_values((1..=DRIVERS).map(|d| value(d, f) as i64))),
            ),
        };
        fields.push(Field::new(name, dt, true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn registry() -> RegistryDoc {
    let views: Vec<_> = (0..VIEWS)
        .map(|v| {
            let features: Vec<_> = (v * FEATURES_PER_VIEW..(v + 1) * FEATURES_PER_VIEW)
                .map(|f| json!({"name": format!("f{f}"), "dtype": dtype(f)}))
                .collect();
            json!({
                "name": format!("wide_{v}"),
                "entities": ["driver"],
                "features": features,
                "entity_columns": [{"name": "driver_id", "dtype": "INT64"}],
                "source": "wide_source",
                "ttl_seconds": 0,
                "online": true,
            })
        })
        .collect();
    serde_json::from_value(json!({
        "project": "wide",
        "entities": [{"name": "driver", "join_keys": ["driver_id"], "value_type": "INT64"}],
        "data_sources": [{
            "type": "file",
            "name": "wide_source",
            "path": "data/wide.parquet",
            "timestamp_field": "event_timestamp",
        }],
        "feature_views": views,
    }))
    .expect("registry document")
}

impl Wide {
    /// The fixture on the online store `online_yaml` configures (RocksDB when `None`).
    pub fn start(online_yaml: Option<&str>) -> Wide {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        write_source(&dir.path().join("data/wide.parquet"));
        let online = online_yaml.unwrap_or("online_store:\n  type: rocksdb\n  path: data/online\n");
        let yaml = format!("project: wide\nregistry: data/registry.json\n{online}");
        let config = RepoConfig::parse(&yaml, dir.path(), &dir.path().join("feature_store.yaml")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(FeatureStore::from_config(config).unwrap());
        rt.block_on(async {
            store.apply(registry(), "bench").await.unwrap();
            let start = chrono::DateTime::from_timestamp(EVENT_US / 1_000_000 - 3600, 0).unwrap();
            let end = chrono::DateTime::from_timestamp(EVENT_US / 1_000_000 + 3600, 0).unwrap();
            store
                .materialize(start, end, &[], &larder_server::materialize::NoProgress)
                .await
                .unwrap();
        });
        let app = router(Arc::clone(&store), &ApiConfig::default());
        Wide {
            rt,
            app,
            store,
            _dir: dir,
        }
    }

    /// The body of a request for `entities` drivers (from 1) and the first `features` features.
    pub fn body(entities: usize, features: usize) -> Vec<u8> {
        let refs: Vec<String> = (0..features).map(feature_ref).collect();
        let ids: Vec<i64> = (1..=entities as i64).collect();
        serde_json::to_vec(&json!({"features": refs, "entities": {"driver_id": ids}})).unwrap()
    }

    /// Sends `body` to `/get-online-features` through the router; the status and body.
    pub fn send(&self, body: &[u8]) -> (u16, Vec<u8>) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let req = Request::post("/get-online-features")
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .unwrap();
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
        })
    }
}
