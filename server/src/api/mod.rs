//! The HTTP API: a thin axum layer over [`FeatureStore`], wire-compatible with Feast's feature
//! server (`/get-online-features`, `/health`), documented at `/openapi.json` and `/docs`.

mod admin;
mod error;
mod extract;
mod health;
mod historical;
mod online;
mod openapi;
mod push;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 8 * 1024 * 1024,
            max_arrow_body_bytes: 1024 * 1024 * 1024,
        }
    }
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
    };
    Router::new()
        .route("/get-online-features", post(online::get_online_features))
        .route(
            "/get-historical-features",
            post(historical::get_historical_features).layer(DefaultBodyLimit::max(config.max_arrow_body_bytes)),
        )
        .route("/registry", get(registry::registry))
        .route("/push", post(push::push))
        .route("/write-to-online-store", post(push::write_to_online_store))
        .route("/materialize", post(admin::materialize))
        .route("/materialize-incremental", post(admin::materialize_incremental))
        .route("/apply", post(admin::apply))
        .route("/plan", post(admin::plan))
        .route("/teardown", post(admin::teardown))
        .route("/health", get(health::health))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

/// Keeps the server's registry cache fresh: re-checks the registry every `interval`.
pub fn spawn_registry_refresh(store: Arc<FeatureStore>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let s = Arc::clone(&store);
            let r = tokio::task::spawn_blocking(move || s.state().map(|st| st.version)).await;
            if let Ok(Err(e)) = r {
                tracing::debug!(error = %e, "Registry refresh failed.");
            }
        }
    })
}
