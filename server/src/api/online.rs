//! `POST /get-online-features`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use larder_protocol::requests::GetOnlineFeaturesRequest;

use super::extract::parse_json;
use super::historical::ARROW_STREAM;
use super::{ApiError, AppState};
use crate::serving::{FeatureSelection, OnlineRequest};

/// Feast's response: `results[i]` is the column of `metadata.feature_names[i]`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GetOnlineFeaturesResponse {
    /// `{"feature_names": [...]}`.
    #[schema(value_type = Object, example = json!({"feature_names": ["driver_id", "conv_rate"]}))]
    metadata: (),
    /// Columns with `values`, `statuses` (PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE) and
    /// `event_timestamps`.
    #[schema(value_type = Vec<Object>)]
    results: (),
}

/// Reads feature values for entity rows from the online store.
#[utoipa::path(post, tag = "online", path = "/get-online-features", request_body = GetOnlineFeaturesRequest, responses(
    (status = 200, description = "Feature values, column-major (JSON); with `Accept: application/vnd.apache.arrow.stream`, an Arrow IPC stream of one batch: per output `name`, the columns `name`, `name__status` and `name__event_timestamp`", body = GetOnlineFeaturesResponse),
    (status = 404, description = "Unknown feature view, feature or feature service (Feast error detail)"),
    (status = 413, description = "Body over the size limit"),
    (status = 422, description = "Malformed request; `detail[].loc` names the field"),
    (status = 503, description = "Registry or online store unavailable")
))]
pub async fn get_online_features(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: GetOnlineFeaturesRequest = parse_json(body, state.max_body_bytes())?;
    let features = match req.feature_service.filter(|s| !s.is_empty()) {
        Some(s) => FeatureSelection::Service(s),
        None => FeatureSelection::Refs(req.features),
    };
    let request = OnlineRequest {
        features,
        entities: req.entities,
        full_feature_names: req.full_feature_names,
    };
    let response = state.store.get_online_features(&request).await?;
    let request_id = headers
        .get(super::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    state.store.log_served(&request, &response, request_id).await;
    if wants_arrow(&headers) {
        let bytes = super::online_arrow::response_stream(&response)?;
        return Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response());
    }
    let bytes = super::online_json::response_body(&response);
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// Whether the client asks for the Arrow answer (`Accept: application/vnd.apache.arrow.stream`).
fn wants_arrow(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with(ARROW_STREAM)))
}
