//! Feast's `Value` message (`feast/types/Value.proto`) as Larder's [`Value`], both ways.
//!
//! An empty message (no field set) and `null_val` are `Null`, as Feast reads them. Sets, UUIDs,
//! decimals and zoned timestamps have no Larder type: converting them is an error naming the
//! kind, never a silent null.

use larder_protocol::value::Value;

use crate::proto::types as ft;
use ft::value::Val;

/// A Feast value Larder has no type for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Feast value of kind {0} is not supported by Larder")]
pub struct UnsupportedValue(pub &'static str);

fn map_entries(m: &ft::Map) -> Result<Vec<(String, Value)>, UnsupportedValue> {
    m.val.iter().map(|(k, v)| Ok((k.clone(), from_feast(v)?))).collect()
}

/// Larder's value for a Feast `Value`.
pub fn from_feast(v: &ft::Value) -> Result<Value, UnsupportedValue> {
    let list = |items: Vec<Value>| Value::List(items);
    Ok(match &v.val {
        None | Some(Val::NullVal(_)) => Value::Null,
        Some(Val::BytesVal(b)) => Value::Bytes(b.clone()),
        Some(Val::StringVal(s)) => Value::String(s.clone()),
        Some(Val::Int32Val(i)) => Value::Int32(*i),
        Some(Val::Int64Val(i)) => Value::Int64(*i),
        Some(Val::DoubleVal(d)) => Value::Double(*d),
        Some(Val::FloatVal(f)) => Value::Float(*f),
        Some(Val::BoolVal(b)) => Value::Bool(*b),
        Some(Val::UnixTimestampVal(t)) => Value::UnixTimestamp(*t),
        Some(Val::BytesListVal(l)) => list(l.val.iter().cloned().map(Value::Bytes).collect()),
        Some(Val::StringListVal(l)) => list(l.val.iter().cloned().map(Value::String).collect()),
        Some(Val::Int32ListVal(l)) => list(l.val.iter().copied().map(Value::Int32).collect()),
        Some(Val::Int64ListVal(l)) => list(l.val.iter().copied().map(Value::Int64).collect()),
        Some(Val::DoubleListVal(l)) => list(l.val.iter().copied().map(Value::Double).collect()),
        Some(Val::FloatListVal(l)) => list(l.val.iter().copied().map(Value::Float).collect()),
        Some(Val::BoolListVal(l)) => list(l.val.iter().copied().map(Value::Bool).collect()),
        Some(Val::UnixTimestampListVal(l)) => list(l.val.iter().copied().map(Value::UnixTimestamp).collect()),
        Some(Val::MapVal(m)) | Some(Val::StructVal(m)) => Value::Map(map_entries(m)?),
        Some(Val::MapListVal(l)) | Some(Val::StructListVal(l)) => list(
            l.val
                .iter()
                .map(|m| map_entries(m).map(Value::Map))
                .collect::<Result<_, _>>()?,
        ),
        Some(Val::JsonVal(j)) => Value::Json(j.clone()),
        Some(Val::JsonListVal(l)) => list(l.val.iter().cloned().map(Value::Json).collect()),
        Some(other) => return Err(UnsupportedValue(kind(other))),
    })
}

/// Feast's message for a Larder value. A list's Feast type is taken from its first element;
/// an empty list (whose element type a value alone does not tell) is written as an empty
/// value, which Feast reads as null.
pub fn to_feast(v: &Value) -> ft::Value {
    let val = match v {
        Value::Null => None,
        Value::Bytes(b) => Some(Val::BytesVal(b.clone())),
        Value::String(s) => Some(Val::StringVal(s.clone())),
        Value::Int32(i) => Some(Val::Int32Val(*i)),
        Value::Int64(i) => Some(Val::Int64Val(*i)),
        Value::Double(d) => Some(Val::DoubleVal(*d)),
        Value::Float(f) => Some(Val::FloatVal(*f)),
        Value::Bool(b) => Some(Val::BoolVal(*b)),
        Value::UnixTimestamp(t) => Some(Val::UnixTimestampVal(*t)),
        Value::Json(j) => Some(Val::JsonVal(j.clone())),
        Value::Map(entries) => Some(Val::MapVal(to_map(entries))),
        Value::List(items) => list_to_feast(items),
    };
    ft::Value { val }
}

fn to_map(entries: &[(String, Value)]) -> ft::Map {
    ft::Map {
        val: entries.iter().map(|(k, v)| (k.clone(), to_feast(v))).collect(),
    }
}

fn list_to_feast(items: &[Value]) -> Option<Val> {
    macro_rules! collect {
        ($variant:ident, $list:ident, $pat:pat => $e:expr) => {
            Val::$variant(ft::$list {
                val: items
                    .iter()
                    .filter_map(|x| match x {
                        $pat => Some($e),
                        _ => None,
                    })
                    .collect(),
            })
        };
    }
    Some(match items.first()? {
        Value::Bytes(_) => collect!(BytesListVal, BytesList, Value::Bytes(b) => b.clone()),
        Value::String(_) => collect!(StringListVal, StringList, Value::String(s) => s.clone()),
        Value::Int32(_) => collect!(Int32ListVal, Int32List, Value::Int32(i) => *i),
        Value::Int64(_) => collect!(Int64ListVal, Int64List, Value::Int64(i) => *i),
        Value::Double(_) => collect!(DoubleListVal, DoubleList, Value::Double(d) => *d),
        Value::Float(_) => collect!(FloatListVal, FloatList, Value::Float(f) => *f),
        Value::Bool(_) => collect!(BoolListVal, BoolList, Value::Bool(b) => *b),
        Value::UnixTimestamp(_) => collect!(UnixTimestampListVal, Int64List, Value::UnixTimestamp(t) => *t),
        Value::Json(_) => collect!(JsonListVal, StringList, Value::Json(j) => j.clone()),
        Value::Map(_) => Val::MapListVal(ft::MapList {
            val: items
                .iter()
                .filter_map(|x| match x {
                    Value::Map(m) => Some(to_map(m)),
                    _ => None,
                })
                .collect(),
        }),
        Value::Null | Value::List(_) => return None,
    })
}

fn kind(v: &Val) -> &'static str {
    match v {
        Val::BytesSetVal(_)
        | Val::StringSetVal(_)
        | Val::Int32SetVal(_)
        | Val::Int64SetVal(_)
        | Val::DoubleSetVal(_)
        | Val::FloatSetVal(_)
        | Val::BoolSetVal(_)
        | Val::UnixTimestampSetVal(_)
        | Val::SetVal(_) => "set",
        Val::UuidVal(_) | Val::TimeUuidVal(_) | Val::UuidListVal(_) | Val::TimeUuidListVal(_) => "uuid",
        Val::UuidSetVal(_) | Val::TimeUuidSetVal(_) => "uuid set",
        Val::DecimalVal(_) | Val::DecimalListVal(_) | Val::DecimalSetVal(_) => "decimal",
        Val::ListVal(_) => "nested list",
        Val::ScalarMapVal(_) => "scalar map",
        Val::ZonedTimestampVal(_) => "zoned timestamp",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Feast's serialized values (FEAST_REFERENCE.md section 5, made with Feast's own code).
    fn decode(hex: &str) -> Value {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        from_feast(&ft::Value::decode(bytes.as_slice()).unwrap()).unwrap()
    }

    #[test]
    fn feast_serialized_values_decode() {
        assert_eq!(decode("29000000000000e03f"), Value::Double(0.5));
        assert_eq!(decode("202a"), Value::Int64(42));
        assert_eq!(decode("1203616263"), Value::String("abc".into()));
        assert_eq!(
            decode("82010a0a080000803f00000040"),
            Value::List(vec![Value::Float(1.0), Value::Float(2.0)])
        );
        assert_eq!(decode(""), Value::Null);
    }

    #[test]
    fn values_round_trip_through_feast_messages() {
        let values = [
            Value::Double(0.25),
            Value::Int64(-7),
            Value::String("x".into()),
            Value::Bool(true),
            Value::List(vec![Value::Float(1.5), Value::Float(-2.0)]),
            Value::List(vec![Value::String("a".into())]),
            Value::Map(vec![
                ("a".into(), Value::Int32(1)),
                ("b".into(), Value::String("z".into())),
            ]),
            Value::Json("{\"k\": 1}".into()),
            Value::Null,
        ];
        for v in values {
            let bytes = to_feast(&v).encode_to_vec();
            let back = from_feast(&ft::Value::decode(bytes.as_slice()).unwrap()).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn sets_are_refused_by_name() {
        let v = ft::Value {
            val: Some(Val::Int64SetVal(ft::Int64Set { val: vec![1] })),
        };
        assert_eq!(from_feast(&v).unwrap_err(), UnsupportedValue("set"));
    }
}
