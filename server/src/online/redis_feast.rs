//! Feast's own Redis layout, for serving what Feast materialized (a Feast deployment taken over
//! without re-materializing; chosen when the registry is Feast's).
//!
//! Feast 0.67 (`feast/infra/online_stores/redis.py`, `helpers.py`) keeps one hash per entity
//! key and project: the key is the v3 serialized entity key (the same bytes as Larder's keys)
//! followed by the project name; each feature is a field named by the MurmurHash3 (x86, 32 bit,
//! seed 0) of `<view>:<feature>`, as 4 little-endian bytes, holding a serialized
//! `feast.types.Value`; `_ts:<view>` holds the event time as a serialized
//! `google.protobuf.Timestamp`. Field names are hashes, so reading needs the view's feature
//! names: they come from the registry Larder serves ([`ViewFeatures`]).
//!
//! Reads are one `HMGET` per key (pipelined on the multiplexed connection). A key with none of
//! the fields is missing; a missing field of a present key is a null value, as Feast reads it.
//! Writes follow Feast's: the stored `_ts` is read first and an older or equal event is
//! skipped (not atomic, as in Feast), then `HSET` of the fields and `_ts`.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use larder_feast_model::proto::types as ft;
use prost::Message;

use super::redis::RedisOnlineStore;
use super::{OnlineRow, OnlineStore, ViewFeatures};
use crate::error::{Error, Result};
use crate::value::Value;

/// Requests in flight at once on the (multiplexed) connection.
const CONCURRENCY: usize = 64;

/// Online store reading and writing Feast's hashes in Redis or Redis Cluster.
pub struct FeastRedisOnlineStore {
    redis: RedisOnlineStore,
    views: Arc<dyn ViewFeatures>,
}

impl std::fmt::Debug for FeastRedisOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeastRedisOnlineStore")
            .field("redis", &self.redis)
            .finish()
    }
}

/// Feast's field name of `view:feature`: MurmurHash3 x86_32 (seed 0), 4 bytes little-endian.
pub fn feature_field(view: &str, feature: &str) -> [u8; 4] {
    let text = format!("{view}:{feature}");
    // Reading from an in-memory cursor cannot fail.
    murmur3::murmur3_32(&mut Cursor::new(text.as_bytes()), 0)
        .unwrap_or(0)
        .to_le_bytes()
}

/// Feast's hash key: the serialized entity key, then the project name.
fn hash_key(entity_key: &[u8], project: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(entity_key.len() + project.len());
    k.extend_from_slice(entity_key);
    k.extend_from_slice(project.as_bytes());
    k
}

fn decode_value(view: &str, feature: &str, bytes: &[u8]) -> Result<Value> {
    let proto =
        ft::Value::decode(bytes).map_err(|e| Error::Internal(format!("corrupt Feast value {view}:{feature}: {e}")))?;
    larder_feast_model::value::from_feast(&proto).map_err(|e| Error::Internal(format!("{view}:{feature}: {e}")))
}

fn decode_ts(bytes: &[u8]) -> Option<i64> {
    let t = prost_types::Timestamp::decode(bytes).ok()?;
    t.seconds.checked_mul(1_000_000_000)?.checked_add(i64::from(t.nanos))
}

impl FeastRedisOnlineStore {
    /// Feast's layout over the connection `redis` manages, with feature names from `views`.
    pub fn new(redis: RedisOnlineStore, views: Arc<dyn ViewFeatures>) -> Self {
        FeastRedisOnlineStore { redis, views }
    }

    fn features_of(&self, view: &str) -> Result<Vec<String>> {
        self.views
            .features(view)?
            .ok_or_else(|| Error::Internal(format!("view {view} is not in the registry")))
    }

    /// Reads one key; `fields` are the hashed field names of `names` plus `_ts:<view>`, made once
    /// per request rather than per key.
    async fn read_key(
        &self,
        project: &str,
        view: &str,
        names: &[String],
        fields: &[Vec<u8>],
        key: &[u8],
    ) -> Result<Option<OnlineRow>> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(hash_key(key, project));
        for f in fields {
            cmd.arg(f.as_slice());
        }
        let mut cells: Vec<Option<Vec<u8>>> = self.redis.query("read", &cmd).await?;
        let ts = cells.pop().flatten();
        if ts.is_none() && cells.iter().all(Option::is_none) {
            return Ok(None);
        }
        let values = names
            .iter()
            .zip(cells)
            .map(|(n, c)| Ok((n.clone(), c.map_or(Ok(Value::Null), |b| decode_value(view, n, &b))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(OnlineRow {
            key: key.to_vec(),
            event_ts: ts.as_deref().and_then(decode_ts).unwrap_or(0),
            created_ts: None,
            values,
        }))
    }

    async fn write_row(&self, project: &str, view: &str, row: &OnlineRow) -> Result<bool> {
        let key = hash_key(&row.key, project);
        let ts_field = format!("_ts:{view}");
        let mut get = redis::cmd("HGET");
        get.arg(&key).arg(&ts_field);
        let stored: Option<Vec<u8>> = self.redis.query("write", &get).await?;
        if stored.as_deref().and_then(decode_ts).is_some_and(|s| row.event_ts <= s) {
            return Ok(false);
        }
        let ts = prost_types::Timestamp {
            seconds: row.event_ts.div_euclid(1_000_000_000),
            nanos: i32::try_from(row.event_ts.rem_euclid(1_000_000_000)).unwrap_or(0),
        };
        let mut set = redis::cmd("HSET");
        set.arg(&key).arg(&ts_field).arg(ts.encode_to_vec());
        for (name, v) in &row.values {
            set.arg(&feature_field(view, name)[..])
                .arg(larder_feast_model::value::to_feast(v).encode_to_vec());
        }
        let _: i64 = self.redis.query("write", &set).await?;
        if let Some(ttl) = self.redis.key_ttl_seconds() {
            let mut expire = redis::cmd("EXPIRE");
            expire.arg(&key).arg(ttl);
            let _: i64 = self.redis.query("write", &expire).await?;
        }
        Ok(true)
    }
}

#[async_trait]
impl OnlineStore for FeastRedisOnlineStore {
    async fn write_batch(&self, project: &str, view: &str, rows: Vec<OnlineRow>) -> Result<usize> {
        for chunk in rows.chunks(CONCURRENCY) {
            futures::future::try_join_all(chunk.iter().map(|r| self.write_row(project, view, r))).await?;
        }
        Ok(rows.len())
    }

    async fn read(&self, project: &str, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        let names = self.features_of(view)?;
        let fields: Vec<Vec<u8>> = names
            .iter()
            .map(|n| feature_field(view, n).to_vec())
            .chain(std::iter::once(format!("_ts:{view}").into_bytes()))
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CONCURRENCY) {
            out.extend(
                futures::future::try_join_all(chunk.iter().map(|k| self.read_key(project, view, &names, &fields, k)))
                    .await?,
            );
        }
        Ok(out)
    }

    async fn delete_view(&self, _project: &str, view: &str) -> Result<()> {
        Err(Error::NotImplemented(format!(
            "deleting view {view} from Feast's Redis layout: Feast's registry is changed (and its data removed) by Feast"
        )))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn health(&self) -> Result<()> {
        self.redis.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feast's own field name (FEAST_REFERENCE.md section 5, made with Feast's code).
    #[test]
    fn field_names_are_feasts_murmur_hashes() {
        assert_eq!(
            feature_field("driver_hourly_stats", "conv_rate"),
            [0x61, 0x60, 0xe3, 0xda]
        );
    }

    #[test]
    fn timestamps_decode_from_feasts_bytes() {
        // Timestamp(1700000000 s), as Feast serializes it.
        assert_eq!(
            decode_ts(&[0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06]),
            Some(1_700_000_000_000_000_000)
        );
    }
}
