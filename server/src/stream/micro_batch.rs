//! One micro-batch of a stream view: decode and validate each message (the same typing as
//! `/push`), dead-letter the bad ones, write the good ones online, and queue their offline rows.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use serde_json::Value as Json;

use super::decode::Layout;
use super::late::Watermarks;
use super::offline_copy::{PendingOffline, SchemaCache};
use super::{tiles, BatchOutcome, DeadLetter, DeadLetterSink, StreamMessage, StreamView};
use crate::error::{Error, Result};
use crate::online::OnlineRow;
use crate::FeatureStore;

/// A decoded, validated event.
struct Event {
    partition: i32,
    offset: i64,
    row: OnlineRow,
    /// Aggregated column values (aggregated views).
    agg_values: Vec<Option<f64>>,
    /// The batch source's columns as the message gave them (see [`Layout::offline_columns`]).
    offline: Vec<Option<Json>>,
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

/// Processes one micro-batch of `view`: dead letters (bad and late events) out, online
/// written; the offline rows go to `pending` (`None` when this view does not write the
/// source's offline copy). `watermarks` are the worker's (see [`super::late`]).
pub async fn process_batch(
    store: &FeatureStore,
    view: &str,
    batch: &[StreamMessage],
    dead_letters: &dyn DeadLetterSink,
    pending: Option<&mut PendingOffline>,
    schemas: &mut SchemaCache,
    watermarks: &mut Watermarks,
) -> Result<BatchOutcome> {
    let state = store.cached_state().await?;
    let sv = StreamView::find(&state.doc, view).ok_or_else(|| Error::view_not_found(view, store.project()))?;
    let schema = schemas.get(store, &sv, state.version).await?;
    let columns = tiles::columns_of(sv.view);
    let layout = Layout::new(&sv, &schema, &columns);
    let mut scratch = Vec::new();
    let mut events = Vec::with_capacity(batch.len());
    let mut letters = Vec::new();
    let mut late = 0;
    let delay = sv.source.watermark_delay_seconds;
    // Moved on only once the batch is stored: a retried batch is judged as the first time.
    let mut marks = watermarks.clone();
    for m in batch {
        let decoded = m
            .payload
            .as_deref()
            .ok_or_else(|| "an empty message (tombstone)".to_string())
            .and_then(|payload| layout.decode(payload, &mut scratch))
            .and_then(|d| {
                marks
                    .admit(m.partition, d.row.event_ts, delay)
                    .inspect_err(|_| late += 1)?;
                Ok(Event {
                    partition: m.partition,
                    offset: m.offset,
                    row: d.row,
                    agg_values: d.agg_values,
                    offline: d.offline,
                })
            });
        match decoded {
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
    // Offsets already appended or waiting, per partition: redelivered messages are skipped.
    let covered: BTreeMap<i32, i64> = match &pending {
        Some(p) => batch.iter().map(|m| (m.partition, p.covered(m.partition))).collect(),
        None => BTreeMap::new(),
    };
    let fresh = |partition: i32, offset: i64| offset > covered.get(&partition).copied().unwrap_or(-1);
    // The offline rows of `partition`'s events not appended or waiting yet, as one column map.
    let fresh_rows = |events: &[Event], partition: i32| {
        layout.offline_columns(
            events
                .iter()
                .filter(|e| e.partition == partition && fresh(e.partition, e.offset))
                .map(|e| &e.offline[..]),
        )
    };
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
            let merged = fresh_rows(&events, p);
            if merged.is_empty() {
                continue;
            }
            let rows = match crate::ingest::offline_batch(&merged, &schema, &sv.batch.name) {
                Ok(b) => b,
                Err(_) => {
                    let mut keep = Vec::with_capacity(events.len());
                    for e in events.drain(..) {
                        match (e.partition == p).then(|| {
                            let row = layout.offline_columns(std::iter::once(&e.offline[..]));
                            crate::ingest::offline_batch(&row, &schema, &sv.batch.name)
                        }) {
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
                    let merged = fresh_rows(&events, p);
                    if merged.is_empty() {
                        continue;
                    }
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
        for m in batch.iter().filter(|m| fresh(m.partition, m.offset)) {
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
        dead_lettered: letters.len() - late,
        late,
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
        // This worker read these tiles and writes their successors: no newest-wins merge.
        if !rows.is_empty() {
            online.write_replacing(store.project(), view, rows).await?;
        }
        outcome.ingested -= outcome.replayed;
    } else if !events.is_empty() {
        let rows = events.into_iter().map(|e| e.row).collect();
        online.write_batch(store.project(), view, rows).await?;
    }
    *watermarks = marks;
    if let Some(newest) = batch_newest {
        let age = (crate::time::to_nanos(chrono::Utc::now()) - newest) as f64 / 1e9;
        metrics::gauge!("larder_stream_event_age_seconds", "view" => view.to_string()).set(age);
    }
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "ingested")
        .increment(outcome.ingested as u64);
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "dead_letter")
        .increment(outcome.dead_lettered as u64);
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "late")
        .increment(outcome.late as u64);
    metrics::counter!("larder_stream_events_total", "view" => view.to_string(), "outcome" => "replayed")
        .increment(outcome.replayed as u64);
    Ok(outcome)
}
