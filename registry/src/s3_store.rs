//! The registry on S3 (or an S3-compatible service): `registry: s3://bucket/key`.
//!
//! The same JSON state and history as [`crate::FileRegistryStore`] — the state at `key`, each
//! version's entry at `key.history/vNNNNNNNN.json` — with S3's conditional writes in place of
//! the file lock: a new state is written only if the state read is still the current one
//! (`If-Match` its ETag, or `If-None-Match: *` for the first apply). When another writer came
//! first the apply is planned again against the state it wrote, so every apply records the
//! change it really made, as under the file store's lock. The history entry is written before
//! the state, so a reader never sees a version without one.
//!
//! The trait is synchronous; each call runs the object-store client on the store's own
//! runtime, from a scoped thread (never on the caller's async worker).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::plan::Plan;
use crate::store::{merge_interval, plan_next, Applied, HistoryEntry, MaterializationInterval, VersionInfo};
use crate::{Error, RegistryDoc, RegistryState, RegistryStore, Result};

/// How many times an apply is planned again when other writers keep coming first.
const ATTEMPTS: usize = 20;

/// The registry store at an `s3://bucket/key` URL.
#[derive(Debug)]
pub struct S3RegistryStore {
    url: String,
    key: ObjectPath,
    store: Arc<dyn ObjectStore>,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for S3RegistryStore {
    /// A runtime dropped as usual waits for its blocking pool, which panics inside an async
    /// context (where a store is often dropped); it is let go without waiting instead.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn remote(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Remote {
        target: url.to_string(),
        message: e.to_string(),
    }
}

impl S3RegistryStore {
    /// A store at `url` (`s3://bucket/key`). `endpoint` is an S3-compatible service's URL
    /// (else AWS); credentials and region come from the usual `AWS_*` variables.
    pub fn new(url: &str, endpoint: Option<&str>) -> Result<Self> {
        let (bucket, key) = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(b, k)| !b.is_empty() && !k.is_empty() && !k.ends_with('/'))
            .ok_or_else(|| remote(url, "expected s3://BUCKET/KEY (the registry is one object)"))?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(e) = endpoint {
            builder = builder
                .with_allow_http(e.starts_with("http://"))
                .with_endpoint(e)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| remote(url, e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| remote(url, e))?;
        Ok(S3RegistryStore {
            url: url.to_string(),
            key: ObjectPath::from(key),
            store: Arc::new(store),
            runtime: Some(runtime),
        })
    }

    /// Runs `f` on the store's runtime, from a thread of its own (callers may be async workers
    /// or a runtime's blocking pool).
    fn run<T: Send>(&self, f: impl Future<Output = Result<T>> + Send) -> Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| remote(&self.url, "the store is closed"))?;
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(f))
                .join()
                .map_err(|_| remote(&self.url, "the object-store call panicked"))?
        })
    }

    /// The URL of the registry object.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The registry object's bytes as stored (`None` when there is none): what tells a
    /// Feast registry (protobuf) from Larder's (JSON).
    pub fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        self.run(async { Ok(self.get(&self.key).await?.map(|(b, _)| b.to_vec())) })
    }

    fn history_key(&self, version: u64) -> ObjectPath {
        ObjectPath::from(format!("{}.history/v{version:08}.json", self.key))
    }

    fn history_prefix(&self) -> ObjectPath {
        ObjectPath::from(format!("{}.history", self.key))
    }

    fn corrupt(&self, what: &ObjectPath, e: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            path: PathBuf::from(format!("{}{what}", self.bucket_url())),
            message: e.to_string(),
        }
    }

    fn bucket_url(&self) -> String {
        let bucket = self.url.trim_start_matches("s3://").split('/').next().unwrap_or("");
        format!("s3://{bucket}/")
    }

    /// The object at `key` and its ETag; `None` when there is none.
    async fn get(&self, key: &ObjectPath) -> Result<Option<(bytes::Bytes, UpdateVersion)>> {
        match self.store.get(key).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(|e| remote(&self.url, e))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote(&self.url, e)),
        }
    }

    async fn load_versioned(&self) -> Result<Option<(RegistryState, UpdateVersion)>> {
        match self.get(&self.key).await? {
            None => Ok(None),
            Some((bytes, version)) => {
                let state = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&self.key, e))?;
                Ok(Some((state, version)))
            }
        }
    }

    /// Writes `state` if the current state is still `expected` (`None`: no state yet); false
    /// when another writer came first.
    async fn put_state(&self, state: &RegistryState, expected: Option<UpdateVersion>) -> Result<bool> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| self.corrupt(&self.key, e))?;
        let mode = match expected {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self.store.put_opts(&self.key, PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(remote(&self.url, e)),
        }
    }
}

impl RegistryStore for S3RegistryStore {
    fn load(&self) -> Result<Option<RegistryState>> {
        self.run(async { Ok(self.load_versioned().await?.map(|(s, _)| s)) })
    }

    fn apply(
        &self,
        mut doc: RegistryDoc,
        applied_by: &str,
        allow: &(dyn Fn(&Plan) -> Result<()> + Sync),
    ) -> Result<Applied> {
        doc.normalize();
        self.run(async {
            for _ in 0..ATTEMPTS {
                let current = self.load_versioned().await?;
                let (old, expected) = match current {
                    Some((s, v)) => (Some(s), Some(v)),
                    None => (None, None),
                };
                let (plan, next) = plan_next(old, doc.clone(), applied_by, allow)?;
                let (state, entry) = match next.into_record(&plan) {
                    Ok(record) => record,
                    Err(unchanged) => return Ok(*unchanged),
                };
                let hist = self.history_key(state.version);
                let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| self.corrupt(&hist, e))?;
                self.store
                    .put(&hist, PutPayload::from(bytes))
                    .await
                    .map_err(|e| remote(&self.url, e))?;
                if self.put_state(&state, expected).await? {
                    return Ok(Applied {
                        plan,
                        state: Some(state),
                        recorded: true,
                    });
                }
            }
            Err(remote(
                &self.url,
                format!("other writers kept changing the registry; gave up after {ATTEMPTS} attempts"),
            ))
        })
    }

    fn record_materialization(&self, view: &str, interval: MaterializationInterval) -> Result<()> {
        self.run(async {
            for _ in 0..ATTEMPTS {
                let Some((mut state, expected)) = self.load_versioned().await? else {
                    return Ok(());
                };
                merge_interval(
                    state.materializations.entry(view.to_string()).or_default(),
                    interval.clone(),
                );
                if self.put_state(&state, Some(expected)).await? {
                    return Ok(());
                }
            }
            Err(remote(
                &self.url,
                format!("other writers kept changing the registry; gave up after {ATTEMPTS} attempts"),
            ))
        })
    }

    fn history(&self) -> Result<Vec<VersionInfo>> {
        self.run(async {
            let current = self.load_versioned().await?.map(|(s, _)| s.version).unwrap_or(0);
            let prefix = self.history_prefix();
            let objects: Vec<_> = self
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| remote(&self.url, e))?;
            let mut out = Vec::new();
            for meta in objects.iter().filter(|m| m.location.as_ref().ends_with(".json")) {
                let Some((bytes, _)) = self.get(&meta.location).await? else {
                    continue;
                };
                let h: HistoryEntry = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&meta.location, e))?;
                if h.info.version <= current {
                    out.push(h.info);
                }
            }
            out.sort_by_key(|i| i.version);
            Ok(out)
        })
    }

    fn version(&self, version: u64) -> Result<(VersionInfo, RegistryDoc)> {
        self.run(async {
            let key = self.history_key(version);
            let (bytes, _) = self.get(&key).await?.ok_or(Error::NoSuchVersion(version))?;
            let h: HistoryEntry = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&key, e))?;
            Ok((h.info, h.doc))
        })
    }

    fn change_token(&self) -> Result<Option<u128>> {
        self.run(async {
            match self.store.head(&self.key).await {
                Ok(meta) => {
                    // FNV-1a over the ETag (or the time and size without one).
                    let tag = meta.e_tag.unwrap_or_else(|| {
                        format!(
                            "{}:{}",
                            meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
                            meta.size
                        )
                    });
                    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
                    for b in tag.bytes() {
                        h ^= u128::from(b);
                        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
                    }
                    Ok(Some(h))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(remote(&self.url, e)),
            }
        })
    }

    fn delete(&self) -> Result<()> {
        self.run(async {
            let prefix = self.history_prefix();
            let history: Vec<_> = self
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| remote(&self.url, e))?;
            // The state first: once it is gone the registry is empty, whatever is left after.
            for key in std::iter::once(self.key.clone()).chain(history.into_iter().map(|m| m.location)) {
                match self.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(remote(&self.url, e)),
                }
            }
            Ok(())
        })
    }
}
