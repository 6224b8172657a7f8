//! The pod garbage collector: every --pod-gc period it deletes the oldest terminated pods
//! beyond --terminated-pod-gc-threshold, pods bound to nodes that no longer exist (after a
//! quarantine, checked against the apiserver), and terminating pods that were never
//! scheduled (nothing else would finish deleting them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use parking_lot::Mutex;
use serde_json::json;

use crate::controllers::podutil;
use crate::runtime::{Context, Informer};
use common::api_errors::is_not_found;

pub struct PodGc {
    client: kube::Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    threshold: usize,
    quarantine: Duration,
    /// Nodes referenced by pods but missing from the cache, and since when.
    missing_since: Mutex<HashMap<String, Instant>>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let gc = Arc::new(PodGc {
        client: ctx.client.clone(),
        pods: ctx.informers.get::<Pod>(),
        nodes: ctx.informers.get::<Node>(),
        threshold: ctx.options.terminated_pod_gc_threshold,
        quarantine: ctx.options.pod_gc_quarantine,
        missing_since: Mutex::new(HashMap::new()),
    });
    let period = ctx.options.pod_gc_period;
    Ok(Box::pin(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            gc.run_once().await;
        }
    }))
}

fn created(p: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    p.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The terminated pods to delete so that at most `threshold` remain, oldest first.
pub fn terminated_over_threshold(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| matches!(podutil::phase(p), "Succeeded" | "Failed"))
        .cloned()
        .collect();
    if done.len() <= threshold {
        return Vec::new();
    }
    done.sort_by_key(|p| created(p));
    done.truncate(done.len() - threshold);
    done
}

impl PodGc {
    async fn run_once(&self) {
        let pods = self.pods.list();
        for p in terminated_over_threshold(&pods, self.threshold) {
            self.delete(&p, None, "PodGC: terminated pods over the threshold")
                .await;
        }
        // Pods on nodes that are gone.
        let mut missing = self.missing_since.lock().clone();
        let mut orphans = Vec::new();
        for p in &pods {
            let node = podutil::node_name(p);
            if node.is_empty() || self.nodes.get(node).is_some() {
                continue;
            }
            let since = *missing.entry(node.to_owned()).or_insert_with(Instant::now);
            if since.elapsed() >= self.quarantine {
                orphans.push(p.clone());
            }
        }
        missing.retain(|n, _| self.nodes.get(n).is_none());
        *self.missing_since.lock() = missing;
        let nodes: Api<Node> = Api::all(self.client.clone());
        for p in orphans {
            // The cache may lag: ask the apiserver before deleting anything.
            match nodes.get_opt(podutil::node_name(&p)).await {
                Ok(None) => {
                    self.delete(&p, Some(0), "PodGC: node no longer exists")
                        .await;
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(error = %e, "pod gc: checking a node failed"),
            }
        }
        // Terminating pods that never reached a node.
        for p in &pods {
            if p.metadata.deletion_timestamp.is_some() && podutil::node_name(p).is_empty() {
                self.delete(p, Some(0), "PodGC: unscheduled terminating pod")
                    .await;
            }
        }
    }

    async fn delete(&self, pod: &Pod, grace: Option<u32>, why: &str) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        tracing::info!(pod = %format!("{ns}/{name}"), "{why}");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if grace == Some(0) && !matches!(podutil::phase(pod), "Succeeded" | "Failed") {
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }]}});
            let _ = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(&condition),
                )
                .await;
        }
        let dp = DeleteParams {
            grace_period_seconds: grace,
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::warn!(pod = %name, error = %e, "pod gc: delete failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "creationTimestamp": created},
                "status": {"phase": phase}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn the_oldest_terminated_pods_beyond_the_threshold_go() {
        let pods = vec![
            pod("new-done", "Succeeded", "2026-01-03T00:00:00Z"),
            pod("old-done", "Failed", "2026-01-01T00:00:00Z"),
            pod("running", "Running", "2025-01-01T00:00:00Z"),
            pod("mid-done", "Succeeded", "2026-01-02T00:00:00Z"),
        ];
        let gone: Vec<_> = terminated_over_threshold(&pods, 1)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(gone, ["old-done", "mid-done"]);
        assert!(terminated_over_threshold(&pods, 3).is_empty());
        assert!(
            terminated_over_threshold(&pods, 0).is_empty(),
            "0 turns it off"
        );
    }
}
