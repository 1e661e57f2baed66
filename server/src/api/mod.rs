//! The HTTP API: a thin axum layer over [`FeatureStore`], wire-compatible with Feast's feature
//! server (`/get-online-features`, `/health`), documented at `/openapi.json` and `/docs`.

mod admin;
pub mod body;
mod error;
mod extract;
mod health;
mod historical;
pub mod listen;
mod online;
mod online_arrow;
mod online_json;
mod openapi;
mod push;
mod registry;
mod track;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;
pub use openapi::ApiDoc;

use crate::FeatureStore;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted JSON request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Largest accepted Arrow body (entity dataframes), in bytes.
    pub max_arrow_body_bytes: usize,
    /// Requests handled at once, over all routes; more are refused at once with 503 (load
    /// shedding, no queue).
    pub max_concurrent_requests: usize,
    /// Longest a request may take before it is answered 504.
    pub request_timeout: Duration,
    /// Longest wait for the next part of a request body before it is answered 408.
    pub body_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 8 * 1024 * 1024,
            max_arrow_body_bytes: 1024 * 1024 * 1024,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// Header carrying the request id (taken from the client when it sends one).
pub const REQUEST_ID: &str = "x-request-id";

/// Answers requests refused by the load shedder (503) or cut by the timeout (504).
async fn overload(err: BoxError) -> Response {
    let (status, reason, msg) = if err.is::<tower::timeout::error::Elapsed>() {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took longer than the server's request timeout",
        )
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is at its limit of concurrent requests; retry shortly",
        )
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "error", "internal error")
    };
    metrics::counter!("larder_rejected_requests_total", "route" => "any", "reason" => reason).increment(1);
    let detail = serde_json::json!({"module": "feast.errors", "class": "FeastError", "message": msg}).to_string();
    let mut resp = (status, axum::Json(serde_json::Value::String(detail))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    resp
}

/// Refuses requests without a token that grants the route's role (401 / 403), before the body
/// is read (see [`crate::auth`]).
async fn require_auth(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let (Some(auth), Some(roles)) = (state.store.authenticator(), crate::auth::roles_for(req.uri().path())) else {
        return next.run(req).await;
    };
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.check(header, state.store.project(), roles) {
        Ok(_) => next.run(req).await,
        Err(denied) => {
            let (status, msg) = match denied {
                crate::auth::Denied::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required (Authorization: Bearer <token>)".to_string(),
                ),
                crate::auth::Denied::Forbidden(name) => (
                    StatusCode::FORBIDDEN,
                    format!("the token `{name}` may not use {}", req.uri().path()),
                ),
            };
            metrics::counter!("larder_rejected_requests_total", "route" => "any", "reason" => "auth").increment(1);
            let detail = serde_json::json!({"module": "feast.errors", "class": "FeastPermissionError", "message": msg})
                .to_string();
            let mut resp = (status, axum::Json(serde_json::Value::String(detail))).into_response();
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            resp
        }
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics_text() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The core.
    pub store: Arc<FeatureStore>,
    /// JSON body limit (for error messages).
    pub max_body_bytes: usize,
    /// Arrow body limit (for error messages).
    pub max_arrow_body_bytes: usize,
    /// Background jobs (materializations started over HTTP).
    pub jobs: Arc<crate::jobs::Jobs>,
}

impl AppState {
    /// The body limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// The application's router.
pub fn router(store: Arc<FeatureStore>, config: &ApiConfig) -> Router {
    let state = AppState {
        store,
        max_body_bytes: config.max_body_bytes,
        max_arrow_body_bytes: config.max_arrow_body_bytes,
        jobs: Arc::default(),
    };
    Router::new()
        .route("/get-online-features", post(online::get_online_features))
        .route(
            "/get-historical-features",
            post(historical::get_historical_features).layer(DefaultBodyLimit::max(config.max_arrow_body_bytes)),
        )
        .route("/registry", get(registry::registry))
        .route("/registry/history", get(registry::history))
        .route("/freshness", get(registry::freshness))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/push", post(push::push))
        .route("/write-to-online-store", post(push::write_to_online_store))
        .route("/jobs/{id}", get(admin::job))
        .route("/apply", post(admin::apply))
        .route("/plan", post(admin::plan))
        .route("/teardown", post(admin::teardown))
        .route("/health", get(health::health))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(
            // `Router::layer` gives every route its own copy of a layer: the semaphore is
            // shared explicitly so that the limit holds over all routes together.
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overload))
                .load_shed()
                .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(Arc::new(
                    tokio::sync::Semaphore::new(config.max_concurrent_requests.max(1)),
                )))
                .timeout(config.request_timeout),
        )
        // A materialization may take longer than any request timeout: without `async=true` the
        // request waits for the job (Feast's semantics), so these are outside the timeout and
        // the concurrency limit (the job runs on the background runtime either way).
        .route("/materialize", post(admin::materialize))
        .route("/materialize-incremental", post(admin::materialize_incremental))
        // Bodies are read outside the concurrency limit: a slow body holds no request slot.
        .layer(middleware::from_fn_with_state(
            body::BodyLimits {
                json_bytes: config.max_body_bytes,
                arrow_bytes: config.max_arrow_body_bytes,
                timeout: config.body_timeout,
            },
            body::read_body,
        ))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .layer(middleware::from_fn_with_state(
            Arc::new(track::HttpMetrics::default()),
            track::track,
        ))
        .with_state(state)
}

/// Keeps one timer of the runtime always due within 250 ms. Every request arms timers far
/// later than that (its header, body and request timeouts, at least a second away); with an
/// empty timer wheel, each of them would wake the thread parked on the timer driver, a context
/// switch per request. With an earlier deadline always pending they are only recorded.
pub fn spawn_timer_keeper() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    })
}

/// Keeps the server's registry cache fresh: re-checks the registry every `interval`.
pub fn spawn_registry_refresh(store: Arc<FeatureStore>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            if let Err(e) = store.state().await {
                tracing::debug!(error = %e, "Registry refresh failed.");
            }
        }
    })
}
