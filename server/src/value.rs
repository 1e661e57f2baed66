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
