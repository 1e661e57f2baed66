//! `POST /push` and `POST /write-to-online-store`, in Feast's wire format.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use larder_protocol::requests::{PushRequest, WriteToOnlineStoreRequest};

use super::extract::parse_json;
use super::{ApiError, AppState};

/// Writes pushed rows to the views fed by a push source (newest event time wins per key).
#[utoipa::path(post, tag = "ingest", path = "/push", request_body = PushRequest, responses(
    (status = 200, description = "Written"),
    (status = 422, description = "Unknown push source (Feast's PushSourceNotFoundException) or bad rows; the field is named"),
    (status = 503, description = "The online store is unavailable")
))]
pub async fn push(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: PushRequest = parse_json(body, state.max_body_bytes())?;
    match state.store.push(&req.push_source_name, &req.df, &req.to).await {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(crate::Error::NotFound {
            class: "PushSourceNotFoundException",
            message,
        }) => {
            let detail = serde_json::json!({"module": "feast.errors", "class": "PushSourceNotFoundException", "message": message}).to_string();
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(serde_json::Value::String(detail)),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes columnar rows to one feature view's online store (Feast's remote online store uses it).
#[utoipa::path(post, tag = "ingest", path = "/write-to-online-store", request_body = WriteToOnlineStoreRequest, responses(
    (status = 200, description = "Written; body `null`"),
    (status = 404, description = "Unknown feature view"),
    (status = 422, description = "Bad rows; the field is named")
))]
pub async fn write_to_online_store(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: WriteToOnlineStoreRequest = parse_json(body, state.max_body_bytes())?;
    state
        .store
        .write_to_online_store(&req.feature_view_name, &req.df)
        .await?;
    Ok(axum::Json(serde_json::Value::Null).into_response())
}
