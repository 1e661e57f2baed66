//! The offline store seam: historical feature data, read for materialization (and, later,
//! point-in-time-correct training sets).

pub mod asof;
pub mod entity_sql;
pub mod parquet;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use parquet::{write_dataset_file, write_log_file};
pub mod window_agg;

use std::fmt::Debug;

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use larder_registry::{FileSource, SourceColumn};

use crate::error::Result;

/// Column names that [`OfflineStore::pull_latest`] adds to its output.
pub const EVENT_TS_COLUMN: &str = "__larder_event_ts";
/// See [`EVENT_TS_COLUMN`].
pub const CREATED_TS_COLUMN: &str = "__larder_created_ts";

/// Whether rows can be appended to `source`: not to a PostgreSQL source (Larder does not write
/// to them, nor does Feast's PostgreSQL offline store).
pub fn writable(source: &FileSource) -> Result<()> {
    match &source.postgres {
        None => Ok(()),
        Some(relation) => Err(crate::error::Error::NotImplemented(format!(
            "writing to the PostgreSQL source {} ({}): Larder does not write to PostgreSQL sources (nor does \
             Feast's PostgreSQL offline store); push to the online store only, or give the push source a \
             FileSource as its batch source",
            source.name,
            relation.from_clause()
        ))),
    }
}

/// What to pull from a batch source.
#[derive(Debug, Clone)]
pub struct PullRequest<'a> {
    /// The source.
    pub source: &'a FileSource,
    /// Join-key names (output names; the source's field mapping is applied).
    pub join_keys: Vec<String>,
    /// Feature names (output names).
    pub features: Vec<String>,
    /// Start of the event-time window, ns since the epoch, inclusive.
    pub start_ns: i64,
    /// End of the event-time window, ns since the epoch, inclusive.
    pub end_ns: i64,
    /// Only the newest row per key (Feast's `pull_latest_from_table_or_query`, what
    /// materialization reads); `false`: every row of the window (`pull_all_from_table_or_query`).
    pub latest_only: bool,
}

/// One feature view of a historical request.
#[derive(Debug, Clone)]
pub struct HistoricalView<'a> {
    /// View name (for messages).
    pub view: String,
    /// Its batch source.
    pub source: &'a FileSource,
    /// Join keys: names in the entity table (and, through the field mapping, in the source).
    pub join_keys: Vec<String>,
    /// `(feature name, output column name)` pairs.
    pub features: Vec<(String, String)>,
    /// ttl in seconds (`None` or 0: unlimited).
    pub ttl_seconds: Option<i64>,
    /// For a stream view with aggregations: the aggregation behind each entry of `features`
    /// (same length); empty for a plain view.
    pub aggregations: Vec<larder_registry::Aggregation>,
}

/// A `get_historical_features` request: entity rows plus the views to join.
#[derive(Debug, Clone)]
pub struct HistoricalRequest<'a> {
    /// The entity dataframe.
    pub entity: Vec<datafusion::arrow::array::RecordBatch>,
    /// The views, in output order.
    pub views: Vec<HistoricalView<'a>>,
}

/// Historical data in batch sources.
#[async_trait]
pub trait OfflineStore: Debug + Send + Sync {
    /// For each entity key, the newest row with event time in `[start, end]` (ties broken by
    /// the newest created timestamp), as Feast's `pull_latest_from_table_or_query`. Output
    /// columns: the join keys, the features, [`EVENT_TS_COLUMN`] and, when the source has a
    /// created column, [`CREATED_TS_COLUMN`].
    async fn pull_latest(&self, request: PullRequest<'_>) -> Result<SendableRecordBatchStream>;

    /// The point-in-time-correct training set: every entity row (in input order) with every
    /// entity column, then each view's features as of the row's timestamp (see
    /// [`asof`]).
    async fn get_historical_features(&self, request: HistoricalRequest<'_>) -> Result<SendableRecordBatchStream>;

    /// Runs an SQL query whose tables are the given batch sources (by source name), for an
    /// entity dataframe given as SQL.
    async fn query(&self, sql: &str, sources: &[&FileSource]) -> Result<Vec<datafusion::arrow::array::RecordBatch>>;

    /// The columns of a source (for validation and inference at apply time).
    async fn source_columns(&self, source: &FileSource) -> Result<Vec<SourceColumn>>;

    /// The Arrow schema of a source's data (what an [`OfflineStore::append`] must match).
    async fn source_schema(&self, source: &FileSource) -> Result<datafusion::arrow::datatypes::SchemaRef>;

    /// Appends rows to a source atomically: a reader (a training set, a materialization) sees
    /// all of them or none. `batch` must have the schema of [`OfflineStore::source_schema`].
    async fn append(&self, source: &FileSource, batch: datafusion::arrow::array::RecordBatch) -> Result<usize>;

    /// Like [`OfflineStore::append`], but into the part called `part` (a name without
    /// extension), replacing a previous part of that name: a stream worker names parts by
    /// partition and first offset, so a micro-batch replayed after a crash replaces its earlier
    /// copy instead of duplicating it. An empty batch still replaces the part.
    async fn append_part(
        &self,
        source: &FileSource,
        batch: datafusion::arrow::array::RecordBatch,
        part: &str,
    ) -> Result<usize>;

    /// The names (without extension) of the named parts appended to a source.
    async fn parts(&self, source: &FileSource) -> Result<Vec<String>>;

    /// Removes a named part (nothing when it does not exist).
    async fn remove_part(&self, source: &FileSource, part: &str) -> Result<()>;

    /// The path of a local Parquet source that does not exist yet (`None`: it exists, or is not
    /// a local one) — a stream's or push source's batch source before its first rows.
    async fn absent(&self, source: &FileSource) -> Option<String>;

    /// Creates an [`OfflineStore::absent`] source as an empty Parquet file with `schema` (at
    /// its path when that names a `.parquet` file, else in that directory); returns the file.
    async fn create_empty(
        &self,
        source: &FileSource,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<String>;
}
