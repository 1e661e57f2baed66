//! The one place where errors become HTTP responses.
//!
//! - Not found (404) and other Feast errors: Feast's body, a JSON *string* holding
//!   `{"module": "feast.errors", "class": ..., "message": ...}`, so Feast's clients rebuild the
//!   exception (`FeastError.from_error_detail`).
//! - Invalid requests (422): FastAPI's validation body, `{"detail": [{"type", "loc", "msg"}]}`,
//!   with `loc` naming the field, as Feast's server (FastAPI/pydantic) answers.
//! - 5xx bodies carry no internals beyond the message; the full error is logged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// An error on its way to the client.
#[derive(Debug)]
pub enum ApiError {
    /// An error from the core.
    Core(Error),
    /// The body is not valid JSON or does not match the request schema.
    Body {
        /// `json_invalid`, `type_error`...
        kind: &'static str,
        /// Field path (empty for the whole body).
        loc: Vec<String>,
        /// What is wrong.
        msg: String,
    },
    /// The body is larger than allowed.
    TooLarge(usize),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Core(e)
    }
}

fn validation_body(kind: &str, loc: &[String], msg: &str) -> serde_json::Value {
    let mut full = vec![json!("body")];
    full.extend(loc.iter().map(|l| match l.parse::<u64>() {
        Ok(i) => json!(i),
        Err(_) => json!(l),
    }));
    json!({"detail": [{"type": kind, "loc": full, "msg": msg}]})
}

/// Splits `entities.driver_id[2]` into `["entities", "driver_id", "2"]`.
fn split_field(field: &str) -> Vec<String> {
    field
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Body { kind, loc, msg } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(validation_body(kind, &loc, &msg)),
            )
                .into_response(),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(validation_body(
                    "body_too_large",
                    &[],
                    &format!("request body is larger than the limit of {limit} bytes"),
                )),
            )
                .into_response(),
            ApiError::Core(Error::InvalidRequest { field, message }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(validation_body("value_error", &split_field(&field), &message)),
            )
                .into_response(),
            ApiError::Core(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if status.is_server_error() {
                    tracing::error!(error = %e, status = status.as_u16(), "Request failed.");
                }
                let detail =
                    json!({"module": "feast.errors", "class": e.feast_class(), "message": e.to_string()}).to_string();
                (status, axum::Json(serde_json::Value::String(detail))).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_into_locations() {
        assert_eq!(split_field("entities.driver_id[2]"), vec!["entities", "driver_id", "2"]);
        assert_eq!(
            validation_body("x", &split_field("features[0]"), "m")["detail"][0]["loc"],
            json!(["body", "features", 0])
        );
    }
}
