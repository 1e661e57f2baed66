//! Feast's `ValueType` enum (`feast/value_type.py`, `Value.proto`), the types of fields and keys.

use serde::{Deserialize, Serialize};

/// A field's type, named as Feast's `ValueType` enum (`INT64`, `FLOAT_LIST`...).
///
/// `Float32` in Feast's type system is `FLOAT` here and `Float64` is `DOUBLE`, as in Feast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ValueType {
    Bytes,
    String,
    Int32,
    Int64,
    Double,
    Float,
    Bool,
    UnixTimestamp,
    BytesList,
    StringList,
    Int32List,
    Int64List,
    DoubleList,
    FloatList,
    BoolList,
    UnixTimestampList,
    /// Feast's `Map`: string keys to values of any type.
    Map,
    MapList,
    /// Feast's `Json`: a JSON document (text).
    Json,
    JsonList,
    /// Feast's `Struct({...})`: named, typed fields.
    Struct,
    StructList,
}

impl ValueType {
    /// Feast's proto enum number (used by the entity-key encoding).
    pub fn proto_number(self) -> u32 {
        match self {
            ValueType::Bytes => 1,
            ValueType::String => 2,
            ValueType::Int32 => 3,
            ValueType::Int64 => 4,
            ValueType::Double => 5,
            ValueType::Float => 6,
            ValueType::Bool => 7,
            ValueType::UnixTimestamp => 8,
            ValueType::BytesList => 11,
            ValueType::StringList => 12,
            ValueType::Int32List => 13,
            ValueType::Int64List => 14,
            ValueType::DoubleList => 15,
            ValueType::FloatList => 16,
            ValueType::BoolList => 17,
            ValueType::UnixTimestampList => 18,
            ValueType::Map => 20,
            ValueType::MapList => 21,
            ValueType::Json => 32,
            ValueType::JsonList => 33,
            ValueType::Struct => 34,
            ValueType::StructList => 35,
        }
    }

    /// The element type of a list type; `None` for scalars.
    pub fn element(self) -> Option<ValueType> {
        Some(match self {
            ValueType::BytesList => ValueType::Bytes,
            ValueType::StringList => ValueType::String,
            ValueType::Int32List => ValueType::Int32,
            ValueType::Int64List => ValueType::Int64,
            ValueType::DoubleList => ValueType::Double,
            ValueType::FloatList => ValueType::Float,
            ValueType::BoolList => ValueType::Bool,
            ValueType::UnixTimestampList => ValueType::UnixTimestamp,
            ValueType::MapList => ValueType::Map,
            ValueType::JsonList => ValueType::Json,
            ValueType::StructList => ValueType::Struct,
            _ => return None,
        })
    }

    /// The list type whose elements are of this type; `None` for list types.
    pub fn list_of(self) -> Option<ValueType> {
        Some(match self {
            ValueType::Bytes => ValueType::BytesList,
            ValueType::String => ValueType::StringList,
            ValueType::Int32 => ValueType::Int32List,
            ValueType::Int64 => ValueType::Int64List,
            ValueType::Double => ValueType::DoubleList,
            ValueType::Float => ValueType::FloatList,
            ValueType::Bool => ValueType::BoolList,
            ValueType::UnixTimestamp => ValueType::UnixTimestampList,
            ValueType::Map => ValueType::MapList,
            ValueType::Json => ValueType::JsonList,
            ValueType::Struct => ValueType::StructList,
            _ => return None,
        })
    }

    /// True for the types Feast accepts as entity join keys.
    pub fn is_valid_key(self) -> bool {
        matches!(
            self,
            ValueType::Bytes | ValueType::String | ValueType::Int32 | ValueType::Int64 | ValueType::UnixTimestamp
        )
    }

    /// Whether the type is a number (what sum, mean, min and max aggregate).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ValueType::Int32 | ValueType::Int64 | ValueType::Float | ValueType::Double
        )
    }

    /// True when a source column of type `self` can be read as a field declared `declared`
    /// without losing meaning (same type, or a numeric widening/narrowing within ints or floats).
    pub fn compatible_with(self, declared: ValueType) -> bool {
        use ValueType::*;
        if self == declared {
            return true;
        }
        let int = |t| matches!(t, Int32 | Int64);
        let float = |t| matches!(t, Float | Double);
        match (self.element(), declared.element()) {
            (Some(a), Some(b)) => a.compatible_with(b),
            (None, None) => {
                (int(self) && int(declared))
                    || (float(self) && float(declared))
                    || (int(self) && float(declared))
                    || (self == UnixTimestamp && declared == Int64)
                    || (self == Int64 && declared == UnixTimestamp)
                    // JSON documents are stored as text; a map or struct column can hold
                    // either kind of named values.
                    || (self == String && declared == Json)
                    || (matches!(self, Map | Struct) && matches!(declared, Map | Struct))
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        write!(f, "{}", s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}
