//! The offline copy of a stream: rows wait in [`PendingOffline`] and are appended by
//! [`flush_offline`] as one Parquet part per partition named by its offsets range.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use super::StreamView;
use crate::error::{Error, Result};
use crate::FeatureStore;

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
    pub(super) async fn get(
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
    pub(super) partitions: BTreeMap<i32, (i64, i64, Vec<RecordBatch>)>,
    /// Rows waiting.
    pub rows: usize,
    /// Partition -> last offset already appended by this worker. A message at or below it (a
    /// redelivery after a rebalance, before the commit landed) is not appended again.
    pub(super) flushed: BTreeMap<i32, i64>,
}

impl PendingOffline {
    /// The last offset of `partition` that is appended or waiting (`-1`: none).
    pub(super) fn covered(&self, partition: i32) -> i64 {
        let flushed = self.flushed.get(&partition).copied().unwrap_or(-1);
        let waiting = self.partitions.get(&partition).map(|e| e.1).unwrap_or(-1);
        flushed.max(waiting)
    }

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
    let state = store.cached_state().await?;
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
    for (p, (_, last, _)) in std::mem::take(&mut pending.partitions) {
        let f = pending.flushed.entry(p).or_insert(last);
        *f = (*f).max(last);
    }
    pending.rows = 0;
    Ok(())
}
