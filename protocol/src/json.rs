//! JSON in requests: bodies parsed with errors that name the offending field (FastAPI's `loc`),
//! and typed values and times read from JSON cells.

use larder_registry::ValueType;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::time::parse_time;
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

/// Parses a JSON body into `T`; errors name the JSON path of the bad value. A body that parses
/// is read once, without tracking paths; only a failing one is read again to name the path.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
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
    match ty {
        // A JSON document: a string is taken as the document's text (as Feast stores it), any
        // other value as the document itself.
        ValueType::Json => {
            return Ok(Value::Json(match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            }))
        }
        // An object; or its JSON text, as Feast's remote online store sends maps and structs
        // to `/write-to-online-store` (`_proto_value_to_transport_value`).
        ValueType::Map | ValueType::Struct => {
            return match v {
                Json::Object(_) => Ok(untyped(v)),
                Json::String(s) => match serde_json::from_str::<Json>(s) {
                    Ok(object @ Json::Object(_)) => Ok(untyped(&object)),
                    _ => Err(format!("expected an object (or its JSON text) for {ty}, got {v}")),
                },
                _ => Err(format!("expected an object for {ty}, got {v}")),
            }
        }
        _ => {}
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
        ValueType::Float => match v.as_f64() {
            Some(f) if f.is_finite() && f.abs() > f32::MAX as f64 => {
                Err(format!("{v} is outside the range of Float32 (±{:e})", f32::MAX))
            }
            Some(f) => Ok(Value::Float(f as f32)),
            None => bad(),
        },
        ValueType::Bool => v.as_bool().map(Value::Bool).map_or_else(bad, Ok),
        ValueType::UnixTimestamp => match v {
            Json::String(s) => parse_time(s).map(|t| Value::UnixTimestamp(t.timestamp())),
            _ => v.as_i64().map(Value::UnixTimestamp).map_or_else(bad, Ok),
        },
        _ => Value::from_json_key(v, ty).map_err(|e| e.0),
    }
}

/// A JSON value as a [`Value`] typed by its JSON kind (map entries, whose types the registry
/// does not declare): integers as INT64, other numbers as DOUBLE, objects as maps.
fn untyped(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(untyped).collect()),
        Json::Object(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), untyped(v))).collect()),
    }
}

/// Parses an event or created time: an ISO-8601 string (naive = UTC) or epoch seconds; ns.
/// Times outside [`crate::time::EVENT_RANGE`] are errors, never clamped.
pub fn time_from_json(v: &Json) -> Result<i64, String> {
    let out_of_range = || format!("time {v} is outside the accepted range, {}", crate::time::EVENT_RANGE);
    match v {
        Json::String(s) => {
            let t = parse_time(s)?;
            let ns = t.timestamp_nanos_opt().ok_or_else(out_of_range)?;
            crate::time::check_event_nanos(ns).map_err(|_| out_of_range())
        }
        Json::Number(n) => {
            let ns = match n.as_i64() {
                // Whole seconds: exact integer arithmetic.
                Some(secs) => secs.checked_mul(1_000_000_000).ok_or_else(out_of_range)?,
                None => {
                    let ns = n.as_f64().ok_or_else(|| format!("bad time {v}"))? * 1e9;
                    if !ns.is_finite() || ns < i64::MIN as f64 || ns >= i64::MAX as f64 {
                        return Err(out_of_range());
                    }
                    ns as i64
                }
            };
            crate::time::check_event_nanos(ns).map_err(|_| out_of_range())
        }
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
        for far in [
            serde_json::json!("9999-01-01T00:00:00Z"),
            serde_json::json!(1e300),
            serde_json::json!(-1e300),
            serde_json::json!("1800-01-01"),
            serde_json::json!(7_258_118_400i64),
        ] {
            let e = time_from_json(&far).unwrap_err();
            assert!(e.contains("outside the accepted range"), "{far}: {e}");
        }
        assert_eq!(
            time_from_json(&serde_json::json!(7_258_118_399i64)).unwrap(),
            7_258_118_399_000_000_000
        );
        assert!(value_from_json(&serde_json::json!(1e39), ValueType::Float)
            .unwrap_err()
            .contains("Float32"));
        assert!(value_from_json(&serde_json::json!([1.0, 1e39]), ValueType::FloatList).is_err());
        assert_eq!(
            value_from_json(&serde_json::json!({"a": "x", "n": 2}), ValueType::Map).unwrap(),
            Value::Map(vec![
                ("a".into(), Value::String("x".into())),
                ("n".into(), Value::Int64(2))
            ])
        );
        assert!(value_from_json(&serde_json::json!("x"), ValueType::Struct).is_err());
        // Feast's remote online store sends maps and structs as their JSON text.
        assert_eq!(
            value_from_json(&serde_json::json!("{\"a\": \"x\", \"n\": 2}"), ValueType::Map).unwrap(),
            value_from_json(&serde_json::json!({"a": "x", "n": 2}), ValueType::Map).unwrap()
        );
        assert!(value_from_json(&serde_json::json!("[1]"), ValueType::Map).is_err());
        assert_eq!(
            value_from_json(&serde_json::json!(["{\"k\": true}", null]), ValueType::StructList).unwrap(),
            Value::List(vec![Value::Map(vec![("k".into(), Value::Bool(true))]), Value::Null])
        );
        assert_eq!(
            value_from_json(&serde_json::json!("{\"k\": 1}"), ValueType::Json).unwrap(),
            Value::Json("{\"k\": 1}".into())
        );
        assert_eq!(
            value_from_json(&serde_json::json!({"k": [1]}), ValueType::Json).unwrap(),
            Value::Json("{\"k\":[1]}".into())
        );
        assert_eq!(
            value_from_json(&serde_json::json!(3.4e38), ValueType::Float).unwrap(),
            Value::Float(3.4e38)
        );
    }
}
