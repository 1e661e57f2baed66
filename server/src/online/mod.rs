//! The online store seam: latest feature values per entity key, for low-latency reads.

pub mod postgres;
pub mod redis;
pub mod rocksdb;
pub mod sqlite;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

pub use larder_protocol::row::OnlineRow;

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

/// Opens the online store a repo configures.
pub fn open(config: &RepoConfig) -> Result<Arc<dyn OnlineStore>> {
    match &config.online_store {
        OnlineStoreConfig::Rocksdb(c) => {
            let path = config.resolve_path(&c.path);
            Ok(Arc::new(rocksdb::RocksDbOnlineStore::open(&path, c)?))
        }
        OnlineStoreConfig::Postgres(c) => Ok(Arc::new(postgres::PostgresOnlineStore::open(c).map_err(|message| {
            Error::Config {
                file: config.repo_dir.join(crate::config::CONFIG_FILE),
                message,
            }
        })?)),
        OnlineStoreConfig::Sqlite(c) => Ok(Arc::new(sqlite::SqliteOnlineStore::open(
            &config.resolve_path(&c.path),
        )?)),
        OnlineStoreConfig::Redis(c) => Ok(Arc::new(redis::RedisOnlineStore::open(c).map_err(|message| {
            Error::Config {
                file: config.repo_dir.join(crate::config::CONFIG_FILE),
                message,
            }
        })?)),
    }
}
