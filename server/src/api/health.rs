//! `GET /health`.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

/// 200 when the registry is loaded and the online store answers; 503 otherwise (as Feast).
///
/// `/health` is public: with authentication on, its 503 body says only which part is down
/// (`registry unavailable`, `online store unavailable`); the full error (paths, addresses) is
/// logged. Without authentication the body carries the error itself.
#[utoipa::path(get, tag = "operations", path = "/health", responses(
    (status = 200, description = "Serving"),
    (status = 503, description = "Registry or online store unavailable")
))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, String) {
    let public = state.store.authenticator().is_some();
    let down = |part: &str, e: crate::error::Error| {
        tracing::warn!(error = %e, "Health check: {part} unavailable.");
        let body = if public {
            format!("{part} unavailable")
        } else {
            e.to_string()
        };
        (StatusCode::SERVICE_UNAVAILABLE, body)
    };
    if let Err(e) = state.store.cached_state().await {
        return down("registry", e);
    }
    let online = match state.store.online() {
        Ok(o) => o,
        Err(e) => return down("online store", e),
    };
    match online.health().await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e) => down("online store", e),
    }
}
