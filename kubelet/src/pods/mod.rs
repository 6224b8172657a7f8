//! Pods bound to this node: a watch on `spec.nodeName=<node>`, and one worker task per pod
//! that syncs it whenever it changes and every second while it runs. Containers left from
//! before a restart are adopted (found by their pod uid labels), never restarted; sandboxes
//! of pods that no longer exist are removed.

pub mod env;
pub mod probes;
pub mod spec;
pub mod status;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use worker::PodRuntime;

struct Worker {
    updates: watch::Sender<Arc<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the pods bound to `node` until dropped.
pub async fn run(runtime: Arc<PodRuntime>, node: String) {
    let api: Api<Pod> = Api::all(runtime.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher::watcher(api, config).boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                listed.insert(uid.clone());
                let pod = Arc::new(pod);
                runtime.pods.write().insert(key(&pod), pod.clone());
                match workers.get(&uid) {
                    Some(w) if !w.task.is_finished() => {
                        w.updates.send_replace(pod);
                    }
                    _ => {
                        let (tx, rx) = watch::channel(pod);
                        let task = tokio::spawn(work(runtime.clone(), rx));
                        workers.insert(uid, Worker { updates: tx, task });
                    }
                }
            }
            Ok(Event::Delete(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                runtime.pods.write().remove(&key(&pod));
                if let Some(w) = workers.remove(&uid) {
                    w.task.abort();
                }
                // Removed without our confirmation (force delete): stop what runs.
                if let Err(e) = runtime.kill_pod(&uid, Duration::from_secs(0)).await {
                    tracing::warn!(%uid, error = %e, "stopping a deleted pod's containers failed");
                }
            }
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitDone) => {
                // Sandboxes of pods that are gone (deleted while we were down).
                if let Ok(sandboxes) = runtime.cri.list_pod_sandboxes().await {
                    for s in sandboxes {
                        let uid = s.labels.get(spec::POD_UID).cloned().unwrap_or_default();
                        if !listed.contains(&uid) {
                            tracing::info!(%uid, "removing the sandbox of a pod that no longer exists");
                            let _ = runtime.kill_pod(&uid, Duration::from_secs(0)).await;
                        }
                    }
                }
                runtime
                    .pods
                    .write()
                    .retain(|_, p| listed.contains(spec::uid(p)));
                workers.retain(|uid, w| {
                    let keep = listed.contains(uid);
                    if !keep {
                        w.task.abort();
                    }
                    keep
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; relisting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// One pod's worker: syncs on every change and when the last sync asks to.
async fn work(runtime: Arc<PodRuntime>, mut updates: watch::Receiver<Arc<Pod>>) {
    loop {
        let pod = updates.borrow_and_update().clone();
        let next = match runtime.sync(&pod).await {
            Ok(None) => return,
            Ok(Some(after)) => after,
            Err(e) => {
                tracing::warn!(pod = ?pod.metadata.name, "sync failed: {e:#}");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            changed = updates.changed() => if changed.is_err() { return },
        }
    }
}
