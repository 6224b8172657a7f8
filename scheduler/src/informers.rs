//! Feeds the scheduler from the API: one kube-runtime watcher per kind (pods, nodes,
//! namespaces, PodDisruptionBudgets for preemption, claims and volumes for VolumeBinding, and the Services and workloads whose
//! selectors PodTopologySpread's default constraints use). A watcher relists after it loses its watch; objects missing from the
//! relist are reported deleted, so the cache never keeps a pod that went away meanwhile.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use crate::framework::{ActionType, EventResource};
use common::selector::LabelSelector;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::scheduler::Scheduler;

/// Runs a watcher forever, calling `apply` for each added or changed object and `delete`
/// with the key ("namespace/name") and object of each deleted one. Sends `true` on
/// `synced` after the first complete list.
async fn inform<K>(
    api: Api<K>,
    config: watcher::Config,
    synced: watch::Sender<bool>,
    apply: impl Fn(K) + Send + 'static,
    delete: impl Fn(&str, &K) + Send + 'static,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).to_string();
    let mut known: HashMap<String, K> = HashMap::new();
    let mut relisted: HashMap<String, K> = HashMap::new();
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    let mut stream = watcher::watcher(api, config).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(o)) => {
                known.insert(key(&o), o.clone());
                apply(o);
            }
            Ok(Event::Delete(o)) => {
                let k = key(&o);
                known.remove(&k);
                delete(&k, &o);
            }
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitApply(o)) => {
                relisted.insert(key(&o), o.clone());
                apply(o);
            }
            Ok(Event::InitDone) => {
                for (k, o) in &known {
                    if !relisted.contains_key(k) {
                        delete(k, o);
                    }
                }
                known = std::mem::take(&mut relisted);
                tracing::debug!(%kind, objects = known.len(), "informer synced");
                synced.send_replace(true);
            }
            Err(e) => {
                tracing::warn!(%kind, error = %e, "watch failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

fn selector_from(v: Option<serde_json::Value>) -> Option<LabelSelector> {
    v.and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
        .filter(|s| !s.is_everything())
}

/// The running informers; dropping this stops them.
pub struct Informers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Informers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts every informer; resolves once pods and nodes have been listed.
pub async fn start(client: Client, scheduler: Arc<Scheduler>) -> Informers {
    let mut tasks = Vec::new();
    let mut syncs = Vec::new();
    let mut channel = || {
        let (tx, rx) = watch::channel(false);
        syncs.push(rx);
        tx
    };

    let s = scheduler.clone();
    let d = scheduler.clone();
    tasks.push(tokio::spawn(inform(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        channel(),
        move |n| s.on_node(Arc::new(n)),
        move |_, n| d.on_node_deleted(&n.name_any()),
    )));
    let s = scheduler.clone();
    let d = scheduler.clone();
    // Pods that finished hold nothing; the scheduler never needs them.
    tasks.push(tokio::spawn(inform(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed")
            .page_size(5000),
        channel(),
        move |p| s.on_pod(Arc::new(p)),
        move |_, p| d.on_pod_deleted(&p.uid().unwrap_or_default()),
    )));
    let s = scheduler.clone();
    let d = scheduler.clone();
    tasks.push(tokio::spawn(inform(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        watch::channel(false).0,
        move |ns| {
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            s.cache
                .lock()
                .set_namespace(&ns.name_any(), Some(Arc::new(labels)));
            s.queue.on_event(
                crate::framework::EventResource::Namespace,
                crate::framework::ActionType::Update,
            );
        },
        move |_, ns| d.cache.lock().set_namespace(&ns.name_any(), None),
    )));
    selectors::<Service>(&mut tasks, &client, &scheduler, "Service", |s| {
        s.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .map(|m| serde_json::json!({ "matchLabels": m }))
    });
    selectors::<ReplicationController>(
        &mut tasks,
        &client,
        &scheduler,
        "ReplicationController",
        |rc| {
            rc.spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .map(|m| serde_json::json!({ "matchLabels": m }))
        },
    );
    selectors::<ReplicaSet>(&mut tasks, &client, &scheduler, "ReplicaSet", |rs| {
        rs.spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.selector).ok())
    });
    selectors::<StatefulSet>(&mut tasks, &client, &scheduler, "StatefulSet", |ss| {
        ss.spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.selector).ok())
    });
    let s = scheduler.clone();
    let d = scheduler.clone();
    tasks.push(tokio::spawn(inform(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
        watch::channel(false).0,
        move |pdb: PodDisruptionBudget| {
            let key = format!("{}/{}", pdb.namespace().unwrap_or_default(), pdb.name_any());
            let selector = pdb
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|sel| serde_json::to_value(sel).ok())
                .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
                .unwrap_or_default();
            let status = pdb.status.as_ref();
            let value = crate::cache::Pdb {
                namespace: pdb.namespace().unwrap_or_default(),
                selector,
                disruptions_allowed: status.map_or(0, |s| s.disruptions_allowed),
                disrupted_pods: status
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
            };
            s.cache.lock().set_pdb(&key, Some(value));
        },
        move |k, _| d.cache.lock().set_pdb(k, None),
    )));
    let s = scheduler.clone();
    let d = scheduler.clone();
    tasks.push(tokio::spawn(inform(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        watch::channel(false).0,
        move |c: PersistentVolumeClaim| {
            let key = format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any());
            s.cache.lock().set_claim(&key, Some(Arc::new(c)));
            s.queue
                .on_event(EventResource::PersistentVolumeClaim, ActionType::Update);
        },
        move |k, _| d.cache.lock().set_claim(k, None),
    )));
    let s = scheduler.clone();
    let d = scheduler.clone();
    tasks.push(tokio::spawn(inform(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
        watch::channel(false).0,
        move |v: PersistentVolume| {
            s.cache.lock().set_volume(&v.name_any(), Some(Arc::new(v)));
            s.queue
                .on_event(EventResource::PersistentVolume, ActionType::Update);
        },
        move |_, v| d.cache.lock().set_volume(&v.name_any(), None),
    )));
    for mut rx in syncs {
        let _ = rx.wait_for(|s| *s).await;
    }
    Informers(tasks)
}

/// Keeps the cache's copy of one kind's pod selectors.
fn selectors<K>(
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    client: &Client,
    scheduler: &Arc<Scheduler>,
    kind: &'static str,
    selector: fn(&K) -> Option<serde_json::Value>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let s = scheduler.clone();
    let d = scheduler.clone();
    tasks.push(tokio::spawn(inform(
        Api::<K>::all(client.clone()),
        watcher::Config::default(),
        watch::channel(false).0,
        move |o: K| {
            let key = format!(
                "{kind}/{}/{}",
                o.namespace().unwrap_or_default(),
                o.name_any()
            );
            let ns = o.namespace().unwrap_or_default();
            s.cache
                .lock()
                .set_selector(&key, &ns, selector_from(selector(&o)));
        },
        move |k, _| {
            d.cache
                .lock()
                .set_selector(&format!("{kind}/{k}"), "", None)
        },
    )));
}
