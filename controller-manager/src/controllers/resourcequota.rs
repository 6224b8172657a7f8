//! The resource quota controller: keeps each ResourceQuota's status.hard equal to its
//! spec.hard and status.used equal to what the namespace holds: pods and their cpu/memory
//! requests and limits, services (and their node ports and load balancers), claims and
//! their storage, and object counts (`configmaps`, `secrets`, `count/deployments.apps`).
//! Enforcing the quota on create is the apiserver's admission; this controller only counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::quantity::Quantity;
use common::scheduling::resources;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, ResourceQuota, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

use crate::controllers::podutil;
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

/// The pod's request (or limit) of one resource as upstream's quota counts it: common's
/// PodRequests (sidecars, the init container peak, the overhead); for limits the overhead is
/// added only to a resource some container limits, as upstream's PodLimits.
fn pod_amount(pod: &Pod, limits: bool, resource: &str) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let amount = |q: Option<&ApiQuantity>| {
        q.and_then(|q| Quantity::parse(&q.0).ok()).map_or(0, |q| {
            if resource == "cpu" {
                q.milli_value()
            } else {
                q.value()
            }
        })
    };
    if !limits {
        return resources::pod_requests(
            spec,
            |c| {
                amount(
                    resources::container_requests(c)
                        .find_map(|(n, q)| (n == resource).then_some(q)),
                )
            },
            |o| amount(o.get(resource)),
        );
    }
    fn limit<'a>(c: &'a Container, resource: &str) -> Option<&'a ApiQuantity> {
        c.resources.as_ref()?.limits.as_ref()?.get(resource)
    }
    let total = resources::pod_requests(spec, |c| amount(limit(c, resource)), |_| 0);
    let limited = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| limit(c, resource).is_some());
    let overhead = spec.overhead.as_ref().filter(|_| limited);
    total + amount(overhead.and_then(|o| o.get(resource)))
}

/// A usage as a quantity string: cpu in millicores when fractional, bytes in binary units
/// when they divide evenly.
pub fn format_amount(resource: &str, v: i64) -> String {
    if resource.ends_with("cpu") {
        return if v % 1000 == 0 {
            (v / 1000).to_string()
        } else {
            format!("{v}m")
        };
    }
    if resource.ends_with("memory") || resource.ends_with("storage") {
        for (suffix, unit) in [
            ("Ti", 1i64 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if v != 0 && v % unit == 0 {
                return format!("{}{suffix}", v / unit);
            }
        }
    }
    v.to_string()
}

impl ResourceQuotaController {
    /// The namespace's usage of one quota resource name, or `None` if not counted here.
    async fn used(
        &self,
        ns: &str,
        name: &str,
        resources: &mut Option<Resources>,
    ) -> crate::Result<Option<i64>> {
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                !matches!(podutil::phase(p), "Succeeded" | "Failed")
                    && p.metadata.deletion_timestamp.is_none()
            })
            .collect();
        let sum =
            |limits: bool, r: &str| pods.iter().map(|p| pod_amount(p, limits, r)).sum::<i64>();
        let services = || self.services.list_namespace(ns);
        let used = match name {
            "pods" | "count/pods" => pods.len() as i64,
            "cpu" | "requests.cpu" => sum(false, "cpu"),
            "memory" | "requests.memory" => sum(false, "memory"),
            "ephemeral-storage" | "requests.ephemeral-storage" => sum(false, "ephemeral-storage"),
            "limits.cpu" => sum(true, "cpu"),
            "limits.memory" => sum(true, "memory"),
            "limits.ephemeral-storage" => sum(true, "ephemeral-storage"),
            "services" | "count/services" => services().len() as i64,
            "services.nodeports" => services()
                .iter()
                .filter(|s| {
                    matches!(
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()),
                        Some("NodePort" | "LoadBalancer")
                    )
                })
                .map(|s| {
                    s.spec
                        .as_ref()
                        .and_then(|s| s.ports.as_ref())
                        .map_or(0, |p| p.len() as i64)
                })
                .sum(),
            "services.loadbalancers" => services()
                .iter()
                .filter(|s| {
                    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                })
                .count() as i64,
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => {
                self.claims.list_namespace(ns).len() as i64
            }
            "requests.storage" => self
                .claims
                .list_namespace(ns)
                .iter()
                .filter_map(|c| {
                    c.spec
                        .as_ref()?
                        .resources
                        .as_ref()?
                        .requests
                        .as_ref()?
                        .get("storage")
                        .cloned()
                })
                .filter_map(|q| Quantity::parse(&q.0).ok())
                .map(|q| q.value())
                .sum(),
            other => {
                // Object counts of any kind: "configmaps", "secrets", "count/deployments.apps".
                let plural_group = other.strip_prefix("count/").unwrap_or(other);
                let (plural, group) = plural_group.split_once('.').unwrap_or((plural_group, ""));
                if other == plural_group
                    && !matches!(
                        plural,
                        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
                    )
                {
                    return Ok(None);
                }
                if resources.is_none() {
                    *resources = Some(Resources::discover(&self.client).await?);
                }
                let Some(served) = resources.as_ref().and_then(|r| {
                    r.all.iter().find(|s| {
                        s.resource.plural == plural && s.resource.group == group && s.namespaced()
                    })
                }) else {
                    return Ok(None);
                };
                served
                    .api(&self.client, ns)
                    .list(&ListParams::default())
                    .await?
                    .items
                    .len() as i64
            }
        };
        Ok(Some(used))
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
        let mut used = BTreeMap::new();
        let mut resources = None;
        for name in hard.keys() {
            if let Some(v) = self.used(&ns, name, &mut resources).await? {
                used.insert(name.clone(), ApiQuantity(format_amount(name, v)));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_is_summed_as_upstream_counts_it() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}]}}))
        .unwrap();
        assert_eq!(
            pod_amount(&pod, false, "cpu"),
            2000,
            "the init container needs more"
        );
        assert_eq!(pod_amount(&pod, false, "memory"), 128 << 20);
        assert_eq!(pod_amount(&pod, true, "memory"), 128 << 20);
        // A sidecar runs beside the containers; the overhead counts, for limits only where set.
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "s", "restartPolicy": "Always",
                                "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}],
            "overhead": {"cpu": "100m", "memory": "10Mi"}}}))
        .unwrap();
        assert_eq!(pod_amount(&pod, false, "cpu"), 2100);
        assert_eq!(pod_amount(&pod, true, "cpu"), 3100);
        assert_eq!(pod_amount(&pod, false, "memory"), 10 << 20);
        assert_eq!(pod_amount(&pod, true, "memory"), 0);
        assert_eq!(format_amount("requests.cpu", 750), "750m");
        assert_eq!(format_amount("limits.cpu", 2000), "2");
        assert_eq!(format_amount("requests.memory", 128 << 20), "128Mi");
        assert_eq!(format_amount("requests.memory", 1000), "1000");
        assert_eq!(format_amount("pods", 3), "3");
    }
}
