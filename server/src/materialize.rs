//! Batch materialization: the newest row per entity key in `[start, end]`, from the offline
//! store into the online store.
//!
//! A run writes in batches through the online store's newest-wins upsert and records the
//! interval in the registry only after every batch is written. A failed run therefore leaves
//! no interval behind, never regresses a key, and can simply be re-run.

use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;
use larder_registry::{FeatureView, RegistryDoc};

use crate::error::{Error, Result};
use crate::key::serialize_entity_key_into;
use crate::offline::{OfflineStore, PullRequest, CREATED_TS_COLUMN, EVENT_TS_COLUMN};
use crate::online::{OnlineRow, OnlineStore};
use crate::value::{column_values, timestamps_nanos, Value};

/// Rows per online write.
pub const WRITE_BATCH_ROWS: usize = 10_000;

/// Observes a materialization's progress (the CLI draws a progress bar).
pub trait Progress: Send + Sync {
    /// A view starts.
    fn start_view(&self, _view: &str) {}
    /// `rows` more rows of the current view were written.
    fn rows_written(&self, _rows: u64) {}
    /// The current view is done.
    fn finish_view(&self, _view: &str, _rows: u64, _seconds: f64) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Converts one batch from [`OfflineStore::pull_latest`] into online rows.
pub fn batch_to_rows(doc: &RegistryDoc, view: &FeatureView, batch: &RecordBatch) -> Result<(Vec<OnlineRow>, u64)> {
    let join_keys = doc.join_keys(view);
    let n = batch.num_rows();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("column {name} missing from the offline result")))
    };
    let mut key_values = Vec::with_capacity(join_keys.len());
    for k in &join_keys {
        let ty = view
            .entity_columns
            .iter()
            .find(|f| &f.name == k)
            .map(|f| f.dtype)
            .ok_or_else(|| Error::Internal(format!("no type for join key {k} of view {}", view.name)))?;
        key_values.push(
            column_values(column(k)?, ty).map_err(|e| Error::Offline(format!("{}: join key {k}: {e}", view.name)))?,
        );
    }
    let mut feature_values = Vec::with_capacity(view.features.len());
    for f in &view.features {
        feature_values.push(
            column_values(column(&f.name)?, f.dtype)
                .map_err(|e| Error::Offline(format!("{}: feature {}: {e}", view.name, f.name)))?,
        );
    }
    let event_ts = timestamps_nanos(column(EVENT_TS_COLUMN)?)?;
    let created = match batch.column_by_name(CREATED_TS_COLUMN) {
        Some(c) => Some(timestamps_nanos(c)?),
        None => None,
    };
    let mut rows = Vec::with_capacity(n);
    let mut skipped = 0u64;
    'rows: for i in 0..n {
        let Some(ts) = event_ts[i] else {
            skipped += 1;
            continue;
        };
        let mut pairs: Vec<(&str, &Value)> = Vec::with_capacity(join_keys.len());
        for (k, vals) in join_keys.iter().zip(&key_values) {
            if vals[i] == Value::Null {
                skipped += 1;
                continue 'rows;
            }
            pairs.push((k.as_str(), &vals[i]));
        }
        let mut key = Vec::with_capacity(48);
        serialize_entity_key_into(&pairs, &mut key)?;
        let values = view
            .features
            .iter()
            .zip(&feature_values)
            .map(|(f, vals)| (f.name.clone(), vals[i].clone()))
            .collect();
        rows.push(OnlineRow {
            key,
            event_ts: ts,
            created_ts: created.as_ref().and_then(|c| c[i]),
            values,
        });
    }
    Ok((rows, skipped))
}

/// One view's materialization window.
#[derive(Debug, Clone, Copy)]
pub struct ViewWindow<'a> {
    /// Project the rows belong to.
    pub project: &'a str,
    /// The registry document (for sources and entities).
    pub doc: &'a RegistryDoc,
    /// The view.
    pub view: &'a FeatureView,
    /// Window start, ns since the epoch, inclusive.
    pub start_ns: i64,
    /// Window end, ns since the epoch, inclusive.
    pub end_ns: i64,
}

/// What one view's materialization wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows (keys) written.
    pub rows: u64,
    /// Of those, rows whose event time was already older than the view's ttl when written:
    /// online reads answer them `OUTSIDE_MAX_AGE` (unless `online_ttl: ignore`).
    pub expired: u64,
}

/// Materializes one view's window.
pub async fn materialize_view(
    window: ViewWindow<'_>,
    offline: &dyn OfflineStore,
    online: &dyn OnlineStore,
    progress: &dyn Progress,
) -> Result<Written> {
    let ViewWindow {
        project,
        doc,
        view,
        start_ns,
        end_ns,
    } = window;
    let source = doc.batch_source(view).ok_or_else(|| {
        Error::invalid(
            "feature_views",
            format!("feature view {} has no batch source to materialize from", view.name),
        )
    })?;
    let request = PullRequest {
        source,
        join_keys: doc.join_keys(view),
        features: view.features.iter().map(|f| f.name.clone()).collect(),
        start_ns,
        end_ns,
        latest_only: true,
    };
    let mut stream = offline.pull_latest(request).await?;
    let mut pending: Vec<OnlineRow> = Vec::with_capacity(WRITE_BATCH_ROWS);
    let mut written = 0u64;
    let oldest_fresh = view
        .ttl()
        .filter(|_| !view.is_aggregated())
        .map(|s| crate::time::to_nanos(chrono::Utc::now()).saturating_sub(s.saturating_mul(1_000_000_000)));
    let mut expired = 0u64;
    while let Some(batch) = stream.next().await {
        let (rows, _skipped) = batch_to_rows(doc, view, &batch?)?;
        if let Some(limit) = oldest_fresh {
            expired += rows.iter().filter(|r| r.event_ts < limit).count() as u64;
        }
        pending.extend(rows);
        if pending.len() >= WRITE_BATCH_ROWS {
            let chunk = std::mem::replace(&mut pending, Vec::with_capacity(WRITE_BATCH_ROWS));
            let n = chunk.len() as u64;
            online.write_batch(project, &view.name, chunk).await?;
            written += n;
            progress.rows_written(n);
        }
    }
    if !pending.is_empty() {
        let n = pending.len() as u64;
        online.write_batch(project, &view.name, pending).await?;
        written += n;
        progress.rows_written(n);
    }
    Ok(Written { rows: written, expired })
}
