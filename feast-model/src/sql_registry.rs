//! Feast's SQL registry (`registry_type: sql`) in PostgreSQL (`path: postgresql://...`) or
//! SQLite (`path: sqlite:///...`) as a read-only [`larder_registry::RegistryStore`]: one table
//! per object kind (`entities`, `data_sources`,
//! `feature_views`, `stream_feature_views`, `on_demand_feature_views`, `label_views`,
//! `feature_services`), each row a serialized Feast object of one project (`project_id`), and
//! `feast_metadata`'s `last_updated_timestamp` per project, which Feast bumps on every change.
//! PostgreSQL is read over the connection of Larder's own PostgreSQL store (the same
//! database), SQLite by opening the file read-only; writes are refused as for Feast's file
//! registry.

#[cfg(feature = "postgres")]
use larder_registry::PostgresRegistryStore;
#[cfg(feature = "postgres")]
use larder_registry::RegistryStore;
use larder_registry::{Error, Result};
#[cfg(feature = "postgres")]
use postgres::Client;
use prost::Message;

use crate::proto::core as fc;
use crate::read_only::FeastSource;

/// Feast's tables: (table, proto column).
const TABLES: [(&str, &str); 7] = [
    ("entities", "entity_proto"),
    ("data_sources", "data_source_proto"),
    ("feature_views", "feature_view_proto"),
    ("stream_feature_views", "feature_view_proto"),
    ("on_demand_feature_views", "feature_view_proto"),
    ("label_views", "feature_view_proto"),
    ("feature_services", "feature_service_proto"),
];

/// The project's objects from Feast's tables, each read with `rows(table, proto column)`, as
/// one Feast `Registry` stamped with Feast's `last_updated` (seconds); `None` when Feast holds
/// none.
fn assemble(
    project: &str,
    mut rows: impl FnMut(&str, &str) -> Result<Vec<Vec<u8>>>,
    last_updated: Option<i64>,
    corrupt: impl Fn(String) -> Error,
) -> Result<Option<fc::Registry>> {
    fn decode<M: Message + Default>(table: &str, bytes: &[u8], corrupt: &impl Fn(String) -> Error) -> Result<M> {
        M::decode(bytes).map_err(|e| corrupt(format!("a row of Feast's {table} table is corrupt: {e}")))
    }
    let mut r = fc::Registry::default();
    let mut any = false;
    for (table, column) in TABLES {
        let found = rows(table, column)?;
        any |= !found.is_empty();
        for bytes in found {
            match table {
                "entities" => r.entities.push(decode(table, &bytes, &corrupt)?),
                "data_sources" => r.data_sources.push(decode(table, &bytes, &corrupt)?),
                "feature_views" => r.feature_views.push(decode(table, &bytes, &corrupt)?),
                "stream_feature_views" => r.stream_feature_views.push(decode(table, &bytes, &corrupt)?),
                "on_demand_feature_views" => r.on_demand_feature_views.push(decode(table, &bytes, &corrupt)?),
                "label_views" => r.label_views.push(decode(table, &bytes, &corrupt)?),
                _ => r.feature_services.push(decode(table, &bytes, &corrupt)?),
            }
        }
    }
    // Feast's SQL registry leaves the objects' own `project` empty: the row's project_id says it.
    set_project(&mut r, project);
    if let Some(ts) = last_updated {
        r.last_updated = Some(prost_types::Timestamp { seconds: ts, nanos: 0 });
    }
    Ok(any.then_some(r))
}

/// Feast's SQL registry of one project, in the PostgreSQL database of `store`.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct FeastSqlRegistry {
    store: PostgresRegistryStore,
    project: String,
}

#[cfg(feature = "postgres")]
fn undefined_table(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE)
}

#[cfg(feature = "postgres")]
impl FeastSqlRegistry {
    /// Feast's registry for `project`, read through `store`'s connection.
    pub fn new(store: PostgresRegistryStore, project: &str) -> Self {
        FeastSqlRegistry {
            store,
            project: project.to_string(),
        }
    }

    fn db_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Database {
            target: self.store.target().to_string(),
            message: e.to_string(),
        }
    }

    /// The serialized objects of one table (none when Feast has not created it).
    fn rows(&self, c: &mut Client, table: &str, column: &str) -> Result<Vec<Vec<u8>>> {
        let sql = format!("SELECT {column} FROM {table} WHERE project_id = $1");
        match c.query(&sql, &[&self.project]) {
            Ok(rows) => Ok(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect()),
            Err(e) if undefined_table(&e) => Ok(Vec::new()),
            Err(e) => Err(self.db_error(e)),
        }
    }

    /// The project's objects as one Feast `Registry`; `None` when Feast holds none.
    pub fn read(&self) -> Result<Option<fc::Registry>> {
        self.store.with_connection(|c| {
            let last = self.last_updated(c)?;
            assemble(
                &self.project,
                |table, column| self.rows(c, table, column),
                last,
                |e| self.db_error(e),
            )
        })
    }

    /// Feast's `last_updated_timestamp` of the project (seconds), when recorded.
    fn last_updated(&self, c: &mut Client) -> Result<Option<i64>> {
        match c.query_opt(
            "SELECT metadata_value FROM feast_metadata WHERE project_id = $1 AND metadata_key = 'last_updated_timestamp'",
            &[&self.project],
        ) {
            Ok(row) => Ok(row.and_then(|r| r.get::<_, String>(0).trim().parse().ok())),
            Err(e) if undefined_table(&e) => Ok(None),
            Err(e) => Err(self.db_error(e)),
        }
    }

    /// Whether the database holds Feast's registry for the project and no Larder registry.
    pub fn is_feasts(&self) -> Result<bool> {
        Ok(self.store.load()?.is_none() && self.read()?.is_some())
    }

    fn refused(&self, what: &str) -> Error {
        Error::Refused(format!(
            "{} holds Feast's SQL registry for project {}, which Larder only reads: {what} is refused. Change it \
             with `feast apply`",
            self.store.target(),
            self.project
        ))
    }
}

/// Sets the project of every object of `r`.
fn set_project(r: &mut fc::Registry, project: &str) {
    let p = || project.to_string();
    r.entities
        .iter_mut()
        .filter_map(|e| e.spec.as_mut())
        .for_each(|s| s.project = p());
    r.data_sources.iter_mut().for_each(|s| s.project = p());
    r.feature_views
        .iter_mut()
        .filter_map(|v| v.spec.as_mut())
        .for_each(|s| s.project = p());
    r.stream_feature_views
        .iter_mut()
        .filter_map(|v| v.spec.as_mut())
        .for_each(|s| s.project = p());
    r.on_demand_feature_views
        .iter_mut()
        .filter_map(|v| v.spec.as_mut())
        .for_each(|s| s.project = p());
    r.label_views
        .iter_mut()
        .filter_map(|v| v.spec.as_mut())
        .for_each(|s| s.project = p());
    r.feature_services
        .iter_mut()
        .filter_map(|v| v.spec.as_mut())
        .for_each(|s| s.project = p());
}

#[cfg(feature = "postgres")]
impl FeastSource for FeastSqlRegistry {
    fn read(&self) -> Result<Option<fc::Registry>> {
        FeastSqlRegistry::read(self)
    }

    fn project(&self) -> &str {
        &self.project
    }

    fn token(&self) -> Result<Option<u128>> {
        // Feast bumps the project's last_updated_timestamp on every apply and materialization.
        let ts = self.store.with_connection(|c| self.last_updated(c))?;
        Ok(ts.map(|t| t as u128))
    }

    fn describe(&self) -> String {
        format!("Feast SQL registry at {}", self.store.target())
    }

    fn corrupt(&self, message: String) -> Error {
        self.db_error(message)
    }

    fn refused(&self, what: &str) -> Error {
        FeastSqlRegistry::refused(self, what)
    }
}

/// Feast's SQL registry of one project in a SQLite file (`path: sqlite:///data/registry.db`, as
/// Feast writes it with SQLAlchemy), opened read-only for every read.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone)]
pub struct FeastSqliteRegistry {
    path: std::path::PathBuf,
    project: String,
}

#[cfg(feature = "sqlite")]
impl FeastSqliteRegistry {
    /// Feast's registry for `project` in the SQLite file at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>, project: &str) -> Self {
        FeastSqliteRegistry {
            path: path.into(),
            project: project.to_string(),
        }
    }

    fn db_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Database {
            target: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// A read-only connection; `None` when the file does not exist.
    fn open(&self) -> Result<Option<rusqlite::Connection>> {
        #[allow(
            clippy::disallowed_methods,
            reason = "the registry stores are synchronous by contract"
        )]
        if !self.path.exists() {
            return Ok(None);
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = rusqlite::Connection::open_with_flags(&self.path, flags).map_err(|e| self.db_error(e))?;
        c.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.db_error(e))?;
        Ok(Some(c))
    }

    /// Whether a query failed because Feast has not created the table.
    fn missing_table(e: &rusqlite::Error) -> bool {
        e.to_string().contains("no such table")
    }

    fn rows(&self, c: &rusqlite::Connection, table: &str, column: &str) -> Result<Vec<Vec<u8>>> {
        let sql = format!("SELECT {column} FROM {table} WHERE project_id = ?1");
        let mut stmt = match c.prepare(&sql) {
            Ok(s) => s,
            Err(e) if Self::missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.db_error(e)),
        };
        let rows = stmt
            .query_map([&self.project], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.db_error(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.db_error(e))
    }

    fn last_updated(&self, c: &rusqlite::Connection) -> Result<Option<i64>> {
        let sql = "SELECT metadata_value FROM feast_metadata WHERE project_id = ?1 AND metadata_key = 'last_updated_timestamp'";
        match c.query_row(sql, [&self.project], |r| r.get::<_, String>(0)) {
            Ok(v) => Ok(v.trim().parse().ok()),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) if Self::missing_table(&e) => Ok(None),
            Err(e) => Err(self.db_error(e)),
        }
    }

    /// The project's objects as one Feast `Registry`; `None` when Feast holds none.
    pub fn read(&self) -> Result<Option<fc::Registry>> {
        let Some(c) = self.open()? else {
            return Ok(None);
        };
        let last = self.last_updated(&c)?;
        assemble(
            &self.project,
            |table, column| self.rows(&c, table, column),
            last,
            |e| self.db_error(e),
        )
    }

    /// Whether the file holds Feast's registry for the project and no Larder registry for it
    /// (checked read-only: Larder's tables are not created in Feast's file).
    pub fn is_feasts(&self) -> Result<bool> {
        let Some(c) = self.open()? else {
            return Ok(false);
        };
        let larders = match c.query_row(
            "SELECT count(*) FROM larder_registry_state WHERE project = ?1",
            [&self.project],
            |r| r.get::<_, i64>(0),
        ) {
            Ok(n) => n > 0,
            Err(e) if Self::missing_table(&e) => false,
            Err(e) => return Err(self.db_error(e)),
        };
        Ok(!larders && self.read()?.is_some())
    }
}

#[cfg(feature = "sqlite")]
impl FeastSource for FeastSqliteRegistry {
    fn read(&self) -> Result<Option<fc::Registry>> {
        FeastSqliteRegistry::read(self)
    }

    fn project(&self) -> &str {
        &self.project
    }

    fn token(&self) -> Result<Option<u128>> {
        let Some(c) = self.open()? else {
            return Ok(None);
        };
        Ok(self.last_updated(&c)?.map(|t| t as u128))
    }

    fn describe(&self) -> String {
        format!("Feast SQL registry at {}", self.path.display())
    }

    fn corrupt(&self, message: String) -> Error {
        self.db_error(message)
    }

    fn refused(&self, what: &str) -> Error {
        Error::Refused(format!(
            "{} holds Feast's SQL registry for project {}, which Larder only reads: {what} is refused. Change it \
             with `feast apply`",
            self.path.display(),
            self.project
        ))
    }
}
