//! Write operations on the repo over HTTP, for the SDK and for operators: Feast's
//! `POST /materialize` and `POST /materialize-incremental`, and Larder's `POST /apply`,
//! `POST /plan` and `POST /teardown` (Feast's `FeatureStore.apply/plan/teardown`).
//!
//! Materializing inside the server is also how an embedded (RocksDB) store is refreshed while
//! it serves: the store belongs to the serving process.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use larder_registry::RegistryDoc;
use serde_json::{json, Value};

use larder_protocol::requests::{ApplyRequest, MaterializeIncrementalRequest, MaterializeRequest};

use super::extract::parse_json;
use super::{ApiError, AppState};
use crate::materialize::NoProgress;
use crate::time::parse_time;
use crate::{Error, MaterializeOutcome};

fn time(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    parse_time(text).map_err(|e| Error::invalid(field, e))
}

fn outcomes(list: &[MaterializeOutcome]) -> Value {
    Value::Array(
        list.iter()
            .map(|o| json!({"feature_view": o.view, "start": o.start, "end": o.end, "rows": o.rows}))
            .collect(),
    )
}

/// Materializes `[start_ts, end_ts]` into the online store (in this server's process).
#[utoipa::path(post, path = "/materialize", request_body = MaterializeRequest, responses(
    (status = 200, description = "Done: one entry per view with the rows written"),
    (status = 404, description = "Unknown feature view"),
    (status = 422, description = "Bad timestamps (the field is named) or start after end"),
    (status = 503, description = "The online store is unavailable; nothing is recorded, re-run")
))]
pub async fn materialize(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: MaterializeRequest = parse_json(body, state.max_body_bytes())?;
    let start = time("start_ts", &req.start_ts)?;
    let end = time("end_ts", &req.end_ts)?;
    let views = req.feature_views.unwrap_or_default();
    let done = state.store.materialize(start, end, &views, &NoProgress).await?;
    Ok(Json(outcomes(&done)))
}

/// Materializes each view from where its last run ended up to `end_ts`.
#[utoipa::path(post, path = "/materialize-incremental", request_body = MaterializeIncrementalRequest, responses(
    (status = 200, description = "Done: one entry per view with its window and rows"),
    (status = 404, description = "Unknown feature view"),
    (status = 422, description = "Bad timestamp (the field is named)"),
    (status = 503, description = "The online store is unavailable; nothing is recorded, re-run")
))]
pub async fn materialize_incremental(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: MaterializeIncrementalRequest = parse_json(body, state.max_body_bytes())?;
    let end = time("end_ts", &req.end_ts)?;
    let views = req.feature_views.unwrap_or_default();
    let done = state.store.materialize_incremental(end, &views, &NoProgress).await?;
    Ok(Json(outcomes(&done)))
}

/// The document an apply or plan request asks for: the current one with the request's objects
/// upserted and its deletions made (`partial`), or the request's alone.
fn requested_doc(state: &AppState, req: ApplyRequest) -> Result<RegistryDoc, Error> {
    let mut doc = if req.partial {
        state.store.registry().load()?.map(|s| s.doc).unwrap_or_default()
    } else {
        RegistryDoc::default()
    };
    doc.upsert(req.definitions);
    for (kind, names) in &req.delete {
        for name in names {
            if !doc.remove(kind, name) {
                return Err(Error::invalid(
                    format!("delete.{kind}"),
                    format!("there is no {kind} object called `{name}`"),
                ));
            }
        }
    }
    Ok(doc)
}

/// Validates and registers definitions as a new registry version.
#[utoipa::path(post, path = "/apply", request_body = ApplyRequest, responses(
    (status = 200, description = "`{changes: [..], version}` (version null when nothing changed)"),
    (status = 422, description = "Invalid definitions; every problem is listed")
))]
pub async fn apply(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: ApplyRequest = parse_json(body, state.max_body_bytes())?;
    let by = req.applied_by.clone().unwrap_or_else(|| "http".into());
    let doc = requested_doc(&state, req)?;
    let outcome = state.store.apply(doc, &by).await?;
    state.store.refresh().ok();
    Ok(Json(json!({
        "changes": outcome.plan.lines(),
        "version": if outcome.plan.is_empty() { None } else { outcome.state.map(|s| s.version) },
    })))
}

/// What an apply would change, without changing anything.
#[utoipa::path(post, path = "/plan", request_body = ApplyRequest, responses(
    (status = 200, description = "`{changes: [..]}`"),
    (status = 422, description = "Invalid definitions; every problem is listed")
))]
pub async fn plan(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let req: ApplyRequest = parse_json(body, state.max_body_bytes())?;
    let doc = requested_doc(&state, req)?;
    let outcome = state.store.plan(doc).await?;
    Ok(Json(json!({"changes": outcome.plan.lines()})))
}

/// Deletes every view's online data and the registry.
#[utoipa::path(post, path = "/teardown", responses(
    (status = 200, description = "`{removed: [views]}`")
))]
pub async fn teardown(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let removed = state.store.teardown().await?;
    Ok(Json(json!({ "removed": removed })))
}
