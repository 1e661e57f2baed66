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

/// Walks the IPC stream's message frames and checks that every declared length fits in the
/// body, before the Arrow reader allocates buffers of those lengths (a few bytes claiming a
/// 2 GiB message must not make the server allocate 2 GiB).
fn check_framing(b: &[u8]) -> Result<(), String> {
    let read_i32 = |o: usize| -> Result<i32, String> {
        b.get(o..o + 4)
            .map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| "truncated message header".to_string())
    };
    let mut o = 0usize;
    while o < b.len() {
        let mut len = read_i32(o)?;
        o += 4;
        if len == -1 {
            len = read_i32(o)?;
            o += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let len = usize::try_from(len).map_err(|_| "negative message length".to_string())?;
        let meta = b
            .get(o..o + len)
            .ok_or_else(|| format!("a message claims {len} bytes beyond the end of the body"))?;
        let message = datafusion::arrow::ipc::root_as_message(meta).map_err(|e| format!("bad message: {e}"))?;
        o += len;
        let body_len = usize::try_from(message.bodyLength()).map_err(|_| "negative body length".to_string())?;
        if o.checked_add(body_len).is_none_or(|end| end > b.len()) {
            return Err(format!(
                "a message body claims {body_len} bytes beyond the end of the body"
            ));
        }
        o += body_len;
    }
    Ok(())
}

fn body_error(msg: String) -> ApiError {
    ApiError::Body {
        kind: "arrow_invalid",
        loc: vec![],
        msg,
    }
}

/// Joins the entity rows (Arrow IPC stream body) with the requested features as of each row's
/// timestamp; answers an Arrow IPC stream.
#[utoipa::path(post, tag = "offline", path = "/get-historical-features",
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
    check_framing(&body).map_err(|e| body_error(format!("not an Arrow IPC stream: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn framing_accepts_real_streams_and_refuses_lying_lengths() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let mut buf = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut buf, &schema).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
        assert!(check_framing(&buf).is_ok());
        assert!(check_framing(&buf[..buf.len() - 9]).is_err(), "truncated");
        // Ten bytes claiming a 320 MB message.
        assert!(check_framing(&[0x13; 10]).unwrap_err().contains("beyond"));
        assert!(check_framing(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
