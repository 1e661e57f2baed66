//! Stream ingestion: Larder's own consumers of stream feature views' Kafka sources.
//!
//! Seams: [`StreamSource`] (the batch source's sibling: a partitioned, offset-addressed log;
//! Kafka in [`kafka`]) and [`DeadLetterSink`] (quarantine Parquet or a Kafka topic, in
//! [`dead_letter`]). A worker per view ([`worker`]) reads micro-batches and, for each:
//!
//! 1. decodes and validates every message; a bad one (unparseable JSON, missing key or
//!    timestamp, wrong type) goes to the dead-letter sink with its reason and never stops the
//!    worker;
//! 2. writes the online store at once: newest-wins rows for a plain view, or the merged time
//!    tiles of an aggregated one ([`tiles`]), which record the offsets they hold;
//! 3. keeps the good events' offline rows until the next flush (`stream.offline_flush_ms`),
//!    which appends them to the view's batch source as one Parquet part per partition, named
//!    by its offsets range, so a replayed range replaces its copy (and parts stay large);
//! 4. only after a flush commits the offsets it covers.
//!
//! Delivery is at-least-once; the writes are idempotent, so a restart loses nothing and counts
//! nothing twice.

pub mod dead_letter;
pub mod kafka;
pub mod tiles;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use indexmap::IndexMap;
use larder_registry::{FeatureView, FileSource, KafkaSource, RegistryDoc};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::online::OnlineRow;
use crate::FeatureStore;

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Message body (`None`: a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// A partitioned, offset-addressed stream of messages (Kafka).
#[async_trait]
pub trait StreamSource: Send {
    /// Waits for messages and returns up to `max` of them, waiting at most `wait` for more
    /// once the first has arrived; an empty batch when none came within `wait`.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<StreamMessage>>;
    /// Records that every message of `batch` (and before it, per partition) is processed,
    /// without waiting for the broker's acknowledgement.
    async fn commit(&mut self, batch: &[StreamMessage]) -> Result<()>;
    /// Like [`StreamSource::commit`], waiting for the acknowledgement (at shutdown).
    async fn commit_final(&mut self, batch: &[StreamMessage]) -> Result<()>;
    /// For logs: topic and brokers.
    fn describe(&self) -> String;
}

/// A message that could not be ingested, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// The raw message.
    pub payload: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}

/// Where refused messages go.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Stores the refused messages of one micro-batch of `view`; `batch_id` names the
    /// micro-batch (a replay stores them under the same id).
    async fn send(&self, view: &str, batch_id: &str, letters: &[DeadLetter]) -> Result<()>;
}

/// What a micro-batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events written online (and offline).
    pub ingested: usize,
    /// Events sent to the dead-letter sink.
    pub dead_lettered: usize,
    /// Events of an aggregated view skipped because their offset was applied before.
    pub replayed: usize,
}

/// A decoded, validated event.
struct Event {
    partition: i32,
    offset: i64,
    row: OnlineRow,
    /// Aggregated column values (aggregated views).
    agg_values: Vec<Option<f64>>,
    /// The message's fields that the batch source has (one row each).
    offline: IndexMap<String, Vec<Json>>,
}

/// The parts of the registry a worker needs for its view.
pub struct StreamView<'a> {
    /// The registry document.
    pub doc: &'a RegistryDoc,
    /// The stream feature view.
    pub view: &'a FeatureView,
    /// Its Kafka source.
    pub source: &'a KafkaSource,
    /// The batch source receiving the offline copy.
    pub batch: &'a FileSource,
}

impl<'a> StreamView<'a> {
    /// Looks `view` up; `None` when it is gone or no longer fed by a Kafka source.
    pub fn find(doc: &'a RegistryDoc, view: &str) -> Option<Self> {
        let v = doc.feature_view(view)?;
        Some(StreamView {
            doc,
            view: v,
            source: doc.kafka_source(v)?,
            batch: doc.batch_source(v)?,
        })
    }
}

/// The message as a one-row column map with message field names mapped to feature names and
/// the stream's timestamp field renamed to the batch source's.
fn message_columns(sv: &StreamView<'_>, payload: &[u8]) -> std::result::Result<IndexMap<String, Vec<Json>>, String> {
    let json: Json = serde_json::from_slice(payload).map_err(|e| format!("unparseable JSON: {e}"))?;
    let Json::Object(fields) = json else {
        return Err("the message is not a JSON object".into());
    };
    let mut df = IndexMap::with_capacity(fields.len());
    for (name, value) in fields {
        let mut name = sv.source.field_mapping.get(&name).cloned().unwrap_or(name);
        if name == sv.source.timestamp_field {
            name = sv.batch.timestamp_field.clone();
        }
        df.insert(name, vec![value]);
    }
    if !df.contains_key(&sv.batch.timestamp_field) {
        return Err(format!(
            "the timestamp field `{}` is missing",
            sv.source.timestamp_field
        ));
    }
    Ok(df)
}

/// A readable reason from a validation error of a one-row frame (`df.x[0]: ...` -> `x: ...`).
fn reason(e: Error) -> String {
    match e {
        Error::InvalidRequest { field, message } => {
            let field = field.trim_start_matches("df.").trim_end_matches("[0]");
            format!("{field}: {message}")
        }
        other => other.to_string(),
    }
}

fn decode(
    sv: &StreamView<'_>,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    columns: &[String],
    m: &StreamMessage,
) -> std::result::Result<Event, String> {
    let payload = m.payload.as_deref().ok_or("an empty message (tombstone)")?;
    let mut df = message_columns(sv, payload)?;
    let mut rows = crate::ingest::rows_from_columns(sv.doc, sv.view, &df).map_err(reason)?;
    let row = rows.pop().ok_or("no row")?;
    let mut agg_values = Vec::with_capacity(columns.len());
    for c in columns {
        agg_values.push(match df.get(c).and_then(|v| v.first()) {
            None | Some(Json::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| format!("{c}: expected a number, got {v}"))?),
        });
    }
    // Fields the batch source does not have are not part of the offline copy.
    df.retain(|k, _| schema.field_with_name(k).is_ok());
    Ok(Event {
        partition: m.partition,
        offset: m.offset,
        row,
        agg_values,
        offline: df,
    })
}

/// One-row column maps merged into one column map (a column missing in a row is null there).
fn merge_rows<'a>(rows: impl Iterator<Item = &'a IndexMap<String, Vec<Json>>>) -> IndexMap<String, Vec<Json>> {
    let mut out: IndexMap<String, Vec<Json>> = IndexMap::new();
    let mut n = 0;
    for row in rows {
        for (k, v) in row {
            let col = out.entry(k.clone()).or_insert_with(|| vec![Json::Null; n]);
            col.push(v.first().cloned().unwrap_or(Json::Null));
        }
        n += 1;
        for col in out.values_mut() {
            if col.len() < n {
                col.push(Json::Null);
            }
        }
    }
    out
}

/// The prefix of the offline parts a stream source's worker writes for `partition`.
pub fn part_prefix(source: &str, partition: i32) -> String {
    let safe: String = source
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    format!("stream-{safe}-p{partition}-o")
}

/// The offsets range `(first, last)` in a part name made by [`part_prefix`].
fn part_range(name: &str, prefix: &str) -> Option<(i64, i64)> {
    let (first, last) = name.strip_prefix(prefix)?.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Whether `view` writes the offline copy of its Kafka source: of several views fed by one
/// source, the first by name does, so that each event is appended once.
pub fn writes_offline(sv: &StreamView<'_>) -> bool {
    sv.doc
        .feature_views
        .iter()
        .filter(|v| v.online && sv.doc.kafka_source(v).is_some_and(|k| k.name == sv.source.name))
        .map(|v| v.name.as_str())
        .min()
        == Some(sv.view.name.as_str())
}

/// The batch source's Arrow schema, read once per registry version (reading it lists and
/// opens the source's files, too slow for every micro-batch).
#[derive(Debug, Default)]
pub struct SchemaCache(Option<(u64, String, datafusion::arrow::datatypes::SchemaRef)>);

impl SchemaCache {
    async fn get(
        &mut self,
        store: &FeatureStore,
        sv: &StreamView<'_>,
        version: u64,
    ) -> Result<datafusion::arrow::datatypes::SchemaRef> {
        if let Some((v, name, schema)) = &self.0 {
            if *v == version && name == &sv.batch.name {
                return Ok(Arc::clone(schema));
            }
        }
        let schema = store.offline().source_schema(sv.batch).await?;
        self.0 = Some((version, sv.batch.name.clone(), Arc::clone(&schema)));
        Ok(schema)
    }
}

/// Offline rows of processed micro-batches not yet appended to the batch source, per
/// partition with the offsets range they cover.
#[derive(Debug, Default)]
pub struct PendingOffline {
    /// Partition -> (first offset, last offset, rows).
    partitions: BTreeMap<i32, (i64, i64, Vec<RecordBatch>)>,
    /// Rows waiting.
    pub rows: usize,
}

impl PendingOffline {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }
}

/// Appends the pending offline rows of `view` to its batch source: one part per partition
/// named by its offsets range. A replayed range supersedes the parts that start inside it
/// (written before a crash or by an earlier consumer group), so no event is appended twice.
pub async fn flush_offline(
    store: &FeatureStore,
    view: &str,
    pending: &mut PendingOffline,
    schemas: &mut SchemaCache,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let state = store.cached_state()?;
    let sv = StreamView::find(&state.doc, view).ok_or_else(|| Error::view_not_found(view, store.project()))?;
    let schema = schemas.get(store, &sv, state.version).await?;
    let existing = store.offline().parts(sv.batch).await?;
    for (partition, (first, last, rows)) in &pending.partitions {
        let part =
            datafusion::arrow::compute::concat_batches(&schema, rows).map_err(|e| Error::Internal(e.to_string()))?;
        let prefix = part_prefix(&sv.source.name, *partition);
        let name = format!("{prefix}{first}-{last}");
        store.offline().append_part(sv.batch, part, &name).await?;
        for old in &existing {
            if let Some((f, _)) = part_range(old, &prefix) {
                if f >= *first && f <= *last && old != &name {
                    store.offline().remove_part(sv.batch, old).await?;
                }
            }
        }
    }
    *pending = PendingOffline::default();
    Ok(())
}

/// Processes one micro-batch of `view`: dead letters out, online written; the offline rows
/// go to `pending` (`None` when this view does not write the source's offline copy).
pub async fn process_batch(
    store: &FeatureStore,
    view: &str,
    batch: &[StreamMessage],
    dead_letters: &dyn DeadLetterSink,
    pending: Option<&mut PendingOffline>,
    schemas: &mut SchemaCache,
) -> Result<BatchOutcome> {
    let state = store.cached_state()?;
    let sv = StreamView::find(&state.doc, view).ok_or_else(|| Error::view_not_found(view, store.project()))?;
    let schema = schemas.get(store, &sv, state.version).await?;
    let columns = tiles::columns_of(sv.view);
    let mut events = Vec::with_capacity(batch.len());
    let mut letters = Vec::new();
    for m in batch {
        match decode(&sv, &schema, &columns, m) {
            Ok(e) => events.push(e),
            Err(reason) => letters.push(DeadLetter {
                partition: m.partition,
                offset: m.offset,
                payload: m.payload.clone().unwrap_or_default(),
                reason,
            }),
        }
    }
    // The offline rows of each partition as one batch; an event whose fields do not fit the
    // batch source's types is found one by one (rare) and dead-lettered.
    let mut offline_parts: BTreeMap<i32, RecordBatch> = BTreeMap::new();
    if pending.is_some() {
        let partitions: Vec<i32> = {
            let mut ps: Vec<i32> = events.iter().map(|e| e.partition).collect();
            ps.sort_unstable();
            ps.dedup();
            ps
        };
        for p in partitions {
            if !events.iter().any(|e| e.partition == p) {
                continue;
            }
            let merged = merge_rows(events.iter().filter(|e| e.partition == p).map(|e| &e.offline));
            let rows = match crate::ingest::offline_batch(&merged, &schema, &sv.batch.name) {
                Ok(b) => b,
                Err(_) => {
                    let mut keep = Vec::with_capacity(events.len());
                    for e in events.drain(..) {
                        match (e.partition == p)
                            .then(|| crate::ingest::offline_batch(&e.offline, &schema, &sv.batch.name))
                        {
                            Some(Err(err)) => letters.push(DeadLetter {
                                partition: e.partition,
                                offset: e.offset,
                                payload: batch
                                    .iter()
                                    .find(|m| m.partition == e.partition && m.offset == e.offset)
                                    .and_then(|m| m.payload.clone())
                                    .unwrap_or_default(),
                                reason: reason(err),
                            }),
                            _ => keep.push(e),
                        }
                    }
                    events = keep;
                    if !events.iter().any(|e| e.partition == p) {
                        continue;
                    }
                    let merged = merge_rows(events.iter().filter(|e| e.partition == p).map(|e| &e.offline));
                    crate::ingest::offline_batch(&merged, &schema, &sv.batch.name)?
                }
            };
            offline_parts.insert(p, rows);
        }
    }
    // First offset of each partition in this micro-batch (good or bad events alike).
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for m in batch {
        let first = firsts.entry(m.partition).or_insert(m.offset);
        *first = (*first).min(m.offset);
    }
    if !letters.is_empty() {
        let id = firsts
            .iter()
            .map(|(p, o)| format!("p{p}-o{o}"))
            .collect::<Vec<_>>()
            .join("-");
        dead_letters.send(view, &id, &letters).await?;
    }

    // The offline rows wait in `pending` for the next flush (see [`flush_offline`]).
    if let Some(pending) = pending {
        for m in batch {
            let entry = pending
                .partitions
                .entry(m.partition)
                .or_insert_with(|| (m.offset, m.offset, Vec::new()));
            entry.0 = entry.0.min(m.offset);
            entry.1 = entry.1.max(m.offset);
        }
        for (p, rows) in offline_parts {
            pending.rows += rows.num_rows();
            if let Some(entry) = pending.partitions.get_mut(&p) {
                entry.2.push(rows);
            }
        }
    }

    let batch_newest = events.iter().map(|e| e.row.event_ts).max();
    let online = store.online()?;
    let mut outcome = BatchOutcome {
        ingested: events.len(),
        dead_lettered: letters.len(),
        replayed: 0,
    };
    if sv.view.is_aggregated() {
        let mut keys: Vec<Vec<u8>> = events.iter().map(|e| e.row.key.clone()).collect();
        keys.sort();
        keys.dedup();
        let stored = online.read(store.project(), view, &keys).await?;
        let mut states: BTreeMap<Vec<u8>, tiles::TileState> = BTreeMap::new();
        for (k, row) in keys.iter().zip(&stored) {
            states.insert(k.clone(), tiles::TileState::from_row(sv.view, row.as_ref())?);
        }
        for e in &events {
            let Some(st) = states.get_mut(&e.row.key) else { continue };
            if st.applied(e.partition, e.offset) {
                outcome.replayed += 1;
                continue;
            }
            st.add(sv.view, e.row.event_ts, &e.agg_values, Some((e.partition, e.offset)));
        }
        let now = crate::time::to_nanos(chrono::Utc::now());
        let rows: Vec<OnlineRow> = states
            .into_iter()
            .map(|(k, mut st)| {
                st.prune(sv.view);
                st.to_row(k, now)
            })
            .collect();
        if !rows.is_empty() {
            online.write_batch(store.project(), view, rows).await?;
        }
        outcome.ingested -= outcome.replayed;
    } else if !events.is_empty() {
        let rows = events.into_iter().map(|e| e.row).collect();
        online.write_batch(store.project(), view, rows).await?;
    }
    if let Some(newest) = batch_newest {
        let age = (crate::time::to_nanos(chrono::Utc::now()) - newest) as f64 / 1e9;
        metrics::gauge!("larder_stream_event_age_seconds", "view" => view.to_string()).set(age);
    }
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "ingested")
        .increment(outcome.ingested as u64);
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "dead_letter")
        .increment(outcome.dead_lettered as u64);
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "replayed")
        .increment(outcome.replayed as u64);
    Ok(outcome)
}

/// A shared dead-letter sink.
pub type SharedDeadLetters = Arc<dyn DeadLetterSink>;
