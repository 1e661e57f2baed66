//! `feature_store.yaml`: Feast's repo configuration, read strictly.
//!
//! Feast's keys are accepted (`project`, `registry`, `provider`, `online_store`,
//! `offline_store`, `entity_key_serialization_version`, ...); unknown keys and bad values are
//! errors naming the key and the file. `${VAR}` and `${VAR:-default}` are replaced from the
//! environment before parsing, as Feast's `expandvars` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// File name of a repo's configuration.
pub const CONFIG_FILE: &str = "feature_store.yaml";

/// Online store selection (`online_store.type`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OnlineStoreConfig {
    /// The embedded RocksDB store (the default).
    Rocksdb(RocksDbConfig),
    /// A Redis server or Redis Cluster shared by several servers.
    Redis(RedisConfig),
    /// A SQLite database file (Feast's local default).
    Sqlite(SqliteConfig),
    /// A PostgreSQL database (Feast's `postgres` online store).
    Postgres(PostgresOnlineConfig),
    /// Feast's remote online store: the online data is another feature server's (a Larder or
    /// Feast server at `path`). This repo is its client: `larder materialize` hands the run to
    /// that server; `larder serve` needs a local store.
    Remote(RemoteOnlineConfig),
}

/// `online_store: {type: remote, path: http://host:port}` (Feast's keys).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteOnlineConfig {
    /// The feature server's base URL.
    pub path: String,
    /// Feast's TLS certificate of the server: accepted; the hand-off speaks plain HTTP.
    #[serde(default)]
    pub cert: Option<String>,
}

impl OnlineStoreConfig {
    /// The cargo feature that builds this backend.
    pub fn feature(&self) -> &'static str {
        match self {
            OnlineStoreConfig::Rocksdb(_) => "rocksdb",
            OnlineStoreConfig::Redis(_) => "redis",
            OnlineStoreConfig::Sqlite(_) => "sqlite",
            OnlineStoreConfig::Postgres(_) => "postgres",
            OnlineStoreConfig::Remote(_) => "remote",
        }
    }
}

/// `online_store: {type: postgres, ...}`: Feast's keys, plus Larder's timeouts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresOnlineConfig {
    /// Server host (default `localhost`).
    #[serde(default = "default_pg_host")]
    pub host: String,
    /// Server port (default 5432).
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Database.
    pub database: String,
    /// Schema of the table (default `public`).
    #[serde(default)]
    pub db_schema: Option<String>,
    /// User.
    pub user: String,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// `disable`, `allow` or `prefer` (TLS modes are refused at load).
    #[serde(default)]
    pub sslmode: Option<String>,
    /// Feast's pool and TLS keys: accepted, not used (Larder multiplexes one connection).
    #[serde(default)]
    pub min_conn: Option<u32>,
    /// See `min_conn`.
    #[serde(default)]
    pub max_conn: Option<u32>,
    /// See `min_conn`.
    #[serde(default)]
    pub keepalives_idle: Option<u32>,
    /// See `min_conn`.
    #[serde(default)]
    pub conn_type: Option<String>,
    /// See `min_conn`.
    #[serde(default)]
    pub sslkey_path: Option<String>,
    /// See `min_conn`.
    #[serde(default)]
    pub sslcert_path: Option<String>,
    /// See `min_conn`.
    #[serde(default)]
    pub sslrootcert_path: Option<String>,
    /// Feast's pgvector switch: accepted, not used.
    #[serde(default)]
    pub vector_enabled: Option<bool>,
    /// See `vector_enabled`.
    #[serde(default)]
    pub vector_len: Option<u32>,
    /// Larder: connect timeout in milliseconds (default 2000).
    #[serde(default = "default_pg_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Larder: timeout of one operation in milliseconds (default 5000); past it, 503.
    #[serde(default = "default_pg_op_timeout_ms")]
    pub operation_timeout_ms: u64,
}

fn default_pg_host() -> String {
    "localhost".into()
}

fn default_pg_port() -> u16 {
    5432
}

fn default_pg_timeout_ms() -> u64 {
    2000
}

fn default_pg_op_timeout_ms() -> u64 {
    5000
}

/// `online_store: {type: sqlite, path: ...}` (Feast's keys).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file, relative to the repo (Feast's default `data/online.db`).
    #[serde(default = "default_sqlite_path")]
    pub path: String,
}

fn default_sqlite_path() -> String {
    "data/online.db".into()
}

impl Default for OnlineStoreConfig {
    fn default() -> Self {
        OnlineStoreConfig::Rocksdb(RocksDbConfig::default())
    }
}

/// `online_store: {type: rocksdb, ...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocksDbConfig {
    /// Database directory, relative to the repo (default `data/online_store`).
    #[serde(default = "default_online_path")]
    pub path: String,
    /// Block cache size in MiB (default 256).
    #[serde(default = "default_cache_mb")]
    pub block_cache_mb: usize,
}

impl Default for RocksDbConfig {
    fn default() -> Self {
        RocksDbConfig {
            path: default_online_path(),
            block_cache_mb: default_cache_mb(),
        }
    }
}

fn default_online_path() -> String {
    "data/online_store".into()
}

fn default_cache_mb() -> usize {
    256
}

/// `online_store.redis_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisType {
    /// One Redis server.
    #[default]
    Redis,
    /// A Redis Cluster; `connection_string` lists some of its nodes.
    RedisCluster,
    /// Feast's Sentinel mode (refused with a clear error: not supported yet).
    RedisSentinel,
}

/// `online_store: {type: redis, ...}`: Feast's keys, plus Larder's timeouts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis` (default) or `redis_cluster`.
    #[serde(default)]
    pub redis_type: RedisType,
    /// Feast's format: `host:port[,host:port...][,password=...][,username=...][,db=N][,ssl=true]`.
    #[serde(default = "default_redis_connection")]
    pub connection_string: String,
    /// Keys expire this long after their last write (Feast's `key_ttl_seconds`).
    #[serde(default)]
    pub key_ttl_seconds: Option<u64>,
    /// Feast's Sentinel master name (Sentinel is not supported).
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// Accepted for Feast compatibility: Larder always deletes a view's keys by a prefix SCAN.
    #[serde(default)]
    pub full_scan_for_deletion: Option<bool>,
    /// Accepted for Feast compatibility; Larder's writes are always newest-wins (atomic, in Lua).
    #[serde(default)]
    pub skip_dedup: Option<bool>,
    /// Feast's client choice; only `redis` (the default) is meaningful here.
    #[serde(default)]
    pub client: Option<String>,
    /// Larder: connect timeout in milliseconds (default 1000).
    #[serde(default = "default_redis_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Larder: timeout for one Redis operation in milliseconds (default 2000); past it the
    /// request fails with 503 instead of hanging.
    #[serde(default = "default_redis_op_timeout_ms")]
    pub operation_timeout_ms: u64,
}

fn default_redis_connection() -> String {
    "localhost:6379".into()
}

fn default_redis_timeout_ms() -> u64 {
    1000
}

fn default_redis_op_timeout_ms() -> u64 {
    2000
}

/// Offline store selection (`offline_store.type`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OfflineStoreConfig {
    /// Parquet files queried with DataFusion (Feast's `file`), local or on S3.
    File(FileOfflineConfig),
    /// Feast's PostgreSQL offline store: `PostgreSQLSource`s are read from this database into
    /// DataFusion, where the point-in-time joins run (Parquet sources stay readable too).
    Postgres(Box<PostgresOfflineConfig>),
}

/// `offline_store: {type: postgres, ...}`: the keys of Feast's `PostgreSQLConfig`, as the online
/// store's (its `operation_timeout_ms` is not applied to offline reads, which may be long).
pub type PostgresOfflineConfig = PostgresOnlineConfig;

impl Default for OfflineStoreConfig {
    fn default() -> Self {
        OfflineStoreConfig::File(FileOfflineConfig::default())
    }
}

/// `offline_store: {type: file, ...}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOfflineConfig {
    /// Endpoint of an S3-compatible service for `s3://` source paths (as Feast's
    /// `FileSource.s3_endpoint_override`); else `$AWS_ENDPOINT_URL`, else AWS. Credentials and
    /// region come from the usual `AWS_*` environment variables.
    #[serde(default)]
    pub s3_endpoint_override: Option<String>,
}

/// The registry's location and caching.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// `file` or `sql` (PostgreSQL or SQLite).
    pub registry_type: String,
    /// Absolute path of the registry file (`file`).
    pub path: PathBuf,
    /// The database URL (`sql`): `postgresql://user:password@host:port/db` or `sqlite:///FILE`
    /// (then `path` is that file); or the object of a `file` registry on S3 (`s3://bucket/key`).
    pub url: Option<String>,
    /// How often a server re-checks the registry, in seconds (0: every second).
    pub cache_ttl_seconds: u64,
}

impl RegistryConfig {
    /// Where the registry is, for messages (never with a password).
    pub fn describe(&self) -> String {
        match &self.url {
            Some(url) => match (url.split_once("://"), url.rfind('@')) {
                (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
                _ => url.clone(),
            },
            None => self.path.display().to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RegistryMap {
    #[serde(default = "default_registry_type")]
    registry_type: String,
    path: String,
    #[serde(default)]
    cache_ttl_seconds: Option<u64>,
    #[serde(default)]
    cache_mode: Option<String>,
    /// Feast's other registry keys (checked against [`FEAST_REGISTRY_KEYS`]).
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// Keys of Feast's registry configurations (`RegistryConfig`, `SqlRegistryConfig`) that tune
/// Feast's own registry implementation: accepted and named by `apply` as not used.
const FEAST_REGISTRY_KEYS: &[&str] = &[
    "registry_store_type",
    "purge_feast_metadata",
    "enable_online_feature_view_versioning",
    "serve_features_while_materializing",
    "mcp",
    "read_path",
    "sqlalchemy_config_kwargs",
    "thread_pool_executor_worker_count",
    "schema_mode",
    "s3_additional_kwargs",
];

fn default_registry_type() -> String {
    "file".into()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RegistrySetting {
    Path(String),
    Map(RegistryMap),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: String,
    #[serde(default)]
    #[allow(dead_code)]
    project_description: Option<String>,
    #[serde(default = "default_provider")]
    provider: String,
    #[serde(default)]
    registry: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    online_store: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    offline_store: Option<serde_yaml_ng::Value>,
    /// Feast's compute engine for materialization (`batch_engine: {type: local | ray.engine |
    /// spark.engine ...}`): Larder materializes with its own engine; named as not used.
    #[serde(default)]
    batch_engine: Option<serde_yaml_ng::Value>,
    #[serde(default = "default_key_version")]
    entity_key_serialization_version: u32,
    #[serde(default)]
    #[allow(dead_code)]
    coerce_tz_aware: Option<bool>,
    #[serde(default)]
    auth: Option<crate::auth::AuthConfig>,
    #[serde(default)]
    stream: StreamConfig,
    #[serde(default)]
    online_ttl: crate::serving::OnlineTtl,
    #[serde(default)]
    feature_server: Option<FeatureServerConfig>,
}

/// `feature_server:` (Feast's `BaseFeatureServerConfig`): Larder uses `feature_logging`; the
/// other keys (Feast's server type, metrics, audit logging, push batching...) are accepted and
/// named by `apply` as not used.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FeatureServerConfig {
    /// Logging of served features.
    #[serde(default)]
    pub feature_logging: Option<FeatureLoggingConfig>,
    /// Every other key, kept to be reported.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// `feature_server.feature_logging` (Feast's `FeatureLoggingConfig`): when enabled, the server
/// logs what it serves for feature services that have a `logging_config`, into their
/// destination (see [`crate::feature_log`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureLoggingConfig {
    /// Whether served features are logged.
    #[serde(default)]
    pub enabled: bool,
    /// Feast: how often logs go from local disk to the offline store. Larder's destination is
    /// the file itself: logs are written every `write_to_disk_interval_secs`.
    #[serde(default = "default_log_flush_secs")]
    pub flush_interval_secs: u64,
    /// How often the logged rows collected in memory are written (one Parquet file per
    /// service and interval).
    #[serde(default = "default_log_write_secs")]
    pub write_to_disk_interval_secs: u64,
    /// Most logged rows held in memory; past it, new requests are not logged (counted).
    #[serde(default = "default_log_queue")]
    pub queue_capacity: usize,
    /// Feast: how long a request may wait to queue its log. Larder never waits: a full queue
    /// drops the log at once.
    #[serde(default = "default_log_emit_timeout")]
    pub emit_timeout_micro_secs: u64,
}

impl Default for FeatureLoggingConfig {
    fn default() -> Self {
        FeatureLoggingConfig {
            enabled: false,
            flush_interval_secs: default_log_flush_secs(),
            write_to_disk_interval_secs: default_log_write_secs(),
            queue_capacity: default_log_queue(),
            emit_timeout_micro_secs: default_log_emit_timeout(),
        }
    }
}

fn default_log_flush_secs() -> u64 {
    600
}

fn default_log_write_secs() -> u64 {
    30
}

fn default_log_queue() -> usize {
    100_000
}

fn default_log_emit_timeout() -> u64 {
    10_000
}

/// `stream:`: Larder's stream workers (Kafka consumers of stream feature views).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Consumer group of a view: `<group_id_prefix>.<project>.<view>`.
    pub group_id_prefix: String,
    /// Most events per micro-batch (one online write, one offline part, one commit).
    pub max_batch_events: usize,
    /// Longest wait (ms) to fill a micro-batch before it is processed.
    pub max_batch_wait_ms: u64,
    /// How often (ms) the offline copy is appended (one Parquet part per partition) and the
    /// offsets committed; online writes do not wait for it.
    pub offline_flush_ms: u64,
    /// How often (ms) `larder_stream_consumer_lag` is refreshed, also while no message comes.
    pub lag_refresh_ms: u64,
    /// Where events that cannot be ingested go.
    pub dead_letter: DeadLetterConfig,
    /// Extra librdkafka consumer settings (`security.protocol`, `sasl.*`, ...).
    pub kafka: BTreeMap<String, String>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            group_id_prefix: "larder".into(),
            max_batch_events: 5000,
            max_batch_wait_ms: 20,
            offline_flush_ms: 5000,
            lag_refresh_ms: 5000,
            dead_letter: DeadLetterConfig::default(),
            kafka: BTreeMap::new(),
        }
    }
}

/// `stream.dead_letter`: a quarantine Parquet directory (default `data/dead_letter`, one
/// subdirectory per view) or a Kafka topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// Parquet files with the raw message and the reason.
    Parquet {
        /// Directory (relative to the repo).
        path: String,
    },
    /// A Kafka topic on the source's brokers; the message is forwarded with headers
    /// `larder-reason`, `larder-view`, `larder-partition`, `larder-offset`.
    Kafka {
        /// Topic name.
        topic: String,
    },
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig::Parquet {
            path: "data/dead_letter".into(),
        }
    }
}

fn default_provider() -> String {
    "local".into()
}

fn default_key_version() -> u32 {
    3
}

/// A loaded `feature_store.yaml`, with paths resolved against the repo directory.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    /// Directory holding `feature_store.yaml` and the definition files.
    pub repo_dir: PathBuf,
    /// Project name.
    pub project: String,
    /// Registry location.
    pub registry: RegistryConfig,
    /// Online store.
    pub online_store: OnlineStoreConfig,
    /// Offline store.
    pub offline_store: OfflineStoreConfig,
    /// Entity-key serialization version (3).
    pub entity_key_serialization_version: u32,
    /// Authentication (`None`: off).
    pub auth: Option<crate::auth::AuthConfig>,
    /// Stream workers.
    pub stream: StreamConfig,
    /// What Larder reads differently from Feast in this configuration (printed by `apply`).
    pub notes: Vec<String>,
    /// Whether online reads enforce view ttls (`online_ttl: enforce | ignore`).
    pub online_ttl: crate::serving::OnlineTtl,
    /// Logging of served features (`feature_server.feature_logging`; off when absent).
    pub feature_logging: FeatureLoggingConfig,
}

/// Replaces `${VAR}` and `${VAR:-default}` with environment values; an unset variable
/// without a default is an error naming it. Comment lines (first non-blank character `#`) are
/// left as they are: a commented-out setting never needs its variable.
pub fn expand_env(text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            expand_line(line, &mut out)?;
        }
    }
    Ok(out)
}

fn expand_line(line: &str, out: &mut String) -> std::result::Result<(), String> {
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{}`", rest[start..].trim_end()))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

impl RepoConfig {
    /// Loads `feature_store.yaml` from `repo_dir`.
    #[allow(clippy::disallowed_methods, reason = "read once, at start-up")]
    pub fn load(repo_dir: &Path) -> Result<RepoConfig> {
        let repo_dir = std::path::absolute(repo_dir).unwrap_or_else(|_| repo_dir.to_path_buf());
        let file = repo_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Config {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &repo_dir, &file)
    }

    /// Parses configuration text; `file` is used in error messages only.
    pub fn parse(text: &str, repo_dir: &Path, file: &Path) -> Result<RepoConfig> {
        let err = |message: String| Error::Config {
            file: file.to_path_buf(),
            message,
        };
        let text = expand_env(text).map_err(err)?;
        let raw: RawConfig = serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string()))?;
        if !larder_registry::validate::valid_project_name(&raw.project) {
            return Err(err(format!(
                "project: `{}` is not a valid project name (letters, digits and `_`, not starting with `_`)",
                raw.project
            )));
        }
        match raw.provider.as_str() {
            "local" => {}
            // A cloud provider only picks the stores that are not configured: with local stores
            // named explicitly it changes nothing.
            "aws" | "gcp" | "azure" => {
                if raw.online_store.is_none() || raw.offline_store.is_none() {
                    return Err(err(format!(
                        "provider: `{}` without an explicit online_store and offline_store would mean the \
                         provider's cloud stores (DynamoDB/Redshift, Datastore/BigQuery...), which Larder does \
                         not support; name local ones (online_store: sqlite, rocksdb or redis; offline_store: \
                         file) or use provider: local",
                        raw.provider
                    )));
                }
            }
            other => {
                return Err(err(format!(
                    "provider: `{other}` is not supported (local, or aws/gcp/azure with local stores)"
                )))
            }
        }
        let mut notes = Vec::new();
        let online_store: Option<OnlineStoreConfig> = match raw.online_store {
            None => None,
            Some(mut v) => {
                // Feast's default online store type is sqlite (`online_store: {path: ...}`).
                if let serde_yaml_ng::Value::Mapping(m) = &mut v {
                    if !m.contains_key("type") {
                        m.insert("type".into(), "sqlite".into());
                    }
                }
                Some(serde_yaml_ng::from_value(v).map_err(|e| err(format!("online_store: {e}")))?)
            }
        };
        if let Some(engine) = &raw.batch_engine {
            let kind = engine.get("type").and_then(|t| t.as_str()).unwrap_or("local");
            notes.push(format!(
                "batch_engine `{kind}` is not used: Larder materializes with its own engine (DataFusion)"
            ));
        }
        let offline_store = match raw.offline_store {
            None => OfflineStoreConfig::default(),
            Some(v) => {
                let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("file").to_string();
                let v = match kind.as_str() {
                    // Feast's other local offline stores read the same Parquet files with the same
                    // point-in-time semantics: Larder's DataFusion store serves them.
                    "dask" | "duckdb" | "ray" => {
                        notes.push(format!(
                            "offline_store.type `{kind}` is served by Larder's Parquet store (DataFusion): same files, \
                             same point-in-time semantics; its other keys are not used"
                        ));
                        let mut m = serde_yaml_ng::Mapping::new();
                        m.insert("type".into(), "file".into());
                        serde_yaml_ng::Value::Mapping(m)
                    }
                    _ => v,
                };
                serde_yaml_ng::from_value(v).map_err(|e| {
                    err(format!(
                        "offline_store: {e} (supported: file, and dask/duckdb/ray served by the same Parquet store; \
                         postgres for PostgreSQLSources)"
                    ))
                })?
            }
        };
        if raw.entity_key_serialization_version != 3 {
            return Err(err(format!(
                "entity_key_serialization_version: {} is not supported (only 3, Feast's default)",
                raw.entity_key_serialization_version
            )));
        }
        let registry = match raw.registry {
            None => RegistrySetting::Path("data/registry.db".into()),
            Some(v) => serde_yaml_ng::from_value(v).map_err(|e| {
                err(format!(
                    "registry: expected a path or a mapping with `path`, `registry_type`, `cache_ttl_seconds` ({e})"
                ))
            })?,
        };
        // A file registry is a local path or an `s3://` object (returned as the URL).
        let remote_path = |p: &str| -> Result<Option<String>> {
            match p.split_once("://") {
                Some(("s3", _)) => Ok(Some(p.to_string())),
                Some((scheme, _)) if scheme != "file" => Err(err(format!(
                    "registry: `{p}` is a {scheme}:// location; Larder's file registry is a local path or an \
                     s3:// object (or registry_type: sql with a postgresql:// or sqlite:/// URL)"
                ))),
                _ => Ok(None),
            }
        };
        let registry = match registry {
            RegistrySetting::Path(p) => {
                let url = remote_path(&p)?;
                RegistryConfig {
                    registry_type: "file".into(),
                    path: if url.is_some() {
                        PathBuf::new()
                    } else {
                        repo_dir.join(p.strip_prefix("file://").unwrap_or(&p))
                    },
                    url,
                    cache_ttl_seconds: 0,
                }
            }
            RegistrySetting::Map(m) => {
                let url =
                    match m.registry_type.as_str() {
                        "file" => remote_path(&m.path)?,
                        "sql" => {
                            let scheme = m.path.split_once("://").map(|(s, _)| s).unwrap_or("");
                            let postgres =
                                scheme == "postgresql" || scheme == "postgres" || scheme.starts_with("postgresql+");
                            if !(postgres || m.path.starts_with("sqlite:///")) {
                                return Err(err(format!(
                                "registry.path: a `sql` registry needs a postgresql:// or sqlite:/// URL (got `{}`)",
                                m.path.split("://").next().map(|s| format!("{s}://...")).unwrap_or_default()
                            )));
                            }
                            Some(m.path.clone())
                        }
                        other => {
                            return Err(err(format!(
                                "registry.registry_type: `{other}` is not supported (`file` or `sql` on PostgreSQL)"
                            )))
                        }
                    };
                for key in m.other.keys() {
                    if !FEAST_REGISTRY_KEYS.contains(&key.as_str()) {
                        return Err(err(format!(
                            "registry.{key} is not a registry setting (registry_type, path, cache_ttl_seconds, \
                             cache_mode, and Feast's {})",
                            FEAST_REGISTRY_KEYS.join(", ")
                        )));
                    }
                    notes.push(format!(
                        "registry.{key} tunes Feast's own registry implementation; Larder does not use it"
                    ));
                }
                if let Some(mode) = m.cache_mode.as_deref().filter(|m| !matches!(*m, "sync" | "thread")) {
                    return Err(err(format!("registry.cache_mode: `{mode}` is not one of sync, thread")));
                }
                RegistryConfig {
                    registry_type: m.registry_type,
                    path: match url.as_deref() {
                        Some(u) if u.starts_with("sqlite:///") => {
                            larder_registry::store::sqlite_path(u, repo_dir).unwrap_or_default()
                        }
                        Some(_) => PathBuf::new(),
                        None => repo_dir.join(m.path.strip_prefix("file://").unwrap_or(&m.path)),
                    },
                    url,
                    cache_ttl_seconds: m.cache_ttl_seconds.unwrap_or(0),
                }
            }
        };
        #[cfg(feature = "redis")]
        if let Some(OnlineStoreConfig::Redis(r)) = &online_store {
            crate::online::redis::check_config(r).map_err(err)?;
        }
        #[cfg(feature = "postgres")]
        if let Some(OnlineStoreConfig::Postgres(p)) = &online_store {
            crate::online::postgres::PostgresOnlineStore::open(p).map_err(err)?;
        }
        let feature_server = raw.feature_server.unwrap_or_default();
        for key in feature_server.other.keys() {
            notes.push(format!(
                "feature_server.{key} is not used by Larder (its server is `larder serve`; feature_logging is)"
            ));
        }
        #[cfg(feature = "postgres")]
        if let OfflineStoreConfig::Postgres(p) = &offline_store {
            crate::offline::postgres::PostgresSources::new(p).map_err(err)?;
        }
        Ok(RepoConfig {
            repo_dir: repo_dir.to_path_buf(),
            project: raw.project,
            registry,
            online_store: online_store.unwrap_or_default(),
            offline_store,
            notes,
            online_ttl: match std::env::var("LARDER_ONLINE_TTL").ok().as_deref().map(str::trim) {
                None | Some("") => raw.online_ttl,
                Some("enforce") => crate::serving::OnlineTtl::Enforce,
                Some("ignore") => crate::serving::OnlineTtl::Ignore,
                Some(other) => {
                    return Err(err(format!(
                        "$LARDER_ONLINE_TTL (overriding online_ttl): `{other}` is not one of enforce, ignore"
                    )))
                }
            },
            entity_key_serialization_version: raw.entity_key_serialization_version,
            auth: raw.auth,
            stream: raw.stream,
            feature_logging: feature_server.feature_logging.unwrap_or_default(),
        })
    }

    /// The directory of the embedded (RocksDB) online store, when that is the configured
    /// store: one process at a time may open it.
    pub fn embedded_store_dir(&self) -> Option<PathBuf> {
        match &self.online_store {
            OnlineStoreConfig::Rocksdb(c) => Some(self.resolve_path(&c.path)),
            _ => None,
        }
    }

    /// Resolves a path from the repo's definitions against the repo directory.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() || path.contains("://") {
            p.to_path_buf()
        } else {
            self.repo_dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RepoConfig> {
        RepoConfig::parse(text, Path::new("/repo"), Path::new("/repo/feature_store.yaml"))
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_gets_feast_defaults() {
        let c = parse("project: driver_ref\n").unwrap();
        assert_eq!(c.project, "driver_ref");
        assert_eq!(c.registry.path, PathBuf::from("/repo/data/registry.db"));
        assert_eq!(c.online_store, OnlineStoreConfig::Rocksdb(RocksDbConfig::default()));
        assert_eq!(c.offline_store, OfflineStoreConfig::default());
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "project: p\nregistry:\n  registry_type: file\n  path: reg/r.json\n  cache_ttl_seconds: 5\nprovider: local\n\
             online_store:\n  type: rocksdb\n  path: /var/lib/larder\noffline_store:\n  type: file\n\
             entity_key_serialization_version: 3\n",
        )
        .unwrap();
        assert_eq!(c.registry.path, PathBuf::from("/repo/reg/r.json"));
        assert_eq!(c.registry.cache_ttl_seconds, 5);
        let OnlineStoreConfig::Rocksdb(r) = c.online_store else {
            panic!("expected rocksdb")
        };
        assert_eq!(r.path, "/var/lib/larder");
    }

    #[test]
    fn redis_config_takes_feasts_keys() {
        let c = parse(
            "project: p\nonline_store:\n  type: redis\n  redis_type: redis_cluster\n  \
             connection_string: \"h1:7000,h2:7001,password=pw\"\n  key_ttl_seconds: 60\n",
        )
        .unwrap();
        let OnlineStoreConfig::Redis(r) = c.online_store else {
            panic!("expected redis")
        };
        assert_eq!(r.redis_type, RedisType::RedisCluster);
        assert_eq!(r.connection_string, "h1:7000,h2:7001,password=pw");
        assert_eq!(r.key_ttl_seconds, Some(60));
        assert!(message("project: p\nonline_store:\n  type: redis\n  redis_type: memcached\n").contains("memcached"));
        assert!(
            message("project: p\nonline_store:\n  type: redis\n  conection_string: x\n").contains("conection_string")
        );
    }

    #[test]
    fn sql_registry_takes_a_postgresql_url() {
        let c = parse(
            "project: p\nregistry:\n  registry_type: sql\n  path: postgresql+psycopg://u:pw@db:5432/feast\n  \
             cache_ttl_seconds: 2\n",
        )
        .unwrap();
        assert_eq!(
            c.registry.url.as_deref(),
            Some("postgresql+psycopg://u:pw@db:5432/feast")
        );
        assert_eq!(c.registry.cache_ttl_seconds, 2);
        assert_eq!(c.registry.describe(), "postgresql+psycopg://…@db:5432/feast");
    }

    #[test]
    fn unknown_top_level_key_is_named_with_the_file() {
        let m = message("project: p\nonline_stor:\n  type: rocksdb\n");
        assert!(m.contains("online_stor"), "{m}");
        assert!(m.contains("/repo/feature_store.yaml"), "{m}");
    }

    #[test]
    fn unknown_store_key_is_named() {
        let m = message("project: p\nonline_store:\n  type: rocksdb\n  pth: x\n");
        assert!(m.contains("pth"), "{m}");
    }

    #[test]
    fn unknown_store_type_is_named() {
        let m = message("project: p\nonline_store:\n  type: cassandra\n");
        assert!(m.contains("cassandra"), "{m}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(message("project: p\nprovider: gcp\n").contains("provider"));
        assert!(
            message("project: p\nentity_key_serialization_version: 2\n").contains("entity_key_serialization_version")
        );
        assert!(message("project: _bad\n").contains("project"));
        assert!(message("project: p\nentity_key_serialization_version: three\n")
            .contains("entity_key_serialization_version"));
        assert!(message("provider: local\n").contains("project"));
        assert!(message("project: p\nregistry:\n  registry_type: snowflake\n  path: x\n").contains("registry_type"));
        assert!(message("project: p\nregistry:\n  registry_type: sql\n  path: mysql://h/r\n").contains("sqlite:///"));
        // Feast's SQL registry on SQLite is a file of the repo.
        let c = parse("project: p\nregistry:\n  registry_type: sql\n  path: sqlite:///data/r.db\n").unwrap();
        assert_eq!(c.registry.path, PathBuf::from("/repo/data/r.db"));
        assert!(message("project: p\nregistry: gs://bucket/registry.db\n").contains("gs://"));
    }

    #[test]
    fn environment_variables_are_expanded() {
        std::env::set_var("LARDER_TEST_PROJECT", "from_env");
        let c = parse("project: ${LARDER_TEST_PROJECT}\nregistry: ${LARDER_TEST_UNSET:-data/r.json}\n").unwrap();
        assert_eq!(c.project, "from_env");
        assert_eq!(c.registry.path, PathBuf::from("/repo/data/r.json"));
        assert!(message("project: ${LARDER_TEST_UNSET_TOO}\n").contains("LARDER_TEST_UNSET_TOO"));
        // A commented-out line does not need its variable.
        let c = parse("project: p\n  # password: ${LARDER_TEST_UNSET_TOO}\n# ${ALSO_UNSET\n").unwrap();
        assert_eq!(c.project, "p");
    }

    #[test]
    fn feasts_postgres_remote_and_feature_server_settings_are_read() {
        let c = parse(
            "project: p\nregistry:\n  registry_type: sql\n  path: postgresql://u:pw@127.0.0.1:5432/db?sslmode=disable\n  \
             sqlalchemy_config_kwargs:\n    echo: false\nonline_store:\n  type: remote\n  path: http://127.0.0.1:6566\n\
             offline_store:\n  type: postgres\n  host: 127.0.0.1\n  database: db\n  user: u\n  sslmode: disable\n\
             feature_server:\n  type: local\n  feature_logging:\n    enabled: true\n    queue_capacity: 10\n",
        )
        .unwrap();
        let OnlineStoreConfig::Remote(r) = &c.online_store else {
            panic!("not remote: {:?}", c.online_store)
        };
        assert_eq!(r.path, "http://127.0.0.1:6566");
        let OfflineStoreConfig::Postgres(pg) = &c.offline_store else {
            panic!("not postgres: {:?}", c.offline_store)
        };
        assert_eq!(
            (pg.host.as_str(), pg.port, pg.database.as_str()),
            ("127.0.0.1", 5432, "db")
        );
        assert!(c.feature_logging.enabled);
        assert_eq!(c.feature_logging.queue_capacity, 10);
        assert_eq!(c.feature_logging.write_to_disk_interval_secs, 30);
        let notes = c.notes.join("\n");
        assert!(notes.contains("registry.sqlalchemy_config_kwargs"), "{notes}");
        assert!(notes.contains("feature_server.type"), "{notes}");
    }

    #[test]
    fn unknown_registry_keys_and_tls_offline_postgres_are_refused_by_name() {
        let m = message("project: p\nregistry:\n  path: data/registry.db\n  cache_tll_seconds: 5\n");
        assert!(m.contains("registry.cache_tll_seconds"), "{m}");
        // The TLS check is the PostgreSQL store's own (a build without it refuses the store later).
        #[cfg(feature = "postgres")]
        {
            let m = message(
                "project: p\noffline_store:\n  type: postgres\n  database: db\n  user: u\n  sslmode: require\n",
            );
            assert!(m.contains("offline_store.sslmode") && m.contains("require"), "{m}");
        }
        let m = message("project: p\nfeature_server:\n  feature_logging:\n    enabeld: true\n");
        assert!(m.contains("enabeld"), "{m}");
    }

    #[test]
    fn feasts_defaults_for_the_ray_template_are_read() {
        // Feast's `ray` template: no online store type (Feast's default, sqlite), a Ray offline
        // store and a batch engine.
        let c = parse(
            "project: p\noffline_store:\n  type: ray\n  storage_path: data/ray_storage\n\
             batch_engine:\n  type: ray.engine\n  max_workers: 2\nonline_store:\n  path: data/online_store.db\n",
        )
        .unwrap();
        assert_eq!(
            c.online_store,
            OnlineStoreConfig::Sqlite(SqliteConfig {
                path: "data/online_store.db".into()
            })
        );
        assert_eq!(c.offline_store, OfflineStoreConfig::default());
        let notes = c.notes.join("\n");
        assert!(
            notes.contains("offline_store.type `ray`") && notes.contains("batch_engine `ray.engine`"),
            "{notes}"
        );
    }
}
