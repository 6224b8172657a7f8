//! The node lifecycle controller: notices nodes whose kubelet stopped renewing its Lease
//! and posting status, marks their conditions Unknown after --node-monitor-grace-period,
//! marks their pods not ready, and keeps the node.kubernetes.io/not-ready and
//! node.kubernetes.io/unreachable taints (NoSchedule and NoExecute) in step with the Ready
//! condition. Evicting pods from tainted nodes is the taint-eviction controller's job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::json;

use crate::controllers::podutil;
use crate::runtime::{Context, Informer, Reconcile, Requeue, WorkQueue};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const WATCHED_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// When the kubelet was last heard from, in this process's clock.
struct Health {
    probed_at: Instant,
    /// What was last seen: (Ready heartbeat, Lease renewTime).
    seen: (Option<String>, Option<String>),
}

pub struct NodeLifecycleController {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    health: Mutex<HashMap<String, Health>>,
    period: Duration,
    grace: Duration,
    recorder: Arc<Recorder>,
}

/// Starts the node lifecycle controller: a check of every node each --node-monitor-period.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(NodeLifecycleController {
        client: ctx.client.clone(),
        nodes: ctx.informers.get::<Node>(),
        leases: ctx.informers.get::<Lease>(),
        pods: ctx.informers.get::<Pod>(),
        health: Mutex::new(HashMap::new()),
        period: ctx.options.node_monitor_period,
        grace: ctx.options.node_monitor_grace_period,
        recorder: ctx.recorder("node-controller"),
    });
    podutil::index_by_node(&c.pods);
    // Taints follow each change of a node at once (a new node's not-ready taint from
    // TaintNodesByCondition is lifted as soon as its kubelet reports Ready); the periodic
    // pass below finds the nodes whose kubelet went quiet.
    let queue = WorkQueue::new("node-lifecycle-taints");
    queue.follow_live(&c.nodes, |_| true);
    let taints = crate::runtime::run_workers(queue, c.clone(), 1);
    let monitor = Box::pin(async move {
        let mut tick = tokio::time::interval(c.period);
        loop {
            tick.tick().await;
            for node in c.nodes.list() {
                if let Err(e) = c.monitor(&node).await {
                    tracing::warn!(node = %node.name_any(), "node health check failed: {e:#}");
                }
            }
            let names: Vec<String> = c.nodes.list().iter().map(|n| n.name_any()).collect();
            c.health.lock().retain(|n, _| names.contains(n));
        }
    });
    Ok(Box::pin(async move {
        futures::future::join(monitor, taints).await;
    }))
}

#[async_trait]
impl Reconcile for NodeLifecycleController {
    async fn sync(&self, name: &str) -> crate::Result<Requeue> {
        if let Some(node) = self.nodes.get(name) {
            self.sync_taints(&node).await?;
        }
        Ok(None)
    }
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The Ready condition's status: "True", "False", "Unknown", or "" when never posted.
pub fn ready_status(node: &Node) -> &str {
    condition(node, "Ready").map_or("", |c| c.status.as_str())
}

fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The conditions a node gets when its kubelet has gone quiet: the watched ones become
/// Unknown (added as Unknown if the kubelet never posted them).
pub fn unknown_conditions(node: &Node) -> Vec<NodeCondition> {
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for t in WATCHED_CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == *t) {
            Some(c) => {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(now_time());
                }
            }
            None => conds.push(NodeCondition {
                type_: (*t).into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: None,
                last_transition_time: Some(now_time()),
            }),
        }
    }
    conds
}

/// The node's taints with the not-ready/unreachable ones matching its Ready status; `None`
/// when nothing changes. Taints that stay keep their timeAdded. A node that has never
/// reported Ready keeps what it has (the not-ready taint TaintNodesByCondition gave it)
/// until it reports or the periodic pass marks it Unknown.
pub fn desired_taints(node: &Node) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let want_key = match ready_status(node) {
        "False" => Some(NOT_READY),
        "Unknown" => Some(UNREACHABLE),
        "" => return None,
        _ => None,
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let ours = t.key == NOT_READY || t.key == UNREACHABLE;
            let effect = matches!(t.effect.as_str(), "NoSchedule" | "NoExecute");
            !ours || !effect || Some(t.key.as_str()) == want_key
        })
        .cloned()
        .collect();
    if let Some(key) = want_key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    value: None,
                    time_added: (effect == "NoExecute").then(now_time),
                });
            }
        }
    }
    (out != current).then_some(out)
}

impl NodeLifecycleController {
    /// Checks one node: has its kubelet been heard from within the grace period?
    async fn monitor(&self, node: &Node) -> crate::Result<()> {
        let name = node.name_any();
        let heartbeat = condition(node, "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0.to_string());
        let renewed = self.leases.get_in(LEASE_NAMESPACE, &name).and_then(|l| {
            l.spec
                .as_ref()?
                .renew_time
                .as_ref()
                .map(|t| t.0.to_string())
        });
        let seen = (heartbeat, renewed);
        let silent_for = {
            let mut health = self.health.lock();
            let h = health.entry(name.clone()).or_insert_with(|| Health {
                probed_at: Instant::now(),
                seen: seen.clone(),
            });
            if h.seen != seen {
                h.seen = seen;
                h.probed_at = Instant::now();
            }
            h.probed_at.elapsed()
        };
        let mut node = node.clone();
        if silent_for > self.grace && ready_status(&node) != "Unknown" {
            let was_ready = ready_status(&node) == "True";
            tracing::info!(node = %name, silent = ?silent_for, "node stopped posting status; marking it Unknown");
            node.status.get_or_insert_with(Default::default).conditions =
                Some(unknown_conditions(&node));
            let api: Api<Node> = Api::all(self.client.clone());
            node = api
                .replace_status(&name, &PostParams::default(), &node)
                .await?;
            self.recorder.normal(
                &Involved::of(&node),
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
            if was_ready {
                self.mark_pods_not_ready(&name).await;
            }
        }
        self.sync_taints(&node).await
    }

    /// Puts the not-ready/unreachable taints in step with the node's Ready condition; the
    /// resourceVersion makes a patch against a stale copy fail (and be retried).
    async fn sync_taints(&self, node: &Node) -> crate::Result<()> {
        if let Some(taints) = desired_taints(node) {
            let api: Api<Node> = Api::all(self.client.clone());
            let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints}});
            api.patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        Ok(())
    }

    /// The node's pods lose their Ready condition, so Services stop sending them traffic.
    async fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.pods.by_index(podutil::BY_NODE, node) {
            if !podutil::is_ready(&pod) {
                continue;
            }
            let mut conditions = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                c.status = "False".into();
                c.last_transition_time = Some(now_time());
            }
            let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": conditions}});
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            if let Err(e) = api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                tracing::debug!(pod = %pod.name_any(), error = %e, "marking pod not ready failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, taints: serde_json::Value) -> Node {
        let conditions = match ready {
            Some(s) => json!([{"type": "Ready", "status": s}]),
            None => json!([]),
        };
        serde_json::from_value(json!({"metadata": {"name": "n"},
            "spec": {"taints": taints}, "status": {"conditions": conditions}}))
        .unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn taints_follow_the_ready_condition() {
        let unreachable = desired_taints(&node(Some("Unknown"), json!([]))).unwrap();
        assert_eq!(
            keys(&unreachable),
            [
                format!("{UNREACHABLE}:NoSchedule"),
                format!("{UNREACHABLE}:NoExecute")
            ]
        );
        assert!(
            unreachable[1].time_added.is_some(),
            "NoExecute taints carry timeAdded"
        );

        let not_ready = desired_taints(&node(
            Some("False"),
            serde_json::to_value(&unreachable).unwrap(),
        ))
        .unwrap();
        assert_eq!(
            keys(&not_ready),
            [
                format!("{NOT_READY}:NoSchedule"),
                format!("{NOT_READY}:NoExecute")
            ]
        );

        let other = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let mut with_other = serde_json::to_value(&not_ready).unwrap();
        with_other.as_array_mut().unwrap().push(other[0].clone());
        let ready = desired_taints(&node(Some("True"), with_other)).unwrap();
        assert_eq!(
            keys(&ready),
            ["dedicated:NoSchedule"],
            "only ours are removed"
        );
        assert_eq!(desired_taints(&node(Some("True"), other)), None);
        let tainted = json!([{"key": NOT_READY, "effect": "NoSchedule"}]);
        assert_eq!(
            desired_taints(&node(None, tainted)),
            None,
            "a node that never reported keeps its not-ready taint"
        );
    }

    #[test]
    fn silent_nodes_get_unknown_conditions() {
        let conds = unknown_conditions(&node(Some("True"), json!([])));
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("Unknown", Some("NodeStatusUnknown"))
        );
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(conds.len(), 4);
    }
}
