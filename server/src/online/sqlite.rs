//! The SQLite online store: Feast's local default (`online_store: {type: sqlite, path: ...}`),
//! in one file that several processes may open at once (a `larder materialize` while
//! `larder serve` runs), unlike the embedded RocksDB store.
//!
//! Layout: one table, `larder_online (project, view, entity_key, event_ts, created_ts, row)`,
//! keyed by `(project, view, entity_key)` (entity key as [`crate::key`] serializes it), rows as
//! [`OnlineRow`] encodes them. It sits beside the tables Feast itself would create in the same
//! file (`<project>_<view>`), which it never touches. Writes are one transaction per batch with
//! an upsert that keeps the newest `(event_ts, created_ts)`, so out-of-order and concurrent
//! writers never move a key back in time. The database runs in WAL mode: readers do not block
//! the writer. Calls run on tokio's blocking pool, never on the async runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{OnlineRow, OnlineStore};
use crate::error::{Error, Result};

/// Online store in a SQLite database file.
pub struct SqliteOnlineStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOnlineStore").field("path", &self.path).finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS larder_online (
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    entity_key BLOB NOT NULL,
    event_ts INTEGER NOT NULL,
    created_ts INTEGER NOT NULL,
    row BLOB NOT NULL,
    PRIMARY KEY (project, view, entity_key)
) WITHOUT ROWID;
";

const UPSERT: &str = "
INSERT INTO larder_online (project, view, entity_key, event_ts, created_ts, row)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (project, view, entity_key) DO UPDATE SET
    event_ts = excluded.event_ts, created_ts = excluded.created_ts, row = excluded.row
WHERE (excluded.event_ts, excluded.created_ts) >= (larder_online.event_ts, larder_online.created_ts)
";

fn db_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("online store {}: {e}", path.display()))
}

/// Runs `f` on `conn` on tokio's blocking pool; its errors become `error(path, e)`.
pub(crate) async fn run_blocking<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    path: &Path,
    error: fn(&Path, rusqlite::Error) -> Error,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T> {
    let conn = Arc::clone(conn);
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut guard = conn
            .lock()
            .map_err(|_| Error::Internal("the SQLite connection lock is poisoned".into()))?;
        f(&mut guard).map_err(|e| error(&path, e))
    })
    .await
    .map_err(|e| Error::Internal(format!("SQLite task failed: {e}")))?
}

/// Opens (creating if needed) a SQLite database file shared with other processes, with a busy
/// timeout; with `wal`, in WAL mode (readers do not block the writer) with
/// `synchronous = NORMAL` (a setting stored in the file).
#[allow(clippy::disallowed_methods, reason = "opened once, on first use")]
pub(crate) fn connect(path: &Path, wal: bool) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| db_error(path, format!("cannot create {}: {e}", dir.display())))?;
    }
    let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| db_error(path, e))?;
    if wal {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_error(path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_error(path, e))?;
    }
    Ok(conn)
}

impl SqliteOnlineStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = connect(path, true)?;
        conn.execute_batch(SCHEMA).map_err(|e| db_error(path, e))?;
        Ok(SqliteOnlineStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        run_blocking(&self.conn, &self.path, db_error, f).await
    }
}

#[async_trait]
impl OnlineStore for SqliteOnlineStore {
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        let (project, view) = (project.to_string(), view.to_string());
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(UPSERT)?;
                for r in &rows {
                    stmt.execute(params![
                        project,
                        view,
                        r.key,
                        r.event_ts,
                        r.created_ts.unwrap_or(i64::MIN),
                        r.encode_value()
                    ])?;
                }
            }
            tx.commit()?;
            Ok(rows.len())
        })
        .await
    }

    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        let (project, view_name, owned) = (project.to_string(), view.to_string(), keys.to_vec());
        let found: Vec<Option<Vec<u8>>> = self
            .with_conn(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT row FROM larder_online WHERE project = ?1 AND view = ?2 AND entity_key = ?3",
                )?;
                owned
                    .iter()
                    .map(|k| {
                        stmt.query_row(params![project, view_name, k], |r| r.get::<_, Vec<u8>>(0))
                            .optional()
                    })
                    .collect()
            })
            .await?;
        found
            .into_iter()
            .zip(keys)
            .map(|(bytes, key)| match bytes {
                None => Ok(None),
                Some(b) => OnlineRow::decode(key.clone(), &b)
                    .map(Some)
                    .map_err(|e| Error::Internal(format!("corrupt online row in {view}: {e}"))),
            })
            .collect()
    }

    async fn delete_view(&self, project: &str, view: &str) -> Result<()> {
        let (project, view) = (project.to_string(), view.to_string());
        self.with_conn(move |c| {
            c.execute(
                "DELETE FROM larder_online WHERE project = ?1 AND view = ?2",
                params![project, view],
            )
            .map(|_| ())
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn newest_event(&self, project: &str, view: &str, _limit: usize) -> Result<Option<(Option<i64>, bool)>> {
        let (project, view) = (project.to_string(), view.to_string());
        let newest: Option<i64> = self
            .with_conn(move |c| {
                c.query_row(
                    "SELECT max(event_ts) FROM larder_online WHERE project = ?1 AND view = ?2",
                    params![project, view],
                    |r| r.get(0),
                )
            })
            .await?;
        Ok(Some((newest, true)))
    }

    async fn health(&self) -> Result<()> {
        self.with_conn(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ()))
            .await
    }
}
