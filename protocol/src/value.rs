//! Feature values: the typed value model, its compact binary encoding for the online store and
//! Feast's JSON encoding. (Conversion from and to Arrow columns lives in the server.)

use base64::Engine;
use larder_registry::ValueType;
use serde_json::Value as Json;

/// One feature or key value, typed as Feast's `ValueProto`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Missing value.
    Null,
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// UTF-8 text.
    String(String),
    /// 32-bit integer.
    Int32(i32),
    /// 64-bit integer.
    Int64(i64),
    /// 64-bit float (Feast `Float64`).
    Double(f64),
    /// 32-bit float (Feast `Float32`).
    Float(f32),
    /// Boolean.
    Bool(bool),
    /// Seconds since the Unix epoch.
    UnixTimestamp(i64),
    /// A list of values of one scalar type.
    List(Vec<Value>),
    /// Feast's `Map` and `Struct`: named values, in their stored order (an object in JSON).
    Map(Vec<(String, Value)>),
    /// Feast's `Json`: a JSON document, kept as its text (a string in Feast's JSON output).
    Json(String),
}

/// A value that cannot be decoded or converted; the message says why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl Value {
    /// Feast's JSON form of the value (`feature_server_utils._value_to_native`).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::String(s) => Json::String(s.clone()),
            Value::Int32(i) => Json::from(*i),
            Value::Int64(i) | Value::UnixTimestamp(i) => Json::from(*i),
            Value::Double(f) => float_json(*f),
            Value::Float(f) => float_json(*f as f64),
            Value::Bool(b) => Json::Bool(*b),
            Value::List(l) => Json::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Json(text) => Json::String(text.clone()),
        }
    }

    /// Parses an entity key value given in a request as JSON, for a key of type `ty`.
    pub fn from_json_key(v: &Json, ty: ValueType) -> Result<Value, ValueError> {
        let err = |what: &str| Err(ValueError(format!("expected {what} for a {ty} key, got {v}")));
        match ty {
            ValueType::Int64 => match v.as_i64() {
                Some(i) => Ok(Value::Int64(i)),
                None => err("an integer"),
            },
            ValueType::Int32 => match v.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Ok(Value::Int32(i)),
                None => err("a 32-bit integer"),
            },
            ValueType::UnixTimestamp => match v.as_i64() {
                Some(i) => Ok(Value::UnixTimestamp(i)),
                None => err("an integer number of seconds"),
            },
            ValueType::String => match v.as_str() {
                Some(s) => Ok(Value::String(s.to_string())),
                None => err("a string"),
            },
            ValueType::Bytes => match v.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s)) {
                Some(Ok(b)) => Ok(Value::Bytes(b)),
                _ => err("a base64 string"),
            },
            _ => Err(ValueError(format!("{ty} cannot be a join key"))),
        }
    }

    /// Appends the binary encoding of the value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Bytes(b) => {
                out.push(1);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
            Value::String(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Int32(i) => {
                out.push(3);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Int64(i) => {
                out.push(4);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Double(f) => {
                out.push(5);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(6);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Bool(b) => out.extend_from_slice(&[7, *b as u8]),
            Value::UnixTimestamp(i) => {
                out.push(8);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::List(l) => {
                out.push(9);
                out.extend_from_slice(&(l.len() as u32).to_le_bytes());
                for v in l {
                    v.encode(out);
                }
            }
            Value::Map(m) => {
                out.push(10);
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                for (k, v) in m {
                    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    out.extend_from_slice(k.as_bytes());
                    v.encode(out);
                }
            }
            Value::Json(text) => {
                out.push(11);
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }

    /// Decodes one value from the front of `input`, advancing it.
    pub fn decode(input: &mut &[u8]) -> Result<Value, ValueError> {
        let tag = take(input, 1)?[0];
        Ok(match tag {
            0 => Value::Null,
            1 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                Value::Bytes(take(input, n)?.to_vec())
            }
            2 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                let s = std::str::from_utf8(take(input, n)?).map_err(|e| ValueError(e.to_string()))?;
                Value::String(s.to_string())
            }
            3 => Value::Int32(i32::from_le_bytes(take_arr(input)?)),
            4 => Value::Int64(i64::from_le_bytes(take_arr(input)?)),
            5 => Value::Double(f64::from_le_bytes(take_arr(input)?)),
            6 => Value::Float(f32::from_le_bytes(take_arr(input)?)),
            7 => Value::Bool(take(input, 1)?[0] != 0),
            8 => Value::UnixTimestamp(i64::from_le_bytes(take_arr(input)?)),
            9 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                let mut l = Vec::with_capacity(n.min(input.len()));
                for _ in 0..n {
                    l.push(Value::decode(input)?);
                }
                Value::List(l)
            }
            10 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                let mut m = Vec::with_capacity(n.min(input.len()));
                for _ in 0..n {
                    let len = u32::from_le_bytes(take_arr(input)?) as usize;
                    let k = std::str::from_utf8(take(input, len)?).map_err(|e| ValueError(e.to_string()))?;
                    m.push((k.to_string(), Value::decode(input)?));
                }
                Value::Map(m)
            }
            11 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                let s = std::str::from_utf8(take(input, n)?).map_err(|e| ValueError(e.to_string()))?;
                Value::Json(s.to_string())
            }
            t => return Err(ValueError(format!("unknown value tag {t}"))),
        })
    }
}

impl Value {
    /// Skips one encoded value at the front of `input` without building it.
    pub fn skip(input: &mut &[u8]) -> Result<(), ValueError> {
        let tag = take(input, 1)?[0];
        match tag {
            0 => {}
            1 | 2 | 11 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                take(input, n)?;
            }
            3 | 6 => {
                take(input, 4)?;
            }
            4 | 5 | 8 => {
                take(input, 8)?;
            }
            7 => {
                take(input, 1)?;
            }
            9 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                for _ in 0..n {
                    Value::skip(input)?;
                }
            }
            10 => {
                let n = u32::from_le_bytes(take_arr(input)?) as usize;
                for _ in 0..n {
                    let len = u32::from_le_bytes(take_arr(input)?) as usize;
                    take(input, len)?;
                    Value::skip(input)?;
                }
            }
            t => return Err(ValueError(format!("unknown value tag {t}"))),
        }
        Ok(())
    }
}

fn float_json(f: f64) -> Json {
    if f.is_nan() {
        Json::String("NaN".into())
    } else if f.is_infinite() {
        Json::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
    }
}

/// Takes `n` bytes from the front of `input`, advancing it; errors when it is shorter.
pub fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], ValueError> {
    if input.len() < n {
        return Err(ValueError("truncated value".into()));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

/// Takes an array of `N` bytes from the front of `input`, advancing it.
pub fn take_arr<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], ValueError> {
    let s = take(input, N)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_encoding_round_trips_every_type() {
        let values = vec![
            Value::Null,
            Value::Bytes(vec![0, 255, 7]),
            Value::String("héllo".into()),
            Value::Int32(-7),
            Value::Int64(i64::MIN),
            Value::Double(0.5),
            Value::Float(-1.25),
            Value::Bool(true),
            Value::UnixTimestamp(1_700_000_000),
            Value::List(vec![Value::Float(1.0), Value::Null, Value::Float(2.0)]),
            Value::Map(vec![
                ("rating".into(), Value::String("4.5".into())),
                ("n".into(), Value::Map(vec![("x".into(), Value::Int64(1))])),
            ]),
            Value::Json(r#"{"a": [1, 2]}"#.into()),
            Value::List(vec![Value::Json("1".into()), Value::Null]),
        ];
        for v in values {
            let mut buf = Vec::new();
            v.encode(&mut buf);
            let mut slice = buf.as_slice();
            assert_eq!(Value::decode(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
            // Skipping consumes exactly what decoding does.
            let mut skipped = buf.as_slice();
            Value::skip(&mut skipped).unwrap();
            assert!(skipped.is_empty());
            // Every strict prefix is rejected, never a panic.
            for cut in 0..buf.len() {
                let mut s = &buf[..cut];
                assert!(Value::decode(&mut s).is_err() || v == Value::Null);
            }
        }
    }

    #[test]
    fn json_encoding_follows_feast() {
        assert_eq!(Value::Double(f64::NAN).to_json(), Json::String("NaN".into()));
        assert_eq!(
            Value::Float(f32::NEG_INFINITY).to_json(),
            Json::String("-Infinity".into())
        );
        assert_eq!(Value::Bytes(b"abc".to_vec()).to_json(), Json::String("YWJj".into()));
        assert_eq!(
            Value::Int64(9_007_199_254_740_993).to_json().to_string(),
            "9007199254740993"
        );
        assert_eq!(
            Value::List(vec![Value::Int32(1), Value::Null]).to_json(),
            serde_json::json!([1, null])
        );
        // Maps and structs are objects; Json is its text, a string (as Feast's server sends it).
        assert_eq!(
            Value::Map(vec![("a".into(), Value::String("x".into())), ("b".into(), Value::Null)]).to_json(),
            serde_json::json!({"a": "x", "b": null})
        );
        assert_eq!(
            Value::Json("{\"k\": 1}".into()).to_json(),
            serde_json::json!("{\"k\": 1}")
        );
    }

    #[test]
    fn json_keys_are_typed_strictly() {
        assert_eq!(
            Value::from_json_key(&serde_json::json!(1001), ValueType::Int64).unwrap(),
            Value::Int64(1001)
        );
        assert!(Value::from_json_key(&serde_json::json!("1001"), ValueType::Int64).is_err());
        assert!(Value::from_json_key(&serde_json::json!(1.5), ValueType::Int64).is_err());
        assert!(Value::from_json_key(&serde_json::json!(3_000_000_000i64), ValueType::Int32).is_err());
        assert!(Value::from_json_key(&serde_json::json!(5), ValueType::String).is_err());
        assert_eq!(
            Value::from_json_key(&serde_json::json!("C1"), ValueType::String).unwrap(),
            Value::String("C1".into())
        );
    }
}
