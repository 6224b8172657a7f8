//! The work queue each controller drains, with client-go's guarantees: a key waiting in the
//! queue is held once however often it is added; a key being processed is never handed to a
//! second worker (an add meanwhile marks it dirty and it comes back after `done`); failed
//! keys come back after a per-key exponential backoff (5 ms doubling to 1000 s).

use crate::runtime::informer::{Change, Informer, Object, key_of};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::metrics;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys that need processing: queued ones, and processing ones added again.
    dirty: HashSet<String>,
    processing: HashSet<String>,
    /// When each queued key was first added, for the queue-duration metric.
    added_at: HashMap<String, Instant>,
    failures: HashMap<String, u32>,
    shutting_down: bool,
}

/// A rate-limited, deduplicating queue of object keys.
pub struct WorkQueue {
    name: &'static str,
    state: Mutex<State>,
    ready: Notify,
}

impl WorkQueue {
    /// Queues the key ("namespace/name") of every object `informer` sees added, updated or
    /// deleted: the usual way a controller follows the kind it owns.
    pub fn follow<K: Object>(self: &Arc<Self>, informer: &Informer<K>) {
        let q = self.clone();
        informer.on_change(move |change| q.add(key_of(change.object().as_ref())));
    }

    /// Queues the key of each added or updated object that `wanted` keeps; deletions are
    /// not queued (a gone object leaves its controller nothing to do).
    pub fn follow_live<K: Object>(
        self: &Arc<Self>,
        informer: &Informer<K>,
        wanted: impl Fn(&K) -> bool + Send + Sync + 'static,
    ) {
        let q = self.clone();
        informer.on_change(move |change| match change {
            Change::Added(o) | Change::Updated { new: o, .. } if wanted(o) => {
                q.add(key_of(o.as_ref()))
            }
            _ => {}
        });
    }

    pub fn new(name: &'static str) -> Arc<WorkQueue> {
        Arc::new(WorkQueue {
            name,
            state: Mutex::new(State::default()),
            ready: Notify::new(),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.state.lock();
        if s.shutting_down || s.dirty.contains(&key) {
            return;
        }
        metrics::QUEUE_ADDS.inc(&[self.name]);
        s.dirty.insert(key.clone());
        if s.processing.contains(&key) {
            return;
        }
        s.added_at.insert(key.clone(), Instant::now());
        s.queue.push_back(key);
        metrics::QUEUE_DEPTH.set(&[self.name], s.queue.len() as f64);
        drop(s);
        self.ready.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` after its backoff, which doubles with each failure until `forget`.
    pub fn add_rate_limited(self: &Arc<Self>, key: impl Into<String>) {
        let key = key.into();
        let failures = {
            let mut s = self.state.lock();
            let n = s.failures.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        metrics::QUEUE_RETRIES.inc(&[self.name]);
        self.add_after(key, backoff(failures));
    }

    /// Clears `key`'s failure count (after a successful sync).
    pub fn forget(&self, key: &str) {
        self.state.lock().failures.remove(key);
    }

    /// How many times `key` has failed since it was last forgotten.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.state.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, or `None` once the queue is shut down. The caller must call
    /// `done` with it.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = self.state.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if let Some(at) = s.added_at.remove(&key) {
                        metrics::QUEUE_DURATION.observe(&[self.name], at.elapsed().as_secs_f64());
                    }
                    metrics::QUEUE_DEPTH.set(&[self.name], s.queue.len() as f64);
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Pass the wakeup on: one notify may stand for several adds.
                        self.ready.notify_one();
                    }
                    return Some(key);
                }
                if s.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.state.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) && !s.shutting_down {
            s.added_at.insert(key.to_owned(), Instant::now());
            s.queue.push_back(key.to_owned());
            metrics::QUEUE_DEPTH.set(&[self.name], s.queue.len() as f64);
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Stops handing out keys; workers see `None` and exit.
    pub fn shut_down(&self) {
        self.state.lock().shutting_down = true;
        self.ready.notify_waiters();
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// client-go's ItemExponentialFailureRateLimiter: 5 ms * 2^(failures-1), at most 1000 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    BASE_DELAY
        .checked_mul(1u32 << exp)
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_key_is_held_once() {
        let q = WorkQueue::new("test");
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        assert_eq!(q.get().await.as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn a_key_being_processed_is_not_handed_out_twice() {
        let q = WorkQueue::new("test");
        q.add("a");
        let k = q.get().await.unwrap();
        q.add("a");
        assert_eq!(q.len(), 0, "held back while processing");
        q.done(&k);
        assert_eq!(q.len(), 1, "queued again after done");
        assert_eq!(q.get().await.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn shut_down_releases_waiting_workers() {
        let q = WorkQueue::new("test");
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.get().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_until_forgotten() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(5), Duration::from_millis(80));
        assert_eq!(backoff(40), MAX_DELAY);
        let q = WorkQueue::new("test");
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        assert_eq!(q.num_requeues("a"), 2);
        q.forget("a");
        assert_eq!(q.num_requeues("a"), 0);
        let got = tokio::time::timeout(Duration::from_secs(1), q.get()).await;
        assert_eq!(got.unwrap().as_deref(), Some("a"));
    }
}
