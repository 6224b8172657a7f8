//! Pods bound to this node: an informer on `spec.nodeName=<node>`, and one worker task per pod
//! that syncs it whenever it changes in the API or in the runtime (`pleg`'s relist), when
//! its requeue comes due, and at the sync frequency. Containers left from
//! before a restart are adopted (found by their pod uid labels), never restarted; sandboxes
//! of pods that no longer exist are removed. Static pods from --pod-manifest-path run
//! through the same workers, their mirror pods carrying their status (`static_pods`).

pub mod dns;
pub mod env;
pub mod hosts;
pub mod pleg;
pub mod probes;
pub mod spec;
pub mod static_pods;
pub mod status;
pub mod tokens;
pub mod volumes;
pub mod worker;

use common::api_errors::is_already_exists;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::informer::{Change, Informer};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};

use worker::PodRuntime;

struct Worker {
    updates: watch::Sender<Arc<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the pods bound to `node` until dropped.
pub async fn run(runtime: Arc<PodRuntime>, node: String) {
    run_with_static_pods(runtime, node, None).await
}

/// Where static pod manifests are and how often they are read.
#[derive(Clone, Debug)]
pub struct StaticPods {
    pub dir: PathBuf,
    pub check_every: Duration,
}

impl StaticPods {
    /// `dir`, read every 20 s as upstream's default --file-check-frequency.
    pub fn new(dir: PathBuf) -> StaticPods {
        StaticPods {
            dir,
            check_every: static_pods::FILE_CHECK,
        }
    }
}

/// Runs the pods the apiserver binds to `node` and, with `manifests`, the static pods of
/// that directory, until dropped.
pub async fn run_with_static_pods(
    runtime: Arc<PodRuntime>,
    node: String,
    manifests: Option<StaticPods>,
) {
    let api: Api<Pod> = Api::all(runtime.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut d = Dispatcher {
        runtime,
        node,
        workers: HashMap::new(),
        statics: HashMap::new(),
        mirrors: HashMap::new(),
    };
    // Static pods are known before the watch lists their mirrors.
    if let Some(m) = &manifests {
        d.sync_static_pods(&m.dir).await;
    }
    // The informer's handlers must not wait: changes go to this task in order.
    let informer = Informer::<Pod>::new();
    let (tx, mut updates) = mpsc::unbounded_channel();
    informer.on_change(move |change| {
        let _ = match change {
            Change::Added(pod) => tx.send(Update::Applied(Arc::clone(pod))),
            Change::Updated { old, new } => {
                // Replaced by a pod of the same name while the watch was lost.
                if spec::uid(old) != spec::uid(new) {
                    let _ = tx.send(Update::Deleted(Arc::clone(old)));
                }
                tx.send(Update::Applied(Arc::clone(new)))
            }
            Change::Deleted(pod) => tx.send(Update::Deleted(Arc::clone(pod))),
        };
    });
    let _running = informer.spawn(api, config);
    let mut synced = std::pin::pin!(informer.wait_for_sync());
    let mut cleaned = false;
    let every = manifests
        .as_ref()
        .map_or(static_pods::FILE_CHECK, |m| m.check_every);
    let mut file_check = tokio::time::interval(every);
    file_check.tick().await;
    let runtime = d.runtime.clone();
    let mut relist = std::pin::pin!(async move { runtime.pleg.run(&runtime.cri).await });
    loop {
        tokio::select! {
            () = &mut relist => {}
            update = updates.recv() => match update {
                Some(update) => d.handle(update).await,
                None => return,
            },
            () = &mut synced, if !cleaned => {
                cleaned = true;
                d.remove_unknown(&informer).await;
            }
            _ = file_check.tick(), if manifests.is_some() => {
                if let Some(m) = &manifests {
                    d.sync_static_pods(&m.dir).await;
                }
            }
        }
    }
}

/// A change to a pod bound to this node, in the order the informer saw it.
enum Update {
    Applied(Arc<Pod>),
    Deleted(Arc<Pod>),
}

/// Hands each pod to its worker: API pods from the watch, static pods from the manifests.
struct Dispatcher {
    runtime: Arc<PodRuntime>,
    node: String,
    workers: HashMap<String, Worker>,
    /// Static pods by uid (their status as the mirror pod shows it).
    statics: HashMap<String, Arc<Pod>>,
    /// Mirror pods in the API, by manifest hash.
    mirrors: HashMap<String, Arc<Pod>>,
}

impl Dispatcher {
    async fn handle(&mut self, update: Update) {
        let runtime = self.runtime.clone();
        match update {
            Update::Applied(pod) => {
                if static_pods::mirror_hash(&pod).is_some() {
                    self.on_mirror(pod);
                    return;
                }
                self.dispatch(pod);
            }
            Update::Deleted(pod) => {
                if let Some(hash) = static_pods::mirror_hash(&pod) {
                    // Put the mirror back at once; the static pod runs on.
                    self.mirrors.remove(hash);
                    self.ensure_mirrors().await;
                    return;
                }
                let uid = spec::uid(&pod).to_owned();
                runtime.pods.write().remove(&key(&pod));
                runtime.forget_final_status(&uid);
                if let Some(w) = self.workers.remove(&uid) {
                    w.task.abort();
                }
                // Removed without our confirmation (force delete): stop what runs.
                match runtime.kill_pod(&uid, Duration::from_secs(0)).await {
                    Ok(()) => runtime.release(&uid),
                    Err(e) => {
                        tracing::warn!(%uid, error = %e, "stopping a deleted pod's containers failed");
                    }
                }
            }
        }
    }

    /// After the first list: removes the sandboxes of pods that are gone (deleted while
    /// the kubelet was down). Later deletions arrive as changes.
    async fn remove_unknown(&mut self, informer: &Informer<Pod>) {
        let runtime = self.runtime.clone();
        let listed: HashSet<String> = informer
            .list()
            .iter()
            .map(|p| spec::uid(p).to_owned())
            .collect();
        let known = |uid: &str| listed.contains(uid) || self.statics.contains_key(uid);
        if let Ok(sandboxes) = runtime.cri.list_pod_sandboxes().await {
            for s in sandboxes {
                let uid = s.labels.get(spec::POD_UID).cloned().unwrap_or_default();
                if !known(&uid) {
                    tracing::info!(%uid, "removing the sandbox of a pod that no longer exists");
                    if runtime.kill_pod(&uid, Duration::from_secs(0)).await.is_ok() {
                        runtime.release(&uid);
                    }
                }
            }
        }
    }

    /// Sends the pod to its worker, starting one if needed.
    fn dispatch(&mut self, pod: Arc<Pod>) {
        let uid = spec::uid(&pod).to_owned();
        self.runtime.pods.write().insert(key(&pod), pod.clone());
        match self.workers.get(&uid) {
            Some(w) if !w.task.is_finished() => {
                // As upstream's pod config: a change of status alone (the kubelet's own
                // writes, mostly) is kept for the next sync but wakes nobody. A static pod's
                // status comes from its mirror, which may have been made anew: write it.
                let is_static = self.statics.contains_key(&uid);
                w.updates.send_if_modified(|current| {
                    let wake = is_static || !same_but_status(current, &pod);
                    *current = pod;
                    wake
                });
            }
            _ => {
                let (tx, rx) = watch::channel(pod);
                let wake = self.runtime.pleg.register(&uid);
                let task = tokio::spawn(work(self.runtime.clone(), rx, wake));
                self.workers.insert(uid, Worker { updates: tx, task });
            }
        }
    }

    /// A mirror pod changed: its status goes to the static pod's worker (which compares
    /// before writing); one being deleted or left without a manifest is removed.
    fn on_mirror(&mut self, mirror: Arc<Pod>) {
        let hash = static_pods::mirror_hash(&mirror)
            .unwrap_or_default()
            .to_owned();
        let static_pod = self
            .statics
            .values()
            .find(|s| {
                s.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(static_pods::CONFIG_HASH))
                    == Some(&hash)
            })
            .cloned();
        let Some(static_pod) = static_pod.filter(|_| mirror.metadata.deletion_timestamp.is_none())
        else {
            self.mirrors.remove(&hash);
            self.delete_mirror(&mirror);
            return;
        };
        let mut updated = (*static_pod).clone();
        updated.status = mirror.status.clone();
        let updated = Arc::new(updated);
        self.statics
            .insert(spec::uid(&updated).to_owned(), updated.clone());
        self.mirrors.insert(hash, mirror);
        self.dispatch(updated);
    }

    /// Deletes a mirror pod for good (grace 0: nothing of it runs in its name).
    fn delete_mirror(&self, mirror: &Pod) {
        let api: Api<Pod> = Api::namespaced(
            self.runtime.client.clone(),
            mirror.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = mirror.metadata.name.clone().unwrap_or_default();
        let params = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: mirror.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(e) = api.delete(&name, &params).await {
                tracing::debug!(pod = %name, error = %e, "deleting a mirror pod failed");
            }
        });
    }

    /// Creates the mirror pods that are missing (once the Node exists: it owns them).
    async fn ensure_mirrors(&self) {
        let missing: Vec<Arc<Pod>> = self
            .statics
            .values()
            .filter(|s| {
                let hash = s
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(static_pods::CONFIG_HASH));
                hash.is_none_or(|h| !self.mirrors.contains_key(h))
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.runtime.client.clone());
        let Ok(Some(node)) = nodes.get_opt(&self.node).await else {
            return;
        };
        let node_uid = node.metadata.uid.unwrap_or_default();
        for s in missing {
            let mirror = static_pods::mirror_of(&s, &self.node, &node_uid);
            let api: Api<Pod> = Api::namespaced(
                self.runtime.client.clone(),
                mirror.metadata.namespace.as_deref().unwrap_or("default"),
            );
            match api.create(&kube::api::PostParams::default(), &mirror).await {
                Ok(_) => {}
                Err(e) if is_already_exists(&e) => {}
                Err(e) => {
                    tracing::warn!(pod = ?mirror.metadata.name, error = %e, "creating a mirror pod failed")
                }
            }
        }
    }

    /// Reads the manifests again: new static pods start, removed ones stop (preStop, grace
    /// period) and their mirror pods go.
    async fn sync_static_pods(&mut self, dir: &std::path::Path) {
        let desired: HashMap<String, Pod> = static_pods::read(dir, &self.node)
            .into_iter()
            .map(|p| (spec::uid(&p).to_owned(), p))
            .collect();
        let gone: Vec<String> = self
            .statics
            .keys()
            .filter(|uid| !desired.contains_key(*uid))
            .cloned()
            .collect();
        for uid in gone {
            let Some(pod) = self.statics.remove(&uid) else {
                continue;
            };
            tracing::info!(pod = ?pod.metadata.name, "static pod manifest removed; stopping the pod");
            if let Some(w) = self.workers.remove(&uid) {
                w.task.abort();
            }
            self.runtime.pods.write().remove(&key(&pod));
            let hash = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(static_pods::CONFIG_HASH));
            if let Some(mirror) = hash.and_then(|h| self.mirrors.remove(h)) {
                self.delete_mirror(&mirror);
            }
            let runtime = self.runtime.clone();
            tokio::spawn(async move {
                if runtime
                    .stop_pod(&pod, spec::termination_grace(&pod))
                    .await
                    .is_ok()
                {
                    runtime.release(&uid);
                }
            });
        }
        for (uid, pod) in desired {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.statics.entry(uid) {
                tracing::info!(pod = ?pod.metadata.name, "static pod from its manifest");
                let pod = Arc::new(pod);
                slot.insert(pod.clone());
                self.dispatch(pod);
            }
        }
        self.ensure_mirrors().await;
    }
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Whether two versions of a pod differ at most in status and bookkeeping (resourceVersion,
/// managedFields): nothing a sync acts on.
fn same_but_status(a: &Pod, b: &Pod) -> bool {
    let (m, n) = (&a.metadata, &b.metadata);
    a.spec == b.spec
        && m.uid == n.uid
        && m.labels == n.labels
        && m.annotations == n.annotations
        && m.deletion_timestamp == n.deletion_timestamp
        && m.deletion_grace_period_seconds == n.deletion_grace_period_seconds
        && m.owner_references == n.owner_references
}

/// One pod's worker: syncs on every change and when the last sync asks to.
async fn work(
    runtime: Arc<PodRuntime>,
    mut updates: watch::Receiver<Arc<Pod>>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        let pod = updates.borrow_and_update().clone();
        let began = std::time::Instant::now();
        let result = runtime.sync(&pod).await;
        tracing::debug!(pod = ?pod.metadata.name, took = ?began.elapsed(), "synced");
        let next = match result {
            Ok(None) => return,
            Ok(Some(after)) => after,
            Err(e) => {
                tracing::warn!(pod = ?pod.metadata.name, "sync failed: {e:#}");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            () = wake.notified() => {}
            changed = updates.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_status_alone_does_not_wake_the_worker() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u", "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        let mut written = pod.clone();
        written.metadata.resource_version = Some("2".into());
        written.status = Some(Default::default());
        assert!(same_but_status(&pod, &written));
        let mut deleted = written.clone();
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert!(!same_but_status(&written, &deleted));
        let mut relabeled = written.clone();
        relabeled.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(!same_but_status(&written, &relabeled));
        let mut resized = written.clone();
        resized.spec.as_mut().unwrap().containers[0].image = Some("other".into());
        assert!(!same_but_status(&written, &resized));
    }
}
