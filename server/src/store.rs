//! [`FeatureStore`]: the library core that the CLI and the servers call.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::{DateTime, Utc};
use larder_registry::{
    diff, resolve, validate, FileRegistryStore, FileSource, MaterializationInterval, Plan, RegistryDoc, RegistryState,
    RegistryStore, SchemaLookup, SourceColumn,
};

use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::materialize::{materialize_view, Progress, ViewWindow};
use crate::offline::{parquet::ParquetOfflineStore, OfflineStore};
use crate::offline::{HistoricalRequest, HistoricalView};
use crate::online::{self, OnlineStore};
use crate::serving::{self, FeatureSelection, OnlineRequest, OnlineResponse, RequestLimits};
use crate::time::to_nanos;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;

/// The result of `apply` (or of `plan`, with `state` unset).
#[derive(Debug)]
pub struct ApplyOutcome {
    /// What changed.
    pub plan: Plan,
    /// The registry after the apply (`None` for a plan).
    pub state: Option<RegistryState>,
    /// Batch sources that had no data and were created empty, with the columns their
    /// definitions declare (see [`larder_registry::declared`]): `(source, file)`.
    pub created_sources: Vec<(String, String)>,
}

/// A batch source without data, with the columns its definitions declare.
type Declared = (FileSource, Vec<(String, larder_registry::ValueType)>);

/// The result of materializing one view.
#[derive(Debug, Clone)]
pub struct MaterializeOutcome {
    /// View name.
    pub view: String,
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// Rows written to the online store.
    pub rows: u64,
    /// Of those, keys already older than the view's ttl (served `OUTSIDE_MAX_AGE`).
    pub expired: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// A feature repo opened for use: configuration, registry, online and offline stores.
#[derive(Debug)]
pub struct FeatureStore {
    config: RepoConfig,
    registry: Arc<dyn RegistryStore>,
    offline: Arc<dyn OfflineStore>,
    online: OnceLock<Arc<dyn OnlineStore>>,
    cache: Cache,
    limits: RequestLimits,
    transforms: Arc<crate::transform::Transforms>,
    auth: Option<Arc<crate::auth::Authenticator>>,
    /// Feast's online layout when the registry is Feast's.
    layout: online::Layout,
    /// Compiled online plans of the served registry state.
    plans: serving::PlanCache,
    /// The queue of served features to log, started by the first logged answer.
    feature_log: OnceLock<crate::feature_log::FeatureLogger>,
}

/// The registry state last read, with the change token it was read at.
type Cache = Arc<RwLock<Option<(Option<u128>, Arc<RegistryState>)>>>;

/// Feature names from the cached registry state (for Feast's Redis layout).
struct CachedViews(Cache);

impl online::ViewFeatures for CachedViews {
    fn features(&self, view: &str) -> Result<Option<Vec<String>>> {
        let guard = self
            .0
            .read()
            .map_err(|_| Error::Internal("the registry cache lock is poisoned".into()))?;
        let (_, state) = guard
            .as_ref()
            .ok_or_else(|| Error::Unavailable("the registry has not been read yet".into()))?;
        Ok(state
            .doc
            .feature_view(view)
            .map(|v| v.features.iter().map(|f| f.name.clone()).collect()))
    }
}

struct Prefetched(HashMap<String, std::result::Result<Vec<SourceColumn>, String>>);

impl SchemaLookup for Prefetched {
    fn columns(&self, source: &FileSource) -> std::result::Result<Vec<SourceColumn>, String> {
        self.0
            .get(&source.name)
            .cloned()
            .unwrap_or_else(|| Err("source not read".into()))
    }
}

/// Whether the registry file is Feast's (a protobuf `Registry`) rather than Larder's (JSON).
#[allow(clippy::disallowed_methods, reason = "read once, when the repo is opened")]
fn holds_feast_registry(path: &std::path::Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| larder_feast_model::is_feast_registry(&bytes))
}

/// Runs blocking `f` off the async worker where the runtime allows it (a multi-threaded
/// runtime hands the worker's other tasks to another thread meanwhile), inline otherwise.
fn block_in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Opens the registry store a repo configures: a file (Larder's own, or Feast's `registry.db`,
/// read as Feast left it), or a SQL registry on SQLite or PostgreSQL (each behind its cargo
/// feature; on PostgreSQL, Feast's own SQL registry is read when the database holds it and no
/// Larder registry). Also says whether the registry is Feast's (then the online store is read
/// in Feast's layout).
fn open_registry(config: &RepoConfig) -> Result<(Arc<dyn RegistryStore>, bool)> {
    match config.registry.url.as_deref() {
        None if holds_feast_registry(&config.registry.path) => {
            tracing::info!(path = %config.registry.path.display(), "Reading Feast's registry (read-only).");
            let store = larder_feast_model::FeastFileRegistry::new(&config.registry.path, &config.project);
            Ok((Arc::new(larder_feast_model::ReadOnly(store)), true))
        }
        None => Ok((Arc::new(FileRegistryStore::new(&config.registry.path)), false)),
        Some(url) if url.starts_with("s3://") => open_s3_registry(url, &config.project),
        #[cfg(feature = "sqlite")]
        Some(url) if url.starts_with("sqlite:") => open_sqlite_registry(&config.registry.path, &config.project),
        #[cfg(not(feature = "sqlite"))]
        Some(url) if url.starts_with("sqlite:") => Err(Error::not_built("sqlite", "a SQL registry on SQLite")),
        #[cfg(feature = "postgres")]
        Some(url) => open_postgres_registry(url, &config.project),
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(Error::not_built("postgres", "a SQL registry on PostgreSQL")),
    }
}

/// Larder's registry in the SQLite file at `path`, or Feast's SQL registry in the same file when
/// it holds the project and Larder's does not (decided once, when the repo is opened).
#[cfg(feature = "sqlite")]
fn open_sqlite_registry(path: &std::path::Path, project: &str) -> Result<(Arc<dyn RegistryStore>, bool)> {
    let larder = larder_registry::SqliteRegistryStore::new(path, project);
    let feast = larder_feast_model::sql_registry::FeastSqliteRegistry::new(path, project);
    match feast.is_feasts() {
        Ok(true) => {
            tracing::info!(path = %path.display(), "Reading Feast's SQL registry (read-only).");
            return Ok((Arc::new(larder_feast_model::ReadOnly(feast)), true));
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "Cannot tell whether the SQL registry is Feast's; using Larder's."),
    }
    Ok((Arc::new(larder), false))
}

/// The registry object at `url` (`s3://bucket/key`): Feast's protobuf registry, served
/// read-only as Feast left it, or Larder's own (JSON, or none yet). The endpoint of an
/// S3-compatible service is `$FEAST_S3_ENDPOINT_URL` (Feast's variable for its S3 registry),
/// else `$AWS_ENDPOINT_URL`.
fn open_s3_registry(url: &str, project: &str) -> Result<(Arc<dyn RegistryStore>, bool)> {
    let endpoint = std::env::var("FEAST_S3_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty());
    let store = larder_registry::S3RegistryStore::new(url, endpoint.as_deref())?;
    let feasts = store
        .read_raw()?
        .is_some_and(|bytes| larder_feast_model::is_feast_registry(&bytes));
    if feasts {
        tracing::info!(url, "Reading Feast's registry (read-only).");
        let source = larder_feast_model::FeastS3Registry::new(store, project);
        return Ok((Arc::new(larder_feast_model::ReadOnly(source)), true));
    }
    Ok((Arc::new(store), false))
}

/// Larder's registry in PostgreSQL, or Feast's SQL registry in the same database when it holds
/// the project and Larder's does not (decided once, when the repo is opened).
#[cfg(feature = "postgres")]
fn open_postgres_registry(url: &str, project: &str) -> Result<(Arc<dyn RegistryStore>, bool)> {
    use larder_registry::PostgresRegistryStore;
    let feast =
        larder_feast_model::sql_registry::FeastSqlRegistry::new(PostgresRegistryStore::new(url, project)?, project);
    match feast.is_feasts() {
        Ok(true) => {
            tracing::info!("Reading Feast's SQL registry (read-only).");
            return Ok((Arc::new(larder_feast_model::ReadOnly(feast)), true));
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "Cannot tell whether the SQL registry is Feast's; using Larder's."),
    }
    Ok((Arc::new(PostgresRegistryStore::new(url, project)?), false))
}

/// The offline store of `config`: Parquet files, and PostgreSQL sources when it names a database.
fn offline_store(config: &RepoConfig) -> Result<ParquetOfflineStore> {
    let store = ParquetOfflineStore::new(&config.repo_dir);
    match &config.offline_store {
        crate::config::OfflineStoreConfig::File(file) => Ok(store.with_s3_endpoint(file.s3_endpoint_override.clone())),
        #[cfg(feature = "postgres")]
        crate::config::OfflineStoreConfig::Postgres(pg) => {
            let sources = crate::offline::postgres::PostgresSources::new(pg).map_err(|message| Error::Config {
                file: config.repo_dir.join(crate::config::CONFIG_FILE),
                message,
            })?;
            Ok(store.with_postgres(sources))
        }
        #[cfg(not(feature = "postgres"))]
        crate::config::OfflineStoreConfig::Postgres(_) => Err(Error::Config {
            file: config.repo_dir.join(crate::config::CONFIG_FILE),
            message: "offline_store.type `postgres`: this server was built without the `postgres` feature".into(),
        }),
    }
}

impl FeatureStore {
    /// Opens the repo at `repo_dir` (reads `feature_store.yaml`). Stores open lazily.
    pub fn open(repo_dir: &std::path::Path) -> Result<Self> {
        Self::from_config(RepoConfig::load(repo_dir)?)
    }

    /// Builds a store from a loaded configuration.
    pub fn from_config(config: RepoConfig) -> Result<Self> {
        let (registry, feast_registry) = open_registry(&config)?;
        let cache = Cache::default();
        let layout = if feast_registry {
            online::Layout::Feast(Arc::new(CachedViews(Arc::clone(&cache))))
        } else {
            online::Layout::Larder
        };
        let offline: Arc<dyn OfflineStore> = Arc::new(offline_store(&config)?);
        let config_dir = config.repo_dir.clone();
        let auth = match &config.auth {
            None => None,
            Some(a) => crate::auth::Authenticator::from_config(a, &config.repo_dir)
                .map_err(|message| Error::Config {
                    file: config.repo_dir.join(crate::config::CONFIG_FILE),
                    message,
                })?
                .map(Arc::new),
        };
        Ok(FeatureStore {
            config,
            registry,
            offline,
            online: OnceLock::new(),
            cache,
            limits: RequestLimits::default(),
            transforms: Arc::new(crate::transform::Transforms::new(config_dir)),
            auth,
            layout,
            plans: serving::PlanCache::default(),
            feature_log: OnceLock::new(),
        })
    }

    /// Sets the per-request limits for online reads.
    pub fn with_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The token checker, when `auth:` is configured.
    pub fn authenticator(&self) -> Option<&crate::auth::Authenticator> {
        self.auth.as_deref()
    }

    /// The repo configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The project name.
    pub fn project(&self) -> &str {
        &self.config.project
    }

    /// The registry store.
    pub fn registry(&self) -> &Arc<dyn RegistryStore> {
        &self.registry
    }

    /// The online store, opened on first use.
    pub fn online(&self) -> Result<Arc<dyn OnlineStore>> {
        if let Some(o) = self.online.get() {
            return Ok(Arc::clone(o));
        }
        let store = online::open(&self.config, &self.layout)?;
        Ok(Arc::clone(self.online.get_or_init(|| store)))
    }

    /// The offline store.
    pub fn offline(&self) -> &Arc<dyn OfflineStore> {
        &self.offline
    }

    /// Runs a call of the registry store on tokio's blocking pool: the stores read and fsync
    /// files or wait on SQLite and PostgreSQL, which must not hold up the async workers.
    pub async fn on_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RegistryStore) -> larder_registry::Result<T> + Send + 'static,
    ) -> Result<T> {
        let registry = Arc::clone(&self.registry);
        tokio::task::spawn_blocking(move || f(registry.as_ref()))
            .await
            .map_err(|e| Error::Internal(format!("registry task failed: {e}")))?
            .map_err(Error::from)
    }

    /// The registry state, re-read when the registry changed since the last call.
    pub async fn state(&self) -> Result<Arc<RegistryState>> {
        let token = self.on_registry(|r| r.change_token()).await?;
        if let Some(s) = self.cached(token) {
            return Ok(s);
        }
        self.refresh().await
    }

    /// The cached registry state without checking the registry for changes (read from the
    /// registry when nothing is cached yet).
    pub async fn cached_state(&self) -> Result<Arc<RegistryState>> {
        if let Ok(guard) = self.cache.read() {
            if let Some((_, s)) = guard.as_ref() {
                return Ok(Arc::clone(s));
            }
        }
        self.refresh().await
    }

    /// The cached state if it was read at `token`.
    fn cached(&self, token: Option<u128>) -> Option<Arc<RegistryState>> {
        let guard = self.cache.read().ok()?;
        let (t, s) = guard.as_ref()?;
        (*t == token).then(|| Arc::clone(s))
    }

    /// Re-reads the registry.
    pub async fn refresh(&self) -> Result<Arc<RegistryState>> {
        let (token, loaded) = self.on_registry(|r| Ok((r.change_token()?, r.load()?))).await?;
        if loaded.is_none() {
            // Torn down (or never applied): stop serving the old definitions.
            if let Ok(mut guard) = self.cache.write() {
                *guard = None;
            }
        }
        let state = loaded.ok_or_else(|| {
            Error::Unavailable(format!(
                "the registry {} is empty: run `larder apply` first",
                self.config.registry.describe()
            ))
        })?;
        let state = Arc::new(state);
        metrics::gauge!("larder_registry_version").set(state.version as f64);
        if let Ok(mut guard) = self.cache.write() {
            *guard = Some((token, Arc::clone(&state)));
        }
        Ok(state)
    }

    /// `doc` resolved and validated against the sources' columns; also the batch sources of
    /// push and Kafka sources that do not exist yet, validated against the columns their
    /// definitions declare (created by `apply`).
    async fn checked(&self, doc: RegistryDoc) -> Result<(RegistryDoc, Vec<Declared>)> {
        let mut doc = doc;
        doc.project = self.config.project.clone();
        let mut columns = HashMap::new();
        let mut declared = Vec::new();
        for s in &doc.data_sources {
            if let larder_registry::DataSource::File(f) = s {
                let read = match self.offline.source_columns(f).await {
                    Ok(c) => Ok(c),
                    Err(e) => match (
                        self.offline.absent(f).await,
                        larder_registry::declared::declared_columns(&doc, f),
                    ) {
                        (Some(_), Some(cols)) => {
                            declared.push((f.clone(), cols.clone()));
                            Ok(cols
                                .into_iter()
                                .map(|(name, ty)| SourceColumn {
                                    name,
                                    value_type: Some(ty),
                                    is_timestamp: ty == larder_registry::ValueType::UnixTimestamp,
                                })
                                .collect())
                        }
                        _ => Err(e.to_string()),
                    },
                };
                columns.insert(f.name.clone(), read);
            }
        }
        let lookup = Prefetched(columns);
        let resolved = resolve(&doc, &lookup).map_err(|e| Error::Registry(larder_registry::Error::Invalid(e)))?;
        let errors = validate(&resolved, &lookup);
        if !errors.is_empty() {
            return Err(Error::Registry(larder_registry::Error::Invalid(errors)));
        }
        let mut resolved = resolved;
        resolved.normalize();
        Ok((resolved, declared))
    }

    /// Creates the declared batch sources that still have no data, as empty Parquet files.
    async fn create_declared(&self, declared: Vec<Declared>) -> Result<Vec<(String, String)>> {
        let mut created = Vec::new();
        for (source, cols) in declared {
            if self.offline.absent(&source).await.is_none() {
                continue;
            }
            let fields: Vec<datafusion::arrow::datatypes::Field> = cols
                .iter()
                .map(|(name, ty)| {
                    let dt = match ty {
                        larder_registry::ValueType::UnixTimestamp => datafusion::arrow::datatypes::DataType::Timestamp(
                            datafusion::arrow::datatypes::TimeUnit::Microsecond,
                            Some("UTC".into()),
                        ),
                        other => crate::value::arrow_type(*other),
                    };
                    datafusion::arrow::datatypes::Field::new(name, dt, true)
                })
                .collect();
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
            let file = self.offline.create_empty(&source, schema).await?;
            created.push((source.name.clone(), file));
        }
        Ok(created)
    }

    /// What `apply` would change, after validating `doc`.
    pub async fn plan(&self, doc: RegistryDoc) -> Result<ApplyOutcome> {
        let old = self.on_registry(|r| r.load()).await?;
        let mut doc = doc;
        if let Some(old) = &old {
            doc.keep_client_objects(&old.doc);
        }
        let (doc, _) = self.checked(doc).await?;
        Ok(ApplyOutcome {
            plan: diff(old.as_ref().map(|s| &s.doc), &doc),
            state: None,
            created_sources: Vec::new(),
        })
    }

    /// Validates and registers `doc` as a new version (when anything changed), and deletes the
    /// online data of views that no longer exist.
    pub async fn apply(&self, doc: RegistryDoc, applied_by: &str) -> Result<ApplyOutcome> {
        let mut doc = doc;
        // A repo's definitions do not hold what clients saved (datasets, validation references).
        if let Some(old) = self.on_registry(|r| r.load()).await? {
            doc.keep_client_objects(&old.doc);
        }
        self.apply_on(doc, applied_by, None).await
    }

    /// [`FeatureStore::apply`] of a document built on the registry at version `base` (`None`:
    /// an empty registry): refused with `Stale` when another apply came in between, so that a
    /// partial apply never drops what a concurrent one added (the caller re-reads and retries).
    pub async fn apply_on_base(&self, doc: RegistryDoc, applied_by: &str, base: Option<u64>) -> Result<ApplyOutcome> {
        self.apply_on(doc, applied_by, Some(base)).await
    }

    async fn apply_on(&self, doc: RegistryDoc, applied_by: &str, base: Option<Option<u64>>) -> Result<ApplyOutcome> {
        let (doc, declared) = self.checked(doc).await?;
        // Removing a view deletes its online rows. When this process cannot reach the online
        // store (the embedded RocksDB store is held by a running `larder serve`), an apply that
        // removes a view is refused: recording it would leave rows behind that a later view of
        // the same name would serve. The check runs under the registry's lock, on the plan
        // that is recorded.
        let online: std::sync::Mutex<Option<Arc<dyn OnlineStore>>> = std::sync::Mutex::new(None);
        let allow = |plan: &larder_registry::Plan| -> larder_registry::Result<()> {
            if let Some(expected) = base.filter(|b| *b != plan.base_version) {
                return Err(larder_registry::Error::Stale {
                    expected,
                    found: plan.base_version,
                });
            }
            let deleted = plan.deleted_views();
            if deleted.is_empty() {
                return Ok(());
            }
            match self.online() {
                Ok(o) => {
                    if let Ok(mut slot) = online.lock() {
                        *slot = Some(o);
                    }
                    Ok(())
                }
                Err(why) => Err(larder_registry::Error::Refused(format!(
                    "this apply removes feature view(s) {} but their online rows cannot be deleted from here \
                     ({why}); nothing was changed. Apply through the running server instead \
                     (POST /apply, the SDK's store.apply) or stop it first",
                    deleted.join(", ")
                ))),
            }
        };
        // `allow` borrows this store, so the call cannot move to the blocking pool: it leaves
        // the async worker for the duration instead.
        let applied = block_in_place(|| self.registry.apply(doc, applied_by, &allow))?;
        let online = online.lock().ok().and_then(|mut o| o.take());
        if let (true, Some(o)) = (applied.recorded, online) {
            for view in applied.plan.deleted_views() {
                o.delete_view(self.project(), &view).await?;
            }
        }
        let created_sources = self.create_declared(declared).await?;
        Ok(ApplyOutcome {
            plan: applied.plan,
            state: applied.state,
            created_sources,
        })
    }

    /// Materializes `[start, end]` for the named views (all online views when empty).
    pub async fn materialize(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        views: &[String],
        progress: &dyn Progress,
    ) -> Result<Vec<MaterializeOutcome>> {
        if start > end {
            return Err(Error::invalid("start", format!("start {start} is after end {end}")));
        }
        let state = self.refresh().await?;
        let names = self.views_to_materialize(&state, views)?;
        let mut out = Vec::new();
        for name in names {
            out.push(self.materialize_one(&state, &name, start, end, progress).await?);
        }
        Ok(out)
    }

    /// Materializes each view from where its last materialization ended (or `end - ttl`, or
    /// `end - 52 weeks` without ttl... as Feast: a view never materialized and without ttl is
    /// an error) up to `end`.
    pub async fn materialize_incremental(
        &self,
        end: DateTime<Utc>,
        views: &[String],
        progress: &dyn Progress,
    ) -> Result<Vec<MaterializeOutcome>> {
        let state = self.refresh().await?;
        let names = self.views_to_materialize(&state, views)?;
        let mut out = Vec::new();
        for name in names {
            let view = state
                .doc
                .feature_view(&name)
                .ok_or_else(|| Error::view_not_found(&name, self.project()))?;
            let start = match (state.most_recent_end(&name), view.ttl_seconds) {
                (Some(t), _) => t,
                (None, Some(ttl)) if ttl > 0 => end - chrono::Duration::seconds(ttl),
                (None, Some(_)) => end - chrono::Duration::weeks(52),
                (None, None) => {
                    return Err(Error::invalid(
                        "end",
                        format!(
                            "feature view {name} has no ttl and was never materialized: run `larder materialize START END` once first"
                        ),
                    ))
                }
            };
            if start >= end {
                continue;
            }
            out.push(self.materialize_one(&state, &name, start, end, progress).await?);
        }
        Ok(out)
    }

    /// Checks a materialization request's view list (unknown views: 404; aggregated stream
    /// views: 422) against the current registry, before a job is started.
    pub async fn check_materialize(&self, views: &[String]) -> Result<()> {
        let state = self.state().await?;
        self.views_to_materialize(&state, views).map(|_| ())
    }

    fn views_to_materialize(&self, state: &RegistryState, views: &[String]) -> Result<Vec<String>> {
        if views.is_empty() {
            return Ok(state
                .doc
                .feature_views
                .iter()
                .filter(|v| v.online && !v.is_aggregated())
                .map(|v| v.name.clone())
                .collect());
        }
        for v in views {
            match state.doc.feature_view(v) {
                None => return Err(Error::view_not_found(v, self.project())),
                Some(fv) if fv.is_aggregated() => {
                    return Err(Error::invalid(
                        "feature_views",
                        format!("{v} aggregates its stream: its stream worker keeps it online, not materialize"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(views.to_vec())
    }

    async fn materialize_one(
        &self,
        state: &RegistryState,
        name: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<MaterializeOutcome> {
        let view = state
            .doc
            .feature_view(name)
            .ok_or_else(|| Error::view_not_found(name, self.project()))?;
        let online = self.online()?;
        let t0 = std::time::Instant::now();
        progress.start_view(name);
        let window = ViewWindow {
            project: self.project(),
            doc: &state.doc,
            view,
            start_ns: to_nanos(start),
            end_ns: to_nanos(end),
        };
        let written = materialize_view(window, self.offline.as_ref(), online.as_ref(), progress).await?;
        let rows = written.rows;
        let seconds = t0.elapsed().as_secs_f64();
        metrics::counter!("larder_materialized_rows_total", "view" => name.to_string()).increment(rows);
        progress.finish_view(name, rows, seconds);
        let (view, interval) = (
            name.to_string(),
            MaterializationInterval {
                start,
                end,
                finished_at: Utc::now(),
            },
        );
        self.on_registry(move |r| r.record_materialization(&view, interval))
            .await?;
        Ok(MaterializeOutcome {
            view: name.to_string(),
            start,
            end,
            rows,
            expired: written.expired,
            seconds,
        })
    }

    /// Answers an online request from the current registry and the online store.
    pub async fn get_online_features(&self, req: &OnlineRequest) -> Result<OnlineResponse> {
        let state = self.cached_state().await?;
        let plan = self.plans.get_or_compile(
            &state,
            self.project(),
            &req.features,
            req.full_feature_names,
            self.limits.max_features,
        )?;
        let online = self.online()?;
        serving::get_online_features(
            &plan,
            self.project(),
            online.as_ref(),
            &self.transforms,
            req,
            serving::ReadOptions {
                limits: self.limits,
                ttl: self.config.online_ttl,
                now_ns: to_nanos(Utc::now()),
            },
        )
        .await
    }

    /// Logs an answer to a feature service that has a `logging_config`, when
    /// `feature_server.feature_logging` is enabled (see [`crate::feature_log`]); never fails
    /// the request: a log that cannot be made is counted and left out.
    pub async fn log_served(&self, req: &OnlineRequest, resp: &OnlineResponse, request_id: &str) {
        if !self.config.feature_logging.enabled {
            return;
        }
        let FeatureSelection::Service(name) = &req.features else {
            return;
        };
        let Ok(state) = self.cached_state().await else {
            return;
        };
        let Some(service) = state.doc.feature_service(name) else {
            return;
        };
        let Some(logging) = &service.logging else {
            return;
        };
        if logging.sample_rate < 1.0 && fastrand::f64() >= logging.sample_rate {
            return;
        }
        if !logging.partition_by.is_empty() {
            // As `write_logged_features`: partitioned destinations are not written yet.
            metrics::counter!("larder_feature_log_dropped_total").increment(1);
            tracing::debug!(service = %name, "Not logged: partition_by is not supported.");
            return;
        }
        match crate::feature_log::log_batch(&state.doc, service, req, resp, request_id, Utc::now()) {
            Ok(batch) => {
                let logger = self
                    .feature_log
                    .get_or_init(|| crate::feature_log::FeatureLogger::start(&self.config.feature_logging));
                logger.log(self.config.resolve_path(&logging.path), batch);
            }
            Err(e) => {
                metrics::counter!("larder_feature_log_dropped_total").increment(1);
                tracing::warn!(service = %name, error = %e, "Served features could not be logged.");
            }
        }
    }

    /// Writes the served features logged so far (at shutdown).
    pub async fn flush_feature_log(&self) {
        if let Some(logger) = self.feature_log.get() {
            logger.flush().await;
        }
    }

    /// The point-in-time-correct training set for the entity rows in `entity` (see
    /// [`OfflineStore::get_historical_features`]).
    pub async fn get_historical_features(
        &self,
        entity: Vec<RecordBatch>,
        features: &FeatureSelection,
        full_feature_names: bool,
    ) -> Result<SendableRecordBatchStream> {
        let state = self.state().await?;
        let (requested, odfvs) = serving::resolve_with_odfvs(&state.doc, self.project(), features)?;
        serving::check_collisions(&requested, &odfvs, full_feature_names)?;
        let mut views = Vec::with_capacity(requested.len());
        for r in &requested {
            let source = state.doc.batch_source(r.view).ok_or_else(|| {
                Error::invalid("features", format!("feature view {} has no batch source", r.view.name))
            })?;
            views.push(HistoricalView {
                view: r.view.name.clone(),
                source,
                join_keys: r.view.entity_columns.iter().map(|f| f.name.clone()).collect(),
                features: r
                    .features
                    .iter()
                    .map(|f| (f.clone(), serving::output_name(r, f, full_feature_names)))
                    .collect(),
                ttl_seconds: r.view.ttl_seconds,
                aggregations: aggregations_of(r.view, &r.features)?,
            });
        }
        // On-demand views: join their input features too (as hidden columns when not asked for).
        let mut plans = Vec::with_capacity(odfvs.len());
        let mut hidden = Vec::new();
        for o in &odfvs {
            let inputs = crate::transform::input_columns(&state.doc, o.odfv)?;
            let mut sources = Vec::with_capacity(inputs.len());
            for c in &inputs {
                let crate::transform::InputOrigin::Feature { view, feature } = &c.origin else {
                    sources.push(c.name.clone());
                    continue;
                };
                let idx = match views.iter().position(|v| &v.view == view) {
                    Some(i) => i,
                    None => {
                        let fv = state
                            .doc
                            .feature_view(view)
                            .ok_or_else(|| Error::view_not_found(view, self.project()))?;
                        let source = state.doc.batch_source(fv).ok_or_else(|| {
                            Error::invalid("features", format!("feature view {view} has no batch source"))
                        })?;
                        views.push(HistoricalView {
                            view: view.clone(),
                            source,
                            join_keys: fv.entity_columns.iter().map(|f| f.name.clone()).collect(),
                            features: Vec::new(),
                            ttl_seconds: fv.ttl_seconds,
                            aggregations: Vec::new(),
                        });
                        views.len() - 1
                    }
                };
                let name = match views[idx].features.iter().find(|(f, _)| f == feature) {
                    Some((_, out)) => out.clone(),
                    None => {
                        let h = format!("__larder_odfv_input__{view}__{feature}");
                        views[idx].features.push((feature.clone(), h.clone()));
                        if let Some(fv) = state.doc.feature_view(view).filter(|fv| fv.is_aggregated()) {
                            views[idx]
                                .aggregations
                                .extend(aggregations_of(fv, std::slice::from_ref(feature))?);
                        }
                        hidden.push(h.clone());
                        h
                    }
                };
                sources.push(name);
            }
            plans.push(crate::transform::OdfvPlan {
                odfv: o.odfv.clone(),
                outputs: o
                    .features
                    .iter()
                    .map(|f| {
                        let out = if full_feature_names {
                            format!("{}__{f}", o.display)
                        } else {
                            f.clone()
                        };
                        (f.clone(), out)
                    })
                    .collect(),
                inputs,
                sources,
            });
        }
        check_entity_types(&entity, &state.doc, &views, &plans)?;
        let stream = self
            .offline
            .get_historical_features(HistoricalRequest { entity, views })
            .await?;
        if plans.is_empty() {
            return Ok(stream);
        }
        crate::transform::apply_to_stream(Arc::clone(&self.transforms), stream, plans, hidden)
    }

    /// Runs an entity dataframe given as SQL over the registered file sources (tables are
    /// named after the sources).
    pub async fn entity_df_from_sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let state = self.state().await?;
        let sources: Vec<&larder_registry::FileSource> = state
            .doc
            .data_sources
            .iter()
            .filter_map(|s| match s {
                larder_registry::DataSource::File(f) => Some(f),
                _ => None,
            })
            .collect();
        self.offline.query(sql, &sources).await
    }

    /// Feast's `push`: writes the rows to every view fed by the push source (`online`), appends
    /// them to the push source's batch source (`offline`, atomically: later training sets and
    /// materializations see them), or both. Every row is validated before anything is
    /// written. Returns the rows written (per destination).
    pub async fn push(
        &self,
        push_source: &str,
        df: &indexmap::IndexMap<String, Vec<serde_json::Value>>,
        to: &str,
    ) -> Result<usize> {
        let (online, offline) = match to {
            "online" => (true, false),
            "offline" => (false, true),
            "online_and_offline" => (true, true),
            other => {
                return Err(Error::invalid(
                    "to",
                    format!("`{other}` is not a supported push format. Please specify one of these ['online', 'offline', 'online_and_offline']."),
                ))
            }
        };
        let state = self.cached_state().await?;
        let views = crate::ingest::views_for_push_source(&state.doc, push_source)?;
        // Everything is validated before anything is written.
        let mut batches = Vec::with_capacity(views.len());
        if online {
            for v in &views {
                batches.push((v.name.clone(), crate::ingest::rows_from_columns(&state.doc, v, df)?));
            }
        }
        let mut append = None;
        if offline {
            let Some(larder_registry::DataSource::Push(p)) = state.doc.data_source(push_source) else {
                return Err(Error::Internal(format!("push source {push_source} vanished")));
            };
            let Some(larder_registry::DataSource::File(file)) = state.doc.data_source(&p.batch_source) else {
                return Err(Error::invalid(
                    "push_source_name",
                    format!("push source {push_source} has no file batch source to append to"),
                ));
            };
            if !df.contains_key(&file.timestamp_field) {
                return Err(Error::invalid(
                    format!("df.{}", file.timestamp_field),
                    format!("the event timestamp column `{}` is missing", file.timestamp_field),
                ));
            }
            crate::offline::writable(file)?;
            let schema = self.offline.source_schema(file).await?;
            append = Some((file.clone(), crate::ingest::offline_batch(df, &schema, &file.name)?));
        }
        let mut written = 0;
        // The offline copy first: it is the record a later materialization replays.
        if let Some((file, batch)) = append {
            written += self.offline.append(&file, batch).await?;
        }
        if online {
            let store = self.online()?;
            for (view, rows) in batches {
                written += store.write_batch(self.project(), &view, rows).await?;
            }
        }
        let n = df.values().next().map(Vec::len).unwrap_or(0) as u64;
        metrics::counter!("larder_pushed_rows_total", "push_source" => push_source.to_string(), "to" => to.to_string())
            .increment(n);
        Ok(written)
    }

    /// Feast's `write_to_online_store`: writes columnar rows to one view.
    pub async fn write_to_online_store(
        &self,
        view: &str,
        df: &indexmap::IndexMap<String, Vec<serde_json::Value>>,
    ) -> Result<usize> {
        let state = self.cached_state().await?;
        let v = state
            .doc
            .feature_view(view)
            .ok_or_else(|| Error::view_not_found(view, self.project()))?;
        let rows = crate::ingest::rows_from_columns(&state.doc, v, df)?;
        self.online()?.write_batch(self.project(), view, rows).await
    }

    /// Deletes every view's online data and the registry.
    pub async fn teardown(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        if let Some(state) = self.on_registry(|r| r.load()).await? {
            let online = self.online()?;
            for v in &state.doc.feature_views {
                online.delete_view(self.project(), &v.name).await?;
                removed.push(v.name.clone());
            }
        }
        self.on_registry(|r| r.delete()).await?;
        if let Ok(mut guard) = self.cache.write() {
            *guard = None;
        }
        Ok(removed)
    }
}

/// The aggregation behind each of `features` of an aggregated view (empty for a plain view).
fn aggregations_of(
    view: &larder_registry::FeatureView,
    features: &[String],
) -> Result<Vec<larder_registry::Aggregation>> {
    if !view.is_aggregated() {
        return Ok(Vec::new());
    }
    features
        .iter()
        .map(|f| {
            view.aggregations
                .iter()
                .find(|a| &a.output_name() == f)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("view {}: no aggregation gives `{f}`", view.name)))
        })
        .collect()
}

/// Refuses entity-dataframe columns whose type does not fit the join key or request field they
/// stand for (a string `'1001'` for an INT64 key, a float for an integer key, a string for a
/// number), as online retrieval does: 422 naming the column, instead of silent misses.
fn check_entity_types(
    entity: &[RecordBatch],
    doc: &larder_registry::RegistryDoc,
    views: &[HistoricalView<'_>],
    plans: &[crate::transform::OdfvPlan],
) -> Result<()> {
    let Some(schema) = entity.first().map(RecordBatch::schema) else {
        return Ok(());
    };
    let check = |name: &str, ty: larder_registry::ValueType, what: String| -> Result<()> {
        match schema.field_with_name(name) {
            Ok(f) if !crate::value::column_fits(f.data_type(), ty) => Err(Error::invalid(
                format!("entity_df.{name}"),
                format!("the column has type {}, but {what} is {ty}", f.data_type()),
            )),
            _ => Ok(()),
        }
    };
    for v in views {
        if let Some(fv) = doc.feature_view(&v.view) {
            for k in &fv.entity_columns {
                check(
                    &k.name,
                    k.dtype,
                    format!("join key `{}` of feature view {}", k.name, fv.name),
                )?;
            }
        }
    }
    for p in plans {
        for c in &p.inputs {
            if c.origin == crate::transform::InputOrigin::Request {
                check(
                    &c.name,
                    c.dtype,
                    format!("request field `{}` of on-demand feature view {}", c.name, p.odfv.name),
                )?;
            }
        }
    }
    Ok(())
}
