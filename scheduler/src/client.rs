//! The scheduler's writes to the cluster: bindings, preemption deletes, pod status
//! (PodScheduled condition, nominatedNodeName) and Events. `KubeClient` does them through
//! the API with kube-rs; `NoopClient` does nothing (unit tests, in-process benchmark).

use common::api_errors::is_not_found;
use std::sync::Arc;

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};
use serde_json::json;

use crate::framework::{ClusterClient, PodInfo};

/// Does nothing and succeeds.
pub struct NoopClient;

#[async_trait]
impl ClusterClient for NoopClient {
    async fn bind(&self, _: &PodInfo, _: &str) -> Result<(), String> {
        Ok(())
    }
    async fn delete_pod(&self, _: &PodInfo) -> Result<(), String> {
        Ok(())
    }
    async fn nominate(&self, _: &PodInfo, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Writes through the API.
pub struct KubeClient {
    client: Client,
    events: Arc<Recorder>,
}

impl KubeClient {
    /// Starts the event writer on the current runtime; events are reported as `component`
    /// (the profile's schedulerName).
    pub fn new(client: Client, component: &str) -> Arc<KubeClient> {
        Arc::new(KubeClient {
            events: Recorder::new(client.clone(), component),
            client,
        })
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }
}

#[async_trait]
impl ClusterClient for KubeClient {
    async fn bind(&self, pod: &PodInfo, node: &str) -> Result<(), String> {
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        self.pods(&pod.namespace)
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &pod.name,
                &PostParams::default(),
                &binding,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn delete_pod(&self, pod: &PodInfo) -> Result<(), String> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pods(&pod.namespace).delete(&pod.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn nominate(&self, pod: &PodInfo, node: &str) -> Result<(), String> {
        let value = if node.is_empty() {
            json!(null)
        } else {
            json!(node)
        };
        let patch = json!({"status": {"nominatedNodeName": value}});
        self.pods(&pod.namespace)
            .patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn mark_unschedulable(
        &self,
        pod: &PodInfo,
        reason: &str,
        message: &str,
    ) -> Result<(), String> {
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}});
        match self
            .pods(&pod.namespace)
            .patch_status(
                &pod.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn record_event(
        &self,
        pod: &PodInfo,
        warning: bool,
        reason: &str,
        action: &str,
        message: String,
    ) {
        let mut about = Involved::of(&*pod.pod);
        about.namespace = &pod.namespace;
        about.name = &pod.name;
        about.uid = &pod.uid;
        self.events.record(&about, warning, reason, action, message);
    }
}
