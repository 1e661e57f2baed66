//! Feature values: the typed value model, its compact binary encoding for the online store,
//! Feast's JSON encoding, and conversion from Arrow columns.

use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field as ArrowField, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::scalar::ScalarValue;
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

    /// Bytes of the value inside Feast's entity-key serialization (v3).
    pub fn key_bytes(&self) -> Result<(u32, Vec<u8>), ValueError> {
        Ok(match self {
            Value::Bytes(b) => (1, b.clone()),
            Value::String(s) => (2, s.as_bytes().to_vec()),
            Value::Int32(i) => (3, i.to_le_bytes().to_vec()),
            Value::Int64(i) => (4, i.to_le_bytes().to_vec()),
            Value::UnixTimestamp(i) => (8, i.to_le_bytes().to_vec()),
            other => return Err(ValueError(format!("{other:?} cannot be part of an entity key"))),
        })
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
            t => return Err(ValueError(format!("unknown value tag {t}"))),
        })
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

pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], ValueError> {
    if input.len() < n {
        return Err(ValueError("truncated value".into()));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

pub(crate) fn take_arr<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], ValueError> {
    let s = take(input, N)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

/// The typed scalar of a value (null of `ty` for `Value::Null`).
fn scalar_of(v: &Value, ty: ValueType) -> datafusion::error::Result<ScalarValue> {
    Ok(match v {
        Value::Null => ScalarValue::try_from(&arrow_type(ty))?,
        Value::Bytes(b) => ScalarValue::Binary(Some(b.clone())),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Int32(i) => ScalarValue::Int32(Some(*i)),
        Value::Int64(i) => ScalarValue::Int64(Some(*i)),
        Value::Double(f) => ScalarValue::Float64(Some(*f)),
        Value::Float(f) => ScalarValue::Float32(Some(*f)),
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::UnixTimestamp(s) => ScalarValue::TimestampSecond(Some(*s), Some("UTC".into())),
        Value::List(items) => {
            let elem = ty.element().unwrap_or(ty);
            let scalars = items
                .iter()
                .map(|i| scalar_of(i, elem))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let elem_type = if elem == ValueType::UnixTimestamp {
                DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
            } else {
                arrow_type(elem)
            };
            ScalarValue::List(ScalarValue::new_list(&scalars, &elem_type, true))
        }
    })
}

/// Builds an Arrow array of Feast type `ty` (its [`arrow_type`]; timestamps in seconds, UTC)
/// from values.
pub fn values_to_array(values: &[Value], ty: ValueType) -> datafusion::error::Result<ArrayRef> {
    if values.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(&arrow_type(ty)));
    }
    let scalars = values
        .iter()
        .map(|v| scalar_of(v, ty))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    ScalarValue::iter_to_array(scalars)
}

/// The Arrow type a column is cast to before reading values of Feast type `ty`.
pub fn arrow_type(ty: ValueType) -> DataType {
    match ty.element() {
        Some(e) => DataType::List(Arc::new(ArrowField::new("item", arrow_type(e), true))),
        None => match ty {
            ValueType::Bytes => DataType::Binary,
            ValueType::String => DataType::Utf8,
            ValueType::Int32 => DataType::Int32,
            ValueType::Int64 => DataType::Int64,
            ValueType::Double => DataType::Float64,
            ValueType::Float => DataType::Float32,
            ValueType::Bool => DataType::Boolean,
            _ => DataType::Int64,
        },
    }
}

/// The Feast type of an Arrow column type, if it has one.
pub fn value_type_of(dt: &DataType) -> Option<ValueType> {
    Some(match dt {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ValueType::Bytes,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ValueType::String,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => ValueType::Int32,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ValueType::Int64,
        DataType::Float16 | DataType::Float32 => ValueType::Float,
        DataType::Float64 => ValueType::Double,
        DataType::Boolean => ValueType::Bool,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => ValueType::UnixTimestamp,
        DataType::List(f) | DataType::LargeList(f) => value_type_of(f.data_type())?.list_of()?,
        _ => return None,
    })
}

/// Event times of a timestamp column as nanoseconds since the epoch (UTC; naive timestamps are
/// taken as UTC, as Feast does).
pub fn timestamps_nanos(array: &ArrayRef) -> Result<Vec<Option<i64>>, ValueError> {
    fn collect<T: datafusion::arrow::datatypes::ArrowPrimitiveType<Native = i64>>(
        a: &dyn Array,
        mul: i64,
    ) -> Vec<Option<i64>> {
        a.as_primitive::<T>()
            .iter()
            .map(|v| v.map(|x| x.saturating_mul(mul)))
            .collect()
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => collect::<TimestampSecondType>(array, 1_000_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => collect::<TimestampMillisecondType>(array, 1_000_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => collect::<TimestampMicrosecondType>(array, 1_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => collect::<TimestampNanosecondType>(array, 1),
        other => return Err(ValueError(format!("expected a timestamp column, found {other}"))),
    })
}

/// Reads every row of `array` as a value of Feast type `ty` (casting numeric widths as needed).
pub fn column_values(array: &ArrayRef, ty: ValueType) -> Result<Vec<Value>, ValueError> {
    if ty == ValueType::UnixTimestamp {
        if let DataType::Timestamp(_, _) = array.data_type() {
            return Ok(timestamps_nanos(array)?
                .into_iter()
                .map(|v| {
                    v.map(|n| Value::UnixTimestamp(n.div_euclid(1_000_000_000)))
                        .unwrap_or(Value::Null)
                })
                .collect());
        }
    }
    let target = arrow_type(ty);
    let array = if array.data_type() == &target {
        Arc::clone(array)
    } else {
        cast(array, &target).map_err(|e| ValueError(format!("cannot read {} as {ty}: {e}", array.data_type())))?
    };
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    if let Some(elem) = ty.element() {
        let list = array.as_list::<i32>();
        for i in 0..n {
            if list.is_null(i) {
                out.push(Value::Null);
            } else {
                out.push(Value::List(column_values(&list.value(i), elem)?));
            }
        }
        return Ok(out);
    }
    macro_rules! prim {
        ($t:ty, $variant:ident) => {{
            let a = array.as_primitive::<$t>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::$variant(a.value(i))
                });
            }
        }};
    }
    match ty {
        ValueType::Int32 => prim!(Int32Type, Int32),
        ValueType::Int64 => prim!(Int64Type, Int64),
        ValueType::UnixTimestamp => prim!(Int64Type, UnixTimestamp),
        ValueType::Float => prim!(Float32Type, Float),
        ValueType::Double => prim!(Float64Type, Double),
        ValueType::Bool => {
            let a = array.as_boolean();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Bool(a.value(i))
                });
            }
        }
        ValueType::String => {
            let a = array.as_string::<i32>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::String(a.value(i).to_string())
                });
            }
        }
        ValueType::Bytes => {
            let a = array.as_binary::<i32>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Bytes(a.value(i).to_vec())
                });
            }
        }
        _ => return Err(ValueError(format!("unsupported type {ty}"))),
    }
    Ok(out)
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
        ];
        for v in values {
            let mut buf = Vec::new();
            v.encode(&mut buf);
            let mut slice = buf.as_slice();
            assert_eq!(Value::decode(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
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
