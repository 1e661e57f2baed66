//! The PostgreSQL registry store: Feast's `registry: {registry_type: sql, path: postgresql://...}`,
//! one registry shared by several servers.
//!
//! Two tables, created on first use:
//! - `larder_registry_state (project PRIMARY KEY, version, changed, state)`: the current state
//!   (the same JSON document the file store keeps) and a counter bumped by every write;
//! - `larder_registry_history (project, version, applied_at, applied_by, changes, doc)`.
//!
//! Every write is one transaction, serialized per project by a transaction-scoped advisory
//! lock, so a crash or a lost connection leaves the old version or the new one, never a torn
//! one, and a reader never sees a half-applied registry. Servers notice a change through
//! [`RegistryStore::change_token`] (the `changed` counter), which they poll every
//! `cache_ttl_seconds`.
//!
//! The trait is synchronous and is called from async code, where the blocking `postgres`
//! client may not run its own runtime; each call therefore runs on a short-lived scoped thread.

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls, Transaction};

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
    version BIGINT NOT NULL,
    changed BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS larder_registry_history (
    project TEXT NOT NULL,
    version BIGINT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (project, version)
);";

/// A registry kept in PostgreSQL, for one project.
pub struct PostgresRegistryStore {
    config: postgres::Config,
    target: String,
    project: String,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PostgresRegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRegistryStore")
            .field("target", &self.target)
            .field("project", &self.project)
            .finish()
    }
}

impl PostgresRegistryStore {
    /// A store for `project` at `url` (`postgresql://user:password@host:port/db`; SQLAlchemy's
    /// `postgresql+psycopg://` form is accepted too). Connects on first use.
    pub fn new(url: &str, project: &str) -> Result<Self> {
        let url = normalize_url(url);
        let mut config: postgres::Config = url.parse().map_err(|e| Error::Database {
            target: redact(&url),
            message: format!("not a PostgreSQL URL: {e}"),
        })?;
        config.connect_timeout(Duration::from_secs(5));
        let target = describe(&config);
        Ok(PostgresRegistryStore {
            config,
            target,
            project: project.to_string(),
            client: Mutex::new(None),
        })
    }

    fn db_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Database {
            target: self.target.clone(),
            message: e.to_string(),
        }
    }

    /// Runs `f` with a connected client on a scoped thread; a broken connection is dropped so
    /// that the next call reconnects.
    fn with_client<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T> + Send) -> Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
                if guard.as_ref().is_none_or(|c| c.is_closed()) {
                    let mut client = self.config.connect(NoTls).map_err(|e| self.db_error(e))?;
                    client.batch_execute(SCHEMA).map_err(|e| self.db_error(e))?;
                    *guard = Some(client);
                }
                let client = guard.as_mut().expect("connected above");
                let out = f(client);
                if client.is_closed() {
                    *guard = None;
                }
                out
            })
            .join()
            .unwrap_or_else(|_| Err(self.db_error("the registry database worker panicked")))
        })
    }

    /// Runs `f` on this store's connection (for readers of other tables in the same database,
    /// such as Feast's own SQL registry); errors of `f` should be [`Error::Database`].
    pub fn with_connection<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T> + Send) -> Result<T> {
        self.with_client(f)
    }

    /// Where the database is, for messages (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Locks this project's registry for the rest of the transaction.
    fn lock(&self, tx: &mut Transaction<'_>) -> Result<()> {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('larder_registry:' || $1))",
            &[&self.project],
        )
        .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    fn load_in(&self, client: &mut impl postgres::GenericClient) -> Result<Option<RegistryState>> {
        let row = client
            .query_opt(
                "SELECT state FROM larder_registry_state WHERE project = $1",
                &[&self.project],
            )
            .map_err(|e| self.db_error(e))?;
        match row {
            None => Ok(None),
            Some(r) => {
                let text: String = r.get(0);
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| self.db_error(format!("the stored state is corrupt: {e}")))
            }
        }
    }

    fn save_in(&self, tx: &mut Transaction<'_>, state: &RegistryState) -> Result<()> {
        let text = serde_json::to_string(state).map_err(|e| self.db_error(e))?;
        tx.execute(
            "INSERT INTO larder_registry_state (project, version, changed, state) VALUES ($1, $2, 1, $3)
             ON CONFLICT (project) DO UPDATE
             SET version = EXCLUDED.version, changed = larder_registry_state.changed + 1, state = EXCLUDED.state",
            &[&self.project, &(state.version as i64), &text],
        )
        .map_err(|e| self.db_error(e))?;
        Ok(())
    }
}

impl Drop for PostgresRegistryStore {
    /// Closing the blocking client runs a small runtime, which may not happen on an async
    /// thread: close it on a thread of its own.
    fn drop(&mut self) {
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = client {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// `postgresql+driver://` (SQLAlchemy) becomes `postgresql://`.
fn normalize_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.starts_with("postgresql+") || scheme.starts_with("postgres+") => {
            format!("postgresql://{rest}")
        }
        _ => url.to_string(),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_string(),
    }
}

fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgresql://{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

impl RegistryStore for PostgresRegistryStore {
    fn load(&self) -> Result<Option<RegistryState>> {
        self.with_client(|c| self.load_in(c))
    }

    fn apply(
        &self,
        mut doc: RegistryDoc,
        applied_by: &str,
        allow: &(dyn Fn(&Plan) -> Result<()> + Sync),
    ) -> Result<Applied> {
        doc.normalize();
        self.with_client(move |c| {
            let mut tx = c.transaction().map_err(|e| self.db_error(e))?;
            self.lock(&mut tx)?;
            let (plan, next) = plan_next(self.load_in(&mut tx)?, doc, applied_by, allow)?;
            let (state, entry) = match next.into_record(&plan) {
                Ok(record) => record,
                Err(unchanged) => return Ok(*unchanged),
            };
            let version = state.version;
            let entry_text = serde_json::to_string(&entry).map_err(|e| self.db_error(e))?;
            tx.execute(
                "INSERT INTO larder_registry_history (project, version, entry) VALUES ($1, $2, $3)
                 ON CONFLICT (project, version) DO UPDATE SET entry = EXCLUDED.entry",
                &[&self.project, &(version as i64), &entry_text],
            )
            .map_err(|e| self.db_error(e))?;
            self.save_in(&mut tx, &state)?;
            tx.commit().map_err(|e| self.db_error(e))?;
            Ok(Applied {
                plan,
                state: Some(state),
                recorded: true,
            })
        })
    }

    fn record_materialization(&self, view: &str, interval: MaterializationInterval) -> Result<()> {
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(|e| self.db_error(e))?;
            self.lock(&mut tx)?;
            let Some(mut state) = self.load_in(&mut tx)? else {
                return Ok(());
            };
            merge_interval(state.materializations.entry(view.to_string()).or_default(), interval);
            self.save_in(&mut tx, &state)?;
            tx.commit().map_err(|e| self.db_error(e))
        })
    }

    fn history(&self) -> Result<Vec<VersionInfo>> {
        self.with_client(|c| {
            let rows = c
                .query(
                    "SELECT h.entry FROM larder_registry_history h
                     JOIN larder_registry_state s ON s.project = h.project AND h.version <= s.version
                     WHERE h.project = $1 ORDER BY h.version",
                    &[&self.project],
                )
                .map_err(|e| self.db_error(e))?;
            rows.iter()
                .map(|r| {
                    let text: String = r.get(0);
                    serde_json::from_str::<HistoryEntry>(&text)
                        .map(|h| h.info)
                        .map_err(|e| self.db_error(format!("a history entry is corrupt: {e}")))
                })
                .collect()
        })
    }

    fn version(&self, version: u64) -> Result<(VersionInfo, RegistryDoc)> {
        self.with_client(|c| {
            let row = c
                .query_opt(
                    "SELECT entry FROM larder_registry_history WHERE project = $1 AND version = $2",
                    &[&self.project, &(version as i64)],
                )
                .map_err(|e| self.db_error(e))?
                .ok_or(Error::NoSuchVersion(version))?;
            let text: String = row.get(0);
            let h: HistoryEntry =
                serde_json::from_str(&text).map_err(|e| self.db_error(format!("a history entry is corrupt: {e}")))?;
            Ok((h.info, h.doc))
        })
    }

    fn change_token(&self) -> Result<Option<u128>> {
        self.with_client(|c| {
            let row = c
                .query_opt(
                    "SELECT version, changed FROM larder_registry_state WHERE project = $1",
                    &[&self.project],
                )
                .map_err(|e| self.db_error(e))?;
            Ok(row.map(|r| {
                let version: i64 = r.get(0);
                let changed: i64 = r.get(1);
                ((version as u128) << 64) | changed as u64 as u128
            }))
        })
    }

    fn delete(&self) -> Result<()> {
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(|e| self.db_error(e))?;
            self.lock(&mut tx)?;
            for table in ["larder_registry_history", "larder_registry_state"] {
                tx.execute(&format!("DELETE FROM {table} WHERE project = $1"), &[&self.project])
                    .map_err(|e| self.db_error(e))?;
            }
            tx.commit().map_err(|e| self.db_error(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_and_passwords_never_shown() {
        assert_eq!(
            normalize_url("postgresql+psycopg://u:p@h:5/db"),
            "postgresql://u:p@h:5/db"
        );
        assert_eq!(normalize_url("postgres://h/db"), "postgres://h/db");
        let store = PostgresRegistryStore::new("postgresql+psycopg://u:secret@db.example:6543/reg", "p").unwrap();
        assert_eq!(store.target, "postgresql://db.example:6543/reg");
        assert!(!format!("{store:?}").contains("secret"));
        let err = PostgresRegistryStore::new("postgresql://u:secret@h:notaport/x", "p").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
