//! The point-in-time (as-of) join of one feature view, as a streaming operator.
//!
//! For each entity row (join keys, timestamp `T`): the feature row with the same keys and the
//! greatest `(event_ts, created_ts)` such that `event_ts <= T`, kept only when
//! `event_ts >= T - ttl` for a view with a ttl; otherwise nulls.
//!
//! Only the entity side is sorted (by key group, then timestamp). The feature rows stream by
//! once, partitions in parallel, without a sort: a feature row with time `t` is a candidate for
//! the entity rows of its key from the first one with timestamp `>= t` onwards, so it is recorded
//! at that single position (kept if it beats the candidate there); a prefix maximum along each
//! key's entity rows then gives every row its as-of match. The newest candidate at or before `T`
//! is the match, and when it is older than `T - ttl` every other one is too, so the ttl check
//! is one comparison. Cost: one hash lookup and one binary search per feature row, one sort of
//! the entity rows, and the feature columns of the scanned rows kept for the final gather.

use std::collections::HashMap;

/// A hash map with a fast, non-cryptographic hasher (keys are not attacker-chosen collisions
/// worth defending against here: one request's own entity keys).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::TryStreamExt;

use crate::error::{Error, Result};

/// Name of the row-id column added to the entity table.
pub const ROW_ID: &str = "__larder_row_id";
/// Name of the entity timestamp column (ns since the epoch, UTC) added to the entity table.
pub const ENTITY_TS: &str = "__larder_entity_ts";

/// Entity rows grouped by join key and sorted by timestamp within each group.
pub struct EntityIndex {
    /// Key -> group id (single Int64 key).
    int_groups: FastMap<i64, u32>,
    /// Key bytes (arrow row format) -> group id (any other key).
    row_groups: FastMap<Box<[u8]>, u32>,
    /// Key types, for encoding the feature side's keys the same way.
    key_types: Vec<DataType>,
    /// Per group: `[start, end)` in `order`.
    ranges: Vec<(u32, u32)>,
    /// Entity row of each sorted position.
    order: Vec<u32>,
    /// Timestamp (ns) of each sorted position.
    sorted_ts: Vec<i64>,
    /// Entity rows in all.
    rows: usize,
}

fn int_key(keys: &[ArrayRef]) -> Option<&datafusion::arrow::array::PrimitiveArray<Int64Type>> {
    match keys {
        [k] if k.data_type() == &DataType::Int64 => Some(k.as_primitive::<Int64Type>()),
        _ => None,
    }
}

impl EntityIndex {
    /// Indexes entity rows: `keys` are the join-key columns, `ts` the timestamps (ns).
    /// Rows with a null key match nothing.
    pub fn build(keys: &[ArrayRef], ts: &[i64]) -> Result<Self> {
        let n = ts.len();
        let mut idx = EntityIndex {
            int_groups: FastMap::default(),
            row_groups: FastMap::default(),
            key_types: keys.iter().map(|k| k.data_type().clone()).collect(),
            ranges: Vec::new(),
            order: Vec::with_capacity(n),
            sorted_ts: Vec::with_capacity(n),
            rows: n,
        };
        let valid = |i: usize| keys.iter().all(|k| k.is_valid(i));
        // (group or key, ts, row), sorted: each key's rows become one run, in time order.
        let mut sorted: Vec<(i64, i64, u32)> = Vec::with_capacity(n);
        if let Some(k) = int_key(keys) {
            for i in (0..n).filter(|i| valid(*i)) {
                sorted.push((k.value(i), ts[i], i as u32));
            }
        } else {
            let conv = RowConverter::new(idx.key_types.iter().map(|t| SortField::new(t.clone())).collect())
                .map_err(|e| Error::Internal(e.to_string()))?;
            let rows = conv.convert_columns(keys).map_err(|e| Error::Internal(e.to_string()))?;
            let mut next = 0u32;
            for i in (0..n).filter(|i| valid(*i)) {
                let key: Box<[u8]> = rows.row(i).as_ref().into();
                let g = *idx.row_groups.entry(key).or_insert_with(|| {
                    next += 1;
                    next - 1
                });
                sorted.push((i64::from(g), ts[i], i as u32));
            }
            idx.ranges = vec![(0, 0); next as usize];
        }
        sorted.sort_unstable();
        let int = int_key(keys).is_some();
        let mut start = 0usize;
        while start < sorted.len() {
            let k = sorted[start].0;
            let mut end = start + 1;
            while end < sorted.len() && sorted[end].0 == k {
                end += 1;
            }
            let range = (start as u32, end as u32);
            if int {
                idx.int_groups.insert(k, idx.ranges.len() as u32);
                idx.ranges.push(range);
            } else {
                idx.ranges[k as usize] = range;
            }
            start = end;
        }
        idx.sorted_ts = sorted.iter().map(|r| r.1).collect();
        idx.order = sorted.iter().map(|r| r.2).collect();
        Ok(idx)
    }
}

/// The best candidate found so far at each sorted entity position.
struct Best {
    ts: Vec<i64>,
    created: Vec<i64>,
    /// `(batch << 32) | row` of the candidate in the scanning task's kept batches.
    at: Vec<u64>,
}

impl Best {
    fn new(n: usize) -> Self {
        Best {
            ts: vec![i64::MIN; n],
            created: vec![i64::MIN; n],
            at: vec![u64::MAX; n],
        }
    }

    #[inline]
    fn offer(&mut self, p: usize, t: i64, c: i64, at: u64) {
        if (t, c) > (self.ts[p], self.created[p]) {
            self.ts[p] = t;
            self.created[p] = c;
            self.at[p] = at;
        }
    }
}

/// What one scanning task found: its candidates and the feature columns of its batches.
struct Scan {
    best: Best,
    features: Vec<Vec<ArrayRef>>,
}

/// Scans one partition of the projected source (`__k0..`, `__ts`, `__created`, `__f0..`).
async fn scan(index: Arc<EntityIndex>, mut stream: SendableRecordBatchStream, n_keys: usize) -> Result<Scan> {
    let mut out = Scan {
        best: Best::new(index.order.len()),
        features: Vec::new(),
    };
    let conv = if int_key_types(&index.key_types) {
        None
    } else {
        Some(
            RowConverter::new(index.key_types.iter().map(|t| SortField::new(t.clone())).collect())
                .map_err(|e| Error::Internal(e.to_string()))?,
        )
    };
    while let Some(batch) = stream.try_next().await? {
        let b = out.features.len() as u64;
        let keys: Vec<ArrayRef> = (0..n_keys).map(|j| Arc::clone(batch.column(j))).collect();
        let ts = batch.column(n_keys).as_primitive::<Int64Type>();
        let created = batch.column(n_keys + 1).as_primitive::<Int64Type>();
        let best = &mut out.best;
        let mut offer = |i: usize, g: u32| {
            if ts.is_null(i) {
                return;
            }
            let (s, e) = index.ranges[g as usize];
            let t = ts.value(i);
            let slice = &index.sorted_ts[s as usize..e as usize];
            let p = slice.partition_point(|x| *x < t);
            if p < slice.len() {
                let c = if created.is_null(i) {
                    i64::MIN + 1
                } else {
                    created.value(i)
                };
                best.offer(s as usize + p, t, c, (b << 32) | i as u64);
            }
        };
        match &conv {
            None => {
                let k = keys[0].as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    if k.is_valid(i) {
                        if let Some(g) = index.int_groups.get(&k.value(i)) {
                            offer(i, *g);
                        }
                    }
                }
            }
            Some(conv) => {
                let rows = conv
                    .convert_columns(&keys)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                for i in 0..batch.num_rows() {
                    if keys.iter().all(|k| k.is_valid(i)) {
                        if let Some(g) = index.row_groups.get(rows.row(i).as_ref()) {
                            offer(i, *g);
                        }
                    }
                }
            }
        }
        out.features
            .push(batch.columns()[n_keys + 2..].iter().map(Arc::clone).collect());
    }
    Ok(out)
}

fn int_key_types(types: &[DataType]) -> bool {
    matches!(types, [DataType::Int64])
}

/// Joins one view: `partitions` are the streams of the projected source (`__k0..` cast to the
/// entity key types, `__ts` and `__created` as Int64 ns, then the features), scanned in
/// parallel. Returns one array per feature, aligned with the entity rows.
pub async fn join(
    index: Arc<EntityIndex>,
    partitions: Vec<SendableRecordBatchStream>,
    n_keys: usize,
    feature_types: &[DataType],
    ttl_ns: Option<i64>,
) -> Result<Vec<ArrayRef>> {
    let tasks: Vec<_> = partitions
        .into_iter()
        .map(|s| tokio::spawn(scan(Arc::clone(&index), s, n_keys)))
        .collect();
    let started = std::time::Instant::now();
    let mut scans = Vec::with_capacity(tasks.len());
    for t in tasks {
        scans.push(t.await.map_err(|e| Error::Internal(e.to_string()))??);
    }
    tracing::debug!(elapsed = ?started.elapsed(), partitions = scans.len(), "feature rows scanned");
    // Merge the tasks' candidates: (task, at) of the best at each position.
    let n = index.order.len();
    let mut ts = vec![i64::MIN; n];
    let mut created = vec![i64::MIN; n];
    let mut from: Vec<(u32, u64)> = vec![(u32::MAX, 0); n];
    for (task, s) in scans.iter().enumerate() {
        for p in 0..n {
            if s.best.at[p] != u64::MAX && (s.best.ts[p], s.best.created[p]) > (ts[p], created[p]) {
                ts[p] = s.best.ts[p];
                created[p] = s.best.created[p];
                from[p] = (task as u32, s.best.at[p]);
            }
        }
    }
    // Prefix maximum within each key group, then the ttl check, into entity-row order.
    let mut matched: Vec<Option<(u32, u64)>> = vec![None; index.rows];
    for &(s, e) in &index.ranges {
        let (s, e) = (s as usize, e as usize);
        for p in s..e {
            if p > s && (ts[p - 1], created[p - 1]) > (ts[p], created[p]) {
                ts[p] = ts[p - 1];
                created[p] = created[p - 1];
                from[p] = from[p - 1];
            }
            let ok = from[p].0 != u32::MAX && ttl_ns.is_none_or(|ttl| ts[p] >= index.sorted_ts[p].saturating_sub(ttl));
            if ok {
                matched[index.order[p] as usize] = Some(from[p]);
            }
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "matches resolved");
    // Gather each feature: sources are every kept batch of every task, plus one null row.
    let mut base = Vec::with_capacity(scans.len());
    let mut total = 0usize;
    for s in &scans {
        base.push(total);
        total += s.features.len();
    }
    let indices: Vec<(usize, usize)> = matched
        .iter()
        .map(|m| match m {
            Some((task, at)) => (base[*task as usize] + (at >> 32) as usize, (at & 0xffff_ffff) as usize),
            None => (total, 0),
        })
        .collect();
    let mut out = Vec::with_capacity(feature_types.len());
    for (j, dt) in feature_types.iter().enumerate() {
        let null = new_null_array(dt, 1);
        let mut sources: Vec<&dyn Array> = Vec::with_capacity(total + 1);
        for s in &scans {
            for cols in &s.features {
                sources.push(cols[j].as_ref());
            }
        }
        sources.push(null.as_ref());
        out.push(interleave(&sources, &indices).map_err(|e| Error::Internal(e.to_string()))?);
    }
    Ok(out)
}

/// Slices a batch into parts of at most `rows` rows.
pub fn chunks(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < batch.num_rows() {
        let len = rows.min(batch.num_rows() - off);
        out.push(batch.slice(off, len));
        off += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;

    fn source(keys: ArrayRef, ts: Vec<i64>, created: Vec<i64>, f: Vec<f64>) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![
            Field::new("__k0", keys.data_type().clone(), true),
            Field::new("__ts", DataType::Int64, true),
            Field::new("__created", DataType::Int64, true),
            Field::new("__f0", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                keys,
                Arc::new(Int64Array::from(ts)),
                Arc::new(Int64Array::from(created)),
                Arc::new(Float64Array::from(f)),
            ],
        )
        .unwrap();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ))
    }

    async fn run(
        keys: ArrayRef,
        ets: Vec<i64>,
        src: Vec<SendableRecordBatchStream>,
        ttl: Option<i64>,
    ) -> Vec<Option<f64>> {
        let index = Arc::new(EntityIndex::build(&[keys], &ets).unwrap());
        let out = join(index, src, 1, &[DataType::Float64], ttl).await.unwrap();
        out[0]
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .iter()
            .collect()
    }

    #[tokio::test]
    async fn as_of_with_ties_ttl_and_partitions() {
        // Entity rows: key 1 at 10, 20, 5; key 2 at 20; key 3 (no features) at 20.
        let ekeys: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 2, 3]));
        let ets = vec![10, 20, 5, 20, 20];
        // Two partitions; the second holds a created-timestamp tie-break winner at ts 10.
        let parts = || {
            vec![
                source(
                    Arc::new(Int64Array::from(vec![1, 1, 2])),
                    vec![10, 15, 21],
                    vec![1, 1, 1],
                    vec![1.0, 2.0, 9.0],
                ),
                source(
                    Arc::new(Int64Array::from(vec![1, 2])),
                    vec![10, 3],
                    vec![2, 1],
                    vec![1.5, 7.0],
                ),
            ]
        };
        let got = run(Arc::clone(&ekeys), ets.clone(), parts(), None).await;
        assert_eq!(got, vec![Some(1.5), Some(2.0), None, Some(7.0), None]);
        // ttl 4: key 1 at 20 sees 15 (age 5 > 4) -> null; key 2 at 20 sees 3 -> null.
        let got = run(ekeys, ets, parts(), Some(4)).await;
        assert_eq!(got, vec![Some(1.5), None, None, None, None]);
    }

    #[tokio::test]
    async fn string_keys_use_the_row_format() {
        let ekeys: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("b")]));
        let src = source(
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
            vec![1, 1, 1],
            vec![0, 0, 0],
            vec![1.0, 2.0, 3.0],
        );
        assert_eq!(
            run(ekeys, vec![5, 5, 5], vec![src], None).await,
            vec![Some(1.0), None, Some(2.0)]
        );
    }
}
