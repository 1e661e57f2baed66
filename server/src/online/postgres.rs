//! The PostgreSQL online store (Feast's `online_store: {type: postgres, host, port, database,
//! db_schema, user, password}`), on one asynchronous tokio-postgres connection that pipelines
//! the requests of every task (reconnected when it drops).
//!
//! Layout: one table, `<db_schema>.larder_online (project, view, entity_key, event_ts,
//! created_ts, row)`, keyed by `(project, view, entity_key)`, rows as [`OnlineRow`] encodes
//! them; it sits beside the tables Feast itself would create. A write is one transaction whose
//! upsert keeps the newest `(event_ts, created_ts)`; a read of many keys is one
//! `entity_key = ANY($3)` query.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{OnlineRow, OnlineStore};
use crate::config::PostgresOnlineConfig;
use crate::error::{Error, Result};

/// Online store in a PostgreSQL table.
pub struct PostgresOnlineStore {
    config: tokio_postgres::Config,
    table: String,
    target: String,
    client: Mutex<Option<Arc<Client>>>,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOnlineStore")
            .field("target", &self.target)
            .finish()
    }
}

/// Quotes an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The connection settings of Feast's PostgreSQL keys (the online store's and the offline
/// store's, `section` naming which in messages); TLS `sslmode`s are refused, naming the key.
pub(crate) fn connection_config(
    config: &PostgresOnlineConfig,
    section: &str,
) -> std::result::Result<tokio_postgres::Config, String> {
    match config.sslmode.as_deref() {
        None | Some("disable") | Some("allow") | Some("prefer") => {}
        Some(other) => {
            return Err(format!(
                "{section}.sslmode: `{other}` needs TLS, which Larder's PostgreSQL stores do not offer yet \
                 (disable, allow or prefer connect without it)"
            ))
        }
    }
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.database)
        .user(&config.user)
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .application_name("larder");
    if let Some(p) = &config.password {
        pg.password(p);
    }
    Ok(pg)
}

impl PostgresOnlineStore {
    /// A store for `config` (the connection is made on first use).
    pub fn open(config: &PostgresOnlineConfig) -> std::result::Result<Self, String> {
        let pg = connection_config(config, "online_store")?;
        let schema = config.db_schema.clone().unwrap_or_else(|| "public".into());
        Ok(PostgresOnlineStore {
            config: pg,
            table: format!("{}.larder_online", ident(&schema)),
            target: format!("{}:{}/{}", config.host, config.port, config.database),
            client: Mutex::new(None),
            timeout: Duration::from_millis(config.operation_timeout_ms),
        })
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!("online store postgresql://{}: {e}", self.target))
    }

    /// The connection, made (and the table created) when there is none or it closed.
    async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| self.unavailable(e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL online store connection closed.");
            }
        });
        let schema = self.table.rsplit_once('.').map(|(s, _)| s).unwrap_or("public");
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {t} (
                     project TEXT NOT NULL, view TEXT NOT NULL, entity_key BYTEA NOT NULL,
                     event_ts BIGINT NOT NULL, created_ts BIGINT NOT NULL, row BYTEA NOT NULL,
                     PRIMARY KEY (project, view, entity_key))",
                t = self.table
            ))
            .await
            .map_err(|e| self.unavailable(e))?;
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Runs `f` within the operation timeout; a lost connection is dropped for the next call.
    async fn run<T, F>(&self, f: impl FnOnce(Arc<Client>) -> F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    {
        let client = tokio::time::timeout(self.timeout, self.client())
            .await
            .map_err(|_| self.unavailable("connect timed out"))??;
        match tokio::time::timeout(self.timeout, f(Arc::clone(&client))).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if client.is_closed() {
                    *self.client.lock().await = None;
                }
                Err(self.unavailable(e))
            }
            Err(_) => {
                *self.client.lock().await = None;
                Err(self.unavailable(format!("no answer within {} ms", self.timeout.as_millis())))
            }
        }
    }
}

#[async_trait]
impl OnlineStore for PostgresOnlineStore {
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        let n = rows.len();
        let sql = format!(
            "INSERT INTO {t} (project, view, entity_key, event_ts, created_ts, row)
             SELECT $1, $2, k, e, c, r FROM unnest($3::bytea[], $4::bigint[], $5::bigint[], $6::bytea[]) AS u(k, e, c, r)
             ON CONFLICT (project, view, entity_key) DO UPDATE SET
                 event_ts = EXCLUDED.event_ts, created_ts = EXCLUDED.created_ts, row = EXCLUDED.row
             WHERE (EXCLUDED.event_ts, EXCLUDED.created_ts) >= ({t}.event_ts, {t}.created_ts)",
            t = self.table
        );
        // One statement per batch; a key given twice in a batch keeps its newest version.
        let mut newest: std::collections::HashMap<&[u8], &OnlineRow> = std::collections::HashMap::new();
        for r in &rows {
            let version = |r: &OnlineRow| (r.event_ts, r.created_ts.unwrap_or(i64::MIN));
            match newest.get(r.key.as_slice()) {
                Some(old) if version(old) > version(r) => {}
                _ => {
                    newest.insert(r.key.as_slice(), r);
                }
            }
        }
        let keys: Vec<&[u8]> = newest.keys().copied().collect();
        let events: Vec<i64> = keys.iter().map(|k| newest[k].event_ts).collect();
        let created: Vec<i64> = keys.iter().map(|k| newest[k].created_ts.unwrap_or(i64::MIN)).collect();
        let values: Vec<Vec<u8>> = keys.iter().map(|k| newest[k].encode_value()).collect();
        let (project, view) = (project.to_string(), view.to_string());
        self.run(|c| async move {
            c.execute(&sql, &[&project, &view, &keys, &events, &created, &values])
                .await
        })
        .await?;
        Ok(n)
    }

    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        let sql = format!(
            "SELECT entity_key, row FROM {} WHERE project = $1 AND view = $2 AND entity_key = ANY($3)",
            self.table
        );
        let (project, view_name) = (project.to_string(), view.to_string());
        let wanted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let rows = self
            .run(|c| async move { c.query(&sql, &[&project, &view_name, &wanted]).await })
            .await?;
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows
            .into_iter()
            .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
            .collect();
        keys.iter()
            .map(|k| match found.get(k) {
                None => Ok(None),
                Some(b) => OnlineRow::decode(k.clone(), b)
                    .map(Some)
                    .map_err(|e| Error::Internal(format!("corrupt online row in {view}: {e}"))),
            })
            .collect()
    }

    async fn delete_view(&self, project: &str, view: &str) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE project = $1 AND view = $2", self.table);
        let (project, view) = (project.to_string(), view.to_string());
        self.run(|c| async move { c.execute(&sql, &[&project, &view]).await })
            .await?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn newest_event(&self, project: &str, view: &str, _limit: usize) -> Result<Option<(Option<i64>, bool)>> {
        let sql = format!(
            "SELECT max(event_ts) FROM {} WHERE project = $1 AND view = $2",
            self.table
        );
        let (project, view) = (project.to_string(), view.to_string());
        let row = self
            .run(|c| async move { c.query_one(&sql, &[&project, &view]).await })
            .await?;
        Ok(Some((row.get::<_, Option<i64>>(0), true)))
    }

    async fn health(&self) -> Result<()> {
        self.run(|c| async move { c.simple_query("SELECT 1").await }).await?;
        Ok(())
    }
}
