//! `GET /registry`: the registered definitions, for the SDK's `list_*`/`get_*` methods.

use axum::extract::State;
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};

/// The current registry version and its definitions.
#[utoipa::path(get, tag = "registry", path = "/registry", responses(
    (status = 200, description = "`{project, version, applied_at, doc}` (doc: the registry document)"),
    (status = 503, description = "No registry yet")
))]
pub async fn registry(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let s = state.store.state().await?;
    Ok(Json(json!({
        "project": state.store.project(),
        "version": s.version,
        "applied_at": s.applied_at,
        "doc": s.doc,
        "materializations": s.materializations,
    })))
}

/// The applied versions, oldest first: number, time, who, and the plan lines of each apply.
#[utoipa::path(get, tag = "registry", path = "/registry/history", responses(
    (status = 200, description = "`[{version, applied_at, applied_by, changes}]`")
))]
pub async fn history(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let h = state.store.on_registry(|r| r.history()).await?;
    Ok(Json(
        serde_json::to_value(h).map_err(|e| crate::Error::Internal(e.to_string()))?,
    ))
}

/// Freshness per feature view: materialized intervals, the newest event time in the online
/// store (a bounded scan where the backend allows it) and whether it is older than the ttl.
#[utoipa::path(get, tag = "registry", path = "/freshness", responses(
    (status = 200, description = "`[{view, ttl_seconds, intervals, newest_event, scanned_all, stale}]`")
))]
pub async fn freshness(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let s = state.store.state().await?;
    let online = state.store.online()?;
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for v in &s.doc.feature_views {
        let newest = online.newest_event(state.store.project(), &v.name, 200_000).await?;
        let (newest_ns, all) = match newest {
            Some((n, all)) => (n, Some(all)),
            None => (None, None),
        };
        let newest_dt = newest_ns.map(chrono::DateTime::from_timestamp_nanos);
        let stale = match (v.ttl(), newest_dt) {
            (Some(ttl), Some(t)) => (now - t).num_seconds() > ttl,
            _ => false,
        };
        out.push(json!({
            "view": v.name,
            "ttl_seconds": v.ttl(),
            "intervals": s.materializations.get(&v.name).cloned().unwrap_or_default(),
            "newest_event": newest_dt,
            "scanned_all": all,
            "stale": stale,
        }));
    }
    Ok(Json(serde_json::Value::Array(out)))
}
