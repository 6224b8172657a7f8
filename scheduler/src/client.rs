//! The scheduler's writes to the cluster: bindings, preemption deletes, pod status
//! (PodScheduled condition, nominatedNodeName) and Events. `KubeClient` does them through
//! the API with kube-rs; `NoopClient` does nothing (unit tests, in-process benchmark).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

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

/// Events waiting to be written; beyond this they are dropped, as upstream's broadcaster
/// drops events when its sink falls behind (scheduling never waits for events).
const EVENT_BUFFER: usize = 4096;

/// Writes through the API.
pub struct KubeClient {
    client: Client,
    events: mpsc::Sender<Event>,
    pub dropped_events: Arc<AtomicU64>,
    /// The name events are reported under (the profile's schedulerName).
    component: String,
    instance: String,
}

impl KubeClient {
    /// Starts the event writer on the current runtime.
    pub fn new(client: Client, component: &str) -> Arc<KubeClient> {
        let (tx, mut rx) = mpsc::channel::<Event>(EVENT_BUFFER);
        let writer = client.clone();
        tokio::spawn(async move {
            // A few writes in flight so events keep up with binding.
            let mut inflight = futures::stream::FuturesUnordered::new();
            use futures::StreamExt;
            loop {
                tokio::select! {
                    Some(event) = rx.recv(), if inflight.len() < 8 => {
                        let ns = event.metadata.namespace.clone().unwrap_or_default();
                        let api: Api<Event> = Api::namespaced(writer.clone(), &ns);
                        inflight.push(async move {
                            if let Err(e) = api.create(&PostParams::default(), &event).await {
                                tracing::debug!(error = %e, "writing an event failed");
                            }
                        });
                    }
                    Some(()) = inflight.next(), if !inflight.is_empty() => {}
                    else => break,
                }
            }
        });
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Arc::new(KubeClient {
            client,
            events: tx,
            dropped_events: Arc::default(),
            component: component.to_owned(),
            instance: format!("{component}-{host}"),
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
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
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
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
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
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let now = chrono::Utc::now();
        let suffix = format!(
            "{:x}{:04x}",
            now.timestamp_nanos_opt().unwrap_or_default(),
            SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff
        );
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let micro = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let value = json!({
            "metadata": {"name": format!("{}.{suffix}", pod.name), "namespace": pod.namespace},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "name": pod.name, "namespace": pod.namespace,
                "uid": pod.uid, "resourceVersion": pod.pod.metadata.resource_version,
            },
            "reason": reason,
            "message": message,
            "type": if warning { "Warning" } else { "Normal" },
            "action": action,
            "eventTime": micro,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "source": {"component": self.component},
        });
        let Ok(event) = serde_json::from_value::<Event>(value) else {
            return;
        };
        if self.events.try_send(event).is_err() {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }
}
