//! In-process mode: the scheduler's framework, queue and cache fed directly, with a
//! client that binds instantly. What it measures is the scheduling algorithm alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;
use scheduler::Scheduler;
use scheduler::config::KubeSchedulerConfiguration;
use scheduler::framework::{ClusterClient, PodInfo, Registry};

use super::Driver;
use super::workload::ChurnObject;
use crate::Latencies;

/// What the in-process "API" records.
#[derive(Default)]
struct Recorder {
    bound: Arc<AtomicUsize>,
    created: Mutex<HashMap<String, Instant>>,
    latencies: Mutex<Latencies>,
    scheduler: OnceLock<Weak<Scheduler>>,
}

impl Recorder {
    fn scheduler(&self) -> Option<Arc<Scheduler>> {
        self.scheduler.get().and_then(Weak::upgrade)
    }
}

#[async_trait]
impl ClusterClient for Recorder {
    async fn bind(&self, pod: &PodInfo, _: &str) -> Result<(), String> {
        if let Some(t) = self.created.lock().remove(&pod.uid) {
            self.latencies.lock().push(t.elapsed());
        }
        self.bound.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A preemption victim goes away at once (grace period 0).
    async fn delete_pod(&self, pod: &PodInfo) -> Result<(), String> {
        if let Some(s) = self.scheduler() {
            s.on_pod_deleted(&pod.uid);
        }
        Ok(())
    }

    /// The informer would deliver the pod with status.nominatedNodeName set.
    async fn nominate(&self, pod: &PodInfo, node: &str) -> Result<(), String> {
        if let Some(s) = self.scheduler() {
            let mut p = (*pod.pod).clone();
            p.status
                .get_or_insert_with(Default::default)
                .nominated_node_name = Some(node.to_owned());
            s.on_pod(Arc::new(p));
        }
        Ok(())
    }
}

pub struct InProcess {
    scheduler: Arc<Scheduler>,
    recorder: Arc<Recorder>,
    thread: Option<std::thread::JoinHandle<()>>,
    next_uid: usize,
    churned: HashMap<usize, String>,
}

impl InProcess {
    pub fn start(config: &KubeSchedulerConfiguration) -> anyhow::Result<InProcess> {
        let recorder = Arc::new(Recorder::default());
        let scheduler = Scheduler::new(
            config,
            &Registry::in_tree(),
            recorder.clone(),
            tokio::runtime::Handle::current(),
        )?;
        let _ = recorder.scheduler.set(Arc::downgrade(&scheduler));
        let s = scheduler.clone();
        let thread = std::thread::Builder::new()
            .name("scheduling-cycle".into())
            .spawn(move || s.run())?;
        Ok(InProcess {
            scheduler,
            recorder,
            thread: Some(thread),
            next_uid: 0,
            churned: HashMap::new(),
        })
    }

    fn admit(&mut self, pod: Pod) -> Pod {
        self.next_uid += 1;
        admit(pod, self.next_uid)
    }
}

/// What the apiserver would add: a uid and, from the PriorityClass, the priority.
pub(super) fn admit(mut pod: Pod, seq: usize) -> Pod {
    pod.metadata.uid = Some(format!("uid-{seq}"));
    if let Some(spec) = pod.spec.as_mut()
        && spec.priority_class_name.as_deref() == Some("perf-high")
    {
        spec.priority = Some(10);
    }
    pod
}

#[async_trait]
impl Driver for InProcess {
    async fn create_namespace(&mut self, name: &str) -> anyhow::Result<()> {
        self.scheduler
            .cache
            .lock()
            .set_namespace(name, Some(Arc::default()));
        Ok(())
    }

    async fn create_nodes(&mut self, nodes: Vec<Node>) -> anyhow::Result<()> {
        for n in nodes {
            self.scheduler.on_node(Arc::new(n));
        }
        Ok(())
    }

    async fn create_pods(&mut self, pods: Vec<Pod>) -> anyhow::Result<()> {
        for p in pods {
            let p = self.admit(p);
            let uid = p.metadata.uid.clone().unwrap_or_default();
            self.recorder.created.lock().insert(uid, Instant::now());
            self.scheduler.on_pod(Arc::new(p));
        }
        Ok(())
    }

    async fn churn(&mut self, object: &ChurnObject, seq: usize) -> anyhow::Result<()> {
        match object {
            ChurnObject::Node(n) => {
                if let Some(old) = self.churned.remove(&0) {
                    self.scheduler.on_node_deleted(&old);
                }
                let mut n = (**n).clone();
                let name = format!("churn-node-{seq}");
                n.metadata.name = Some(name.clone());
                n.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert("kubernetes.io/hostname".into(), name.clone());
                self.scheduler.on_node(Arc::new(n));
                self.churned.insert(0, name);
            }
            ChurnObject::Pod(p) => {
                if let Some(old) = self.churned.remove(&1) {
                    self.scheduler.on_pod_deleted(&old);
                }
                let mut p = self.admit((**p).clone());
                p.metadata.name = Some(format!("churn-pod-{seq}"));
                p.metadata.namespace = Some("default".into());
                let uid = p.metadata.uid.clone().unwrap_or_default();
                self.scheduler.on_pod(Arc::new(p));
                self.churned.insert(1, uid);
            }
            ChurnObject::Service(s) => {
                let key = |seq: usize| format!("Service/default/churn-service-{seq}");
                let mut cache = self.scheduler.cache.lock();
                cache.set_selector(&key(seq.wrapping_sub(1)), "default", None);
                let sel = s
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|m| {
                        serde_json::to_value(serde_json::json!({ "matchLabels": m })).ok()
                    })
                    .and_then(|v| {
                        common::selector::LabelSelector::from_label_selector_json(&v).ok()
                    });
                cache.set_selector(&key(seq), "default", sel);
            }
        }
        Ok(())
    }

    fn bound(&self) -> Arc<AtomicUsize> {
        self.recorder.bound.clone()
    }

    fn take_latencies(&mut self) -> Latencies {
        std::mem::take(&mut *self.recorder.latencies.lock())
    }

    async fn stop(mut self: Box<Self>) {
        self.scheduler.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
