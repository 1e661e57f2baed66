//! JSON in requests: bodies parsed with errors that name the offending field (FastAPI's `loc`),
//! and typed values and times read from JSON cells.

use larder_registry::ValueType;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::time::{parse_time, to_nanos};
use crate::value::Value;

/// Why a body was refused: FastAPI's error `type`, the path of the bad value and a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} at {}: {msg}", loc.join("."))]
pub struct BodyError {
    /// `json_invalid` (not JSON) or `type_error` (JSON of the wrong shape).
    pub kind: &'static str,
    /// Path of the bad value (`["df", "driver_id", "3"]`); empty for the whole body.
    pub loc: Vec<String>,
    /// What is wrong.
    pub msg: String,
}

/// Parses a JSON body into `T`; errors name the JSON path of the bad value.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
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
        BodyError {
            kind,
            loc,
            msg: inner.to_string(),
        }
    })?;
    Ok(value)
}

/// Parses a feature value given as JSON for a field of type `ty`.
pub fn value_from_json(v: &Json, ty: ValueType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if let Some(elem) = ty.element() {
        let items = v
            .as_array()
            .ok_or_else(|| format!("expected a list for {ty}, got {v}"))?;
        return items
            .iter()
            .map(|i| value_from_json(i, elem))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List);
    }
    let bad = || Err(format!("expected {ty}, got {v}"));
    match ty {
        ValueType::Double => v.as_f64().map(Value::Double).map_or_else(bad, Ok),
        ValueType::Float => v.as_f64().map(|f| Value::Float(f as f32)).map_or_else(bad, Ok),
        ValueType::Bool => v.as_bool().map(Value::Bool).map_or_else(bad, Ok),
        ValueType::UnixTimestamp => match v {
            Json::String(s) => parse_time(s).map(|t| Value::UnixTimestamp(t.timestamp())),
            _ => v.as_i64().map(Value::UnixTimestamp).map_or_else(bad, Ok),
        },
        _ => Value::from_json_key(v, ty).map_err(|e| e.0),
    }
}

/// Parses an event or created time: an ISO-8601 string (naive = UTC) or epoch seconds; ns.
pub fn time_from_json(v: &Json) -> Result<i64, String> {
    match v {
        Json::String(s) => parse_time(s).map(to_nanos),
        Json::Number(n) => n
            .as_f64()
            .map(|s| (s * 1e9) as i64)
            .ok_or_else(|| format!("bad time {v}")),
        _ => Err(format!("expected an ISO-8601 time or epoch seconds, got {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::PushRequest;

    #[test]
    fn body_errors_name_the_field() {
        let e = parse_json::<PushRequest>(br#"{"push_source_name": 3, "df": {}}"#).unwrap_err();
        assert_eq!(
            (e.kind, e.loc.clone()),
            ("type_error", vec!["push_source_name".to_string()])
        );
        let e = parse_json::<PushRequest>(br#"{"push_source_name": "p", "df": {"a": [1, 2], "b": 7}}"#).unwrap_err();
        assert_eq!(e.loc, vec!["df".to_string(), "b".to_string()]);
        let e = parse_json::<PushRequest>(b"{not json").unwrap_err();
        assert_eq!((e.kind, e.loc.len()), ("json_invalid", 0));
    }

    #[test]
    fn values_and_times_from_json() {
        let list = value_from_json(&serde_json::json!([1.5, null]), ValueType::DoubleList).unwrap();
        assert_eq!(list, Value::List(vec![Value::Double(1.5), Value::Null]));
        assert!(value_from_json(&serde_json::json!("x"), ValueType::Double).is_err());
        assert_eq!(time_from_json(&serde_json::json!(1.5)).unwrap(), 1_500_000_000);
        assert_eq!(
            time_from_json(&serde_json::json!("1970-01-01T00:00:02Z")).unwrap(),
            2_000_000_000
        );
        assert!(time_from_json(&serde_json::json!(true)).is_err());
    }
}
