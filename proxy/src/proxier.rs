//! The service proxy's loop: Services and EndpointSlices are watched into the tracker;
//! a sync renders the services that changed and applies the difference to the table in
//! one transaction. Syncs are rate-limited (--min-sync-period, with a burst of two as
//! upstream's runner allows); the first sync, a failed one and one an hour replace the
//! whole table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::informer::{Change, Informer, Object};
use kube::api::Api;
use kube::runtime::watcher;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::host::Host;
use crate::metrics;
use crate::nftables::{self, Config, Rendered, Transaction};
use crate::services::{ServiceName, Tracker};

/// How often the whole table is rewritten even without errors.
const FULL_SYNC_EVERY: Duration = Duration::from_secs(3600);

/// What one sync did.
#[derive(Clone, Copy, Debug)]
pub struct SyncReport {
    pub full: bool,
    /// Services rendered.
    pub services: usize,
    /// nft statements written.
    pub ops: usize,
    /// Rules in the table after it.
    pub rules: usize,
    pub took: Duration,
}

pub struct Proxier {
    host: Host,
    config: Config,
    tracker: Mutex<Tracker>,
    state: tokio::sync::Mutex<State>,
    changed: Notify,
    healthy: Mutex<Option<Result<Instant, String>>>,
}

struct State {
    rendered: HashMap<ServiceName, Rendered>,
    rules: usize,
    last_full: Option<Instant>,
}

impl Proxier {
    pub fn new(host: Host, config: Config, node: &str) -> Arc<Proxier> {
        Arc::new(Proxier {
            host,
            config,
            tracker: Mutex::new(Tracker::new(node)),
            state: tokio::sync::Mutex::new(State {
                rendered: HashMap::new(),
                rules: 0,
                last_full: None,
            }),
            changed: Notify::new(),
            healthy: Mutex::new(None),
        })
    }

    /// The tracker, to feed changes in directly (benchmarks, tests).
    pub fn tracker(&self) -> parking_lot::MutexGuard<'_, Tracker> {
        self.tracker.lock()
    }

    /// ok once a sync has succeeded and the last one did; for /healthz.
    pub fn health(&self) -> Result<(), String> {
        match &*self.healthy.lock() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no rules synced yet".into()),
        }
    }

    /// Applies what changed since the last sync (everything, when the table must be
    /// rewritten).
    pub async fn sync(&self) -> crate::Result<SyncReport> {
        let began = Instant::now();
        let mut state = self.state.lock().await;
        let full = state
            .last_full
            .is_none_or(|at| at.elapsed() >= FULL_SYNC_EVERY);
        let changes = {
            let mut tracker = self.tracker.lock();
            if full {
                tracker.mark_all_dirty();
            }
            tracker.take_changes()
        };
        let services = changes.len();
        let empty = Rendered::default();
        let mut rendered: Vec<(ServiceName, Rendered)> = changes
            .into_iter()
            .map(|(name, backends)| (name, nftables::render(&self.config, &backends)))
            .collect();
        let tx = if full {
            // Everything, from what the tracker holds now.
            Transaction::full(&self.config, rendered.iter().map(|(_, r)| r))
        } else {
            let mut tx = Transaction::new("ip", nftables::TABLE);
            for (name, new) in &rendered {
                tx.diff(state.rendered.get(name).unwrap_or(&empty), new);
            }
            tx
        };
        let result = if tx.is_empty() {
            Ok(())
        } else {
            self.host.nft(&tx.script()).await
        };
        if let Err(e) = result {
            // The table is in an unknown state: the next sync rewrites it all.
            state.last_full = None;
            *self.healthy.lock() = Some(Err(format!("{e:#}")));
            metrics::SYNC_FAILURES.inc(&[]);
            return Err(e);
        }
        if full {
            state.rendered.clear();
            state.rules = nftables::base_rule_count(&self.config);
            state.last_full = Some(Instant::now());
        }
        for (name, new) in rendered.drain(..) {
            let old = state.rendered.remove(&name);
            state.rules -= old.map_or(0, |o| o.rule_count());
            state.rules += new.rule_count();
            if new != empty {
                state.rendered.insert(name, new);
            }
        }
        let took = began.elapsed();
        let kind = if full { "full" } else { "partial" };
        metrics::SYNC_DURATION.observe(&[], took.as_secs_f64());
        metrics::SYNC_DURATION_BY_KIND.observe(&[kind], took.as_secs_f64());
        metrics::RULES.set(&[], state.rules as f64);
        metrics::LAST_SYNC.set(
            &[],
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        *self.healthy.lock() = Some(Ok(Instant::now()));
        Ok(SyncReport {
            full,
            services,
            ops: tx.ops,
            rules: state.rules,
            took,
        })
    }

    /// Watches Services and EndpointSlices and keeps the table in step until dropped.
    /// The first sync waits for both lists.
    pub async fn run(self: Arc<Self>, client: kube::Client, timing: Timing) {
        let services = self.feed(|t, s| t.service_changed(s), Tracker::service_deleted);
        let slices = self.feed(|t, s| t.slice_changed(s), Tracker::slice_deleted);
        let mut running = services.spawn(Api::all(client.clone()), watcher::Config::default());
        running.join(slices.spawn(Api::all(client), watcher::Config::default()));
        services.wait_for_sync().await;
        slices.wait_for_sync().await;
        let mut limiter = Burst::new(timing.min_sync_period, 2);
        loop {
            limiter.wait().await;
            match self.sync().await {
                Ok(r) if r.ops > 0 => tracing::info!(
                    full = r.full, services = r.services, ops = r.ops, rules = r.rules,
                    took = ?r.took, "synced proxy rules"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("syncing proxy rules failed: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(timing.sync_period) => {}
            }
        }
    }

    /// An informer whose changes go into the tracker and wake the sync loop.
    fn feed<K: Object>(
        self: &Arc<Self>,
        changed: fn(&mut Tracker, Arc<K>),
        deleted: fn(&mut Tracker, &K),
    ) -> Arc<Informer<K>> {
        let informer = Informer::<K>::new();
        let p = self.clone();
        informer.on_change(move |c| {
            match c {
                Change::Added(o) | Change::Updated { new: o, .. } => {
                    changed(&mut p.tracker.lock(), Arc::clone(o))
                }
                Change::Deleted(o) => deleted(&mut p.tracker.lock(), o),
            }
            p.changed.notify_one();
        });
        informer
    }

    /// Removes everything the proxy created (`kube-proxy --cleanup`).
    pub async fn cleanup(host: &Host) -> crate::Result<()> {
        host.nft(&format!(
            "add table ip {t}\ndelete table ip {t}\n",
            t = nftables::TABLE
        ))
        .await
    }
}

/// --sync-period and --min-sync-period.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub sync_period: Duration,
    pub min_sync_period: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            sync_period: Duration::from_secs(30),
            min_sync_period: Duration::from_secs(1),
        }
    }
}

/// A token bucket: `burst` syncs at once, then one per `period`.
pub(crate) struct Burst {
    period: Duration,
    burst: u32,
    tokens: f64,
    at: Instant,
}

impl Burst {
    pub(crate) fn new(period: Duration, burst: u32) -> Burst {
        Burst {
            period,
            burst,
            tokens: f64::from(burst),
            at: Instant::now(),
        }
    }

    pub(crate) async fn wait(&mut self) {
        if self.period.is_zero() {
            return;
        }
        let refill = self.at.elapsed().as_secs_f64() / self.period.as_secs_f64();
        self.tokens = (self.tokens + refill).min(f64::from(self.burst));
        self.at = Instant::now();
        if self.tokens < 1.0 {
            let wait = self.period.mul_f64(1.0 - self.tokens);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.at = Instant::now();
        }
        self.tokens -= 1.0;
    }
}
