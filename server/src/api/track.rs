//! Request ids, the request span and the HTTP metrics, at a cost per request of a few atomic
//! operations: metric handles are resolved once per (route, method, status), ids are written
//! without formatting, and the request span exists only when debug logging is on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use tracing::Instrument;

use super::REQUEST_ID;

/// The HTTP metrics' handles, by route.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<String, Arc<RouteMetrics>>>,
}

/// One route's handles.
#[derive(Debug)]
struct RouteMetrics {
    route: String,
    invalid: Counter,
    by_status: RwLock<HashMap<(Method, u16), (Counter, Histogram)>>,
}

impl HttpMetrics {
    fn route(&self, route: &str) -> Arc<RouteMetrics> {
        if let Some(m) = self.routes.read().ok().and_then(|r| r.get(route).cloned()) {
            return m;
        }
        let m = Arc::new(RouteMetrics {
            route: route.to_string(),
            invalid: metrics::counter!("larder_rejected_requests_total", "route" => route.to_string(), "reason" => "invalid"),
            by_status: RwLock::default(),
        });
        if let Ok(mut routes) = self.routes.write() {
            // Routes are the router's (and `unmatched`): a fixed, small set.
            routes.entry(route.to_string()).or_insert_with(|| Arc::clone(&m));
        }
        m
    }
}

impl RouteMetrics {
    fn record(&self, method: &Method, status: StatusCode, seconds: f64) {
        let key = (method.clone(), status.as_u16());
        let cached = self.by_status.read().ok().and_then(|m| m.get(&key).cloned());
        let (count, duration) = match cached {
            Some(h) => h,
            None => {
                let status = status.as_u16().to_string();
                let h = (
                    metrics::counter!("larder_http_requests_total", "route" => self.route.clone(), "method" => method.to_string(), "status" => status.clone()),
                    metrics::histogram!("larder_http_request_duration_seconds", "route" => self.route.clone(), "status" => status),
                );
                if let Ok(mut m) = self.by_status.write() {
                    m.insert(key, h.clone());
                }
                h
            }
        };
        count.increment(1);
        duration.record(seconds);
    }
}

/// A new request id: this process's id in hex, a dash and a counter.
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| format!("{:x}-", std::process::id()));
    let mut buf = [0u8; 48];
    let mut counter = itoa::Buffer::new();
    let n = counter.format(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let len = prefix.len() + n.len();
    buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
    buf[prefix.len()..len].copy_from_slice(n.as_bytes());
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("0"))
}

/// Gives every request an id (the client's `x-request-id`, else a new one), runs it in a
/// tracing span carrying that id (at debug level), echoes the id in the response, and counts
/// and times the request by route and status (see [`crate::metrics`]).
pub async fn track(State(http): State<Arc<HttpMetrics>>, mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(REQUEST_ID) {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.to_str().is_ok() => v.clone(),
        _ => {
            let id = new_request_id();
            req.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let route = http.route(
        req.extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str),
    );
    let method = req.method().clone();
    let span = tracing::debug_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %method,
        route = %route.route
    );
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status();
    if status.is_server_error() {
        tracing::warn!(
            request_id = id.to_str().unwrap_or_default(),
            method = %method,
            route = %route.route,
            status = %status.as_u16(),
            seconds = secs,
            "Request failed."
        );
    } else {
        span.in_scope(|| tracing::debug!(status = %status.as_u16(), seconds = secs, "Request done."));
    }
    resp.headers_mut().insert(REQUEST_ID, id);
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        route.invalid.increment(1);
    }
    route.record(&method, status, secs);
    resp
}
