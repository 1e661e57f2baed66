//! Fuzzing the whole HTTP stack in-process (proptest): arbitrary bytes and random JSON documents
//! built from the API's own field names, sent to every endpoint that parses a body, against a
//! real store (RocksDB, Parquet, the example repo's registry). Property: the server answers
//! every one, never with a 500 and never by panicking. The coverage-guided fuzz target of the
//! parsers themselves is `fuzz/fuzz_targets/request_parsers.rs` (`scripts/fuzz.sh`).
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test -p larder-server --test fuzz_requests --release`.

// Fixtures and checks of files, outside the runtime.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use larder_registry::RegistryDoc;
use larder_server::api::{router, ApiConfig};
use larder_server::config::RepoConfig;
use larder_server::FeatureStore;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../feature_repo/data");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        for f in ["driver_stats.parquet", "customer_profile.parquet"] {
            std::fs::copy(root.join(f), dir.path().join("data").join(f)).unwrap();
        }
        let yaml =
            "project: driver_demo\nregistry: data/registry.json\nonline_store:\n  type: rocksdb\n  path: data/online\n";
        let config = RepoConfig::parse(yaml, dir.path(), &dir.path().join("feature_store.yaml")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = FeatureStore::from_config(config).unwrap();
        let doc: RegistryDoc =
            serde_json::from_str(include_str!("fixtures/driver_demo_registry.json")).expect("registry fixture");
        rt.block_on(store.apply(doc, "fuzz")).unwrap();
        let app = router(Arc::new(store), &ApiConfig::default());
        Fixture { rt, app, _dir: dir }
    })
}

const PATHS: &[&str] = &[
    "/get-online-features",
    "/push",
    "/write-to-online-store",
    "/materialize",
    "/materialize-incremental",
    "/plan",
    "/get-historical-features",
];

fn send(path: &str, body: Vec<u8>) -> StatusCode {
    let f = fixture();
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    f.rt.block_on(f.app.clone().oneshot(req)).unwrap().status()
}

/// JSON leaves that mean something to the API.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        prop_oneof![
            Just("driver_hourly_stats:conv_rate"),
            Just("driver_hourly_stats:nope"),
            Just("customer_profile:current_balance"),
            Just("driver_activity_v1"),
            Just("driver_stats_push"),
            Just("driver_hourly_stats"),
            Just("2024-01-02T00:00:00"),
            Just("online_and_offline"),
            Just("offline"),
            Just("1001"),
            Just(""),
        ]
        .prop_map(|s| json!(s)),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("features"),
        Just("feature_service"),
        Just("entities"),
        Just("full_feature_names"),
        Just("driver_id"),
        Just("customer_id"),
        Just("event_timestamp"),
        Just("conv_rate"),
        Just("push_source_name"),
        Just("df"),
        Just("to"),
        Just("feature_view_name"),
        Just("start_ts"),
        Just("end_ts"),
        Just("feature_views"),
        Just("definitions"),
        Just("partial"),
        Just("delete"),
    ]
    .prop_map(str::to_string);
    leaf().prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn ok(status: StatusCode) -> bool {
    status != StatusCode::INTERNAL_SERVER_ERROR
}

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn arbitrary_bytes_never_give_a_500(path in proptest::sample::select(PATHS), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let status = send(path, body);
        prop_assert!(ok(status), "{path}: {status}");
    }

}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn structured_json_never_gives_a_500(path in proptest::sample::select(PATHS), doc in document()) {
        let status = send(path, serde_json::to_vec(&doc).unwrap());
        prop_assert!(ok(status), "{path} {doc}: {status}");
    }

}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn well_formed_online_requests_with_bad_values_are_4xx(
        ids in proptest::collection::vec(leaf(), 1..5),
        features in proptest::collection::vec(leaf(), 0..4),
        full in any::<bool>(),
    ) {
        let body = json!({"features": features, "entities": {"driver_id": ids}, "full_feature_names": full});
        let status = send("/get-online-features", serde_json::to_vec(&body).unwrap());
        prop_assert!(status == StatusCode::OK || status.is_client_error(), "{body}: {status}");
    }
}

#[test]
fn a_valid_request_is_answered() {
    let body = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}});
    assert_eq!(
        send("/get-online-features", serde_json::to_vec(&body).unwrap()),
        StatusCode::OK
    );
}
