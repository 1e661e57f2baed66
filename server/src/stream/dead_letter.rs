//! Dead-letter sinks: where messages that cannot be ingested go, with the reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

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
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{name}.tmp"));
            let file = std::fs::File::create(&tmp)?;
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
                .map_err(std::io::Error::other)?;
            w.write(&batch).map_err(std::io::Error::other)?;
            w.into_inner().map_err(std::io::Error::other)?.sync_all()?;
            std::fs::rename(&tmp, dir.join(&name))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Unavailable(format!("dead-letter directory {}: {e}", self.dir.display())))
    }
}

/// A Kafka topic: each refused message is produced unchanged, with headers `larder-view`,
/// `larder-reason`, `larder-partition` and `larder-offset`.
pub struct KafkaDeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl KafkaDeadLetters {
    /// A producer to `topic` on `bootstrap_servers`.
    pub fn new(
        bootstrap_servers: &str,
        topic: &str,
        extra: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap_servers)
            .set("message.timeout.ms", "10000");
        for (k, v) in extra {
            if !k.starts_with("group.") && !k.starts_with("enable.auto") && k != "auto.offset.reset" {
                cfg.set(k, v);
            }
        }
        let producer = cfg
            .create()
            .map_err(|e| Error::Unavailable(format!("dead-letter producer for {bootstrap_servers}: {e}")))?;
        Ok(KafkaDeadLetters {
            producer,
            topic: topic.to_string(),
        })
    }
}

#[async_trait]
impl DeadLetterSink for KafkaDeadLetters {
    async fn send(&self, view: &str, _batch_id: &str, letters: &[DeadLetter]) -> Result<()> {
        for l in letters {
            let partition = l.partition.to_string();
            let offset = l.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "larder-view",
                    value: Some(view),
                })
                .insert(Header {
                    key: "larder-reason",
                    value: Some(l.reason.as_str()),
                })
                .insert(Header {
                    key: "larder-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "larder-offset",
                    value: Some(offset.as_str()),
                });
            let record: FutureRecord<'_, (), [u8]> =
                FutureRecord::to(&self.topic).payload(&l.payload[..]).headers(headers);
            self.producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| Error::Unavailable(format!("dead-letter topic {}: {e}", self.topic)))?;
        }
        Ok(())
    }
}
