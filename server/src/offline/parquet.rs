//! The Parquet offline store, on DataFusion.

use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{col, lit, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use larder_registry::{FileSource, SourceColumn};

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{cast, Expr};

use super::asof;
use super::asof::{ENTITY_TS, ROW_ID};
use super::window_agg::{window_sql, WindowJoin};
use super::{HistoricalRequest, OfflineStore, PullRequest, CREATED_TS_COLUMN, EVENT_TS_COLUMN};
use crate::error::{Error, Result};
use crate::value::timestamps_nanos;
use crate::value::value_type_of;

/// Reads Parquet files (a file or a directory of them) with DataFusion. Relative source paths
/// resolve against `base_dir` (the repo).
///
/// Appended rows (Feast's push to `offline`) go into new Parquet files: into the source's
/// directory when its path is one, else into `<file>.appends/` beside the file, which reads of
/// that source include. Each file is written under a temporary name, fsynced and renamed, so
/// an append is atomic.
#[derive(Debug, Clone)]
pub struct ParquetOfflineStore {
    base_dir: PathBuf,
    s3_endpoint: Option<String>,
    /// The database of PostgreSQL sources (`offline_store: {type: postgres}`).
    #[cfg(feature = "postgres")]
    postgres: Option<Arc<super::postgres::PostgresSources>>,
}

/// A runtime for one offline session, drawing on the memory pool every session of the process
/// shares: `LARDER_OFFLINE_MEMORY_MB` (default 4096) in all. Operators that can spill (sorts) do
/// so instead of growing past it, and entity queries are refused past it (see
/// [`super::entity_sql`]). Only the pool is shared: each session gets its own caches, so a
/// file appended to a source is seen by the next query.
fn runtime() -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};
    static POOL: std::sync::OnceLock<Arc<dyn MemoryPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let mb: usize = std::env::var("LARDER_OFFLINE_MEMORY_MB")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(4096);
        Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(mb.saturating_mul(1024 * 1024)),
            std::num::NonZeroUsize::new(5).unwrap_or(std::num::NonZeroUsize::MIN),
        ))
    });
    Ok(RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::clone(pool))
        .build_arc()?)
}

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A timestamp literal in the column's own type, so that comparisons need no coercion.
fn ts_literal(dt: &DataType, ns: i64) -> Result<ScalarValue> {
    let DataType::Timestamp(unit, tz) = dt else {
        return Err(Error::Offline(format!("expected a timestamp column, found {dt}")));
    };
    let tz = tz.clone();
    Ok(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(ns.div_euclid(1_000_000_000)), tz),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(ns.div_euclid(1_000_000)), tz),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(ns.div_euclid(1_000)), tz),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(ns), tz),
    })
}

impl ParquetOfflineStore {
    /// Appends `batch` as a new part, or as the part `part` (replacing it).
    async fn append_to(&self, source: &FileSource, batch: RecordBatch, part: Option<String>) -> Result<usize> {
        super::writable(source)?;
        let path = self.path_of(source);
        if path.contains("://") {
            return Err(Error::NotImplemented(format!(
                "appending to the object-store source {} ({path})",
                source.name
            )));
        }
        let expected = self.source_schema(source).await?;
        let fields = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<Vec<_>>()
        };
        if fields(&expected) != fields(&batch.schema()) {
            return Err(Error::Internal(format!(
                "append to source {}: the rows do not have the source's schema",
                source.name
            )));
        }
        let n = batch.num_rows();
        let dir = appends_dir(&path);
        tokio::task::spawn_blocking(move || write_part(&dir, &batch, part.as_deref()))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Offline(format!("append to source {} ({path}): {e}", source.name)))?;
        Ok(n)
    }
    /// A store resolving relative paths against `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        ParquetOfflineStore {
            base_dir: base_dir.into(),
            s3_endpoint: None,
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// Reads PostgreSQL sources from `sources`' database.
    #[cfg(feature = "postgres")]
    pub fn with_postgres(mut self, sources: super::postgres::PostgresSources) -> Self {
        self.postgres = Some(Arc::new(sources));
        self
    }

    /// The database of a PostgreSQL source, or why there is none.
    #[cfg(feature = "postgres")]
    fn postgres_of(&self, source: &FileSource) -> Result<&super::postgres::PostgresSources> {
        self.postgres.as_deref().ok_or_else(|| {
            Error::Offline(format!(
                "source {} is a PostgreSQL source, but offline_store is not `type: postgres` (it names the database)",
                source.name
            ))
        })
    }

    /// The Arrow schema of a source's rows, read from its metadata only.
    async fn schema_of(&self, source: &FileSource) -> Result<datafusion::arrow::datatypes::SchemaRef> {
        if let Some(relation) = &source.postgres {
            #[cfg(feature = "postgres")]
            return self.postgres_of(source)?.schema(&source.name, relation).await;
            #[cfg(not(feature = "postgres"))]
            return Err(postgres_not_built(source, relation));
        }
        let ctx = self.context_with(source).await?;
        let table = ctx.table("src").await?;
        Ok(Arc::new(table.schema().as_arrow().clone()))
    }

    /// Uses an S3-compatible endpoint for `s3://` paths (else `$AWS_ENDPOINT_URL`, else AWS).
    pub fn with_s3_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.s3_endpoint = endpoint;
        self
    }

    /// Makes `s3://bucket/...` readable in `ctx` (credentials and region from `AWS_*`).
    fn register_s3(&self, ctx: &SessionContext, path: &str, source: &FileSource) -> Result<()> {
        let err = |e: String| Error::Offline(format!("source {} ({path}): {e}", source.name));
        let bucket = path
            .strip_prefix("s3://")
            .and_then(|rest| rest.split('/').next())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| err("no bucket in the URL".into()))?;
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = self
            .s3_endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(e) = endpoint {
            builder = builder
                .with_allow_http(e.starts_with("http://"))
                .with_endpoint(e)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| err(e.to_string()))?;
        let base = datafusion::execution::object_store::ObjectStoreUrl::parse(format!("s3://{bucket}"))
            .map_err(|e| err(e.to_string()))?;
        ctx.register_object_store(base.as_ref(), Arc::new(store));
        Ok(())
    }

    fn path_of(&self, source: &FileSource) -> String {
        // `file:///abs/path` (Feast accepts it) is a local path.
        if let Some(local) = source.path.strip_prefix("file://") {
            return self.base_dir.join(local).to_string_lossy().into_owned();
        }
        let p = std::path::Path::new(&source.path);
        if p.is_absolute() || source.path.contains("://") {
            source.path.clone()
        } else {
            self.base_dir.join(p).to_string_lossy().into_owned()
        }
    }

    async fn context_with(&self, source: &FileSource) -> Result<SessionContext> {
        let ctx = Self::context()?;
        self.register(&ctx, "src", source).await?;
        Ok(ctx)
    }

    /// A DataFusion session on the process's one offline runtime (see [`runtime`]).
    fn context() -> Result<SessionContext> {
        Ok(SessionContext::new_with_config_rt(
            SessionConfig::new().with_information_schema(false),
            runtime()?,
        ))
    }

    async fn register(&self, ctx: &SessionContext, table: &str, source: &FileSource) -> Result<()> {
        if let Some(relation) = &source.postgres {
            #[cfg(feature = "postgres")]
            {
                let rows = self.postgres_of(source)?.read(&source.name, relation).await?;
                ctx.register_table(table, Arc::new(rows))?;
                return Ok(());
            }
            #[cfg(not(feature = "postgres"))]
            return Err(postgres_not_built(source, relation));
        }
        let path = self.path_of(source);
        let local = !path.contains("://");
        if path.starts_with("s3://") {
            self.register_s3(ctx, &path, source)?;
        } else if !local {
            return Err(Error::Offline(format!(
                "source {}: {path}: only local paths and s3:// are supported",
                source.name
            )));
        }
        if local && !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(Error::Offline(format!("source {}: {path} does not exist", source.name)));
        }
        let appends = appends_dir(&path);
        let has_appends = local && !part_stems(&appends).await.is_empty();
        let err =
            |e: datafusion::error::DataFusionError| Error::Offline(format!("source {} ({path}): {e}", source.name));
        if has_appends {
            // The original file first: the schema is taken from it.
            let df = ctx
                .read_parquet(
                    vec![path.clone(), format!("{}/", appends.display())],
                    ParquetReadOptions::default(),
                )
                .await
                .map_err(err)?;
            ctx.register_table(table, df.into_view()).map_err(err)?;
        } else {
            ctx.register_parquet(table, &path, ParquetReadOptions::default())
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

/// A PostgreSQL source in a server built without PostgreSQL.
#[cfg(not(feature = "postgres"))]
fn postgres_not_built(source: &FileSource, relation: &larder_registry::PostgresRelation) -> Error {
    Error::NotImplemented(format!(
        "source {} reads PostgreSQL ({}); this server was built without the `postgres` feature",
        source.name,
        relation.from_clause()
    ))
}

/// Where appended rows of the source at `path` go: the directory itself, or `<file>.appends/`.
fn appends_dir(path: &str) -> PathBuf {
    let p = std::path::Path::new(path);
    if p.is_dir() {
        p.to_path_buf()
    } else {
        PathBuf::from(format!("{path}.appends"))
    }
}

/// `dt` with DataFusion's view types (what it reads strings as) replaced by the plain ones, and
/// second timestamps by milliseconds, so that appended files have the Arrow schema files
/// written by other tools have.
fn plain_type(dt: &DataType) -> DataType {
    match dt {
        // Parquet has no seconds unit: the Arrow writer would store bare integers, which other
        // readers (pyarrow, Feast) take for numbers. Milliseconds, as pyarrow writes them.
        DataType::Timestamp(TimeUnit::Second, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type())))),
        DataType::LargeList(f) => {
            DataType::LargeList(Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type()))))
        }
        other => other.clone(),
    }
}

/// The batch with view-typed columns cast to plain types (see [`plain_type`]).
fn plain_batch(batch: &RecordBatch) -> std::io::Result<RecordBatch> {
    let schema = batch.schema();
    if schema
        .fields()
        .iter()
        .all(|f| plain_type(f.data_type()) == *f.data_type())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let dt = plain_type(f.data_type());
        columns.push(datafusion::arrow::compute::cast(c, &dt).map_err(std::io::Error::other)?);
        fields.push(f.as_ref().clone().with_data_type(dt));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(std::io::Error::other)
}

/// The names (without `.parquet`) of the finished parts in an appends directory; none when it
/// does not exist. Temporary files (`.name.tmp`) are not parts.
async fn part_stems(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return out;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".parquet").filter(|s| !s.starts_with('.')) {
            out.push(stem.to_string());
        }
    }
    out
}

/// Writes `batch` as one new Parquet file in `dir` (created when missing), atomically, on the
/// blocking pool: a log file of Feast's `write_logged_features` (named as appended parts are).
pub async fn write_log_file(dir: PathBuf, batch: RecordBatch) -> Result<PathBuf> {
    tokio::task::spawn_blocking(move || write_part(&dir, &batch, None))
        .await
        .map_err(|e| Error::Internal(format!("log write task failed: {e}")))?
        .map_err(|e| Error::Offline(format!("cannot write the logs: {e}")))
}

/// Writes `batch` as the Parquet file `path`, replacing it atomically (a saved dataset, Feast's
/// `persist`).
pub async fn write_dataset_file(path: PathBuf, batch: RecordBatch) -> Result<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent().map(PathBuf::from), path.file_name()) else {
        return Err(Error::Offline(format!("{} is not a file path", path.display())));
    };
    let name = name.to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || write_file(&dir, &name, &batch))
        .await
        .map_err(|e| Error::Internal(format!("write task failed: {e}")))?
        .map_err(|e| Error::Offline(format!("cannot write {}: {e}", path.display())))
}

fn write_part(dir: &std::path::Path, batch: &RecordBatch, part: Option<&str>) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = match part {
        Some(p) => format!("{p}.parquet"),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!(
                "part-{stamp}-{}-{}.parquet",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        }
    };
    write_file(dir, &name, batch)
}

/// Writes `batch` as `dir/name` (`dir` created when missing) atomically: under a temporary
/// name, fsynced, then renamed.
#[allow(clippy::disallowed_methods, reason = "runs on the blocking pool (see append_to)")]
fn write_file(dir: &std::path::Path, name: &str, batch: &RecordBatch) -> std::io::Result<PathBuf> {
    let batch = &plain_batch(batch)?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(std::io::Error::other)?;
    writer.write(batch).map_err(std::io::Error::other)?;
    let file = writer.into_inner().map_err(std::io::Error::other)?;
    file.sync_all()?;
    let target = dir.join(name);
    std::fs::rename(&tmp, &target)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

/// Nanoseconds since the epoch (UTC) of a timestamp column, as an Int64 expression.
fn ts_nanos_expr(column: &str, dt: &DataType) -> Result<Expr> {
    let factor: i64 = match dt {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        other => {
            return Err(Error::Offline(format!(
                "`{column}` is not a timestamp column ({other})"
            )))
        }
    };
    Ok(cast(col(column), DataType::Int64) * lit(factor))
}

/// The entity table: the entity dataframe plus a row id and its timestamps in ns. Returns the
/// table, the original column names, and the min and max entity timestamps.
/// The entity rows with a row id and their timestamp in ns: as a table for SQL, and as one
/// batch; plus the entity column names and the smallest and largest timestamp.
#[allow(clippy::type_complexity)]
fn entity_table(req: &HistoricalRequest<'_>) -> Result<(MemTable, Vec<String>, i64, i64, RecordBatch)> {
    let schema = match req.entity.first() {
        Some(b) => b.schema(),
        None => return Err(Error::invalid("entity_df", "the entity dataframe is empty")),
    };
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let ts_col = if schema.field_with_name("event_timestamp").is_ok() {
        "event_timestamp".to_string()
    } else {
        let ts: Vec<&String> = schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
            .map(|f| f.name())
            .collect();
        match ts.as_slice() {
            [one] => (*one).clone(),
            _ => {
                return Err(Error::invalid(
                    "entity_df.event_timestamp",
                    "the entity dataframe needs an `event_timestamp` column (or exactly one timestamp column)",
                ))
            }
        }
    };
    for v in &req.views {
        for k in &v.join_keys {
            if schema.field_with_name(k).is_err() {
                return Err(Error::invalid(
                    format!("entity_df.{k}"),
                    format!(
                        "the entity dataframe has no column `{k}`, a join key of feature view {}",
                        v.view
                    ),
                ));
            }
        }
    }
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ROW_ID, DataType::Int64, false)));
    fields.push(Arc::new(Field::new(ENTITY_TS, DataType::Int64, false)));
    let out_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let (mut min_ts, mut max_ts, mut next_row) = (i64::MAX, i64::MIN, 0i64);
    let mut batches = Vec::with_capacity(req.entity.len());
    for b in &req.entity {
        if b.schema().fields() != schema.fields() {
            return Err(Error::invalid(
                "entity_df",
                "all batches of the entity dataframe must have one schema",
            ));
        }
        let ts_array = b
            .column_by_name(&ts_col)
            .ok_or_else(|| Error::invalid("entity_df", "missing timestamp column"))?;
        let ts = timestamps_nanos(ts_array).map_err(|e| Error::invalid(format!("entity_df.{ts_col}"), e.0))?;
        let mut values = Vec::with_capacity(ts.len());
        for (i, t) in ts.into_iter().enumerate() {
            let t = t.ok_or_else(|| {
                Error::invalid(
                    format!("entity_df.{ts_col}[{}]", next_row as usize + i),
                    "null timestamp",
                )
            })?;
            min_ts = min_ts.min(t);
            max_ts = max_ts.max(t);
            values.push(t);
        }
        let n = b.num_rows() as i64;
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(next_row..next_row + n));
        next_row += n;
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(ids);
        cols.push(Arc::new(Int64Array::from(values)) as ArrayRef);
        batches.push(RecordBatch::try_new(Arc::clone(&out_schema), cols).map_err(|e| Error::Internal(e.to_string()))?);
    }
    if next_row == 0 {
        return Err(Error::invalid("entity_df", "the entity dataframe is empty"));
    }
    let all = datafusion::arrow::compute::concat_batches(&out_schema, &batches)
        .map_err(|e| Error::Internal(e.to_string()))?;
    // One copy of the rows: the batch the as-of join indexes is also the SQL table's.
    drop(batches);
    let table = MemTable::try_new(out_schema, vec![vec![all.clone()]])?;
    Ok((table, columns, min_ts, max_ts, all))
}

#[async_trait]
impl OfflineStore for ParquetOfflineStore {
    async fn pull_latest(&self, req: PullRequest<'_>) -> Result<SendableRecordBatchStream> {
        let source = req.source;
        let ctx = self.context_with(source).await?;
        let table = ctx.table("src").await?;
        let schema = table.schema().clone();
        let ts_field = schema
            .field_with_unqualified_name(&source.timestamp_field)
            .map_err(|_| {
                Error::Offline(format!(
                    "source {}: no column `{}`",
                    source.name, source.timestamp_field
                ))
            })?;
        let ts_type = ts_field.data_type().clone();
        let filtered = table.filter(
            col(ident(&source.timestamp_field))
                .gt_eq(lit(ts_literal(&ts_type, req.start_ns)?))
                .and(col(ident(&source.timestamp_field)).lt_eq(lit(ts_literal(&ts_type, req.end_ns)?))),
        )?;
        ctx.register_table("filtered", filtered.into_view())?;

        let mut select: Vec<String> = Vec::new();
        for name in req.join_keys.iter().chain(req.features.iter()) {
            select.push(format!("{} AS {}", ident(&source.column_of(name)), ident(name)));
        }
        select.push(format!(
            "{} AS {}",
            ident(&source.timestamp_field),
            ident(EVENT_TS_COLUMN)
        ));
        let mut order = format!("{} DESC", ident(&source.timestamp_field));
        if let Some(created) = &source.created_timestamp_column {
            select.push(format!("{} AS {}", ident(created), ident(CREATED_TS_COLUMN)));
            order.push_str(&format!(", {} DESC NULLS LAST", ident(created)));
        }
        let partition = if req.join_keys.is_empty() {
            String::new()
        } else {
            format!(
                "PARTITION BY {}",
                req.join_keys
                    .iter()
                    .map(|k| ident(&source.column_of(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let outputs: Vec<String> = req
            .join_keys
            .iter()
            .chain(req.features.iter())
            .map(|n| ident(n))
            .chain(std::iter::once(ident(EVENT_TS_COLUMN)))
            .chain(source.created_timestamp_column.iter().map(|_| ident(CREATED_TS_COLUMN)))
            .collect();
        let sql = if req.latest_only {
            format!(
                "SELECT {outputs} FROM (SELECT {select}, ROW_NUMBER() OVER ({partition} ORDER BY {order}) AS __rn FROM filtered) \
                 WHERE __rn = 1",
                outputs = outputs.join(", "),
                select = select.join(", "),
            )
        } else {
            format!("SELECT {} FROM filtered", select.join(", "))
        };
        let df = ctx.sql(&sql).await?;
        Ok(df.execute_stream().await?)
    }

    async fn get_historical_features(&self, req: HistoricalRequest<'_>) -> Result<SendableRecordBatchStream> {
        let started = std::time::Instant::now();
        let (entity, entity_columns, min_ts, max_ts, entity_batch) = entity_table(&req)?;
        let entity_ts: Vec<i64> = entity_batch
            .column_by_name(ENTITY_TS)
            .ok_or_else(|| Error::Internal("no entity timestamps".into()))?
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        let mut indexes: HashMap<Vec<String>, Arc<asof::EntityIndex>> = HashMap::new();
        let mut outputs: Vec<(String, ArrayRef)> = Vec::new();
        let ctx = Self::context()?;
        let entity_schema = datafusion::catalog::TableProvider::schema(&entity);
        ctx.register_table("entity_df", Arc::new(entity))?;
        for (i, v) in req.views.iter().enumerate() {
            let src = format!("src_{i}");
            self.register(&ctx, &src, v.source).await?;
            let table = ctx.table(src.as_str()).await?;
            let schema = table.schema().clone();
            let ts_name = &v.source.timestamp_field;
            let ts_type = schema
                .field_with_unqualified_name(ts_name)
                .map_err(|_| Error::Offline(format!("source {}: no column `{ts_name}`", v.source.name)))?
                .data_type()
                .clone();
            let ttl_ns = v
                .ttl_seconds
                .filter(|t| *t > 0)
                .map(|t| t.saturating_mul(1_000_000_000));
            let aggregated = !v.aggregations.is_empty();
            let mut filter = col(ident(ts_name)).lt_eq(lit(ts_literal(&ts_type, max_ts)?));
            if aggregated {
                // The earliest window start of any entity row.
                let earliest = v
                    .aggregations
                    .iter()
                    .map(|a| {
                        a.window_start(min_ts.div_euclid(1_000_000_000))
                            .saturating_mul(1_000_000_000)
                    })
                    .min()
                    .unwrap_or(min_ts);
                filter = filter.and(col(ident(ts_name)).gt_eq(lit(ts_literal(&ts_type, earliest)?)));
            } else if let Some(ttl) = ttl_ns {
                filter = filter.and(col(ident(ts_name)).gt_eq(lit(ts_literal(&ts_type, min_ts.saturating_sub(ttl))?)));
            }
            let mut select: Vec<Expr> = Vec::new();
            for (j, key) in v.join_keys.iter().enumerate() {
                let target = entity_schema
                    .field_with_name(key)
                    .map(|f| f.data_type().clone())
                    .map_err(|_| {
                        Error::invalid(
                            format!("entity_df.{key}"),
                            format!(
                                "the entity dataframe has no column `{key}`, a join key of feature view {}",
                                v.view
                            ),
                        )
                    })?;
                let src_col = v.source.column_of(key);
                if schema.field_with_unqualified_name(&src_col).is_err() {
                    return Err(Error::Offline(format!(
                        "source {}: no join key column `{src_col}`",
                        v.source.name
                    )));
                }
                select.push(cast(col(ident(&src_col)), target).alias(format!("__k{j}")));
            }
            select.push(ts_nanos_expr(&ident(ts_name), &ts_type)?.alias("__ts"));
            match &v.source.created_timestamp_column {
                Some(c) => {
                    let ct = schema
                        .field_with_unqualified_name(c)
                        .map_err(|_| Error::Offline(format!("source {}: no column `{c}`", v.source.name)))?
                        .data_type()
                        .clone();
                    select.push(ts_nanos_expr(&ident(c), &ct)?.alias("__created"));
                }
                None => select.push(lit(0i64).alias("__created")),
            }
            for (j, (feature, _)) in v.features.iter().enumerate() {
                let column = v.aggregations.get(j).map(|a| a.column.as_str()).unwrap_or(feature);
                select.push(col(ident(&v.source.column_of(column))).alias(format!("__f{j}")));
            }
            let projected = table.filter(filter)?.select(select)?;
            let names: Vec<String> = v.features.iter().map(|(_, o)| o.clone()).collect();
            let arrays = if aggregated {
                let fsrc = format!("fsrc_{i}");
                ctx.register_table(fsrc.as_str(), projected.into_view())?;
                let sql = window_sql(
                    &WindowJoin {
                        source_table: fsrc,
                        entity_keys: v.join_keys.clone(),
                        aggregations: v.aggregations.iter().cloned().zip(names.iter().cloned()).collect(),
                    },
                    "entity_df",
                );
                let batches = ctx.sql(&sql).await?.collect().await?;
                by_row_id(&batches, entity_batch.num_rows())?
            } else {
                let index = match indexes.get(&v.join_keys) {
                    Some(ix) => Arc::clone(ix),
                    None => {
                        let keys: Vec<ArrayRef> = v
                            .join_keys
                            .iter()
                            .map(|k| {
                                entity_batch
                                    .column_by_name(k)
                                    .cloned()
                                    .ok_or_else(|| Error::Internal(format!("no entity column {k}")))
                            })
                            .collect::<Result<_>>()?;
                        let ix = Arc::new(asof::EntityIndex::build(&keys, &entity_ts)?);
                        tracing::debug!(elapsed = ?started.elapsed(), "entity rows indexed");
                        indexes.insert(v.join_keys.clone(), Arc::clone(&ix));
                        ix
                    }
                };
                let n_keys = v.join_keys.len();
                let types: Vec<DataType> = projected.schema().fields()[n_keys + 2..]
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect();
                let plan = projected.create_physical_plan().await?;
                let parts = datafusion::physical_plan::execute_stream_partitioned(plan, ctx.task_ctx())?;
                asof::join(index, parts, n_keys, &types, ttl_ns).await?
            };
            tracing::debug!(view = %v.view, elapsed = ?started.elapsed(), "view joined");
            outputs.extend(names.into_iter().zip(arrays));
        }
        // Entity columns as given, then every view's features, in entity-row order.
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for c in &entity_columns {
            let (_, f) = entity_schema
                .column_with_name(c)
                .ok_or_else(|| Error::Internal(format!("no entity column {c}")))?;
            let column = entity_batch
                .column_by_name(c)
                .ok_or_else(|| Error::Internal(format!("no entity column {c}")))?;
            fields.push(f.clone());
            columns.push(Arc::clone(column));
        }
        for (name, array) in outputs {
            fields.push(Field::new(name, array.data_type().clone(), true));
            columns.push(array);
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| Error::Internal(e.to_string()))?;
        let parts: Vec<datafusion::error::Result<RecordBatch>> =
            asof::chunks(&batch, 64 * 1024).into_iter().map(Ok).collect();
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, futures::stream::iter(parts)),
        ))
    }

    async fn query(&self, sql: &str, sources: &[&FileSource]) -> Result<Vec<RecordBatch>> {
        let ctx = Self::context()?;
        for s in sources {
            self.register(&ctx, &s.name, s).await?;
        }
        super::entity_sql::run(&ctx, sql, super::entity_sql::max_rows()).await
    }

    async fn source_schema(&self, source: &FileSource) -> Result<datafusion::arrow::datatypes::SchemaRef> {
        self.schema_of(source).await
    }

    async fn append(&self, source: &FileSource, batch: RecordBatch) -> Result<usize> {
        self.append_to(source, batch, None).await
    }

    async fn append_part(&self, source: &FileSource, batch: RecordBatch, part: &str) -> Result<usize> {
        if part.is_empty() || part.contains(['/', '\\']) || part.starts_with('.') {
            return Err(Error::Internal(format!("bad part name `{part}`")));
        }
        self.append_to(source, batch, Some(part.to_string())).await
    }

    async fn parts(&self, source: &FileSource) -> Result<Vec<String>> {
        let path = self.path_of(source);
        if path.contains("://") || source.postgres.is_some() {
            return Ok(Vec::new());
        }
        Ok(part_stems(&appends_dir(&path)).await)
    }

    async fn remove_part(&self, source: &FileSource, part: &str) -> Result<()> {
        if part.is_empty() || part.contains(['/', '\\']) || part.starts_with('.') {
            return Err(Error::Internal(format!("bad part name `{part}`")));
        }
        if source.postgres.is_some() {
            return Ok(());
        }
        let file = appends_dir(&self.path_of(source)).join(format!("{part}.parquet"));
        match tokio::fs::remove_file(&file).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Offline(format!("removing {}: {e}", file.display()))),
        }
    }

    async fn absent(&self, source: &FileSource) -> Option<String> {
        let path = self.path_of(source);
        let local = source.postgres.is_none() && !path.contains("://");
        (local && !tokio::fs::try_exists(&path).await.unwrap_or(true)).then_some(path)
    }

    async fn create_empty(
        &self,
        source: &FileSource,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<String> {
        let path = PathBuf::from(self.path_of(source));
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) if path.extension().is_some_and(|e| e == "parquet") => {
                (dir.to_path_buf(), name.to_string_lossy().into_owned())
            }
            _ => (path.clone(), "larder-declared-schema.parquet".to_string()),
        };
        let batch = RecordBatch::new_empty(schema);
        let written = tokio::task::spawn_blocking(move || write_file(&dir, &name, &batch))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Offline(format!("source {}: cannot create {}: {e}", source.name, path.display())))?;
        Ok(written.display().to_string())
    }

    async fn source_columns(&self, source: &FileSource) -> Result<Vec<SourceColumn>> {
        Ok(self
            .schema_of(source)
            .await?
            .fields()
            .iter()
            .map(|f| SourceColumn {
                name: f.name().clone(),
                value_type: value_type_of(f.data_type()),
                is_timestamp: matches!(f.data_type(), DataType::Timestamp(_, _)),
            })
            .collect())
    }
}

/// The feature columns of per-row-id results (`ROW_ID` first) placed in entity-row order.
fn by_row_id(batches: &[RecordBatch], rows: usize) -> Result<Vec<ArrayRef>> {
    let Some(first) = batches.first() else {
        return Err(Error::Internal("no rows from an aggregated view".into()));
    };
    let all = datafusion::arrow::compute::concat_batches(&first.schema(), batches)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let ids = all.column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let mut position = vec![u32::MAX; rows];
    for (i, id) in ids.values().iter().enumerate() {
        if let Some(p) = position.get_mut(*id as usize) {
            *p = i as u32;
        }
    }
    if position.contains(&u32::MAX) || all.num_rows() != rows {
        return Err(Error::Internal("an aggregated view lost entity rows".into()));
    }
    let take = datafusion::arrow::array::UInt32Array::from(position);
    all.columns()[1..]
        .iter()
        .map(|c| datafusion::arrow::compute::take(c, &take, None).map_err(|e| Error::Internal(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
    use datafusion::parquet::arrow::ArrowWriter;
    use futures::TryStreamExt;
    use larder_registry::ValueType as V;

    use super::*;

    const H: i64 = 3_600_000_000; // one hour in µs

    /// Rows: (key, event hour, created hour or None, value).
    #[allow(clippy::disallowed_methods, reason = "test fixture")]
    fn write(path: &std::path::Path, rows: &[(i64, i64, Option<i64>, f64)], tz: Option<&str>) {
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", ts_type.clone(), false),
            Field::new("created", ts_type, true),
            Field::new("v", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let mk_ts = |v: Vec<Option<i64>>| {
            let a = TimestampMicrosecondArray::from(v);
            match tz {
                Some(t) => a.with_timezone(t),
                None => a,
            }
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(mk_ts(rows.iter().map(|r| Some(r.1 * H)).collect())),
                Arc::new(mk_ts(rows.iter().map(|r| r.2.map(|c| c * H)).collect())),
                Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| Some(format!("s{}", r.3))).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn source(created: bool, mapping: &[(&str, &str)]) -> FileSource {
        FileSource {
            name: "src".into(),
            path: "d.parquet".into(),
            timestamp_field: "ts".into(),
            created_timestamp_column: created.then(|| "created".to_string()),
            field_mapping: mapping
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>(),
            description: String::new(),
            tags: BTreeMap::new(),
            owner: String::new(),
            postgres: None,
        }
    }

    async fn latest(
        dir: &std::path::Path,
        src: &FileSource,
        feature: &str,
        start_h: i64,
        end_h: i64,
    ) -> Vec<(i64, f64)> {
        let store = ParquetOfflineStore::new(dir);
        let req = PullRequest {
            latest_only: true,
            source: src,
            join_keys: vec!["id".into()],
            features: vec![feature.into()],
            start_ns: start_h * H * 1000,
            end_ns: end_h * H * 1000,
        };
        let batches: Vec<RecordBatch> = store.pull_latest(req).await.unwrap().try_collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let ids = b.column(0).as_primitive::<Int64Type>();
            let vs = b.column(1).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                out.push((ids.value(i), if vs.is_null(i) { f64::NAN } else { vs.value(i) }));
            }
        }
        out.sort_by_key(|r| r.0);
        out
    }

    #[tokio::test]
    async fn newest_row_per_key_with_created_tie_break_and_inclusive_window() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("d.parquet"),
            &[
                (1, 10, Some(10), 1.0),
                (1, 20, Some(21), 2.0), // tie on event time: created 22 wins
                (1, 20, Some(22), 3.0),
                (1, 20, Some(20), 4.0),
                (1, 26, Some(26), 5.0), // after the window
                (2, 5, Some(5), 6.0),   // exactly at start: inside
                (2, 30, Some(30), 7.0), // after the window
                (3, 25, Some(25), 8.0), // exactly at end: inside
                (4, 4, Some(4), 9.0),   // before the window: key absent
            ],
            Some("UTC"),
        );
        let got = latest(dir.path(), &source(true, &[]), "v", 5, 25).await;
        assert_eq!(got, vec![(1, 3.0), (2, 6.0), (3, 8.0)]);
    }

    #[tokio::test]
    async fn naive_timestamps_are_utc_and_field_mapping_renames() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("d.parquet"),
            &[(1, 10, None, 1.0), (1, 11, None, 2.0), (2, 3, None, 3.0)],
            None,
        );
        let got = latest(dir.path(), &source(false, &[("v", "value")]), "value", 0, 10).await;
        assert_eq!(got, vec![(1, 1.0), (2, 3.0)]);
    }

    #[tokio::test]
    async fn source_columns_have_feast_types() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("d.parquet"), &[(1, 1, None, 1.0)], Some("UTC"));
        let cols = ParquetOfflineStore::new(dir.path())
            .source_columns(&source(true, &[]))
            .await
            .unwrap();
        let types: Vec<(String, Option<V>, bool)> = cols
            .into_iter()
            .map(|c| (c.name, c.value_type, c.is_timestamp))
            .collect();
        assert_eq!(
            types,
            vec![
                ("id".into(), Some(V::Int64), false),
                ("ts".into(), Some(V::UnixTimestamp), true),
                ("created".into(), Some(V::UnixTimestamp), true),
                ("v".into(), Some(V::Double), false),
                ("s".into(), Some(V::String), false),
            ]
        );
        let missing = ParquetOfflineStore::new(dir.path().join("nope"))
            .source_columns(&source(true, &[]))
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
    }
}
