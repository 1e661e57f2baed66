//! The offline store seam: historical feature data, read for materialization (and, later,
//! point-in-time-correct training sets).

pub mod parquet;

use std::fmt::Debug;

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use larder_registry::{FileSource, SourceColumn};

use crate::error::Result;

/// Column names that [`OfflineStore::pull_latest`] adds to its output.
pub const EVENT_TS_COLUMN: &str = "__larder_event_ts";
/// See [`EVENT_TS_COLUMN`].
pub const CREATED_TS_COLUMN: &str = "__larder_created_ts";

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
}

/// Historical data in batch sources.
#[async_trait]
pub trait OfflineStore: Debug + Send + Sync {
    /// For each entity key, the newest row with event time in `[start, end]` (ties broken by
    /// the newest created timestamp), as Feast's `pull_latest_from_table_or_query`. Output
    /// columns: the join keys, the features, [`EVENT_TS_COLUMN`] and, when the source has a
    /// created column, [`CREATED_TS_COLUMN`].
    async fn pull_latest(&self, request: PullRequest<'_>) -> Result<SendableRecordBatchStream>;

    /// The columns of a source (for validation and inference at apply time).
    async fn source_columns(&self, source: &FileSource) -> Result<Vec<SourceColumn>>;
}
