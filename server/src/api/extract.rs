//! Request-body parsing that names the offending field (instead of axum's plain-text
//! rejections).

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
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let kind = if inner.is_syntax() || inner.is_eof() {
            "json_invalid"
        } else {
            "type_error"
        };
        let loc = if path == "." || kind == "json_invalid" {
            vec![]
        } else {
            path.replace('[', ".")
                .replace(']', "")
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        ApiError::Body {
            kind,
            loc,
            msg: inner.to_string(),
        }
    })?;
    Ok(value)
}
