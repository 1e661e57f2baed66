//! Stream workers: one consumer per stream feature view with a Kafka source, started and
//! stopped as `apply` adds, changes or removes such views.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::dead_letter::ParquetDeadLetters;
use super::{
    flush_offline, process_batch, DeadLetterSink, PendingOffline, SchemaCache, StreamMessage, StreamSource, StreamView,
};
use crate::config::DeadLetterConfig;
use crate::error::{Error, Result};
use crate::FeatureStore;

/// What a worker was started for; a change restarts it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscription {
    servers: String,
    topic: String,
}

/// The stream subscriptions of the current registry (none while nothing is applied, or after
/// a teardown); `None` when the registry cannot be read (then the running workers are kept as
/// they are: an unreadable registry is not a registry without stream views).
async fn subscriptions(store: &FeatureStore) -> Option<BTreeMap<String, Subscription>> {
    let state = match store.state().await {
        Ok(s) => s,
        Err(e) => {
            if let Ok(None) = store.on_registry(|r| r.load()).await {
                return Some(BTreeMap::new());
            }
            tracing::warn!(error = %e, "Stream supervisor: the registry cannot be read; keeping the running workers.");
            return None;
        }
    };
    let subs = state
        .doc
        .feature_views
        .iter()
        .filter(|v| v.online)
        .filter_map(|v| {
            let sv = StreamView::find(&state.doc, &v.name)?;
            Some((
                v.name.clone(),
                Subscription {
                    servers: sv.source.bootstrap_servers.clone(),
                    topic: sv.source.topic.clone(),
                },
            ))
        })
        .collect();
    Some(subs)
}

fn dead_letters(store: &FeatureStore, servers: &str) -> Result<Arc<dyn DeadLetterSink>> {
    let cfg = store.config();
    match &cfg.stream.dead_letter {
        DeadLetterConfig::Parquet { path } => Ok(Arc::new(ParquetDeadLetters::new(cfg.resolve_path(path)))),
        #[cfg(feature = "kafka")]
        DeadLetterConfig::Kafka { topic } => Ok(Arc::new(super::kafka::KafkaDeadLetters::new(
            servers,
            topic,
            &cfg.stream.kafka,
        )?)),
        #[cfg(not(feature = "kafka"))]
        DeadLetterConfig::Kafka { .. } => {
            let _ = servers;
            Err(Error::not_built("kafka", "stream.dead_letter: kafka"))
        }
    }
}

/// Connects the stream source of a subscription (Kafka, behind the `kafka` feature).
fn connect_source(sub: &Subscription, group: &str, store: &FeatureStore) -> Result<Box<dyn StreamSource>> {
    #[cfg(feature = "kafka")]
    {
        let cfg = &store.config().stream;
        let stream = super::kafka::KafkaStream::connect(
            &sub.servers,
            &sub.topic,
            group,
            &cfg.kafka,
            Duration::from_millis(cfg.lag_refresh_ms),
        )?;
        Ok(Box::new(stream))
    }
    #[cfg(not(feature = "kafka"))]
    {
        let _ = (sub, group, store);
        Err(Error::not_built("kafka", "a stream feature view with a KafkaSource"))
    }
}

/// Whether `view` currently writes its source's offline copy (see [`super::writes_offline`]).
async fn writes_offline_now(store: &FeatureStore, view: &str) -> bool {
    store
        .cached_state()
        .await
        .ok()
        .and_then(|state| StreamView::find(&state.doc, view).map(|sv| super::writes_offline(&sv)))
        .unwrap_or(false)
}

/// Appends the pending offline rows, then commits the offsets of `processed`.
async fn flush_and_commit(
    store: &FeatureStore,
    view: &str,
    pending: &mut PendingOffline,
    schemas: &mut SchemaCache,
    source: &mut (dyn StreamSource + '_),
    processed: &[StreamMessage],
) -> Result<()> {
    flush_offline(store, view, pending, schemas).await?;
    source.commit(processed).await
}

/// Consumes `view` until `stop` turns true. A micro-batch that cannot be stored (a backend
/// down) is retried, with backoff, until it is; offsets are committed only after the online
/// write and the offline flush that cover them.
async fn run_view(store: Arc<FeatureStore>, view: String, sub: Subscription, mut stop: watch::Receiver<bool>) {
    let cfg = store.config().stream.clone();
    let group = format!("{}.{}.{}", cfg.group_id_prefix, store.project(), view);
    let mut backoff = Duration::from_millis(200);
    let (mut source, sink) = loop {
        match connect_source(&sub, &group, &store).and_then(|s| Ok((s, dead_letters(&store, &sub.servers)?))) {
            Ok(x) => break x,
            Err(e @ Error::NotImplemented(_)) => {
                tracing::error!(%view, error = %e, "stream worker cannot run in this build");
                return;
            }
            Err(e) => {
                tracing::warn!(%view, error = %e, "stream worker cannot start; retrying");
                if tokio::time::timeout(backoff, stop.changed()).await.is_ok() {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    };
    tracing::info!(%view, source = %source.describe(), %group, "stream worker started");
    let wait = Duration::from_millis(cfg.max_batch_wait_ms.max(1));
    let flush_every = Duration::from_millis(cfg.offline_flush_ms.max(1));
    let mut pending = PendingOffline::default();
    let mut schemas = SchemaCache::default();
    let mut watermarks = super::late::Watermarks::default();
    // Messages processed (online) but not committed yet: committed after the offline flush.
    let mut uncommitted: Vec<StreamMessage> = Vec::new();
    let mut last_flush = tokio::time::Instant::now();
    while !*stop.borrow() {
        let batch = tokio::select! {
            _ = stop.changed() => break,
            b = source.next_batch(cfg.max_batch_events, wait) => b,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%view, error = %e, "reading the stream failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if !batch.is_empty() {
            let mut backoff = Duration::from_millis(100);
            loop {
                let offline = writes_offline_now(&store, &view).await.then_some(&mut pending);
                match process_batch(
                    &store,
                    &view,
                    &batch,
                    sink.as_ref(),
                    offline,
                    &mut schemas,
                    &mut watermarks,
                )
                .await
                {
                    Ok(outcome) => {
                        tracing::debug!(%view, ?outcome, "micro-batch online");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(%view, error = %e, events = batch.len(), "storing a micro-batch failed; retrying");
                        if tokio::time::timeout(backoff, stop.changed()).await.is_ok() {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            uncommitted.extend(batch.into_iter().map(|m| StreamMessage { payload: None, ..m }));
        }
        let due = last_flush.elapsed() >= flush_every || pending.rows >= cfg.max_batch_events.max(1) * 20;
        if due && !uncommitted.is_empty() {
            if let Err(e) =
                flush_and_commit(&store, &view, &mut pending, &mut schemas, source.as_mut(), &uncommitted).await
            {
                tracing::warn!(%view, error = %e, "flushing the offline copy failed; retrying");
                continue;
            }
            uncommitted.clear();
            last_flush = tokio::time::Instant::now();
        }
    }
    if !uncommitted.is_empty() {
        let done = match flush_offline(&store, &view, &mut pending, &mut schemas).await {
            Ok(()) => source.commit_final(&uncommitted).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(%view, error = %e, "final flush failed; the stream replays from the last commit");
        }
    }
    tracing::info!(%view, "stream worker stopped");
}

/// Runs a worker for every stream feature view with a Kafka source, re-reading the registry
/// every `poll` to follow applies, until `stop` turns true.
pub fn spawn_all(store: Arc<FeatureStore>, poll: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: BTreeMap<String, (Subscription, watch::Sender<bool>, JoinHandle<()>)> = BTreeMap::new();
        loop {
            let Some(wanted) = subscriptions(&store).await else {
                if *stop.borrow() || tokio::time::timeout(poll, stop.changed()).await.is_ok() {
                    break;
                }
                continue;
            };
            let stale: Vec<String> = running
                .iter()
                .filter(|(v, (sub, _, _))| wanted.get(*v) != Some(sub))
                .map(|(v, _)| v.clone())
                .collect();
            for v in stale {
                if let Some((_, tx, handle)) = running.remove(&v) {
                    let _ = tx.send(true);
                    let _ = handle.await;
                }
            }
            for (v, sub) in wanted {
                if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(v) {
                    let (tx, rx) = watch::channel(false);
                    let handle = tokio::spawn(run_view(Arc::clone(&store), slot.key().clone(), sub.clone(), rx));
                    slot.insert((sub, tx, handle));
                }
            }
            metrics::gauge!("larder_stream_workers").set(running.len() as f64);
            if *stop.borrow() || tokio::time::timeout(poll, stop.changed()).await.is_ok() {
                break;
            }
        }
        for (_, (_, tx, handle)) in running {
            let _ = tx.send(true);
            let _ = handle.await;
        }
    })
}
