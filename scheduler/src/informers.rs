//! Feeds the scheduler from the API through `common::informer`: pods, nodes, namespaces,
//! PodDisruptionBudgets for preemption, claims and volumes for VolumeBinding, and the
//! Services and workloads whose selectors PodTopologySpread's default constraints use.

use std::sync::Arc;

use crate::cache::Pdb;
use crate::framework::{ActionType, EventResource};
use crate::scheduler::Scheduler;
use common::informer::{Change, Informer, Object, Running, key_of};
use common::selector::LabelSelector;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

/// Starts every informer; resolves once pods and nodes have been listed. Dropping the
/// answer stops them.
pub async fn start(client: Client, scheduler: Arc<Scheduler>) -> Running {
    let mut running = Running::default();
    let s = scheduler.clone();
    let nodes = watch::<Node>(
        &client,
        watcher::Config::default(),
        &mut running,
        move |c| match c {
            Change::Added(n) | Change::Updated { new: n, .. } => s.on_node(Arc::clone(n)),
            Change::Deleted(n) => s.on_node_deleted(&n.name_any()),
        },
    );
    let s = scheduler.clone();
    // Pods that finished hold nothing; the scheduler never needs them.
    let pods_config = watcher::Config::default()
        .fields("status.phase!=Succeeded,status.phase!=Failed")
        .page_size(5000);
    let pods = watch::<Pod>(&client, pods_config, &mut running, move |c| match c {
        Change::Added(p) => s.on_pod(Arc::clone(p)),
        Change::Updated { old, new } => {
            // Replaced by a pod of the same name while the watch was lost.
            if old.uid() != new.uid() {
                s.on_pod_deleted(&old.uid().unwrap_or_default());
            }
            s.on_pod(Arc::clone(new))
        }
        Change::Deleted(p) => s.on_pod_deleted(&p.uid().unwrap_or_default()),
    });
    let s = scheduler.clone();
    watch::<Namespace>(
        &client,
        watcher::Config::default(),
        &mut running,
        move |c| {
            let name = c.object().name_any();
            let labels = match c {
                Change::Deleted(_) => None,
                _ => Some(Arc::new(c.object().labels().clone())),
            };
            s.cache.lock().set_namespace(&name, labels);
            s.queue
                .on_event(EventResource::Namespace, ActionType::Update);
        },
    );
    let s = scheduler.clone();
    watch::<PodDisruptionBudget>(
        &client,
        watcher::Config::default(),
        &mut running,
        move |c| {
            let pdb = c.object();
            let value = match c {
                Change::Deleted(_) => None,
                _ => Some(pdb_of(pdb)),
            };
            s.cache.lock().set_pdb(&key_of(pdb.as_ref()), value);
        },
    );
    let s = scheduler.clone();
    watch::<PersistentVolumeClaim>(
        &client,
        watcher::Config::default(),
        &mut running,
        move |c| {
            let claim = c.object();
            let value = match c {
                Change::Deleted(_) => None,
                _ => Some(Arc::clone(claim)),
            };
            s.cache.lock().set_claim(&key_of(claim.as_ref()), value);
            s.queue
                .on_event(EventResource::PersistentVolumeClaim, ActionType::Update);
        },
    );
    let s = scheduler.clone();
    watch::<PersistentVolume>(
        &client,
        watcher::Config::default(),
        &mut running,
        move |c| {
            let volume = c.object();
            let value = match c {
                Change::Deleted(_) => None,
                _ => Some(Arc::clone(volume)),
            };
            s.cache.lock().set_volume(&volume.name_any(), value);
            s.queue
                .on_event(EventResource::PersistentVolume, ActionType::Update);
        },
    );
    selectors::<Service>(&client, &scheduler, &mut running, |s| {
        let labels = s.spec.as_ref()?.selector.as_ref()?;
        Some(serde_json::json!({ "matchLabels": labels }))
    });
    selectors::<ReplicationController>(&client, &scheduler, &mut running, |rc| {
        let labels = rc.spec.as_ref()?.selector.as_ref()?;
        Some(serde_json::json!({ "matchLabels": labels }))
    });
    selectors::<ReplicaSet>(&client, &scheduler, &mut running, |rs| {
        serde_json::to_value(&rs.spec.as_ref()?.selector).ok()
    });
    selectors::<StatefulSet>(&client, &scheduler, &mut running, |ss| {
        serde_json::to_value(&ss.spec.as_ref()?.selector).ok()
    });
    nodes.wait_for_sync().await;
    pods.wait_for_sync().await;
    running
}

/// Starts an informer of `K` with one handler.
fn watch<K>(
    client: &Client,
    config: watcher::Config,
    running: &mut Running,
    handler: impl Fn(&Change<'_, K>) + Send + Sync + 'static,
) -> Arc<Informer<K>>
where
    K: Object + Resource<DynamicType = ()>,
{
    let informer = Informer::<K>::new();
    informer.on_change(handler);
    running.join(informer.spawn(Api::all(client.clone()), config));
    informer
}

/// What preemption needs of a PodDisruptionBudget.
fn pdb_of(pdb: &PodDisruptionBudget) -> Pdb {
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|sel| serde_json::to_value(sel).ok())
        .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
        .unwrap_or_default();
    let status = pdb.status.as_ref();
    Pdb {
        namespace: pdb.namespace().unwrap_or_default(),
        selector,
        disruptions_allowed: status.map_or(0, |s| s.disruptions_allowed),
        disrupted_pods: status
            .and_then(|s| s.disrupted_pods.as_ref())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// Keeps the cache's copy of one kind's pod selectors, under "<Kind>/<namespace>/<name>".
fn selectors<K>(
    client: &Client,
    scheduler: &Arc<Scheduler>,
    running: &mut Running,
    selector: fn(&K) -> Option<serde_json::Value>,
) where
    K: Object + Resource<DynamicType = ()>,
{
    let s = scheduler.clone();
    watch::<K>(client, watcher::Config::default(), running, move |c| {
        let o = c.object();
        let key = format!("{}/{}", K::kind(&()), key_of(o.as_ref()));
        let value = match c {
            Change::Deleted(_) => None,
            _ => selector(o)
                .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
                .filter(|s| !s.is_everything()),
        };
        s.cache
            .lock()
            .set_selector(&key, &o.namespace().unwrap_or_default(), value);
    });
}
