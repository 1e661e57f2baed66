//! `GET /health`.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

/// 200 when the registry is loaded and the online store answers; 503 otherwise (as Feast).
#[utoipa::path(get, path = "/health", responses(
    (status = 200, description = "Serving"),
    (status = 503, description = "Registry or online store unavailable")
))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, String) {
    if let Err(e) = state.store.cached_state() {
        return (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    let online = match state.store.online() {
        Ok(o) => o,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match online.health().await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
