//! The taint-eviction controller: pods on a node with NoExecute taints they do not tolerate
//! are deleted at once; pods that tolerate them for tolerationSeconds are deleted when that
//! time has passed since the taint was added; pods that tolerate them without a limit stay.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use common::scheduling::tolerations::{TolerationTime, matching_tolerations, min_toleration_time};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::controllers::podutil;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};
use common::api_errors::is_not_found;

/// What happens to a pod under these NoExecute taints.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Stay,
    EvictNow,
    /// Evict once this many seconds have passed since the taints were added.
    EvictAfter(i64),
}

/// Upstream's rule: evict at once when a taint is untolerated, else after the smallest
/// tolerationSeconds of the first toleration of each taint (none: stay).
pub fn verdict(tolerations: &[Toleration], taints: &[&Taint]) -> Verdict {
    if taints.is_empty() {
        return Verdict::Stay;
    }
    let Some(used) = matching_tolerations(taints, tolerations) else {
        return Verdict::EvictNow;
    };
    match min_toleration_time(&used) {
        TolerationTime::Forever => Verdict::Stay,
        TolerationTime::Seconds(0) => Verdict::EvictNow,
        TolerationTime::Seconds(s) => Verdict::EvictAfter(s),
    }
}

pub struct TaintEvictionController {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    recorder: Arc<Recorder>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(TaintEvictionController {
        client: ctx.client.clone(),
        nodes: ctx.informers.get::<Node>(),
        pods: ctx.informers.get::<Pod>(),
        recorder: ctx.recorder("taint-eviction-controller"),
    });
    let queue = WorkQueue::new("taint_eviction");
    queue.follow_live(&c.pods, |p| !podutil::node_name(p).is_empty());
    podutil::index_by_node(&c.pods);
    let (q, pods) = (queue.clone(), c.pods.clone());
    c.nodes.on_change(move |change| {
        let (name, changed) = match change {
            Change::Added(n) => (n.name_any(), true),
            Change::Updated { old, new } => (
                new.name_any(),
                old.spec.as_ref().map(|s| &s.taints) != new.spec.as_ref().map(|s| &s.taints),
            ),
            Change::Deleted(_) => return,
        };
        if changed {
            for p in pods.by_index(podutil::BY_NODE, &name) {
                q.add(key_of(&*p));
            }
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 8))
}

#[async_trait]
impl Reconcile for TaintEvictionController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(None);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let Some(node) = self.nodes.get(podutil::node_name(&pod)) else {
            return Ok(None);
        };
        let taints: Vec<&Taint> = node
            .spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .filter(|t| t.effect == "NoExecute")
            .collect();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        match verdict(&tolerations, &taints) {
            Verdict::Stay => Ok(None),
            Verdict::EvictAfter(secs) => {
                // Counted from when the newest of the taints was added.
                let added = taints
                    .iter()
                    .filter_map(|t| t.time_added.as_ref())
                    .map(podutil::to_chrono)
                    .max()
                    .unwrap_or_else(chrono::Utc::now);
                let due = added + chrono::Duration::seconds(secs);
                let now = chrono::Utc::now();
                if due > now {
                    return Ok(Some(
                        (due - now).to_std().unwrap_or_default() + Duration::from_millis(10),
                    ));
                }
                self.evict(&pod).await.map(|_| None)
            }
            Verdict::EvictNow => self.evict(&pod).await.map(|_| None),
        }
    }
}

impl TaintEvictionController {
    async fn evict(&self, pod: &Pod) -> crate::Result<()> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        tracing::info!(pod = %format!("{ns}/{name}"), "evicting pod from a NoExecute-tainted node");
        self.recorder.normal(
            &Involved::of(pod),
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}});
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(&condition),
            )
            .await
        {
            tracing::debug!(pod = %name, error = %e, "adding the DisruptionTarget condition failed");
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: None,
        }
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    fn forever_for(t: &Taint) -> Toleration {
        tol(json!({"key": t.key, "operator": "Exists"}))
    }

    #[test]
    fn eviction_follows_tolerations() {
        let t = taint("node.kubernetes.io/unreachable");
        assert_eq!(verdict(&[], &[&t]), Verdict::EvictNow);
        assert_eq!(verdict(&[], &[]), Verdict::Stay);
        let forever = tol(
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        );
        assert_eq!(verdict(&[forever], &[&t]), Verdict::Stay);
        let limited = tol(
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}),
        );
        let shorter = tol(json!({"operator": "Exists", "tolerationSeconds": 5}));
        assert_eq!(
            verdict(std::slice::from_ref(&limited), &[&t]),
            Verdict::EvictAfter(300)
        );
        // Only the first toleration of each taint counts (upstream's GetMatchingTolerations).
        assert_eq!(
            verdict(&[limited, shorter.clone()], &[&t]),
            Verdict::EvictAfter(300)
        );
        let other = taint("node.kubernetes.io/not-ready");
        assert_eq!(
            verdict(&[forever_for(&t), shorter], &[&t, &other]),
            Verdict::EvictAfter(5)
        );
        let wrong_value = tol(json!({"key": "node.kubernetes.io/unreachable", "value": "x"}));
        assert_eq!(verdict(&[wrong_value], &[&t]), Verdict::EvictNow);
    }
}
