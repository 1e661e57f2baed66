//! Reading request bodies before any handler runs, with the failure of each kind answered by
//! its own status:
//!
//! - a declared `Content-Length` above the route's limit: 413 at once, before a byte of the body
//!   is read (so `Expect: 100-continue` gets 413, not `100 Continue`);
//! - a body that grows past the limit while it streams (chunked): 413;
//! - a body whose next bytes do not arrive within the body timeout: 408;
//! - a truncated body or malformed chunked framing: 400.
//!
//! This layer sits outside the concurrency limit, so a slow or stalled body never holds a
//! request slot.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

/// Body limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// JSON routes.
    pub json_bytes: usize,
    /// Routes that take Arrow (entity dataframes).
    pub arrow_bytes: usize,
    /// Longest wait for the next part of a body.
    pub timeout: Duration,
}

impl BodyLimits {
    fn for_route(&self, route: Option<&str>) -> usize {
        match route {
            Some("/get-historical-features") => self.arrow_bytes,
            _ => self.json_bytes,
        }
    }
}

fn refuse(status: StatusCode, kind: &str, msg: String) -> Response {
    let body = serde_json::json!({"detail": [{"type": kind, "loc": ["body"], "msg": msg}]});
    let mut resp = (status, axum::Json(body)).into_response();
    // The rest of the body was not read: the connection cannot carry another request.
    resp.headers_mut()
        .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    resp
}

/// Middleware: buffers the body under the route's limits (see the module doc).
pub async fn read_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let limit = limits.for_route(req.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "content_length_invalid",
                    "the Content-Length header is not a number".into(),
                )
            }
        },
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    if declared == Some(0) {
        return next.run(req).await;
    }
    let (parts, mut body) = req.into_parts();
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    loop {
        // A frame already received is taken without arming the timer (most bodies arrive
        // with their headers): a timer per request costs a wakeup of the runtime's timer thread.
        let ready = futures::FutureExt::now_or_never(body.frame());
        let next = match ready {
            Some(frame) => Ok(frame),
            None => tokio::time::timeout(limits.timeout, body.frame()).await,
        };
        let frame = match next {
            Err(_) => {
                return refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body stalled: no data for {} s ({} bytes received)",
                        limits.timeout.as_secs_f64(),
                        buf.len()
                    ),
                )
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "body_malformed",
                    format!("the request body is truncated or its framing is malformed: {e}"),
                )
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return too_large(limit);
            }
            buf.extend_from_slice(&data);
        }
    }
    let bytes: Bytes = buf.freeze();
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn too_large(limit: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body is larger than the limit of {limit} bytes"),
    )
}
