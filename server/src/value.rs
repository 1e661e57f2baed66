//! Conversion between feature values ([`Value`], defined in `larder-protocol`) and Arrow
//! columns and scalars.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field as ArrowField, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::scalar::ScalarValue;
use larder_registry::ValueType;

pub use larder_protocol::value::{Value, ValueError};

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
        // Maps, structs and JSON documents travel as JSON text in the arrays Larder builds
        // from stored values (see [`arrow_type`]).
        Value::Map(_) => ScalarValue::Utf8(Some(v.to_json().to_string())),
        Value::Json(text) => ScalarValue::Utf8(Some(text.clone())),
    })
}

/// The value at row `i` of any Arrow array, typed by the array itself: integers, floats,
/// strings, bytes, booleans, timestamps (seconds), lists, structs and maps (as
/// [`Value::Map`]), dictionary-encoded columns through their values.
pub fn any_value(array: &dyn Array, i: usize) -> Value {
    use datafusion::arrow::datatypes as t;
    if array.is_null(i) {
        return Value::Null;
    }
    macro_rules! int {
        ($ty:ty, $variant:ident) => {
            Value::$variant(array.as_primitive::<$ty>().value(i).into())
        };
    }
    match array.data_type() {
        DataType::Int8 => int!(t::Int8Type, Int32),
        DataType::Int16 => int!(t::Int16Type, Int32),
        DataType::Int32 => int!(t::Int32Type, Int32),
        DataType::Int64 => int!(t::Int64Type, Int64),
        DataType::UInt8 => int!(t::UInt8Type, Int32),
        DataType::UInt16 => int!(t::UInt16Type, Int32),
        DataType::UInt32 => int!(t::UInt32Type, Int64),
        DataType::UInt64 => Value::Int64(array.as_primitive::<t::UInt64Type>().value(i) as i64),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(i).to_vec()),
        DataType::Timestamp(_, _) => {
            let a: ArrayRef = array.slice(i, 1);
            match timestamps_nanos(&a) {
                Ok(v) => v[0]
                    .map(|n| Value::UnixTimestamp(n.div_euclid(1_000_000_000)))
                    .unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        }
        DataType::List(_) => {
            let l = array.as_list::<i32>().value(i);
            Value::List((0..l.len()).map(|j| any_value(l.as_ref(), j)).collect())
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>().value(i);
            Value::List((0..l.len()).map(|j| any_value(l.as_ref(), j)).collect())
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Map(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), any_value(c.as_ref(), i)))
                    .collect(),
            )
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let entries = m.value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Map(
                (0..entries.len())
                    .map(|j| {
                        let k = match any_value(keys.as_ref(), j) {
                            Value::String(s) => s,
                            other => other.to_json().to_string(),
                        };
                        (k, any_value(values.as_ref(), j))
                    })
                    .collect(),
            )
        }
        DataType::Dictionary(_, value_type) => match cast(&array.slice(i, 1), value_type) {
            Ok(plain) => any_value(plain.as_ref(), 0),
            Err(_) => Value::Null,
        },
        _ => Value::Null,
    }
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
            ValueType::Map | ValueType::Struct | ValueType::Json => DataType::Utf8,
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
        DataType::Struct(_) => ValueType::Struct,
        DataType::Map(_, _) => ValueType::Map,
        DataType::Dictionary(_, v) => value_type_of(v)?,
        DataType::List(f) | DataType::LargeList(f) => value_type_of(f.data_type())?.list_of()?,
        _ => return None,
    })
}

/// Whether a column of Arrow type `dt` given by a caller (an entity dataframe) can stand for
/// values of Feast type `ty` without a lossy or surprising conversion: the same type, another
/// width of integer or float, integers for floats, and an all-null column. A string for a
/// number, a float for an integer key or a number for a string are not.
pub fn column_fits(dt: &DataType, ty: ValueType) -> bool {
    fn scalar_fits(have: ValueType, want: ValueType) -> bool {
        let int = |t| matches!(t, ValueType::Int32 | ValueType::Int64);
        let float = |t| matches!(t, ValueType::Float | ValueType::Double);
        have == want || (int(have) && int(want)) || (float(want) && (float(have) || int(have)))
    }
    if dt == &DataType::Null {
        return true;
    }
    let Some(have) = value_type_of(dt) else {
        return false;
    };
    match (have.element(), ty.element()) {
        (Some(h), Some(w)) => scalar_fits(h, w),
        (None, None) => scalar_fits(have, ty),
        _ => false,
    }
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

/// Rows of a map, struct or JSON column (or a list of them). A JSON field reads a string column
/// as its text and any other column as the JSON of its values; a map or struct field needs a
/// struct or map column.
fn nested_values(array: &ArrayRef, ty: ValueType) -> Result<Vec<Value>, ValueError> {
    let elem = ty.element();
    let base = elem.unwrap_or(ty);
    let as_json = |v: Value| match v {
        Value::Null => Value::Null,
        Value::String(s) => Value::Json(s),
        other => Value::Json(other.to_json().to_string()),
    };
    let one = |v: Value| -> Result<Value, ValueError> {
        match (base, v) {
            (_, Value::Null) => Ok(Value::Null),
            (ValueType::Json, v) => Ok(as_json(v)),
            (ValueType::Map | ValueType::Struct, v @ Value::Map(_)) => Ok(v),
            (t, v) => Err(ValueError(format!("cannot read {v:?} as {t}"))),
        }
    };
    (0..array.len())
        .map(|i| match (elem, any_value(array.as_ref(), i)) {
            (_, Value::Null) => Ok(Value::Null),
            (Some(_), Value::List(items)) => items
                .into_iter()
                .map(one)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List),
            (Some(_), other) => Err(ValueError(format!("expected a list for {ty}, got {other:?}"))),
            (None, v) => one(v),
        })
        .collect()
}

/// Reads every row of `array` as a value of Feast type `ty` (casting numeric widths as needed).
pub fn column_values(array: &ArrayRef, ty: ValueType) -> Result<Vec<Value>, ValueError> {
    if matches!(
        ty.element().unwrap_or(ty),
        ValueType::Map | ValueType::Struct | ValueType::Json
    ) {
        return nested_values(array, ty);
    }
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
