//! The floor of the online-serving benchmark (`benches/online_serving.py`): a bare axum server
//! on the same runtime and HTTP stack as `larder serve`, which parses the same
//! `/get-online-features` JSON into the same request type and answers a canned Feast-shaped body
//! of the size Larder's answer has (the request's entities x features, float values, `PRESENT`,
//! one timestamp), with no store, registry, middleware or metrics. Larder's req/s as a fraction
//! of this server's is the share of per-request CPU that is HTTP's and JSON's, not Larder's.
//!
//!     cargo run --release -p larder-bench-floor -- PORT

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use larder_protocol::requests::GetOnlineFeaturesRequest;

/// Canned bodies by (entities, features).
type Bodies = Arc<Mutex<HashMap<(usize, usize), Bytes>>>;

fn canned(entities: usize, features: &[String]) -> Bytes {
    let mut names = vec!["\"driver_id\"".to_string()];
    names.extend(
        features
            .iter()
            .map(|f| format!("\"{}\"", f.rsplit(':').next().unwrap_or(f))),
    );
    let column = |value: &str, ts: &str| {
        format!(
            "{{\"values\":[{}],\"statuses\":[{}],\"event_timestamps\":[{}]}}",
            vec![value; entities].join(","),
            vec!["\"PRESENT\""; entities].join(","),
            vec![ts; entities].join(",")
        )
    };
    let mut results = vec![column("1001", "\"1970-01-01T00:00:00Z\"")];
    results.extend(
        features
            .iter()
            .map(|_| column("0.5303305983543396", "\"2024-01-14T23:00:00Z\"")),
    );
    Bytes::from(format!(
        "{{\"metadata\":{{\"feature_names\":[{}]}},\"results\":[{}]}}",
        names.join(","),
        results.join(",")
    ))
}

async fn online(State(bodies): State<Bodies>, body: Bytes) -> Response {
    let req: GetOnlineFeaturesRequest = match larder_protocol::json::parse_json(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    };
    let entities = req.entities.values().next().map_or(0, Vec::len);
    let key = (entities, req.features.len());
    let body = {
        let mut cache = bodies.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| canned(entities, &req.features))
            .clone()
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(6570);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = Router::new()
            .route("/get-online-features", post(online))
            .route("/health", get(|| async { "ok" }))
            .with_state(Bodies::default());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        // As `larder serve` does.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.expect("serve");
    });
}
