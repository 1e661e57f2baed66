//! Stream ingestion: Larder's own consumers of stream feature views' Kafka sources.
//!
//! Seams: [`StreamSource`] (the batch source's sibling: a partitioned, offset-addressed log;
//! Kafka in [`kafka`]) and [`DeadLetterSink`] (quarantine Parquet or a Kafka topic, in
//! [`dead_letter`]). A worker per view ([`worker`]) reads micro-batches and, for each:
//!
//! 1. decodes and validates every message (`micro_batch`); a bad one (unparseable JSON, missing key or
//!    timestamp, wrong type) or a late one ([`late`]) goes to the dead-letter sink with its
//!    reason and never stops the worker;
//! 2. writes the online store at once: newest-wins rows for a plain view, or the merged time
//!    tiles of an aggregated one ([`tiles`]), which record the offsets they hold;
//! 3. keeps the good events' offline rows until the next flush (`stream.offline_flush_ms`),
//!    which appends them to the view's batch source as one Parquet part per partition, named
//!    by its offsets range, so a replayed range replaces its copy (and parts stay large)
//!    (`offline_copy`);
//! 4. only after a flush commits the offsets it covers.
//!
//! Delivery is at-least-once; the writes are idempotent, so a restart loses nothing and counts
//! nothing twice.

pub mod dead_letter;
mod decode;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod late;
mod micro_batch;
mod offline_copy;
pub mod tiles;
pub mod worker;

pub use micro_batch::process_batch;
pub use offline_copy::{flush_offline, writes_offline, PendingOffline, SchemaCache};

use std::time::Duration;

use async_trait::async_trait;
use larder_registry::{FeatureView, FileSource, KafkaSource, RegistryDoc};

use crate::error::Result;

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Message body (`None`: a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// A partitioned, offset-addressed stream of messages (Kafka).
#[async_trait]
pub trait StreamSource: Send {
    /// Waits for messages and returns up to `max` of them, waiting at most `wait` for more
    /// once the first has arrived; an empty batch when none came within `wait`.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<StreamMessage>>;
    /// Records that every message of `batch` (and before it, per partition) is processed,
    /// without waiting for the broker's acknowledgement.
    async fn commit(&mut self, batch: &[StreamMessage]) -> Result<()>;
    /// Like [`StreamSource::commit`], waiting for the acknowledgement (at shutdown).
    async fn commit_final(&mut self, batch: &[StreamMessage]) -> Result<()>;
    /// For logs: topic and brokers.
    fn describe(&self) -> String;
}

/// A message that could not be ingested, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// The raw message.
    pub payload: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}

/// Where refused messages go.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Stores the refused messages of one micro-batch of `view`; `batch_id` names the
    /// micro-batch (a replay stores them under the same id).
    async fn send(&self, view: &str, batch_id: &str, letters: &[DeadLetter]) -> Result<()>;
}

/// What a micro-batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events written online (and offline).
    pub ingested: usize,
    /// Events sent to the dead-letter sink because they are bad.
    pub dead_lettered: usize,
    /// Events sent to the dead-letter sink because they are late (see [`late`]).
    pub late: usize,
    /// Events of an aggregated view skipped because their offset was applied before.
    pub replayed: usize,
}

/// The parts of the registry a worker needs for its view.
pub struct StreamView<'a> {
    /// The registry document.
    pub doc: &'a RegistryDoc,
    /// The stream feature view.
    pub view: &'a FeatureView,
    /// Its Kafka source.
    pub source: &'a KafkaSource,
    /// The batch source receiving the offline copy.
    pub batch: &'a FileSource,
}

impl<'a> StreamView<'a> {
    /// Looks `view` up; `None` when it is gone or no longer fed by a Kafka source.
    pub fn find(doc: &'a RegistryDoc, view: &str) -> Option<Self> {
        let v = doc.feature_view(view)?;
        Some(StreamView {
            doc,
            view: v,
            source: doc.kafka_source(v)?,
            batch: doc.batch_source(v)?,
        })
    }
}
