//! The online store seam: latest feature values per entity key, for low-latency reads.

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod redis_feast;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
pub mod sqlite_feast;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

pub use larder_protocol::row::{OnlineRow, ProjectedRows, Projection};

use crate::config::{OnlineStoreConfig, RepoConfig};
use crate::error::{Error, Result};

/// Latest feature values per (project, view, entity key). Impls: RocksDB (default), SQLite,
/// PostgreSQL, Redis and Redis Cluster.
///
/// Contract:
/// - `write_batch` upserts rows; a row whose `(event_ts, created_ts)` is older than the stored
///   row for its key is ignored (newest wins, whatever the arrival order), and writing the same
///   row twice is harmless, so a failed materialization can simply be re-run.
/// - `read` returns one entry per key, in key order, `None` for a missing key.
/// - Errors from an unreachable backend are `Error::Unavailable` (HTTP 503).
#[async_trait]
pub trait OnlineStore: Debug + Send + Sync {
    /// Upserts rows of one view (newest wins). Returns the number of rows submitted.
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize>;
    /// Writes rows of one view that replace what is stored for their keys, whatever its
    /// times: for a caller that has read the stored rows and writes their successors (the
    /// aggregation tiles of a stream view, whose worker read-modify-writes them). A backend
    /// without a cheaper way upserts them as [`OnlineStore::write_batch`] does.
    async fn write_replacing(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        self.write_batch(project, view, rows).await
    }
    /// Reads the rows stored for `keys` (serialized entity keys) of one view.
    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>>;
    /// Reads several views at once (one round trip where the backend allows it); the answer
    /// has one entry per request, as [`OnlineStore::read`] gives it.
    async fn read_many(&self, project: &str, requests: &[(&str, &[Vec<u8>])]) -> Result<Vec<Vec<Option<OnlineRow>>>> {
        let mut out = Vec::with_capacity(requests.len());
        for (view, keys) in requests {
            out.push(self.read(project, view, keys).await?);
        }
        Ok(out)
    }
    /// Reads the wanted features of several views at once: the serving path. The answer has one
    /// block per read, one row per key, in key order. Stores in Larder's row encoding decode
    /// only the projected features; the default projects decoded rows.
    async fn read_projected(&self, project: &str, reads: &[ViewRead<'_>]) -> Result<Vec<ProjectedRows>> {
        let requests: Vec<(&str, &[Vec<u8>])> = reads.iter().map(|r| (r.view, r.keys)).collect();
        let rows = self.read_many(project, &requests).await?;
        Ok(rows
            .into_iter()
            .zip(reads)
            .map(|(rows, read)| {
                let mut block = ProjectedRows::new(rows.len(), read.projection.len());
                for (i, row) in rows.iter().enumerate() {
                    if let Some(row) = row {
                        block.event_ts[i] = Some(row.project_into(read.projection, block.row_mut(i)));
                    }
                }
                block
            })
            .collect())
    }
    /// Deletes every row of a view (when `apply` removes it, or on teardown).
    async fn delete_view(&self, project: &str, view: &str) -> Result<()>;
    /// The newest event time (ns) among at most `limit` rows of a view, and whether every row
    /// was seen; `None` when the backend cannot tell cheaply.
    async fn newest_event(&self, _project: &str, _view: &str, _limit: usize) -> Result<Option<(Option<i64>, bool)>> {
        Ok(None)
    }
    /// The backend's name, for metrics (`rocksdb`, `redis`, ...).
    fn kind(&self) -> &'static str {
        "unknown"
    }
    /// Cheap liveness probe for `/health`.
    async fn health(&self) -> Result<()>;
}

/// One view's part of a [`OnlineStore::read_projected`] call.
#[derive(Debug, Clone, Copy)]
pub struct ViewRead<'a> {
    /// The view.
    pub view: &'a str,
    /// Serialized entity keys, one per entity row.
    pub keys: &'a [Vec<u8>],
    /// The features wanted of each row.
    pub projection: &'a Projection,
}

/// The feature names of a view, as the served registry has them (Feast's Redis layout names
/// its fields by hashes of them).
pub trait ViewFeatures: Send + Sync {
    /// The view's feature names; `None` for a view the registry does not have.
    fn features(&self, view: &str) -> Result<Option<Vec<String>>>;
}

/// How rows are laid out in the online store.
#[derive(Clone, Default)]
pub enum Layout {
    /// Larder's own (one encoded row per entity key and view).
    #[default]
    Larder,
    /// Feast's, as Feast 0.67 materializes it (serving a Feast deployment as it is; chosen
    /// when the registry is Feast's), with the registry's feature names. The SQLite and Redis
    /// stores have it.
    Feast(Arc<dyn ViewFeatures>),
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Larder => "Larder",
            Layout::Feast(_) => "Feast",
        })
    }
}

/// Opens the online store a repo configures, in `layout`. A backend whose cargo feature was
/// off at build time is a 501 naming the feature.
pub fn open(config: &RepoConfig, layout: &Layout) -> Result<Arc<dyn OnlineStore>> {
    if let OnlineStoreConfig::Remote(r) = &config.online_store {
        return Err(Error::Config {
            file: config.repo_dir.join(crate::config::CONFIG_FILE),
            message: format!(
                "online_store.type `remote`: this repo's online data is the feature server's at {} (the repo is \
                 its client); ask that server (`larder materialize` hands the run to it), or name a local online \
                 store to serve from (rocksdb, sqlite, redis or postgres)",
                r.path
            ),
        });
    }
    if let Layout::Feast(views) = layout {
        return open_feast_layout(config, Arc::clone(views));
    }
    match &config.online_store {
        #[cfg(feature = "rocksdb")]
        OnlineStoreConfig::Rocksdb(c) => Ok(Arc::new(rocksdb::RocksDbOnlineStore::open(
            &config.resolve_path(&c.path),
            c,
        )?)),
        #[cfg(feature = "postgres")]
        OnlineStoreConfig::Postgres(c) => Ok(Arc::new(
            postgres::PostgresOnlineStore::open(c).map_err(config_error(config))?,
        )),
        #[cfg(feature = "sqlite")]
        OnlineStoreConfig::Sqlite(c) => Ok(Arc::new(sqlite::SqliteOnlineStore::open(
            &config.resolve_path(&c.path),
        )?)),
        #[cfg(feature = "redis")]
        OnlineStoreConfig::Redis(c) => Ok(Arc::new(
            redis::RedisOnlineStore::open(c).map_err(config_error(config))?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(Error::not_built(other.feature(), "online_store")),
    }
}

/// Feast's layout of the configured store.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
fn open_feast_layout(config: &RepoConfig, views: Arc<dyn ViewFeatures>) -> Result<Arc<dyn OnlineStore>> {
    match &config.online_store {
        #[cfg(feature = "sqlite")]
        OnlineStoreConfig::Sqlite(c) => Ok(Arc::new(sqlite_feast::FeastSqliteOnlineStore::open(
            &config.resolve_path(&c.path),
        )?)),
        #[cfg(feature = "redis")]
        OnlineStoreConfig::Redis(c) => Ok(Arc::new(redis_feast::FeastRedisOnlineStore::new(
            redis::RedisOnlineStore::open(c).map_err(config_error(config))?,
            views,
        ))),
        // Feast has no RocksDB store: Larder's own layout.
        OnlineStoreConfig::Rocksdb(_) => open(config, &Layout::Larder),
        #[allow(unreachable_patterns)]
        other => Err(Error::NotImplemented(format!(
            "serving a Feast registry from Feast's {} online layout (Feast's SQLite and Redis layouts are read; \
             `larder import-feast` and a materialization move the data to Larder's layout)",
            other.feature()
        ))),
    }
}

/// Maps a backend's configuration message to an error naming `feature_store.yaml`.
#[cfg(any(feature = "postgres", feature = "redis"))]
fn config_error(config: &RepoConfig) -> impl Fn(String) -> Error + '_ {
    |message| Error::Config {
        file: config.repo_dir.join(crate::config::CONFIG_FILE),
        message,
    }
}

#[cfg(test)]
mod tests {
    /// A build without the embedded store refuses a repo that configures it, naming the feature.
    #[cfg(not(feature = "rocksdb"))]
    #[test]
    fn a_backend_left_out_of_the_build_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(crate::config::CONFIG_FILE),
            "project: p\nonline_store:\n  type: rocksdb\n",
        )
        .unwrap();
        let config = crate::config::RepoConfig::load(dir.path()).unwrap();
        let err = super::open(&config, &super::Layout::Larder).unwrap_err();
        assert_eq!(err.status(), 501);
        assert!(err.to_string().contains("`rocksdb` feature"), "{err}");
    }
}
