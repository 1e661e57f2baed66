//! Feast's SQL registry in PostgreSQL (`registry_type: sql`, `path: postgresql://...`) as a
//! read-only [`RegistryStore`]: one table per object kind (`entities`, `data_sources`,
//! `feature_views`, `stream_feature_views`, `on_demand_feature_views`, `label_views`,
//! `feature_services`), each row a serialized Feast object of one project (`project_id`), and
//! `feast_metadata`'s `last_updated_timestamp` per project, which Feast bumps on every change.
//! Read over the connection of Larder's own PostgreSQL store (the same database); writes are
//! refused as for Feast's file registry.

use larder_registry::{Error, PostgresRegistryStore, RegistryStore, Result};
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

/// Feast's SQL registry of one project, in the database of `store`.
#[derive(Debug)]
pub struct FeastSqlRegistry {
    store: PostgresRegistryStore,
    project: String,
}

fn undefined_table(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE)
}

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

    fn decode<M: Message + Default>(&self, table: &str, bytes: &[u8]) -> Result<M> {
        M::decode(bytes).map_err(|e| self.db_error(format!("a row of Feast's {table} table is corrupt: {e}")))
    }

    /// The project's objects as one Feast `Registry`; `None` when Feast holds none.
    pub fn read(&self) -> Result<Option<fc::Registry>> {
        self.store.with_connection(|c| {
            let mut r = fc::Registry::default();
            let mut any = false;
            for (table, column) in TABLES {
                let rows = self.rows(c, table, column)?;
                any |= !rows.is_empty();
                for bytes in rows {
                    match table {
                        "entities" => r.entities.push(self.decode(table, &bytes)?),
                        "data_sources" => r.data_sources.push(self.decode(table, &bytes)?),
                        "feature_views" => r.feature_views.push(self.decode(table, &bytes)?),
                        "stream_feature_views" => r.stream_feature_views.push(self.decode(table, &bytes)?),
                        "on_demand_feature_views" => r.on_demand_feature_views.push(self.decode(table, &bytes)?),
                        "label_views" => r.label_views.push(self.decode(table, &bytes)?),
                        _ => r.feature_services.push(self.decode(table, &bytes)?),
                    }
                }
            }
            // Feast's SQL registry leaves the objects' own `project` empty: the row's
            // project_id says it.
            set_project(&mut r, &self.project);
            if let Some(ts) = self.last_updated(c)? {
                r.last_updated = Some(prost_types::Timestamp { seconds: ts, nanos: 0 });
            }
            Ok(any.then_some(r))
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
