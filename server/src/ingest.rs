//! Writes that do not come from the offline store: Feast's `push` and `write_to_online_store`.
//! Rows go through the same typing and key encoding as materialized ones.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use indexmap::IndexMap;
use larder_registry::{DataSource, FeatureView, RegistryDoc};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::key::serialize_entity_key_into;
use crate::online::OnlineRow;
use crate::value::{value_type_of, values_to_array, Value};
use larder_protocol::json::{time_from_json, value_from_json};

/// The views fed by the push source `name`; Feast answers 422 when there is none.
pub fn views_for_push_source<'a>(doc: &'a RegistryDoc, name: &str) -> Result<Vec<&'a FeatureView>> {
    if !matches!(doc.data_source(name), Some(DataSource::Push(_))) {
        return Err(Error::NotFound {
            class: "PushSourceNotFoundException",
            message: format!("Unable to find push source '{name}'."),
        });
    }
    Ok(doc.feature_views.iter().filter(|v| v.source == name).collect())
}

/// Converts Feast's columnar `df` into online rows of `view`. Errors name `df.<column>[row]`.
pub fn rows_from_columns(
    doc: &RegistryDoc,
    view: &FeatureView,
    df: &IndexMap<String, Vec<Json>>,
) -> Result<Vec<OnlineRow>> {
    let n = df.values().next().map(Vec::len).unwrap_or(0);
    for (k, col) in df {
        if col.len() != n {
            return Err(Error::invalid(
                format!("df.{k}"),
                format!("has {} values but other columns have {n}", col.len()),
            ));
        }
    }
    if n == 0 {
        return Err(Error::invalid("df", "no rows"));
    }
    let source = doc.batch_source(view);
    let ts_col = source
        .map(|s| s.timestamp_field.as_str())
        .filter(|c| df.contains_key(*c))
        .or_else(|| df.contains_key("event_timestamp").then_some("event_timestamp"))
        .ok_or_else(|| {
            let name = source
                .map(|s| s.timestamp_field.clone())
                .unwrap_or_else(|| "event_timestamp".into());
            Error::invalid(
                format!("df.{name}"),
                format!("the event timestamp column `{name}` is missing"),
            )
        })?;
    let created_col = source
        .and_then(|s| s.created_timestamp_column.as_deref())
        .filter(|c| df.contains_key(*c))
        .or_else(|| df.contains_key("created").then_some("created"));
    for key in &view.entity_columns {
        if !df.contains_key(&key.name) {
            return Err(Error::invalid(
                format!("df.{}", key.name),
                format!("join key `{}` of feature view {} is missing", key.name, view.name),
            ));
        }
    }
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let mut keys = Vec::with_capacity(view.entity_columns.len());
        for k in &view.entity_columns {
            let v = Value::from_json_key(&df[&k.name][i], k.dtype)
                .map_err(|e| Error::invalid(format!("df.{}[{i}]", k.name), e.0))?;
            keys.push((k.name.as_str(), v));
        }
        let pairs: Vec<(&str, &Value)> = keys.iter().map(|(k, v)| (*k, v)).collect();
        let mut key = Vec::with_capacity(48);
        serialize_entity_key_into(&pairs, &mut key)?;
        let event_ts = time_from_json(&df[ts_col][i]).map_err(|e| Error::invalid(format!("df.{ts_col}[{i}]"), e))?;
        let created_ts = match created_col {
            Some(c) if !df[c][i].is_null() => {
                Some(time_from_json(&df[c][i]).map_err(|e| Error::invalid(format!("df.{c}[{i}]"), e))?)
            }
            _ => None,
        };
        let mut values = Vec::with_capacity(view.features.len());
        for f in &view.features {
            let v = match df.get(&f.name) {
                Some(col) => {
                    value_from_json(&col[i], f.dtype).map_err(|e| Error::invalid(format!("df.{}[{i}]", f.name), e))?
                }
                None => Value::Null,
            };
            values.push((f.name.clone(), v));
        }
        rows.push(OnlineRow {
            key,
            event_ts,
            created_ts,
            values,
        });
    }
    Ok(rows)
}

/// True for struct and map columns (and lists of them): built from the JSON values directly.
fn nested(dt: &DataType) -> bool {
    match dt {
        DataType::Struct(_) | DataType::Map(_, _) => true,
        DataType::List(f) | DataType::LargeList(f) => nested(f.data_type()),
        _ => false,
    }
}

/// A struct or map column of the source's exact type from JSON values (objects), through
/// Arrow's JSON decoder; a value that does not fit is an error naming its cell.
fn nested_column(field: &Arc<datafusion::arrow::datatypes::Field>, values: &[Json]) -> Result<ArrayRef> {
    use datafusion::arrow::json::ReaderBuilder;
    let name = field.name();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![Arc::clone(field)]));
    let bad = |i: Option<usize>, e: String| {
        let loc = i.map_or(format!("df.{name}"), |i| format!("df.{name}[{i}]"));
        Error::invalid(loc, format!("cannot store as {}: {e}", field.data_type()))
    };
    let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
        .build_decoder()
        .map_err(|e| bad(None, e.to_string()))?;
    for (i, v) in values.iter().enumerate() {
        // A JSON text given for a struct (as Feast's clients send map values) is its document.
        let v = match v {
            Json::String(text) => serde_json::from_str(text).map_err(|e| bad(Some(i), e.to_string()))?,
            other => other.clone(),
        };
        let row = serde_json::json!({ name.as_str(): v });
        decoder
            .serialize(std::slice::from_ref(&row))
            .map_err(|e| bad(Some(i), e.to_string()))?;
    }
    let batch = decoder
        .flush()
        .map_err(|e| bad(None, e.to_string()))?
        .ok_or_else(|| bad(None, "no rows".into()))?;
    Ok(Arc::clone(batch.column(0)))
}

/// Converts Feast's columnar `df` into one Arrow batch with exactly `schema` (a batch source's),
/// for an append to the offline store. Columns the source has but `df` lacks are null; a
/// column the source does not have is refused. Errors name `df.<column>[row]`.
pub fn offline_batch(df: &IndexMap<String, Vec<Json>>, schema: &SchemaRef, source: &str) -> Result<RecordBatch> {
    let n = df.values().next().map(Vec::len).unwrap_or(0);
    if let Some(extra) = df.keys().find(|k| schema.field_with_name(k).is_err()) {
        return Err(Error::invalid(
            format!("df.{extra}"),
            format!("`{extra}` is not a column of the offline source {source}"),
        ));
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name();
        let dt = field.data_type();
        let Some(values) = df.get(name) else {
            if !field.is_nullable() {
                return Err(Error::invalid(
                    format!("df.{name}"),
                    format!("column `{name}` of the offline source {source} is missing"),
                ));
            }
            columns.push(new_null_array(dt, n));
            continue;
        };
        let array: ArrayRef = if let DataType::Timestamp(_, tz) = dt {
            let mut nanos = Vec::with_capacity(n);
            for (i, v) in values.iter().enumerate() {
                nanos.push(if v.is_null() {
                    None
                } else {
                    Some(time_from_json(v).map_err(|e| Error::invalid(format!("df.{name}[{i}]"), e))?)
                });
            }
            Arc::new(TimestampNanosecondArray::from(nanos).with_timezone_opt(tz.clone()))
        } else if nested(dt) {
            nested_column(field, values)?
        } else {
            let ty = value_type_of(dt).ok_or_else(|| {
                Error::invalid(
                    format!("df.{name}"),
                    format!("the source column type {dt} cannot be written"),
                )
            })?;
            let mut parsed = Vec::with_capacity(n);
            for (i, v) in values.iter().enumerate() {
                parsed.push(value_from_json(v, ty).map_err(|e| Error::invalid(format!("df.{name}[{i}]"), e))?);
            }
            values_to_array(&parsed, ty)?
        };
        let array = if array.data_type() == dt {
            array
        } else {
            cast(&array, dt).map_err(|e| Error::invalid(format!("df.{name}"), format!("cannot store as {dt}: {e}")))?
        };
        columns.push(array);
    }
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| Error::Internal(e.to_string()))
}
