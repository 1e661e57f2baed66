//! The embedded RocksDB online store.
//!
//! Key layout: `project \0 view \0 entity_key` (entity key as [`crate::key`] serializes it), so
//! one view's rows are one contiguous range (deleted with a range tombstone), and a request's
//! reads of all its views are one sorted `multi_get`. Values are [`OnlineRow`] encodings in the
//! positional format 2; the schemas they refer to (their feature names) are stored once each
//! under `0xff schema \0 id`, in the same write batch as the first rows of that schema (`0xff`
//! never starts a UTF-8 project name). Rows of format 1, written by earlier releases, are read
//! as they are. Writes are RocksDB merges resolved by a "newest wins" merge operator on the row
//! header, so concurrent and out-of-order writers never move a key back in time and no read is
//! needed before a write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use rocksdb::{BlockBasedOptions, Cache, MergeOperands, Options, ReadOptions, WriteBatch, DB};

use super::{OnlineRow, OnlineStore, ProjectedRows, Projection, ViewRead};
use crate::config::RocksDbConfig;
use crate::error::{Error, Result};
use larder_protocol::row::RowSchema;

/// Online store in an embedded RocksDB database.
pub struct RocksDbOnlineStore {
    db: Arc<DB>,
    path: PathBuf,
    /// The options of every read, made once (each costs an allocation in RocksDB).
    read_options: Arc<ReadOptions>,
    /// The row schemas stored, as far as this process has seen them.
    schemas: Arc<Schemas>,
}

/// Prefix of the schema dictionary's keys.
const SCHEMA_PREFIX: &[u8] = b"\xffschema\x00";

fn schema_key(id: u64) -> Vec<u8> {
    let mut k = SCHEMA_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The schema dictionary's entries this process has read or written.
#[derive(Debug, Default)]
struct Schemas {
    known: RwLock<HashMap<u64, Arc<RowSchema>>>,
}

impl Schemas {
    fn cached(&self, id: u64) -> Option<Arc<RowSchema>> {
        self.known.read().ok()?.get(&id).cloned()
    }

    /// The schema `id`, from the cache or the database; `None` when it is not stored (or not
    /// readable: the row is then reported corrupt).
    fn get(&self, db: &DB, id: u64) -> Option<Arc<RowSchema>> {
        if let Some(s) = self.cached(id) {
            return Some(s);
        }
        let bytes = db.get_pinned(schema_key(id)).ok()??;
        let schema = Arc::new(RowSchema::decode(id, &bytes).ok()?);
        if let Ok(mut known) = self.known.write() {
            known.insert(id, Arc::clone(&schema));
        }
        Some(schema)
    }

    fn remember(&self, schema: Arc<RowSchema>) {
        if let Ok(mut known) = self.known.write() {
            known.insert(schema.id, schema);
        }
    }
}

impl std::fmt::Debug for RocksDbOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbOnlineStore").field("path", &self.path).finish()
    }
}

/// The merge operator: of the stored row and the new operands, keep the one with the greatest
/// `(event_ts, created_ts)`; on a tie the later write wins.
fn newest_wins(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut best: Option<&[u8]> = existing;
    let mut best_version = existing.and_then(OnlineRow::version_of);
    for op in operands {
        let v = OnlineRow::version_of(op);
        if v.is_some() && (best_version.is_none() || v >= best_version) {
            best = Some(op);
            best_version = v;
        }
    }
    best.map(|b| b.to_vec())
}

fn prefix(project: &str, view: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(project.len() + view.len() + 2);
    p.extend_from_slice(project.as_bytes());
    p.push(0);
    p.extend_from_slice(view.as_bytes());
    p.push(0);
    p
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Merged with what is stored: the newest `(event_ts, created_ts)` wins.
    NewestWins,
    /// Put over what is stored.
    Replace,
}

fn db_error(path: &Path, e: rocksdb::Error) -> Error {
    let s = e.to_string();
    if s.contains("LOCK") || s.contains("lock") {
        Error::Unavailable(format!(
            "the online store {} is in use by another process (a running `larder serve`?): {s}",
            path.display()
        ))
    } else {
        Error::Unavailable(format!("online store {}: {s}", path.display()))
    }
}

impl RocksDbOnlineStore {
    /// Opens (creating if needed) the database at `path`.
    #[allow(clippy::disallowed_methods, reason = "opened once, on first use")]
    pub fn open(path: &Path, config: &RocksDbConfig) -> Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_merge_operator_associative("larder_newest_wins", newest_wins);
        // Compactions run at a lowered CPU and I/O priority: reads come first when both want
        // the cores (a large materialization rewrites much of the database).
        if let Ok(mut env) = rocksdb::Env::new() {
            env.lower_thread_pool_cpu_priority();
            env.lower_thread_pool_io_priority();
            opts.set_env(&env);
        }
        opts.increase_parallelism(
            std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(2),
        );
        let mut block = BlockBasedOptions::default();
        block.set_block_cache(&Cache::new_lru_cache(config.block_cache_mb * 1024 * 1024));
        block.set_bloom_filter(10.0, false);
        block.set_cache_index_and_filter_blocks(true);
        opts.set_block_based_table_factory(&block);
        let cf = rocksdb::ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone());
        let db = DB::open_cf_descriptors(&opts, path, [cf]).map_err(|e| db_error(path, e))?;
        Ok(RocksDbOnlineStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
            read_options: Arc::new(ReadOptions::default()),
            schemas: Arc::default(),
        })
    }
}

/// Reads of at most this many keys run on the calling task: they are answered from the block
/// cache or the page cache in microseconds, less than the hand-off to the blocking pool costs.
/// Larger reads (batch scoring) go to the blocking pool, so that a cold read from disk never
/// holds an async worker for long.
const INLINE_READ_KEYS: usize = 64;

/// The full keys of a request's reads in one buffer, and the order that sorts them.
struct KeyBatch {
    buf: Vec<u8>,
    /// `(start, end, read, row)` of every key.
    spans: Vec<(usize, usize, usize, usize)>,
}

impl KeyBatch {
    fn new(project: &str, reads: &[(&str, &[Vec<u8>])]) -> KeyBatch {
        let n: usize = reads.iter().map(|(_, k)| k.len()).sum();
        let mut buf = Vec::with_capacity(
            reads
                .iter()
                .map(|(v, k)| k.len() * (project.len() + v.len() + 2 + 16))
                .sum(),
        );
        let mut spans = Vec::with_capacity(n);
        for (r, (view, keys)) in reads.iter().enumerate() {
            for (row, key) in keys.iter().enumerate() {
                let start = buf.len();
                buf.extend_from_slice(project.as_bytes());
                buf.push(0);
                buf.extend_from_slice(view.as_bytes());
                buf.push(0);
                buf.extend_from_slice(key);
                spans.push((start, buf.len(), r, row));
            }
        }
        let b = &buf;
        spans.sort_unstable_by(|x, y| b[x.0..x.1].cmp(&b[y.0..y.1]));
        KeyBatch { buf, spans }
    }

    /// One sorted `multi_get` of every key; `found(read, row, full key, stored value)` is
    /// called for each key that has a row, straight from RocksDB's pinned slice.
    fn get(
        &self,
        db: &DB,
        path: &Path,
        options: &ReadOptions,
        mut found: impl FnMut(usize, usize, &[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let cf = db
            .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .ok_or_else(|| Error::Internal("missing default column family".into()))?;
        let keys = self.spans.iter().map(|&(s, e, _, _)| &self.buf[s..e]);
        let results = db.batched_multi_get_cf_opt(&cf, keys, true, options);
        for (result, &(s, e, read, row)) in results.into_iter().zip(&self.spans) {
            if let Some(bytes) = result.map_err(|e| db_error(path, e))? {
                found(read, row, &self.buf[s..e], &bytes)?;
            }
        }
        Ok(())
    }
}

/// Fills one block per read from a [`KeyBatch`].
#[allow(
    clippy::too_many_arguments,
    reason = "one call per read path, all of them its inputs"
)]
fn read_blocks(
    batch: &KeyBatch,
    db: &DB,
    path: &Path,
    options: &ReadOptions,
    schemas: &Schemas,
    views: &[&str],
    projections: &[&Projection],
    rows: &[usize],
) -> Result<Vec<ProjectedRows>> {
    let mut blocks: Vec<ProjectedRows> = projections
        .iter()
        .zip(rows)
        .map(|(p, &n)| ProjectedRows::new(n, p.len()))
        .collect();
    batch.get(db, path, options, |read, row, _, bytes| {
        let block = &mut blocks[read];
        let ts =
            OnlineRow::decode_projected_into(bytes, projections[read], block.row_mut(row), &|id| schemas.get(db, id))
                .map_err(|e| corrupt(views[read], e))?;
        block.event_ts[row] = Some(ts);
        Ok(())
    })?;
    Ok(blocks)
}

fn corrupt(view: &str, e: larder_protocol::ValueError) -> Error {
    Error::Internal(format!("corrupt online row in {view}: {e}"))
}

impl RocksDbOnlineStore {
    /// Runs `f` on the database on tokio's blocking pool: RocksDB calls block on disk I/O and
    /// compaction stalls, which must not hold up the async workers.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&DB, &Path) -> Result<T> + Send + 'static) -> Result<T> {
        let db = Arc::clone(&self.db);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || f(&db, &path))
            .await
            .map_err(|e| Error::Internal(format!("RocksDB task failed: {e}")))?
    }

    /// Writes `rows`: merged (newest wins, see [`newest_wins`]) or put over what is stored.
    async fn write_rows(&self, project: &str, view: &str, rows: Vec<OnlineRow>, how: Write) -> Result<usize> {
        let p = prefix(project, view);
        let schemas = Arc::clone(&self.schemas);
        self.blocking(move |db, path| {
            let mut batch = WriteBatch::default();
            let mut key = Vec::with_capacity(p.len() + 64);
            // Rows of a batch almost always share one schema: compare with the last one seen.
            let mut last: Option<Arc<RowSchema>> = None;
            let mut new_schemas = Vec::new();
            for row in &rows {
                let schema = match &last {
                    Some(s) if row.has_schema(s) => Arc::clone(s),
                    _ => {
                        let s = row.schema();
                        let s = match schemas.get(db, s.id) {
                            Some(stored) => stored,
                            None => {
                                batch.put(schema_key(s.id), s.encode());
                                let s = Arc::new(s);
                                new_schemas.push(Arc::clone(&s));
                                s
                            }
                        };
                        last = Some(Arc::clone(&s));
                        s
                    }
                };
                key.clear();
                key.extend_from_slice(&p);
                key.extend_from_slice(&row.key);
                let value = row.encode_value_v2(schema.id);
                match how {
                    Write::NewestWins => batch.merge(&key, value),
                    Write::Replace => batch.put(&key, value),
                }
            }
            db.write(batch).map_err(|e| db_error(path, e))?;
            for s in new_schemas {
                schemas.remember(s);
            }
            Ok(rows.len())
        })
        .await
    }
}

#[async_trait]
impl OnlineStore for RocksDbOnlineStore {
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        self.write_rows(project, view, rows, Write::NewestWins).await
    }

    async fn write_replacing(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        self.write_rows(project, view, rows, Write::Replace).await
    }

    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        Ok(self
            .read_many(project, &[(view, keys)])
            .await?
            .pop()
            .unwrap_or_default())
    }

    async fn read_many(&self, project: &str, requests: &[(&str, &[Vec<u8>])]) -> Result<Vec<Vec<Option<OnlineRow>>>> {
        let batch = KeyBatch::new(project, requests);
        let shape: Vec<usize> = requests.iter().map(|(_, k)| k.len()).collect();
        let views: Vec<String> = requests.iter().map(|(v, _)| v.to_string()).collect();
        let prefix_len = project.len() + 2;
        let options = Arc::clone(&self.read_options);
        let schemas = Arc::clone(&self.schemas);
        self.blocking(move |db, path| {
            let mut out: Vec<Vec<Option<OnlineRow>>> = shape.iter().map(|&n| vec![None; n]).collect();
            batch.get(db, path, &options, |read, row, key, bytes| {
                let key = key[prefix_len + views[read].len()..].to_vec();
                out[read][row] = Some(
                    OnlineRow::decode_with(key, bytes, &|id| schemas.get(db, id))
                        .map_err(|e| corrupt(&views[read], e))?,
                );
                Ok(())
            })?;
            Ok(out)
        })
        .await
    }

    async fn read_projected(&self, project: &str, reads: &[ViewRead<'_>]) -> Result<Vec<ProjectedRows>> {
        let requests: Vec<(&str, &[Vec<u8>])> = reads.iter().map(|r| (r.view, r.keys)).collect();
        let batch = KeyBatch::new(project, &requests);
        let rows: Vec<usize> = reads.iter().map(|r| r.keys.len()).collect();
        if batch.spans.len() <= INLINE_READ_KEYS {
            let views: Vec<&str> = reads.iter().map(|r| r.view).collect();
            let projections: Vec<&Projection> = reads.iter().map(|r| r.projection).collect();
            return read_blocks(
                &batch,
                &self.db,
                &self.path,
                &self.read_options,
                &self.schemas,
                &views,
                &projections,
                &rows,
            );
        }
        let views: Vec<String> = reads.iter().map(|r| r.view.to_string()).collect();
        let projections: Vec<Projection> = reads.iter().map(|r| r.projection.clone()).collect();
        let options = Arc::clone(&self.read_options);
        let schemas = Arc::clone(&self.schemas);
        self.blocking(move |db, path| {
            let views: Vec<&str> = views.iter().map(String::as_str).collect();
            let projections: Vec<&Projection> = projections.iter().collect();
            read_blocks(&batch, db, path, &options, &schemas, &views, &projections, &rows)
        })
        .await
    }

    async fn delete_view(&self, project: &str, view: &str) -> Result<()> {
        let start = prefix(project, view);
        let mut end = start.clone();
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        self.blocking(move |db, path| {
            let cf = db
                .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
                .ok_or_else(|| Error::Internal("missing default column family".into()))?;
            db.delete_range_cf(&cf, &start, &end).map_err(|e| db_error(path, e))
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "rocksdb"
    }

    async fn newest_event(&self, project: &str, view: &str, limit: usize) -> Result<Option<(Option<i64>, bool)>> {
        let start = prefix(project, view);
        self.blocking(move |db, path| {
            let mut newest: Option<i64> = None;
            let iter = db.iterator(rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward));
            for (seen, item) in iter.enumerate() {
                let (k, v) = item.map_err(|e| db_error(path, e))?;
                if !k.starts_with(&start) {
                    return Ok(Some((newest, true)));
                }
                if seen == limit {
                    return Ok(Some((newest, false)));
                }
                if let Some((ts, _)) = OnlineRow::version_of(&v) {
                    newest = Some(newest.map_or(ts, |n| n.max(ts)));
                }
            }
            Ok(Some((newest, true)))
        })
        .await
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn row(key: &[u8], ts: i64, created: Option<i64>, v: f64) -> OnlineRow {
        OnlineRow {
            key: key.to_vec(),
            event_ts: ts,
            created_ts: created,
            values: vec![("f".into(), Value::Double(v))],
        }
    }

    #[tokio::test]
    async fn newest_wins_whatever_the_write_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap();
        store
            .write_batch("p", "v", vec![row(b"a", 10, None, 1.0), row(b"b", 5, Some(1), 1.0)])
            .await
            .unwrap();
        // Older event time: ignored. Same event time, newer created: wins.
        store
            .write_batch("p", "v", vec![row(b"a", 9, None, 2.0), row(b"b", 5, Some(2), 2.0)])
            .await
            .unwrap();
        store
            .write_batch("p", "v", vec![row(b"b", 5, Some(0), 3.0)])
            .await
            .unwrap();
        let got = store
            .read("p", "v", &[b"a".to_vec(), b"b".to_vec(), b"zz".to_vec()])
            .await
            .unwrap();
        assert_eq!(got[0].as_ref().unwrap().get("f"), Some(&Value::Double(1.0)));
        assert_eq!(got[1].as_ref().unwrap().get("f"), Some(&Value::Double(2.0)));
        assert!(got[2].is_none());
    }

    #[tokio::test]
    async fn views_and_projects_are_isolated_and_deletable() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap();
        store
            .write_batch("p", "v", vec![row(b"a", 1, None, 1.0)])
            .await
            .unwrap();
        store
            .write_batch("p", "v2", vec![row(b"a", 1, None, 2.0)])
            .await
            .unwrap();
        store
            .write_batch("q", "v", vec![row(b"a", 1, None, 3.0)])
            .await
            .unwrap();
        store.delete_view("p", "v").await.unwrap();
        assert!(store.read("p", "v", &[b"a".to_vec()]).await.unwrap()[0].is_none());
        assert!(store.read("p", "v2", &[b"a".to_vec()]).await.unwrap()[0].is_some());
        assert!(store.read("q", "v", &[b"a".to_vec()]).await.unwrap()[0].is_some());
    }

    /// Rows of format 1 (the previous release's) beside rows of format 2, and rows written
    /// before a view's schema changed: every one reads, by the projected and the full path,
    /// also from a reopened store (whose schema cache starts empty).
    #[tokio::test]
    async fn old_rows_and_old_schemas_still_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap();
            // Written by the previous release: format 1 bytes put as they are.
            let v1 = OnlineRow {
                key: b"old".to_vec(),
                event_ts: 5,
                created_ts: None,
                values: vec![("a".into(), Value::Double(1.0)), ("b".into(), Value::Int64(2))],
            };
            let mut k = prefix("p", "v");
            k.extend_from_slice(b"old");
            store.db.put(&k, v1.encode_value()).unwrap();
            // Schema [a, b], then the view changes to [c, a].
            let ab = OnlineRow {
                key: b"ab".to_vec(),
                event_ts: 6,
                created_ts: None,
                values: vec![("a".into(), Value::Double(3.0)), ("b".into(), Value::Int64(4))],
            };
            let ca = OnlineRow {
                key: b"ca".to_vec(),
                event_ts: 7,
                created_ts: None,
                values: vec![
                    ("c".into(), Value::String("x".into())),
                    ("a".into(), Value::Double(5.0)),
                ],
            };
            store.write_batch("p", "v", vec![ab, ca]).await.unwrap();
            let stored = store.db.get(&{
                let mut k = prefix("p", "v");
                k.extend_from_slice(b"ab");
                k
            });
            assert_eq!(stored.unwrap().unwrap()[0], larder_protocol::row::FORMAT_V2);
        }
        let store = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap();
        let keys = vec![b"old".to_vec(), b"ab".to_vec(), b"ca".to_vec(), b"none".to_vec()];
        let projection = Projection::new(["c", "a"], vec!["a".into(), "c".into(), "b".into()]);
        let blocks = store
            .read_projected(
                "p",
                &[ViewRead {
                    view: "v",
                    keys: &keys,
                    projection: &projection,
                }],
            )
            .await
            .unwrap();
        let b = &blocks[0];
        assert_eq!(b.event_ts, vec![Some(5), Some(6), Some(7), None]);
        let row = |i: usize| b.values[i * 3..(i + 1) * 3].to_vec();
        assert_eq!(row(0), vec![Value::Double(1.0), Value::Null, Value::Int64(2)]);
        assert_eq!(row(1), vec![Value::Double(3.0), Value::Null, Value::Int64(4)]);
        assert_eq!(row(2), vec![Value::Double(5.0), Value::String("x".into()), Value::Null]);
        assert_eq!(row(3), vec![Value::Null; 3]);
        let full = store.read("p", "v", &keys).await.unwrap();
        assert_eq!(full[2].as_ref().unwrap().get("c"), Some(&Value::String("x".into())));
        assert_eq!(full[0].as_ref().unwrap().get("b"), Some(&Value::Int64(2)));
        assert!(full[3].is_none());
        // Newest wins across the formats too: an older format-2 write loses to the format-1 row.
        store.write_batch("p", "v", vec![row_of(b"old", 4, 9.0)]).await.unwrap();
        let again = store.read("p", "v", &keys[..1]).await.unwrap();
        assert_eq!(again[0].as_ref().unwrap().get("a"), Some(&Value::Double(1.0)));
    }

    fn row_of(key: &[u8], ts: i64, a: f64) -> OnlineRow {
        OnlineRow {
            key: key.to_vec(),
            event_ts: ts,
            created_ts: None,
            values: vec![("a".into(), Value::Double(a))],
        }
    }

    #[test]
    fn a_second_process_gets_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap();
        let err = RocksDbOnlineStore::open(dir.path(), &RocksDbConfig::default()).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
