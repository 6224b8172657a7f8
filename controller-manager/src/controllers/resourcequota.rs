//! The resource quota controller: keeps each ResourceQuota's status.hard equal to its
//! spec.hard and status.used equal to what the namespace holds: pods and their cpu/memory
//! requests and limits, services (and their node ports and load balancers), claims and
//! their storage, and object counts (`configmaps`, `secrets`, `count/deployments.apps`).
//! What each object counts for is `common::quota`'s, shared with the apiserver's
//! ResourceQuota admission, which enforces the quota on create; this controller counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::quota::{self, Usage};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaSpec, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

use crate::runtime::discovery::Resources;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};

/// How often every quota is recounted regardless of events (upstream's default resync).
const FULL_RESYNC: Duration = Duration::from_secs(300);

pub struct ResourceQuotaController {
    client: kube::Client,
    quotas: Arc<Informer<ResourceQuota>>,
    pods: Arc<Informer<Pod>>,
    services: Arc<Informer<Service>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(ResourceQuotaController {
        client: ctx.client.clone(),
        quotas: ctx.informers.get::<ResourceQuota>(),
        pods: ctx.informers.get::<Pod>(),
        services: ctx.informers.get::<Service>(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
    });
    let queue = WorkQueue::new("resource_quota_primary");
    let q = queue.clone();
    c.quotas.on_change(move |change| {
        if let Change::Added(rq) | Change::Updated { new: rq, .. } = change {
            q.add(key_of(rq.as_ref()));
        }
    });
    // Anything counted changing in a namespace recounts that namespace's quotas.
    fn recount<K: kube::Resource>(
        quotas: &Arc<Informer<ResourceQuota>>,
        queue: &Arc<WorkQueue>,
        o: &K,
    ) {
        for rq in quotas.list_namespace(o.meta().namespace.as_deref().unwrap_or("")) {
            queue.add(key_of(&*rq));
        }
    }
    let (q, quotas) = (queue.clone(), c.quotas.clone());
    c.pods.on_change(move |ch| {
        let (Change::Added(o) | Change::Deleted(o) | Change::Updated { new: o, .. }) = ch;
        recount(&quotas, &q, o.as_ref())
    });
    let (q, quotas) = (queue.clone(), c.quotas.clone());
    c.services.on_change(move |ch| {
        let (Change::Added(o) | Change::Deleted(o) | Change::Updated { new: o, .. }) = ch;
        recount(&quotas, &q, o.as_ref())
    });
    let (q, quotas) = (queue.clone(), c.quotas.clone());
    c.claims.on_change(move |ch| {
        let (Change::Added(o) | Change::Deleted(o) | Change::Updated { new: o, .. }) = ch;
        recount(&quotas, &q, o.as_ref())
    });
    let workers = crate::runtime::run_workers(queue.clone(), c.clone(), 5);
    Ok(Box::pin(async move {
        let resync = async {
            let mut tick = tokio::time::interval(FULL_RESYNC);
            loop {
                tick.tick().await;
                for rq in c.quotas.list() {
                    queue.add(key_of(&*rq));
                }
            }
        };
        tokio::join!(workers, resync);
    }))
}

impl ResourceQuotaController {
    /// What the namespace holds of each name in `hard`, as the quota with `spec` counts it
    /// (its scopes select the pods; a scoped quota counts nothing else). Names of kinds no
    /// server serves are left out.
    async fn used(
        &self,
        ns: &str,
        spec: &ResourceQuotaSpec,
        hard: &BTreeMap<String, ApiQuantity>,
    ) -> crate::Result<Usage> {
        let mut total = Usage::new();
        for pod in self.pods.list_namespace(ns) {
            // A finished pod still counts in count/pods, as upstream's.
            if quota::quota_matches_pod(spec, &pod) {
                quota::add(&mut total, &quota::pod_usage(&pod));
            }
        }
        let mut counted: Vec<&str> = vec!["pods", "count/pods"];
        if quota::quota_matches_other(spec) {
            for svc in self.services.list_namespace(ns) {
                quota::add(&mut total, &quota::service_usage(&svc));
            }
            for claim in self.claims.list_namespace(ns) {
                quota::add(&mut total, &quota::claim_usage(&claim));
            }
            counted.extend(["services", "count/services", "persistentvolumeclaims"]);
            counted.push("count/persistentvolumeclaims");
        }
        let mut resources: Option<Resources> = None;
        let mut used = Usage::new();
        for name in hard.keys() {
            if let Some(v) = total.get(name) {
                used.insert(name.clone(), *v);
                continue;
            }
            let tracked_by_evaluator = counted.contains(&name.as_str())
                || name.starts_with("requests.")
                || name.starts_with("limits.")
                || name.starts_with("services.")
                || name.starts_with("hugepages-")
                || name.contains(".storageclass.storage.k8s.io/")
                || matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage");
            if tracked_by_evaluator {
                used.insert(name.clone(), 0);
                continue;
            }
            if !quota::quota_matches_other(spec) {
                continue;
            }
            // Object counts of any other kind: "configmaps", "count/deployments.apps".
            let plural_group = name.strip_prefix("count/").unwrap_or(name);
            let (plural, group) = plural_group.split_once('.').unwrap_or((plural_group, ""));
            if !quota::object_count_usage(group, plural).contains_key(name) {
                continue;
            }
            if resources.is_none() {
                resources = Some(Resources::discover(&self.client).await?);
            }
            let Some(served) = resources.as_ref().and_then(|r| {
                r.all.iter().find(|s| {
                    s.resource.plural == plural && s.resource.group == group && s.namespaced()
                })
            }) else {
                continue;
            };
            let count = served
                .api(&self.client, ns)
                .list(&ListParams::default())
                .await?
                .items
                .len() as i64;
            used.insert(name.clone(), count);
        }
        Ok(used)
    }
}

#[async_trait]
impl Reconcile for ResourceQuotaController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(rq) = self.quotas.get(key) else {
            return Ok(None);
        };
        let ns = rq.namespace().unwrap_or_default();
        let hard: BTreeMap<String, ApiQuantity> = rq
            .spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default();
        let spec = rq.spec.clone().unwrap_or_default();
        let used = self
            .used(&ns, &spec, &hard)
            .await?
            .into_iter()
            .map(|(name, v)| {
                let q = ApiQuantity(quota::format_amount(&name, v));
                (name, q)
            })
            .collect();
        let status = k8s_openapi::api::core::v1::ResourceQuotaStatus {
            hard: Some(hard),
            used: Some(used),
        };
        if rq.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        let mut updated = (*rq).clone();
        updated.status = Some(status);
        let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), &ns);
        api.replace_status(&rq.name_any(), &PostParams::default(), &updated)
            .await?;
        Ok(None)
    }
}
