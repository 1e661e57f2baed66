//! `GET /registry`: the registered definitions, for the SDK's `list_*`/`get_*` methods.

use axum::extract::State;
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};

/// The current registry version and its definitions.
#[utoipa::path(get, path = "/registry", responses(
    (status = 200, description = "`{project, version, applied_at, doc}` (doc: the registry document)"),
    (status = 503, description = "No registry yet")
))]
pub async fn registry(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let s = state.store.state()?;
    Ok(Json(json!({
        "project": state.store.project(),
        "version": s.version,
        "applied_at": s.applied_at,
        "doc": s.doc,
        "materializations": s.materializations,
    })))
}
