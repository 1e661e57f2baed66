//! `POST /get-historical-features`: Arrow IPC in (the entity dataframe), Arrow IPC out (the
//! training set), so bulk data never goes through JSON.
//!
//! The request parameters travel in the entity table's schema metadata under
//! `larder.request`: `{"features": [...], "feature_service": null, "full_feature_names": false}`.

use std::io::Cursor;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use futures::StreamExt;

use super::{ApiError, AppState};
use crate::serving::HistoricalParams;
use crate::Error;

/// Media type of Arrow IPC streams.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// Schema-metadata key holding the request parameters.
pub const REQUEST_KEY: &str = "larder.request";

fn body_error(msg: String) -> ApiError {
    ApiError::Body {
        kind: "arrow_invalid",
        loc: vec![],
        msg,
    }
}

/// Joins the entity rows (Arrow IPC stream body) with the requested features as of each row's
/// timestamp; answers an Arrow IPC stream.
#[utoipa::path(post, path = "/get-historical-features",
    request_body(content = Vec<u8>, content_type = "application/vnd.apache.arrow.stream",
        description = "Entity dataframe as an Arrow IPC stream; parameters in schema metadata `larder.request`"),
    responses(
        (status = 200, description = "Training set (Arrow IPC stream)", content_type = "application/vnd.apache.arrow.stream"),
        (status = 404, description = "Unknown feature view, feature or feature service"),
        (status = 422, description = "Bad entity dataframe or parameters; `detail[].loc` names the field")
))]
pub async fn get_historical_features(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(_)) => return Err(ApiError::TooLarge(state.max_arrow_body_bytes)),
        Err(e) => return Err(body_error(e.body_text())),
    };
    let reader = StreamReader::try_new(Cursor::new(body), None)
        .map_err(|e| body_error(format!("not an Arrow IPC stream: {e}")))?;
    let schema = reader.schema();
    let params: HistoricalParams = match schema.metadata().get(REQUEST_KEY) {
        Some(json) => serde_json::from_str(json).map_err(|e| ApiError::Body {
            kind: "type_error",
            loc: vec![REQUEST_KEY.into()],
            msg: e.to_string(),
        })?,
        None => {
            return Err(ApiError::Body {
                kind: "missing",
                loc: vec![REQUEST_KEY.into()],
                msg: format!("schema metadata `{REQUEST_KEY}` is required"),
            })
        }
    };
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| body_error(format!("bad Arrow batch: {e}")))?);
    }
    if let Some(sql) = params.sql() {
        batches = state.store.entity_df_from_sql(sql).await?;
    }
    let mut stream = state
        .store
        .get_historical_features(batches, &params.selection(), params.full_feature_names)
        .await?;
    // The first batch comes after the join's sorts, so planning and execution errors still get a
    // proper status; the rest streams out batch by batch instead of being buffered.
    let schema = stream.schema();
    let first = stream.next().await.transpose().map_err(Error::from)?;
    let internal = |e: datafusion::arrow::error::ArrowError| Error::Internal(e.to_string());
    let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(internal)?;
    if let Some(batch) = first {
        writer.write(&batch).map_err(internal)?;
    }
    let head = Bytes::from(std::mem::take(writer.get_mut()));
    let rest = futures::stream::unfold(Some((stream, writer)), |state| async move {
        let (mut stream, mut writer) = state?;
        let failed = |e: String| Some((Err(std::io::Error::other(e)), None));
        match stream.next().await {
            Some(Ok(batch)) => match writer.write(&batch) {
                Ok(()) => Some((
                    Ok(Bytes::from(std::mem::take(writer.get_mut()))),
                    Some((stream, writer)),
                )),
                Err(e) => failed(e.to_string()),
            },
            Some(Err(e)) => failed(e.to_string()),
            None => match writer.finish() {
                Ok(()) => Some((Ok(Bytes::from(std::mem::take(writer.get_mut()))), None)),
                Err(e) => failed(e.to_string()),
            },
        }
    });
    let body = axum::body::Body::from_stream(
        futures::stream::once(async move { Ok::<Bytes, std::io::Error>(head) }).chain(rest),
    );
    Ok(([(axum::http::header::CONTENT_TYPE, ARROW_STREAM)], body).into_response())
}
