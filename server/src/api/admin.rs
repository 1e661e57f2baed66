//! Write operations on the repo over HTTP, for the SDK and for operators: Feast's
//! `POST /materialize` and `POST /materialize-incremental`, and Larder's `POST /apply`,
//! `POST /plan` and `POST /teardown` (Feast's `FeatureStore.apply/plan/teardown`).
//!
//! Materializing inside the server is also how an embedded (RocksDB) store is refreshed while
//! it serves: the store belongs to the serving process. A materialization runs as a job, outside
//! the request timeout. As in Feast's feature server, the request waits for it and answers
//! `200` with the job's report (or the job's error) — what Feast 0.67's clients with a remote
//! online store expect of `materialize(_incremental)` — and with `?async=true` answers `202`
//! at once with the job's id, to follow at `GET /jobs/{id}` (Larder's SDK and CLI do this).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use larder_registry::RegistryDoc;
use serde_json::{json, Value};

use larder_protocol::requests::{ApplyRequest, MaterializeIncrementalRequest, MaterializeRequest};

use super::extract::parse_json;
use super::{ApiError, AppState};
use crate::time::parse_time;
use crate::{Error, MaterializeOutcome};

fn time(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    parse_time(text).map_err(|e| Error::invalid(field, e))
}

/// Whether the query asks for an asynchronous run (`async=true`, Feast's parameter).
fn wants_async(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
        k == "async" && matches!(v, "true" | "1" | "True")
    })
}

/// Starts `run` as a job; answers 202 with its report (and `Location: /jobs/{id}`) when `wait`
/// is false, else when it ended: 200 with its report, or its error.
async fn spawn_job<F>(
    state: &AppState,
    kind: &str,
    wait: bool,
    run: impl FnOnce(Arc<crate::jobs::Job>) -> F,
) -> Result<Response, ApiError>
where
    F: std::future::Future<Output = crate::Result<Vec<MaterializeOutcome>>> + Send + 'static,
{
    let job = state.jobs.start(kind);
    let work = run(Arc::clone(&job));
    let watched = Arc::clone(&job);
    // On the background runtime: the job's CPU work never takes the serving threads. A client
    // that goes away does not stop it.
    let done = crate::jobs::spawn_background(async move {
        let result = work.await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "Materialization job failed.");
        }
        watched.finish(&result);
        result.map(|_| ())
    });
    if wait {
        return match done.await {
            Ok(Ok(())) => Ok((StatusCode::OK, Json(job.report())).into_response()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(Error::Internal(format!("materialization task failed: {e}")).into()),
        };
    }
    let report = job.report();
    let id = report.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    let mut resp = (StatusCode::ACCEPTED, Json(report)).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("/jobs/{id}")) {
        resp.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(resp)
}

/// Materializes `[start_ts, end_ts]` into the online store (in this server's process) as a
/// job; the request is checked first (bad times, unknown views: 4xx at once).
#[utoipa::path(post, tag = "materialization", path = "/materialize", request_body = MaterializeRequest,
    params(("async" = Option<bool>, Query, description = "Answer 202 at once instead of waiting for the job")), responses(
    (status = 200, description = "Done (without `async=true`): the job's report", body = crate::jobs::JobReport),
    (status = 202, description = "Started (`async=true`): the job's report; follow it at `GET /jobs/{id}` (the Location header)", body = crate::jobs::JobReport),
    (status = 404, description = "Unknown feature view"),
    (status = 422, description = "Bad timestamps (the field is named) or start after end"),
    (status = 503, description = "The registry or online store is unavailable")
))]
pub async fn materialize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: MaterializeRequest = parse_json(body, state.max_body_bytes())?;
    let start = time("start_ts", &req.start_ts)?;
    let end = time("end_ts", &req.end_ts)?;
    if start > end {
        return Err(Error::invalid("start_ts", format!("start {start} is after end {end}")).into());
    }
    let views = req.feature_views.unwrap_or_default();
    state.store.check_materialize(&views).await?;
    let store = Arc::clone(&state.store);
    spawn_job(
        &state,
        "materialize",
        !wants_async(query.as_deref()),
        move |job| async move { store.materialize(start, end, &views, job.as_ref()).await },
    )
    .await
}

/// Materializes each view from where its last run ended up to `end_ts`, as a job.
#[utoipa::path(post, tag = "materialization", path = "/materialize-incremental", request_body = MaterializeIncrementalRequest,
    params(("async" = Option<bool>, Query, description = "Answer 202 at once instead of waiting for the job")), responses(
    (status = 200, description = "Done (without `async=true`): the job's report", body = crate::jobs::JobReport),
    (status = 202, description = "Started (`async=true`): the job's report; follow it at `GET /jobs/{id}`", body = crate::jobs::JobReport),
    (status = 404, description = "Unknown feature view"),
    (status = 422, description = "Bad timestamp (the field is named)"),
    (status = 503, description = "The registry or online store is unavailable")
))]
pub async fn materialize_incremental(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: MaterializeIncrementalRequest = parse_json(body, state.max_body_bytes())?;
    let end = time("end_ts", &req.end_ts)?;
    let views = req.feature_views.unwrap_or_default();
    state.store.check_materialize(&views).await?;
    let store = Arc::clone(&state.store);
    spawn_job(
        &state,
        "materialize-incremental",
        !wants_async(query.as_deref()),
        move |job| async move { store.materialize_incremental(end, &views, job.as_ref()).await },
    )
    .await
}

/// A job's report: status, rows written so far, the views done, the error.
#[utoipa::path(get, tag = "materialization", path = "/jobs/{id}", params(("id" = String, Path, description = "The job id")), responses(
    (status = 200, description = "The job's report", body = crate::jobs::JobReport),
    (status = 404, description = "No such job (ids are forgotten when the server restarts)")
))]
pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::jobs::JobReport>, ApiError> {
    state.jobs.get(&id).and_then(|j| j.report()).map(Json).ok_or_else(|| {
        Error::NotFound {
            class: "FeastObjectNotFoundException",
            message: format!("job {id} does not exist (jobs are kept in the serving process until it restarts)"),
        }
        .into()
    })
}

/// The document an apply or plan request asks for, and the version it was built on: the current
/// one with the request's objects upserted and its deletions made (`partial`), or the request's
/// alone (built on nothing: `None`).
async fn requested_doc(state: &AppState, req: &ApplyRequest) -> Result<(RegistryDoc, Option<Option<u64>>), Error> {
    let (mut doc, base) = if req.partial {
        let current = state.store.on_registry(|r| r.load()).await?;
        let base = current.as_ref().map(|s| s.version);
        (current.map(|s| s.doc).unwrap_or_default(), Some(base))
    } else {
        (RegistryDoc::default(), None)
    };
    doc.upsert(req.definitions.clone());
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
    Ok((doc, base))
}

/// How often a partial apply re-reads its base when other applies keep coming first.
const PARTIAL_APPLY_ATTEMPTS: u32 = 20;

/// Validates and registers definitions as a new registry version.
#[utoipa::path(post, tag = "registry", path = "/apply", request_body = ApplyRequest, responses(
    (status = 200, description = "`{changes: [..], version}` (version null when nothing changed)"),
    (status = 422, description = "Invalid definitions; every problem is listed")
))]
pub async fn apply(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: ApplyRequest = parse_json(body, state.max_body_bytes())?;
    let by = req.applied_by.clone().unwrap_or_else(|| "http".into());
    let mut attempt = 1;
    let outcome = loop {
        let (doc, base) = requested_doc(&state, &req).await?;
        let outcome = match base {
            // A partial apply is built on the version it read: if another apply came first,
            // read again rather than drop what that one added.
            Some(base) => state.store.apply_on_base(doc, &by, base).await,
            None => state.store.apply(doc, &by).await,
        };
        match outcome {
            Err(Error::Registry(larder_registry::Error::Stale { .. })) if attempt < PARTIAL_APPLY_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 5)).await;
            }
            other => break other?,
        }
    };
    state.store.refresh().await.ok();
    Ok(Json(json!({
        "changes": outcome.plan.lines(),
        "version": if outcome.plan.is_empty() { None } else { outcome.state.map(|s| s.version) },
    })))
}

/// What an apply would change, without changing anything.
#[utoipa::path(post, tag = "registry", path = "/plan", request_body = ApplyRequest, responses(
    (status = 200, description = "`{changes: [..]}`"),
    (status = 422, description = "Invalid definitions; every problem is listed")
))]
pub async fn plan(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let req: ApplyRequest = parse_json(body, state.max_body_bytes())?;
    let (doc, _) = requested_doc(&state, &req).await?;
    let outcome = state.store.plan(doc).await?;
    Ok(Json(json!({"changes": outcome.plan.lines()})))
}

/// Deletes every view's online data and the registry.
#[utoipa::path(post, tag = "registry", path = "/teardown", responses(
    (status = 200, description = "`{removed: [views]}`")
))]
pub async fn teardown(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let removed = state.store.teardown().await?;
    Ok(Json(json!({ "removed": removed })))
}
