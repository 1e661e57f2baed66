//! Kafka, on `rdkafka` (librdkafka): the [`StreamSource`] (a consumer-group member with
//! automatic commits off; offsets are committed by the worker after a micro-batch is stored)
//! and the dead-letter topic sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::{DeadLetter, DeadLetterSink, StreamMessage, StreamSource};
use crate::error::{Error, Result};

/// A subscription to one topic.
pub struct KafkaStream {
    consumer: Arc<StreamConsumer>,
    topic: String,
    servers: String,
    /// Publishes the consumer lag on a timer; stopped when the stream is dropped.
    lag_timer: tokio::task::JoinHandle<()>,
}

impl Drop for KafkaStream {
    fn drop(&mut self) {
        self.lag_timer.abort();
    }
}

impl KafkaStream {
    /// Joins consumer group `group` on `topic`; `extra` are librdkafka settings (TLS, SASL...).
    /// A group without committed offsets starts at the earliest message. The consumer lag is
    /// published every `lag_every` (see [`lag_timer`]).
    pub fn connect(
        servers: &str,
        topic: &str,
        group: &str,
        extra: &BTreeMap<String, String>,
        lag_every: Duration,
    ) -> Result<Self> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "6000")
            // Fresh events within milliseconds: do not let the broker hold a fetch for long.
            .set("fetch.wait.max.ms", "50")
            .set("topic.metadata.refresh.interval.ms", "5000");
        for (k, v) in extra {
            cfg.set(k, v);
        }
        let consumer: StreamConsumer = cfg
            .create()
            .map_err(|e| Error::Unavailable(format!("Kafka consumer for {servers}: {e}")))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| Error::Unavailable(format!("subscribing to {topic} on {servers}: {e}")))?;
        let consumer = Arc::new(consumer);
        Ok(KafkaStream {
            lag_timer: tokio::spawn(lag_timer(
                Arc::clone(&consumer),
                topic.to_string(),
                group.to_string(),
                lag_every,
            )),
            consumer,
            topic: topic.to_string(),
            servers: servers.to_string(),
        })
    }

    fn offsets(&self, batch: &[StreamMessage]) -> Result<Option<TopicPartitionList>> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in batch {
            let n = next.entry(m.partition).or_insert(m.offset + 1);
            *n = (*n).max(m.offset + 1);
        }
        if next.is_empty() {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(Some(tpl))
    }
}

/// Publishes `larder_stream_consumer_lag` every `every`, whether messages arrive or not, so
/// that a consumer that has caught up reads 0 (and a lag alert clears). The brokers are asked
/// from the blocking pool, so that their answers never hold up consumption.
async fn lag_timer(consumer: Arc<StreamConsumer>, topic: String, group: String, every: Duration) {
    let gauge = metrics::gauge!("larder_stream_consumer_lag", "topic" => topic, "group" => group);
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let c = Arc::clone(&consumer);
        if let Ok(Some(lag)) = tokio::task::spawn_blocking(move || lag_of(&c)).await {
            gauge.set(lag as f64);
        }
    }
}

/// Messages between the group's position and the end of each assigned partition; `None`
/// before the group has assigned partitions, or when a broker does not answer.
///
/// A partition this consumer has not read from yet has no position: there it counts from the
/// group's committed offset, or from the start of the partition (`auto.offset.reset:
/// earliest`) when the group has committed none.
fn lag_of(consumer: &StreamConsumer) -> Option<i64> {
    let timeout = Duration::from_secs(2);
    let position = consumer.position().ok()?;
    if position.count() == 0 {
        return None;
    }
    let mut committed: Option<TopicPartitionList> = None;
    let mut lag = 0;
    for e in position.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout).ok()?;
        let from = match e.offset() {
            Offset::Offset(o) => o,
            _ => {
                if committed.is_none() {
                    committed = Some(consumer.committed(timeout).ok()?);
                }
                match committed
                    .as_ref()
                    .and_then(|c| c.find_partition(e.topic(), e.partition()))
                    .map(|p| p.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                }
            }
        };
        lag += (high - from).max(0);
    }
    Some(lag)
}

#[async_trait]
impl StreamSource for KafkaStream {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<StreamMessage>> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while out.len() < max.max(1) {
            let received = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break, // waited long enough
                Ok(r) => r,
            };
            match received {
                Ok(m) => out.push(StreamMessage {
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().map(<[u8]>::to_vec),
                }),
                Err(e) if out.is_empty() => {
                    return Err(Error::Unavailable(format!(
                        "Kafka {} ({}): {e}",
                        self.topic, self.servers
                    )))
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, batch: &[StreamMessage]) -> Result<()> {
        // Asynchronous: the broker's answer is not awaited (a commit lost in a crash only
        // means a replay, which the writes absorb).
        let Some(tpl) = self.offsets(batch)? else { return Ok(()) };
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| Error::Unavailable(format!("committing offsets of {}: {e}", self.topic)))
    }

    async fn commit_final(&mut self, batch: &[StreamMessage]) -> Result<()> {
        let Some(tpl) = self.offsets(batch)? else { return Ok(()) };
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Unavailable(format!("committing offsets of {}: {e}", self.topic)))
    }

    fn describe(&self) -> String {
        format!("Kafka topic {} on {}", self.topic, self.servers)
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
    pub fn new(bootstrap_servers: &str, topic: &str, extra: &BTreeMap<String, String>) -> Result<Self> {
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
