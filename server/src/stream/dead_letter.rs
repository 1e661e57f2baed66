//! The quarantine dead-letter sink: where messages that cannot be ingested go, with the
//! reason, when no dead-letter topic is configured (the Kafka topic sink is in `kafka`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::{DeadLetter, DeadLetterSink};
use crate::error::{Error, Result};

/// Quarantine Parquet files: `<dir>/<view>/<batch id>.parquet` with columns `partition`,
/// `offset`, `payload` (the raw message, as UTF-8 with invalid bytes replaced), `reason` and
/// `quarantined_at`. Files are written under a temporary name and renamed.
#[derive(Debug, Clone)]
pub struct ParquetDeadLetters {
    dir: PathBuf,
}

impl ParquetDeadLetters {
    /// A sink writing under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ParquetDeadLetters { dir: dir.into() }
    }

    /// The schema of the quarantine files.
    pub fn schema() -> Schema {
        Schema::new(vec![
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("payload", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new(
                "quarantined_at",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
        ])
    }
}

#[async_trait]
impl DeadLetterSink for ParquetDeadLetters {
    async fn send(&self, view: &str, batch_id: &str, letters: &[DeadLetter]) -> Result<()> {
        let now = crate::time::to_nanos(chrono::Utc::now());
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(letters.iter().map(|l| l.partition))),
            Arc::new(Int64Array::from_iter_values(letters.iter().map(|l| l.offset))),
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|l| String::from_utf8_lossy(&l.payload).into_owned()),
            )),
            Arc::new(StringArray::from_iter_values(letters.iter().map(|l| l.reason.clone()))),
            Arc::new(TimestampNanosecondArray::from_iter_values(letters.iter().map(|_| now)).with_timezone("UTC")),
        ];
        let batch =
            RecordBatch::try_new(Arc::new(Self::schema()), columns).map_err(|e| Error::Internal(e.to_string()))?;
        let dir = self.dir.join(view);
        let name = format!("{batch_id}.parquet");
        tokio::task::spawn_blocking(move || write_file(&dir, &name, &batch))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Unavailable(format!("dead-letter directory {}: {e}", self.dir.display())))
    }
}

/// Writes `batch` as `dir/name` under a temporary name, synced, then renamed.
#[allow(clippy::disallowed_methods, reason = "runs on the blocking pool")]
fn write_file(dir: &std::path::Path, name: &str, batch: &RecordBatch) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(std::io::Error::other)?;
    w.write(batch).map_err(std::io::Error::other)?;
    w.into_inner().map_err(std::io::Error::other)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}
