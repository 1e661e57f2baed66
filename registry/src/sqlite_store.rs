//! The SQLite registry store: Feast's `registry: {registry_type: sql, path: sqlite:///FILE}`.
//!
//! The same two tables as the PostgreSQL store (`larder_registry_state`,
//! `larder_registry_history`), beside the tables Feast's own SQL registry keeps in the file.
//! Every write is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before
//! reading, so applies from several processes serialize and each plans against the version it
//! replaces. WAL mode: readers never wait for a writer.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::model::RegistryDoc;
use crate::plan::Plan;
use crate::store::{
    merge_interval, plan_next, Applied, HistoryEntry, MaterializationInterval, RegistryState, RegistryStore,
    VersionInfo,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS larder_registry_state (
    project TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    changed INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS larder_registry_history (
    project TEXT NOT NULL,
    version INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (project, version)
);";

/// A registry kept in a SQLite file, for one project.
pub struct SqliteRegistryStore {
    path: PathBuf,
    project: String,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteRegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRegistryStore")
            .field("path", &self.path)
            .field("project", &self.project)
            .finish()
    }
}

impl SqliteRegistryStore {
    /// A store for `project` in the SQLite file `path` (created on first use).
    pub fn new(path: impl Into<PathBuf>, project: &str) -> Self {
        SqliteRegistryStore {
            path: path.into(),
            project: project.to_string(),
            conn: Mutex::new(None),
        }
    }

    fn db_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Database {
            target: format!("sqlite://{}", self.path.display()),
            message: e.to_string(),
        }
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| self.db_error(e))?;
            }
            let c = Connection::open(&self.path).map_err(|e| self.db_error(e))?;
            c.busy_timeout(Duration::from_secs(30)).map_err(|e| self.db_error(e))?;
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| self.db_error(e))?;
            c.execute_batch(SCHEMA).map_err(|e| self.db_error(e))?;
            *guard = Some(c);
        }
        let conn = guard.as_mut().ok_or_else(|| self.db_error("no connection"))?;
        f(conn)
    }

    fn load_in(&self, c: &Connection) -> Result<Option<RegistryState>> {
        let text: Option<String> = c
            .query_row(
                "SELECT state FROM larder_registry_state WHERE project = ?1",
                params![self.project],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db_error(e))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| self.db_error(format!("the stored state is corrupt: {e}"))))
            .transpose()
    }

    fn save_in(&self, c: &Connection, state: &RegistryState) -> Result<()> {
        let text = serde_json::to_string(state).map_err(|e| self.db_error(e))?;
        c.execute(
            "INSERT INTO larder_registry_state (project, version, changed, state) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (project) DO UPDATE
             SET version = excluded.version, changed = larder_registry_state.changed + 1, state = excluded.state",
            params![self.project, state.version as i64, text],
        )
        .map_err(|e| self.db_error(e))?;
        Ok(())
    }
}

impl RegistryStore for SqliteRegistryStore {
    fn load(&self) -> Result<Option<RegistryState>> {
        self.with_conn(|c| self.load_in(c))
    }

    fn apply(
        &self,
        mut doc: RegistryDoc,
        applied_by: &str,
        allow: &(dyn Fn(&Plan) -> Result<()> + Sync),
    ) -> Result<Applied> {
        doc.normalize();
        self.with_conn(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.db_error(e))?;
            let (plan, next) = plan_next(self.load_in(&tx)?, doc, applied_by, allow)?;
            let (state, entry) = match next.into_record(&plan) {
                Ok(record) => record,
                Err(unchanged) => return Ok(*unchanged),
            };
            let entry_text = serde_json::to_string(&entry).map_err(|e| self.db_error(e))?;
            tx.execute(
                "INSERT OR REPLACE INTO larder_registry_history (project, version, entry) VALUES (?1, ?2, ?3)",
                params![self.project, state.version as i64, entry_text],
            )
            .map_err(|e| self.db_error(e))?;
            self.save_in(&tx, &state)?;
            tx.commit().map_err(|e| self.db_error(e))?;
            Ok(Applied {
                plan,
                state: Some(state),
                recorded: true,
            })
        })
    }

    fn record_materialization(&self, view: &str, interval: MaterializationInterval) -> Result<()> {
        self.with_conn(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.db_error(e))?;
            let Some(mut state) = self.load_in(&tx)? else {
                return Ok(());
            };
            merge_interval(state.materializations.entry(view.to_string()).or_default(), interval);
            self.save_in(&tx, &state)?;
            tx.commit().map_err(|e| self.db_error(e))
        })
    }

    fn history(&self) -> Result<Vec<VersionInfo>> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT h.entry FROM larder_registry_history h
                     JOIN larder_registry_state s ON s.project = h.project AND h.version <= s.version
                     WHERE h.project = ?1 ORDER BY h.version",
                )
                .map_err(|e| self.db_error(e))?;
            let texts: Vec<String> = stmt
                .query_map(params![self.project], |r| r.get(0))
                .map_err(|e| self.db_error(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.db_error(e))?;
            texts
                .iter()
                .map(|t| {
                    serde_json::from_str::<HistoryEntry>(t)
                        .map(|h| h.info)
                        .map_err(|e| self.db_error(format!("a history entry is corrupt: {e}")))
                })
                .collect()
        })
    }

    fn version(&self, version: u64) -> Result<(VersionInfo, RegistryDoc)> {
        self.with_conn(|c| {
            let text: String = c
                .query_row(
                    "SELECT entry FROM larder_registry_history WHERE project = ?1 AND version = ?2",
                    params![self.project, version as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.db_error(e))?
                .ok_or(Error::NoSuchVersion(version))?;
            let h: HistoryEntry =
                serde_json::from_str(&text).map_err(|e| self.db_error(format!("a history entry is corrupt: {e}")))?;
            Ok((h.info, h.doc))
        })
    }

    fn change_token(&self) -> Result<Option<u128>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT version, changed FROM larder_registry_state WHERE project = ?1",
                params![self.project],
                |r| Ok(((r.get::<_, i64>(0)? as u128) << 64) | r.get::<_, i64>(1)? as u64 as u128),
            )
            .optional()
            .map_err(|e| self.db_error(e))
        })
    }

    fn delete(&self) -> Result<()> {
        self.with_conn(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.db_error(e))?;
            for table in ["larder_registry_history", "larder_registry_state"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE project = ?1"),
                    params![self.project],
                )
                .map_err(|e| self.db_error(e))?;
            }
            tx.commit().map_err(|e| self.db_error(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diff;

    fn doc(entities: &[&str]) -> RegistryDoc {
        RegistryDoc {
            project: "p".into(),
            entities: entities
                .iter()
                .map(|n| crate::Entity {
                    name: n.to_string(),
                    join_keys: vec!["k".into()],
                    value_type: Some(crate::ValueType::Int64),
                    description: String::new(),
                    tags: Default::default(),
                    owner: String::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn versions_history_and_two_handles_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/registry.db");
        let a = SqliteRegistryStore::new(&path, "p");
        let b = SqliteRegistryStore::new(&path, "p");
        assert!(a.load().unwrap().is_none());
        let first = a.apply(doc(&["e1"]), "alice", &|_| Ok(())).unwrap();
        assert!(first.recorded);
        let token = b.change_token().unwrap();
        // The second handle plans against the version the first recorded.
        let second = b.apply(doc(&["e1", "e2"]), "bob", &|_| Ok(())).unwrap();
        assert_eq!(
            second.plan.changes,
            diff(Some(&doc(&["e1"])), &doc(&["e1", "e2"])).changes
        );
        assert_eq!(second.plan.base_version, Some(1));
        assert_ne!(a.change_token().unwrap(), token);
        assert!(!a.apply(doc(&["e1", "e2"]), "carol", &|_| Ok(())).unwrap().recorded);
        let refused = a.apply(doc(&["e3"]), "dan", &|_| Err(Error::Refused("no".into())));
        assert!(matches!(refused, Err(Error::Refused(_))));
        let hist = a.history().unwrap();
        assert_eq!(hist.iter().map(|h| h.version).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(hist[1].changes, vec!["Created entity e2".to_string()]);
        assert_eq!(b.version(1).unwrap().1.entities.len(), 1);
        assert!(matches!(b.version(7), Err(Error::NoSuchVersion(7))));
        a.delete().unwrap();
        assert!(b.load().unwrap().is_none());
    }
}
