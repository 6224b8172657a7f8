//! Keeps the node's NetworkPolicy table in step with the cluster: informers on
//! NetworkPolicies, Pods and Namespaces wake a loop that renders the table and, when it
//! changed, loads it with one `nft -f` (the whole table for now: writing only the
//! difference is the next step of issue #19). Pods on the host's network and pods that
//! have finished are neither selected nor peers (their addresses are the node's, or may be
//! given to a new pod).

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::informer::Informer;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

use super::rules::{Cluster, TABLE, render_counted};
use super::semantics::NamespaceLabels;
use crate::host::Host;
use crate::metrics;

/// The NetworkPolicy enforcement of one node.
pub struct NetworkPolicies {
    host: Host,
    node: String,
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
        })
    }

    /// Watches and enforces until dropped.
    pub async fn run(self: Arc<Self>, client: kube::Client) {
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
        let mut loaded = String::new();
        loop {
            let started = Instant::now();
            let (script, [ingress, egress]) = self.render(&policies, &pods, &namespaces);
            let retry = if script == loaded {
                Duration::MAX
            } else {
                match self.host.nft(&script).await {
                    Ok(()) => {
                        let took = started.elapsed();
                        metrics::NETWORK_POLICY_SYNC_DURATION.observe(&[], took.as_secs_f64());
                        metrics::NETWORK_POLICIES.set(&[], policies.len() as f64);
                        metrics::NETWORK_POLICY_PODS.set(&["ingress"], ingress as f64);
                        metrics::NETWORK_POLICY_PODS.set(&["egress"], egress as f64);
                        tracing::debug!(
                            ?took,
                            policies = policies.len(),
                            ingress,
                            egress,
                            "network policies synced"
                        );
                        loaded = script;
                        Duration::MAX
                    }
                    Err(e) => {
                        metrics::NETWORK_POLICY_SYNC_FAILURES.inc(&[]);
                        tracing::error!("network policies: {e:#}");
                        Duration::from_secs(5)
                    }
                }
            };
            let _ = tokio::time::timeout(retry, changed.notified()).await;
        }
    }

    fn render(
        &self,
        policies: &Informer<NetworkPolicy>,
        pods: &Informer<Pod>,
        namespaces: &Informer<Namespace>,
    ) -> (String, [usize; 2]) {
        let listed = policies.list();
        let policies: Vec<&NetworkPolicy> = listed.iter().map(|p| &**p).collect();
        let pods = pods.list();
        let members: Vec<&Pod> = pods
            .iter()
            .map(|p| &**p)
            .filter(|p| in_pod_network(p))
            .collect();
        let labels: NamespaceLabels = namespaces
            .list()
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    n.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        render_counted(&Cluster {
            policies: &policies,
            pods: &members,
            namespaces: &labels,
            node: &self.node,
        })
    }

    /// Removes the table.
    pub async fn cleanup(host: &Host) -> crate::Result<()> {
        host.nft(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
        .await
    }
}
