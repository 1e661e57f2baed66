//! Logging of served features, as Feast's (Go) feature server logs them: with
//! `feature_server: {feature_logging: {enabled: true}}` in `feature_store.yaml`, every online
//! read of a feature service that has a `logging_config` (a `FileLoggingDestination`) is
//! logged — sampled by the service's `sample_rate`, per request — into Parquet files in the
//! destination directory, in Feast's log schema (`FeatureServiceLoggingSource.get_schema`):
//! per projection its join keys (or, for an on-demand view, its request fields), then per
//! feature `name__feature`, `name__feature__timestamp` and `name__feature__status` (Feast's
//! `FieldStatus` numbers), then `__log_timestamp`, `__log_date` and `__request_id`; one row per
//! entity row. These are the files `write_logged_features` writes and Feast's offline stores
//! read as the service's logs.
//!
//! A request never waits for its log: rows go to an in-memory queue of at most
//! `queue_capacity` rows (a request that does not fit is not logged and is counted in
//! `larder_feature_log_dropped_total`); a background task writes each service's rows every
//! `write_to_disk_interval_secs`, and at shutdown ([`FeatureLogger::flush`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampSecondArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use larder_registry::{FeatureService, RegistryDoc, ValueType};
use tokio::sync::{mpsc, oneshot};

use crate::config::FeatureLoggingConfig;
use crate::error::{Error, Result};
use crate::serving::{FieldStatus, OnlineRequest, OnlineResponse};
use crate::value::{values_to_array, Value};

/// Feast's log columns after the features.
pub const LOG_TIMESTAMP: &str = "__log_timestamp";
/// See [`LOG_TIMESTAMP`].
pub const LOG_DATE: &str = "__log_date";
/// See [`LOG_TIMESTAMP`].
pub const REQUEST_ID: &str = "__request_id";

/// Feast's `FieldStatus` number of a status.
fn status_number(s: FieldStatus) -> i32 {
    match s {
        FieldStatus::Present => 1,
        FieldStatus::NotFound => 3,
        FieldStatus::OutsideMaxAge => 4,
    }
}

/// The Arrow type of a logged value of Feast type `ty` (Feast's `FEAST_TYPE_TO_ARROW_TYPE`;
/// maps, structs and JSON documents, which Feast's table lacks, as their JSON text).
fn log_type(ty: ValueType) -> DataType {
    match ty {
        ValueType::UnixTimestamp => DataType::Timestamp(TimeUnit::Second, None),
        other => crate::value::arrow_type(other),
    }
}

/// A column of the log table, before its values.
enum Source {
    /// Values of the request's `entities.<name>` (a join key or request field).
    Request(String, ValueType),
    /// The answer's column `index`: its values, timestamps or statuses.
    Values(usize, ValueType),
    Timestamps(usize),
    Statuses(usize),
}

/// The rows one answer logs, in Feast's log schema (see the module doc).
pub fn log_batch(
    doc: &RegistryDoc,
    service: &FeatureService,
    req: &OnlineRequest,
    resp: &OnlineResponse,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<RecordBatch> {
    fn push(columns: &mut Vec<(String, Source)>, name: String, source: Source) {
        if !columns.iter().any(|(n, _)| *n == name) {
            columns.push((name, source));
        }
    }
    let mut columns: Vec<(String, Source)> = Vec::new();
    let answer = |name: &str| resp.feature_names.iter().position(|n| n == name);
    for p in &service.features {
        let label = p.alias.as_deref().unwrap_or(&p.view);
        let features: Vec<(String, ValueType)> = if let Some(v) = doc.feature_view(&p.view) {
            for k in &v.entity_columns {
                push(&mut columns, k.name.clone(), Source::Request(k.name.clone(), k.dtype));
            }
            v.features.iter().map(|f| (f.name.clone(), f.dtype)).collect()
        } else if let Some(o) = doc.on_demand_feature_view(&p.view) {
            for r in &o.request_sources {
                if let Some(larder_registry::DataSource::Request(rs)) = doc.data_source(r) {
                    for f in &rs.schema {
                        push(&mut columns, f.name.clone(), Source::Request(f.name.clone(), f.dtype));
                    }
                }
            }
            o.features.iter().map(|f| (f.name.clone(), f.dtype)).collect()
        } else {
            return Err(Error::Internal(format!(
                "logged service {}: no view {}",
                service.name, p.view
            )));
        };
        for (name, dtype) in features
            .into_iter()
            .filter(|(f, _)| p.features.is_empty() || p.features.contains(f))
        {
            let full = format!("{label}__{name}");
            let index = answer(if req.full_feature_names { &full } else { &name })
                .ok_or_else(|| Error::Internal(format!("logged service {}: {full} is not answered", service.name)))?;
            push(&mut columns, full.clone(), Source::Values(index, dtype));
            push(&mut columns, format!("{full}__timestamp"), Source::Timestamps(index));
            push(&mut columns, format!("{full}__status"), Source::Statuses(index));
        }
    }

    let rows = resp.columns.first().map(|c| c.values.len()).unwrap_or(0);
    let utc: Arc<str> = Arc::from("UTC");
    let mut fields = Vec::with_capacity(columns.len() + 3);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 3);
    let internal = |e: datafusion::arrow::error::ArrowError| Error::Internal(format!("feature log: {e}"));
    let typed = |values: &[Value], dtype: ValueType| -> Result<ArrayRef> {
        let array = values_to_array(values, dtype).map_err(|e| Error::Internal(format!("feature log: {e}")))?;
        let want = log_type(dtype);
        if array.data_type() == &want {
            Ok(array)
        } else {
            cast(&array, &want).map_err(internal)
        }
    };
    for (name, source) in columns {
        let (dtype, array): (DataType, ArrayRef) = match source {
            Source::Request(key, dtype) => {
                let raw = req.entities.get(&key).map(Vec::as_slice).unwrap_or_default();
                let values: Vec<Value> = (0..rows)
                    .map(|i| {
                        raw.get(i)
                            .and_then(|j| larder_protocol::json::value_from_json(j, dtype).ok())
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                (log_type(dtype), typed(&values, dtype)?)
            }
            Source::Values(i, dtype) => (log_type(dtype), typed(&resp.columns[i].values, dtype)?),
            Source::Timestamps(i) => (
                DataType::Timestamp(TimeUnit::Second, Some(Arc::clone(&utc))),
                Arc::new(
                    TimestampSecondArray::from_iter_values(
                        resp.columns[i]
                            .event_timestamps
                            .iter()
                            .map(|ns| ns.div_euclid(1_000_000_000)),
                    )
                    .with_timezone(Arc::clone(&utc)),
                ),
            ),
            Source::Statuses(i) => (
                DataType::Int32,
                Arc::new(Int32Array::from_iter_values(
                    resp.columns[i].statuses.iter().map(|s| status_number(*s)),
                )),
            ),
        };
        fields.push(Field::new(name, dtype, true));
        arrays.push(array);
    }
    let micros = now.timestamp_micros();
    fields.push(Field::new(
        LOG_TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::clone(&utc))),
        true,
    ));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(micros, rows)).with_timezone(utc),
    ));
    fields.push(Field::new(LOG_DATE, DataType::Date32, true));
    let day = micros.div_euclid(86_400_000_000) as i32;
    arrays.push(Arc::new(Date32Array::from_iter_values(std::iter::repeat_n(day, rows))));
    fields.push(Field::new(REQUEST_ID, DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        request_id, rows,
    ))));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(internal)
}

enum Command {
    Rows { dir: PathBuf, batch: RecordBatch },
    Flush(oneshot::Sender<()>),
}

/// The queue of logged rows and the task that writes them (see the module doc).
#[derive(Debug)]
pub struct FeatureLogger {
    tx: mpsc::UnboundedSender<Command>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl FeatureLogger {
    /// Starts the writer task (on the current tokio runtime).
    pub fn start(config: &FeatureLoggingConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let every = Duration::from_secs(config.write_to_disk_interval_secs.max(1));
        tokio::spawn(write_loop(rx, Arc::clone(&queued), every));
        FeatureLogger {
            tx,
            queued,
            capacity: config.queue_capacity,
        }
    }

    /// Queues one answer's rows for the directory `dir`; never waits. Returns whether they
    /// were queued (not when the queue is full).
    pub fn log(&self, dir: PathBuf, batch: RecordBatch) -> bool {
        let n = batch.num_rows();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            metrics::counter!("larder_feature_log_dropped_total").increment(n as u64);
            return false;
        }
        if self.tx.send(Command::Rows { dir, batch }).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Writes every queued row now and waits until it is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Collects rows per directory and writes them every `every`, on a flush and when the queue
/// closes.
async fn write_loop(mut rx: mpsc::UnboundedReceiver<Command>, queued: Arc<AtomicUsize>, every: Duration) {
    let mut pending: BTreeMap<PathBuf, Vec<RecordBatch>> = BTreeMap::new();
    // The first write is one interval away (a plain `interval` ticks at once).
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Rows { dir, batch }) => pending.entry(dir).or_default().push(batch),
                Some(Command::Flush(done)) => {
                    write_all(&mut pending, &queued).await;
                    let _ = done.send(());
                }
                None => {
                    write_all(&mut pending, &queued).await;
                    return;
                }
            },
            _ = tick.tick() => write_all(&mut pending, &queued).await,
        }
    }
}

/// Writes each directory's rows: one file per run of batches with one schema (a service
/// re-applied with other features changes it).
async fn write_all(pending: &mut BTreeMap<PathBuf, Vec<RecordBatch>>, queued: &AtomicUsize) {
    for (dir, batches) in std::mem::take(pending) {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut runs: Vec<Vec<RecordBatch>> = Vec::new();
        for b in batches {
            match runs.last_mut() {
                Some(run) if run[0].schema() == b.schema() => run.push(b),
                _ => runs.push(vec![b]),
            }
        }
        for run in runs {
            let written = match concat_batches(&run[0].schema(), &run) {
                Ok(batch) => crate::offline::write_log_file(dir.clone(), batch).await.map(|_| ()),
                Err(e) => Err(Error::Internal(e.to_string())),
            };
            match written {
                Ok(()) => metrics::counter!("larder_feature_log_rows_total")
                    .increment(run.iter().map(|b| b.num_rows() as u64).sum()),
                Err(e) => {
                    metrics::counter!("larder_feature_log_dropped_total")
                        .increment(run.iter().map(|b| b.num_rows() as u64).sum());
                    tracing::warn!(dir = %dir.display(), error = %e, "Served features could not be logged.");
                }
            }
        }
        queued.fetch_sub(rows, Ordering::AcqRel);
    }
}
