//! Request-body parsing that names the offending field (instead of axum's plain-text
//! rejections); the parser itself is `larder_protocol::json::parse_json`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

use super::ApiError;

/// Parses a JSON body; errors name the JSON path of the bad value.
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<T, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(_)) => return Err(ApiError::TooLarge(limit)),
        Err(e) => {
            return Err(ApiError::Body {
                kind: "body_error",
                loc: vec![],
                msg: e.body_text(),
            })
        }
    };
    larder_protocol::json::parse_json(&body).map_err(|e| ApiError::Body {
        kind: e.kind,
        loc: e.loc,
        msg: e.msg,
    })
}
