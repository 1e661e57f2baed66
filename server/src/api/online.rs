//! `POST /get-online-features`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

use larder_protocol::requests::GetOnlineFeaturesRequest;

use super::extract::parse_json;
use super::{ApiError, AppState};
use crate::serving::{Column, FeatureSelection, OnlineRequest, OnlineResponse};
use crate::time::format_feast;
use crate::value::Value;

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

struct JsonValue<'a>(&'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_none(),
            Value::Int32(i) => s.serialize_i32(*i),
            Value::Int64(i) | Value::UnixTimestamp(i) => s.serialize_i64(*i),
            Value::Double(f) if f.is_finite() => s.serialize_f64(*f),
            // As Feast's server prints it: the float32 widened to a double
            // (0.9350247979164124, not 0.9350248), so clients get the same number from both.
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f as f64),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::String(t) => s.serialize_str(t),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(&JsonValue(v))?;
                }
                seq.end()
            }
            other => other.to_json().serialize(s),
        }
    }
}

struct ColumnBody<'a>(&'a Column);

impl Serialize for ColumnBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Values<'a>(&'a [Value]);
        impl Serialize for Values<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(JsonValue))
            }
        }
        // Written straight into the output: no per-column temporary vectors on the read path.
        struct Statuses<'a>(&'a [crate::serving::FieldStatus]);
        impl Serialize for Statuses<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|st| st.as_str()))
            }
        }
        struct Timestamps<'a>(&'a [i64]);
        impl Serialize for Timestamps<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|t| format_feast(*t)))
            }
        }
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("values", &Values(&self.0.values))?;
        m.serialize_entry("statuses", &Statuses(&self.0.statuses))?;
        m.serialize_entry("event_timestamps", &Timestamps(&self.0.event_timestamps))?;
        m.end()
    }
}

struct ResponseBody<'a>(&'a OnlineResponse);

impl Serialize for ResponseBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Meta<'a> {
            feature_names: &'a [String],
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry(
            "metadata",
            &Meta {
                feature_names: &self.0.feature_names,
            },
        )?;
        m.serialize_entry("results", &self.0.columns.iter().map(ColumnBody).collect::<Vec<_>>())?;
        m.end()
    }
}

/// Reads feature values for entity rows from the online store.
#[utoipa::path(post, path = "/get-online-features", request_body = GetOnlineFeaturesRequest, responses(
    (status = 200, description = "Feature values, column-major", body = GetOnlineFeaturesResponse),
    (status = 404, description = "Unknown feature view, feature or feature service (Feast error detail)"),
    (status = 413, description = "Body over the size limit"),
    (status = 422, description = "Malformed request; `detail[].loc` names the field"),
    (status = 503, description = "Registry or online store unavailable")
))]
pub async fn get_online_features(
    State(state): State<AppState>,
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
    let bytes = serde_json::to_vec(&ResponseBody(&response))
        .map_err(|e| ApiError::Core(crate::Error::Internal(e.to_string())))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
