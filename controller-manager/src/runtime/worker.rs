//! The reconcile loop: workers take keys from a controller's queue and call its `sync`;
//! a failed key is retried with backoff, a key may ask to be looked at again later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::metrics;
use super::queue::WorkQueue;

/// What a controller does for one key: make the world match the object's spec.
#[async_trait]
pub trait Reconcile: Send + Sync + 'static {
    /// Syncs the object under `key` ("namespace/name"). `Ok(Some(d))` asks to look at it
    /// again after `d` (e.g. when minReadySeconds pass); an error retries with backoff.
    async fn sync(&self, key: &str) -> crate::Result<Option<Duration>>;
}

/// Runs `workers` workers over `queue` until it is shut down.
pub fn run_workers<R: Reconcile>(
    queue: Arc<WorkQueue>,
    reconciler: Arc<R>,
    workers: usize,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut tasks = Workers(Vec::with_capacity(workers));
        for _ in 0..workers.max(1) {
            let (q, r) = (queue.clone(), reconciler.clone());
            tasks.0.push(tokio::spawn(async move {
                while let Some(key) = q.get().await {
                    process(&q, &*r, &key).await;
                    q.done(&key);
                }
            }));
        }
        for t in &mut tasks.0 {
            let _ = t.await;
        }
    })
}

/// Worker tasks, aborted when the future running them is dropped.
struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn process<R: Reconcile>(queue: &Arc<WorkQueue>, reconciler: &R, key: &str) {
    let started = Instant::now();
    let result = reconciler.sync(key).await;
    metrics::WORK_DURATION.observe(&[queue.name()], started.elapsed().as_secs_f64());
    match result {
        Ok(None) => queue.forget(key),
        Ok(Some(after)) => {
            queue.forget(key);
            queue.add_after(key, after);
        }
        Err(e) => {
            metrics::SYNC_ERRORS.inc(&[queue.name()]);
            let retries = queue.num_requeues(key);
            // Conflicts are routine (another writer won); say so quietly.
            if is_conflict(&e) {
                tracing::debug!(controller = queue.name(), %key, "conflict; retrying");
            } else {
                tracing::warn!(controller = queue.name(), %key, retries, "sync failed: {e}");
            }
            queue.add_rate_limited(key);
        }
    }
}

/// True if a sync failed on the apiserver's Conflict (a stale read; requeue quietly).
pub fn is_conflict(e: &crate::Error) -> bool {
    e.api().is_some_and(common::api_errors::is_conflict)
}

/// The apiserver's message for an API error, as upstream puts it into events.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}
