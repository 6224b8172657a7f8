//! Feeds the scheduler from the API: one kube-runtime watcher per kind (pods, nodes,
//! namespaces, and the Services and workloads whose selectors PodTopologySpread's default
//! constraints use). A watcher relists after it loses its watch; objects missing from the
//! relist are reported deleted, so the cache never keeps a pod that went away meanwhile.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use common::selector::LabelSelector;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
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

/// Starts every informer; resolves once pods and nodes have been listed.
pub async fn start(client: Client, scheduler: Arc<Scheduler>) {
    let mut syncs = Vec::new();
    let mut channel = || {
        let (tx, rx) = watch::channel(false);
        syncs.push(rx);
        tx
    };

    let s = scheduler.clone();
    let d = scheduler.clone();
    tokio::spawn(inform(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        channel(),
        move |n| s.on_node(Arc::new(n)),
        move |_, n| d.on_node_deleted(&n.name_any()),
    ));
    let s = scheduler.clone();
    let d = scheduler.clone();
    // Pods that finished hold nothing; the scheduler never needs them.
    tokio::spawn(inform(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed")
            .page_size(5000),
        channel(),
        move |p| s.on_pod(Arc::new(p)),
        move |_, p| d.on_pod_deleted(&p.uid().unwrap_or_default()),
    ));
    let s = scheduler.clone();
    let d = scheduler.clone();
    tokio::spawn(inform(
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
    ));
    selectors::<Service>(&client, &scheduler, "Service", |s| {
        s.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .map(|m| serde_json::json!({ "matchLabels": m }))
    });
    selectors::<ReplicationController>(&client, &scheduler, "ReplicationController", |rc| {
        rc.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .map(|m| serde_json::json!({ "matchLabels": m }))
    });
    selectors::<ReplicaSet>(&client, &scheduler, "ReplicaSet", |rs| {
        rs.spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.selector).ok())
    });
    selectors::<StatefulSet>(&client, &scheduler, "StatefulSet", |ss| {
        ss.spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.selector).ok())
    });
    for mut rx in syncs {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Keeps the cache's copy of one kind's pod selectors.
fn selectors<K>(
    client: &Client,
    scheduler: &Arc<Scheduler>,
    kind: &'static str,
    selector: fn(&K) -> Option<serde_json::Value>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let s = scheduler.clone();
    let d = scheduler.clone();
    tokio::spawn(inform(
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
    ));
}
