//! The ReplicaSet controller (and the ReplicationController manager, the same logic over
//! the older kind): keeps `spec.replicas` active pods matching the selector, adopting
//! orphans and releasing pods that stopped matching, and reports the counts in status.

pub mod logic;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::selector::LabelSelector;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::controllers::podutil::{self, Claim};
use crate::runtime::expectations::Expectations;
use crate::runtime::informer::Object;
use crate::runtime::pod_control::{PodControl, pod_from_template};
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};
use common::api_errors::is_not_found;

/// The kinds this controller manages.
pub trait Replicated: Object + Resource<Scope = k8s_openapi::NamespaceResourceScope> {
    /// The name events are reported under.
    const COMPONENT: &'static str;
    /// The work queue's name (upstream's, for metrics).
    const QUEUE: &'static str;
    fn replicas(&self) -> i32;
    /// None when missing or invalid: such an owner selects no pod.
    fn selector(&self) -> Option<LabelSelector>;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
    /// (replicas, fullyLabeled, ready, available, observedGeneration, has ReplicaFailure)
    fn status_summary(&self) -> (logic::Counts, i64, bool);
}

/// The counts, observedGeneration and ReplicaFailure presence of a ReplicaSet's or
/// ReplicationController's status (the two kinds share these field names).
fn summarize<S: serde::Serialize>(status: Option<&S>) -> (logic::Counts, i64, bool) {
    let v = status
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    let int = |k: &str| v[k].as_i64().unwrap_or(0);
    let failure = v["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "ReplicaFailure"));
    let counts = logic::Counts {
        replicas: int("replicas") as i32,
        fully_labeled: int("fullyLabeledReplicas") as i32,
        ready: int("readyReplicas") as i32,
        available: int("availableReplicas") as i32,
    };
    (counts, int("observedGeneration"), failure)
}

fn selector_of(v: Option<serde_json::Value>) -> Option<LabelSelector> {
    LabelSelector::from_label_selector_json(&v?).ok()
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    const QUEUE: &'static str = "replicaset";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> Option<LabelSelector> {
        selector_of(
            self.spec
                .as_ref()
                .and_then(|s| serde_json::to_value(&s.selector).ok()),
        )
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_summary(&self) -> (logic::Counts, i64, bool) {
        summarize(self.status.as_ref())
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    const QUEUE: &'static str = "replicationmanager";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> Option<LabelSelector> {
        let labels = self
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| self.template()?.metadata.as_ref()?.labels.clone());
        selector_of(labels.map(|m| json!({ "matchLabels": m })))
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_summary(&self) -> (logic::Counts, i64, bool) {
        summarize(self.status.as_ref())
    }
}

/// The controller for kind `K`.
pub struct ReplicaSetController<K: Replicated> {
    client: kube::Client,
    owners: Arc<Informer<K>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    pod_control: PodControl,
    burst_replicas: usize,
    _kind: PhantomData<K>,
}

/// Starts the ReplicaSet controller; the returned future runs its workers.
pub fn start_replicaset(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    start::<ReplicaSet>(ctx, ctx.options.concurrent_replicaset_syncs)
}

/// Starts the ReplicationController manager.
pub fn start_replicationcontroller(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    start::<ReplicationController>(ctx, ctx.options.concurrent_rc_syncs)
}

fn start<K: Replicated>(ctx: &Context, workers: usize) -> crate::Result<BoxFuture<'static, ()>> {
    let expectations: Arc<Expectations> = Arc::default();
    let c = Arc::new(ReplicaSetController::<K> {
        client: ctx.client.clone(),
        owners: ctx.informers.get::<K>(),
        pods: ctx.informers.get::<Pod>(),
        queue: WorkQueue::new(K::QUEUE),
        expectations: expectations.clone(),
        pod_control: PodControl::new(ctx.client.clone(), ctx.recorder(K::COMPONENT), expectations),
        burst_replicas: ctx.options.burst_replicas,
        _kind: PhantomData,
    });
    c.queue.follow(&c.owners);
    let me = c.clone();
    c.pods.on_change(move |change| me.on_pod(change));
    Ok(crate::runtime::run_workers(c.queue.clone(), c, workers))
}

impl<K: Replicated> ReplicaSetController<K> {
    /// The key of the owner of kind `K` that `pod`'s controller reference names, if cached.
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        podutil::resolve_controller_ref(&self.owners, &pod.metadata).map(|o| key_of(&*o))
    }

    /// Queues every owner in the pod's namespace whose selector matches it (for adoption).
    fn queue_matching_owners(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for o in self.owners.list_namespace(ns) {
            if o.selector().is_some_and(|s| s.matches_map(&labels)) {
                self.queue.add(key_of(&*o));
            }
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(key) = self.owner_key(pod) {
            self.expectations
                .deletion_observed(&key, pod.metadata.uid.as_deref().unwrap_or(""));
            self.queue.add(key);
        }
    }

    fn on_pod(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(pod);
                }
                match self.owner_key(pod) {
                    Some(key) => {
                        self.expectations.creation_observed(&key);
                        self.queue.add(key);
                    }
                    None if podutil::controller_ref(&pod.metadata).is_none() => {
                        self.queue_matching_owners(pod)
                    }
                    None => {}
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some() {
                    self.pod_deleted(new);
                    if labels_changed {
                        self.pod_deleted(old);
                    }
                    return;
                }
                let old_key = self.owner_key(old);
                let new_key = self.owner_key(new);
                if old_key != new_key
                    && let Some(k) = old_key
                {
                    self.queue.add(k);
                }
                match new_key {
                    Some(key) => {
                        // A pod that just turned ready becomes available minReadySeconds
                        // later: look again then.
                        if let Some(owner) = self.owners.get(&key) {
                            let min_ready = owner.min_ready_seconds();
                            if min_ready > 0 && !podutil::is_ready(old) && podutil::is_ready(new) {
                                self.queue.add_after(
                                    key.clone(),
                                    Duration::from_secs(min_ready as u64 + 1),
                                );
                            }
                        }
                        self.queue.add(key);
                    }
                    None if podutil::controller_ref(&new.metadata).is_none()
                        && (labels_changed || podutil::controller_ref(&old.metadata).is_some()) =>
                    {
                        self.queue_matching_owners(new)
                    }
                    None => {}
                }
            }
            Change::Deleted(pod) => self.pod_deleted(pod),
        }
    }

    fn pods_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Adopts and releases as `podutil::claim` decides; answers the pods the owner counts.
    async fn claim_pods(&self, owner: &K, candidates: Vec<Arc<Pod>>) -> Vec<Arc<Pod>> {
        let uid = owner.meta().uid.clone().unwrap_or_default();
        let deleting = owner.meta().deletion_timestamp.is_some();
        let selector = owner.selector();
        let mut claimed = Vec::with_capacity(candidates.len());
        for pod in candidates {
            match podutil::claim(&uid, deleting, selector.as_ref(), &pod) {
                Claim::Keep => claimed.push(pod),
                Claim::Ignore => {}
                Claim::Adopt => {
                    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
                    refs.push(podutil::owner_ref_to(owner));
                    if self.patch_owner_refs(&pod, refs).await {
                        claimed.push(pod);
                    }
                }
                Claim::Release => {
                    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
                    refs.retain(|r| r.uid != uid);
                    self.patch_owner_refs(&pod, refs).await;
                }
            }
        }
        claimed
    }

    /// Sets the pod's owner references, guarded by its resourceVersion.
    async fn patch_owner_refs(
        &self,
        pod: &Pod,
        refs: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    ) -> bool {
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": pod.metadata.resource_version,
        }});
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        match self
            .pods_api(ns)
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(pod = %pod.name_any(), error = %e, "changing owner references failed");
                false
            }
        }
    }

    /// Creates or deletes pods to reach spec.replicas.
    async fn manage_replicas(&self, key: &str, owner: &K, pods: &[Arc<Pod>]) -> crate::Result<()> {
        let want = owner.replicas().max(0) as usize;
        if pods.len() < want {
            let diff = (want - pods.len()).min(self.burst_replicas);
            let template = owner
                .template()
                .ok_or_else(|| crate::Error::Invalid("the pod template is missing".into()))?;
            let pod = pod_from_template(owner, template);
            self.pod_control
                .create_pods(key, owner, vec![pod; diff])
                .await?;
        } else if pods.len() > want {
            let diff = (pods.len() - want).min(self.burst_replicas);
            let mut ranked = pods.to_vec();
            let related = self.related_pods(owner);
            logic::order_for_deletion(&mut ranked, &related);
            ranked.truncate(diff);
            self.pod_control.delete_pods(key, owner, &ranked).await?;
        }
        Ok(())
    }

    /// Active pods of every owner of this kind that shares the owner's controller (the
    /// sibling ReplicaSets of one Deployment), for the doubled-up ranking.
    fn related_pods(&self, owner: &K) -> Vec<Arc<Pod>> {
        let ns = owner.namespace().unwrap_or_default();
        let parent = podutil::controller_ref(owner.meta()).map(|r| r.uid.clone());
        let mut uids: Vec<String> = vec![owner.meta().uid.clone().unwrap_or_default()];
        if let Some(parent) = parent {
            for o in self.owners.list_namespace(&ns) {
                if podutil::controller_ref(o.meta()).is_some_and(|r| r.uid == parent) {
                    uids.push(o.meta().uid.clone().unwrap_or_default());
                }
            }
        }
        self.pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| {
                podutil::is_active(p)
                    && podutil::controller_ref(&p.metadata).is_some_and(|r| uids.contains(&r.uid))
            })
            .collect()
    }

    async fn update_status(
        &self,
        owner: &K,
        counts: &logic::Counts,
        failure: Option<(&str, String)>,
    ) -> crate::Result<()> {
        let generation = owner.meta().generation.unwrap_or(0);
        let (current, observed, has_failure) = owner.status_summary();
        if current == *counts && observed == generation && has_failure == failure.is_some() {
            return Ok(());
        }
        let nonzero = |n: i32| if n == 0 { json!(null) } else { json!(n) };
        let conditions = match &failure {
            Some((reason, message)) => json!([{
                "type": "ReplicaFailure", "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }]),
            None => json!(null),
        };
        let patch = json!({"status": {
            "replicas": counts.replicas,
            "fullyLabeledReplicas": nonzero(counts.fully_labeled),
            "readyReplicas": nonzero(counts.ready),
            "availableReplicas": nonzero(counts.available),
            "observedGeneration": generation,
            "conditions": conditions,
        }});
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &owner.namespace().unwrap_or_default());
        match api
            .patch_status(
                &owner.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl<K: Replicated> Reconcile for ReplicaSetController<K> {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(owner) = self.owners.get(key) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let needs_sync =
            self.expectations.satisfied(key) && owner.meta().deletion_timestamp.is_none();
        let ns = owner.namespace().unwrap_or_default();
        let active: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| podutil::is_active(p))
            .collect();
        let pods = self.claim_pods(&owner, active).await;
        let manage = if needs_sync {
            self.manage_replicas(key, &owner, &pods).await
        } else {
            Ok(())
        };
        let template_labels: BTreeMap<String, String> = owner
            .template()
            .and_then(|t| t.metadata.as_ref()?.labels.clone())
            .unwrap_or_default();
        let min_ready = owner.min_ready_seconds();
        let counts = logic::count(&pods, &template_labels, min_ready, chrono::Utc::now());
        let failure = manage.as_ref().err().map(|e| {
            let reason = if pods.len() < owner.replicas().max(0) as usize {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            (reason, format!("{e:#}"))
        });
        self.update_status(&owner, &counts, failure).await?;
        manage?;
        if min_ready > 0 && counts.ready != counts.available {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }
}
