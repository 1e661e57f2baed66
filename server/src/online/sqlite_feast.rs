//! Feast's own SQLite online layout, for serving what Feast materialized (a Feast deployment
//! taken over without re-materializing; chosen when the registry is Feast's).
//!
//! Feast 0.67 (`feast/infra/online_stores/sqlite.py`) keeps one table per view,
//! `<project>_<view>`, with one row per (entity key, feature): `entity_key` (the v3 serialized
//! entity key, the same bytes as Larder's keys), `feature_name`, `value` (a serialized
//! `feast.types.Value`), `event_ts` and `created_ts` (written through Python's sqlite3 adapter:
//! epoch seconds, or text for older files). Writes follow Feast's: an upsert per feature,
//! timestamps in whole seconds, and, like Larder's stores, an older event never replaces a
//! newer one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use larder_feast_model::proto::types as ft;
use prost::Message;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use super::sqlite::{connect, run_blocking};
use super::{OnlineRow, OnlineStore};
use crate::error::{Error, Result};

/// Online store reading and writing Feast's tables in a SQLite file.
pub struct FeastSqliteOnlineStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for FeastSqliteOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeastSqliteOnlineStore")
            .field("path", &self.path)
            .finish()
    }
}

fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Unavailable(format!("online store {} (Feast's layout): {e}", path.display()))
}

/// Feast's table name, quoted as an SQL identifier.
fn table(project: &str, view: &str) -> String {
    format!("\"{}\"", format!("{project}_{view}").replace('"', "\"\""))
}

/// Nanoseconds since the epoch of a timestamp cell as Feast's adapter wrote it.
fn nanos(cell: ValueRef<'_>) -> Option<i64> {
    match cell {
        ValueRef::Integer(s) => s.checked_mul(1_000_000_000),
        ValueRef::Real(s) => Some((s * 1e9) as i64),
        ValueRef::Text(t) => {
            let text = std::str::from_utf8(t).ok()?;
            let parsed = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .ok()?;
            parsed.and_utc().timestamp_nanos_opt()
        }
        _ => None,
    }
}

fn missing_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

impl FeastSqliteOnlineStore {
    /// Opens Feast's database file at `path`, leaving its settings as Feast made them
    /// (no WAL) and creating nothing in it until a write.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = connect(path, false)?;
        Ok(FeastSqliteOnlineStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        run_blocking(&self.conn, &self.path, db_error, f).await
    }
}

/// One stored (feature, value, event, created) cell.
type Cell = (String, Vec<u8>, Option<i64>, Option<i64>);

fn row_of(key: &[u8], cells: Vec<Cell>, view: &str) -> Result<Option<OnlineRow>> {
    if cells.is_empty() {
        return Ok(None);
    }
    let mut event_ts = i64::MIN;
    let mut created_ts = None;
    let mut values = Vec::with_capacity(cells.len());
    for (name, bytes, ev, cr) in cells {
        let proto = ft::Value::decode(bytes.as_slice())
            .map_err(|e| Error::Internal(format!("corrupt Feast value {view}:{name}: {e}")))?;
        let value = larder_feast_model::value::from_feast(&proto)
            .map_err(|e| Error::Internal(format!("{view}:{name}: {e}")))?;
        event_ts = event_ts.max(ev.unwrap_or(0));
        created_ts = created_ts.max(cr);
        values.push((name, value));
    }
    Ok(Some(OnlineRow {
        key: key.to_vec(),
        event_ts,
        created_ts,
        values,
    }))
}

#[async_trait]
impl OnlineStore for FeastSqliteOnlineStore {
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        let t = table(project, view);
        self.with_conn(move |c| {
            c.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, \
                 vector_value BLOB, event_ts timestamp, created_ts timestamp, PRIMARY KEY(entity_key, feature_name))"
            ))?;
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO {t} (entity_key, feature_name, value, event_ts, created_ts) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, \
                     event_ts = excluded.event_ts, created_ts = excluded.created_ts \
                     WHERE excluded.event_ts >= coalesce({t}.event_ts, 0)"
                ))?;
                for r in &rows {
                    let event = r.event_ts.div_euclid(1_000_000_000);
                    let created = r.created_ts.map(|c| c.div_euclid(1_000_000_000));
                    for (name, v) in &r.values {
                        let value = larder_feast_model::value::to_feast(v).encode_to_vec();
                        stmt.execute(params![r.key, name, value, event, created])?;
                    }
                }
            }
            tx.commit()?;
            Ok(rows.len())
        })
        .await
    }

    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        let t = table(project, view);
        let owned = keys.to_vec();
        let view_name = view.to_string();
        let cells: Vec<Vec<Cell>> = self
            .with_conn(move |c| {
                let sql = format!("SELECT feature_name, value, event_ts, created_ts FROM {t} WHERE entity_key = ?1");
                let mut stmt = match c.prepare_cached(&sql) {
                    Ok(s) => s,
                    // Feast creates the table at apply; before that there is no value.
                    Err(e) if missing_table(&e) => return Ok(vec![Vec::new(); owned.len()]),
                    Err(e) => return Err(e),
                };
                owned
                    .iter()
                    .map(|k| {
                        stmt.query_map(params![k], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, Vec<u8>>(1)?,
                                nanos(r.get_ref(2)?),
                                nanos(r.get_ref(3)?),
                            ))
                        })?
                        .collect()
                    })
                    .collect()
            })
            .await?;
        cells
            .into_iter()
            .zip(keys)
            .map(|(cells, key)| row_of(key, cells, &view_name))
            .collect()
    }

    async fn delete_view(&self, project: &str, view: &str) -> Result<()> {
        let t = table(project, view);
        self.with_conn(move |c| match c.execute(&format!("DELETE FROM {t}"), []) {
            Err(e) if missing_table(&e) => Ok(()),
            other => other.map(|_| ()),
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn newest_event(&self, project: &str, view: &str, _limit: usize) -> Result<Option<(Option<i64>, bool)>> {
        let t = table(project, view);
        let newest = self
            .with_conn(move |c| {
                let r = c
                    .query_row(&format!("SELECT max(event_ts) FROM {t}"), [], |r| {
                        Ok(nanos(r.get_ref(0)?))
                    })
                    .optional();
                match r {
                    Err(e) if missing_table(&e) => Ok(None),
                    other => other.map(Option::flatten),
                }
            })
            .await?;
        Ok(Some((newest, true)))
    }

    async fn health(&self) -> Result<()> {
        self.with_conn(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ()))
            .await
    }
}
