//! The `get_online_features` answer as an Arrow IPC stream, for batch-scoring clients that ask
//! with `Accept: application/vnd.apache.arrow.stream` (the SDK does for large requests): one
//! record batch, one row per entity row. Every output `name` is three columns: `name` (the
//! values, typed as the feature is; null where Feast's JSON has null), `name__status`
//! (`PRESENT`, `NOT_FOUND`, `OUTSIDE_MAX_AGE`) and `name__event_timestamp` (UTC, ns; the epoch
//! where the JSON answer has it). Same request, same cells as the JSON answer; a value column's
//! field metadata `larder.dtype` names its Feast type (maps, structs and JSON documents travel
//! as JSON text).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::ipc::writer::StreamWriter;

use crate::error::{Error, Result};
use crate::serving::OnlineResponse;
use crate::value::values_to_array;

/// The answer as one record batch (see the module doc).
pub fn response_batch(r: &OnlineResponse) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(r.columns.len() * 3);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(r.columns.len() * 3);
    let utc: Arc<str> = Arc::from("UTC");
    for ((name, dtype), col) in r.feature_names.iter().zip(&r.dtypes).zip(&r.columns) {
        let values = values_to_array(&col.values, *dtype).map_err(|e| Error::Internal(e.to_string()))?;
        // The Feast type, for clients that map maps and JSON documents (sent as JSON text).
        let meta = std::collections::HashMap::from([("larder.dtype".to_string(), dtype.to_string())]);
        fields.push(Field::new(name, values.data_type().clone(), true).with_metadata(meta));
        arrays.push(values);
        fields.push(Field::new(format!("{name}__status"), DataType::Utf8, false));
        arrays.push(Arc::new(StringArray::from_iter_values(
            col.statuses.iter().map(|s| s.as_str()),
        )));
        fields.push(Field::new(
            format!("{name}__event_timestamp"),
            DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::clone(&utc))),
            false,
        ));
        arrays.push(Arc::new(
            TimestampNanosecondArray::from(col.event_timestamps.clone()).with_timezone(Arc::clone(&utc)),
        ));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| Error::Internal(e.to_string()))
}

/// The answer as an Arrow IPC stream.
pub fn response_stream(r: &OnlineResponse) -> Result<Vec<u8>> {
    let batch = response_batch(r)?;
    let mut out = Vec::new();
    let internal = |e: datafusion::arrow::error::ArrowError| Error::Internal(e.to_string());
    let mut w = StreamWriter::try_new(&mut out, &batch.schema()).map_err(internal)?;
    w.write(&batch).map_err(internal)?;
    w.finish().map_err(internal)?;
    drop(w);
    Ok(out)
}
