//! Keeps the node's NetworkPolicy table in step with the cluster: informers on
//! NetworkPolicies, Pods and Namespaces wake a loop that renders the table and writes the
//! difference with what the table holds in one `nft -f` transaction (so a pod joining a
//! selected set is one element, and connections other changes do not touch keep their
//! state). The first sync, one after a failure and one an hour rewrite the whole table, as
//! kube-proxy's. Syncs are rate-limited like kube-proxy's (--min-sync-period, a burst of
//! two). Pods on the host's network and pods that have finished are neither selected nor
//! peers (their addresses are the node's, or may be given to a new pod).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::informer::Informer;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

use super::rules::{self, Cluster, TABLE, render_counted};
use super::semantics::NamespaceLabels;
use crate::host::Host;
use crate::metrics;
use crate::nftables::{Rendered, Transaction};
use crate::proxier::{Burst, Timing};

/// How often the whole table is rewritten even without errors.
const FULL_SYNC_EVERY: Duration = Duration::from_secs(3600);

/// The NetworkPolicy enforcement of one node.
pub struct NetworkPolicies {
    host: Host,
    node: String,
    state: tokio::sync::Mutex<State>,
}

/// What the table holds.
struct State {
    /// None: unknown (never written, or a write failed), the next sync rewrites it all.
    loaded: Option<Rendered>,
    last_full: Option<Instant>,
    /// Drop counter -> [namespace, policy, direction] it counts for.
    counters: HashMap<String, [String; 3]>,
}

/// How often the drop counters are read into /metrics.
const COUNTERS_EVERY: Duration = Duration::from_secs(10);

/// What one sync did.
#[derive(Clone, Copy, Debug)]
pub struct SyncReport {
    pub full: bool,
    /// nft statements written (0: nothing changed).
    pub ops: usize,
    /// Rules in the table apart from its base.
    pub rules: usize,
    /// The node's pods isolated for [ingress, egress].
    pub isolated: [usize; 2],
    /// Rendering and diffing, before `nft` runs.
    pub rendered_in: Duration,
    pub took: Duration,
}

/// Whether a pod takes part in policies: it has its own address and has not finished.
fn in_pod_network(pod: &Pod) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let status = pod.status.as_ref();
    let finished = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let addressed = status.and_then(|s| s.pod_ip.as_deref()).is_some();
    !host_network && !finished && addressed
}

impl NetworkPolicies {
    pub fn new(host: Host, node: &str) -> Arc<NetworkPolicies> {
        Arc::new(NetworkPolicies {
            host,
            node: node.to_owned(),
            state: tokio::sync::Mutex::new(State {
                loaded: None,
                last_full: None,
                counters: HashMap::new(),
            }),
        })
    }

    /// Renders `cluster` and writes what differs from the table.
    pub async fn sync(&self, cluster: &Cluster<'_>) -> crate::Result<SyncReport> {
        let began = Instant::now();
        let (rendered, isolated) = render_counted(cluster);
        let mut state = self.state.lock().await;
        let full = state
            .last_full
            .is_none_or(|at| at.elapsed() >= FULL_SYNC_EVERY);
        let loaded = if full { None } else { state.loaded.take() };
        let tx = match &loaded {
            Some(old) => {
                let mut tx = Transaction::new("inet", TABLE);
                tx.diff(old, &rendered);
                tx
            }
            None => {
                let mut tx = Transaction::replacing("inet", TABLE, &rules::base());
                tx.diff(&Rendered::default(), &rendered);
                tx
            }
        };
        let rendered_in = began.elapsed();
        if !tx.is_empty()
            && let Err(e) = self.host.nft(&tx.script()).await
        {
            // The table is in an unknown state: the next sync rewrites it all.
            state.last_full = None;
            metrics::NETWORK_POLICY_SYNC_FAILURES.inc(&[]);
            return Err(e);
        }
        if loaded.is_none() {
            state.last_full = Some(Instant::now());
        }
        let rules = rendered.rule_count();
        state.loaded = Some(rendered);
        state.counters = cluster
            .policies
            .iter()
            .flat_map(|p| {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                [(true, "ingress"), (false, "egress")].map(|(ingress, direction)| {
                    let labels = [ns.clone(), name.clone(), direction.to_owned()];
                    (rules::drop_counter(p, ingress), labels)
                })
            })
            .collect();
        Ok(SyncReport {
            full: loaded.is_none(),
            ops: tx.ops,
            rules,
            isolated,
            rendered_in,
            took: began.elapsed(),
        })
    }

    /// The packets dropped so far at pods each policy isolates, by [namespace, policy,
    /// direction], as the table's counters hold them (a policy that isolates no pod of
    /// this node has none).
    pub async fn dropped_packets(&self) -> crate::Result<Vec<([String; 3], u64)>> {
        let listed = self
            .host
            .run("nft", &["-j", "list", "counters", "table", "inet", TABLE])
            .await?;
        let json: serde_json::Value = serde_json::from_str(&listed)
            .map_err(|e| crate::Error::Host(format!("nft's counters: {e}")))?;
        let state = self.state.lock().await;
        let items = json["nftables"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Ok(items
            .iter()
            .filter_map(|item| {
                let counter = item.get("counter")?;
                let labels = state.counters.get(counter["name"].as_str()?)?;
                Some((labels.clone(), counter["packets"].as_u64()?))
            })
            .collect())
    }

    /// Reads the drop counters into /metrics every [`COUNTERS_EVERY`].
    async fn publish_counters(&self) {
        loop {
            tokio::time::sleep(COUNTERS_EVERY).await;
            match self.dropped_packets().await {
                Ok(counts) => metrics::NETWORK_POLICY_DROPS.replace(
                    counts
                        .into_iter()
                        .map(|(labels, packets)| (labels.to_vec(), packets as f64)),
                ),
                Err(e) => tracing::debug!("reading network policy counters: {e:#}"),
            }
        }
    }

    /// Watches and enforces until dropped.
    pub async fn run(self: Arc<Self>, client: kube::Client, timing: Timing) {
        let policies = Informer::<NetworkPolicy>::new();
        let pods = Informer::<Pod>::new();
        let namespaces = Informer::<Namespace>::new();
        let changed = Arc::new(Notify::new());
        let n = changed.clone();
        policies.on_change(move |_| n.notify_one());
        let n = changed.clone();
        pods.on_change(move |_| n.notify_one());
        let n = changed.clone();
        namespaces.on_change(move |_| n.notify_one());
        let mut running = policies.spawn(Api::all(client.clone()), watcher::Config::default());
        running.join(pods.spawn(Api::all(client.clone()), watcher::Config::default()));
        running.join(namespaces.spawn(Api::all(client), watcher::Config::default()));
        policies.wait_for_sync().await;
        pods.wait_for_sync().await;
        namespaces.wait_for_sync().await;
        tokio::select! {
            _ = self.publish_counters() => {}
            _ = self.sync_loop(&policies, &pods, &namespaces, &changed, timing) => {}
        }
    }

    /// Syncs whenever something changed (at most as often as `timing` allows).
    async fn sync_loop(
        &self,
        policies: &Informer<NetworkPolicy>,
        pods: &Informer<Pod>,
        namespaces: &Informer<Namespace>,
        changed: &Notify,
        timing: Timing,
    ) {
        let mut limiter = Burst::new(timing.min_sync_period, 2);
        loop {
            limiter.wait().await;
            let listed = policies.list();
            let policy_refs: Vec<&NetworkPolicy> = listed.iter().map(|p| &**p).collect();
            let pods = pods.list();
            let members: Vec<&Pod> = pods
                .iter()
                .map(|p| &**p)
                .filter(|p| in_pod_network(p))
                .collect();
            let labels = namespace_labels(namespaces);
            let cluster = Cluster {
                policies: &policy_refs,
                pods: &members,
                namespaces: &labels,
                node: &self.node,
            };
            match self.sync(&cluster).await {
                Ok(r) => {
                    metrics::NETWORK_POLICY_SYNC_DURATION.observe(&[], r.took.as_secs_f64());
                    metrics::NETWORK_POLICIES.set(&[], policy_refs.len() as f64);
                    metrics::NETWORK_POLICY_PODS.set(&["ingress"], r.isolated[0] as f64);
                    metrics::NETWORK_POLICY_PODS.set(&["egress"], r.isolated[1] as f64);
                    if r.ops > 0 {
                        tracing::info!(
                            full = r.full, ops = r.ops, rules = r.rules,
                            policies = policy_refs.len(), ingress = r.isolated[0],
                            egress = r.isolated[1], took = ?r.took, "synced network policies"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!("syncing network policies failed: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(timing.sync_period) => {}
            }
        }
    }

    /// Removes the table.
    pub async fn cleanup(host: &Host) -> crate::Result<()> {
        host.nft(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
        .await
    }
}

/// Each namespace's labels.
fn namespace_labels(namespaces: &Informer<Namespace>) -> NamespaceLabels {
    namespaces
        .list()
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                n.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect()
}
