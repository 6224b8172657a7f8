//! The pvc-protection and pv-protection controllers: a claim still used by a pod, or a volume
//! still bound to a claim, keeps its protection finalizer when deleted, so its data is not
//! removed from under a running pod; the finalizer goes once nothing uses it. Objects missing
//! the finalizer (created while the StorageObjectInUseProtection admission plugin was off)
//! get it.

use std::sync::Arc;

use async_trait::async_trait;
use common::api_errors::{is_conflict, is_not_found};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::controllers::podutil;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};

pub const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_FINALIZER: &str = "kubernetes.io/pv-protection";

pub struct PvcProtection {
    client: kube::Client,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    pods: Arc<Informer<Pod>>,
}

/// Starts the pvc-protection controller (keyed by claim).
pub fn start_pvc(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(PvcProtection {
        client: ctx.client.clone(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        pods: ctx.informers.get::<Pod>(),
    });
    let queue = WorkQueue::new("pvcprotection");
    queue.follow_live(&c.claims, |_| true);
    // A pod that finishes or goes away may free the claims it used.
    let q = queue.clone();
    c.pods.on_change(move |change| {
        let pod = match change {
            Change::Deleted(p) | Change::Updated { new: p, .. } => p,
            Change::Added(_) => return,
        };
        let namespace = pod.namespace().unwrap_or_default();
        for claim in claims_of(pod) {
            q.add(format!("{namespace}/{claim}"));
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 1))
}

/// The claims a pod's volumes name: persistentVolumeClaim sources and the claims of its
/// generic ephemeral volumes (`<pod>-<volume>`).
fn claims_of(pod: &Pod) -> Vec<String> {
    let name = pod.name_any();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(source) = &v.persistent_volume_claim {
                Some(source.claim_name.clone())
            } else {
                v.ephemeral.as_ref().map(|_| format!("{name}-{}", v.name))
            }
        })
        .collect()
}

/// Whether a pod still holds the claim: it names it and has not finished.
fn uses(pod: &Pod, claim: &str) -> bool {
    !matches!(podutil::phase(pod), "Succeeded" | "Failed")
        && claims_of(pod).iter().any(|c| c == claim)
}

#[async_trait]
impl Reconcile for PvcProtection {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(claim) = self.claims.get(key) else {
            return Ok(None);
        };
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let has = claim.finalizers().iter().any(|f| f == PVC_FINALIZER);
        let deleting = claim.meta().deletion_timestamp.is_some();
        let want = !deleting
            || self
                .pods
                .list_namespace(&namespace)
                .iter()
                .any(|p| uses(p, &name));
        if has == want {
            return Ok(None);
        }
        // The pod informer may not have seen a pod created a moment ago: before letting the
        // claim go, ask the apiserver, as upstream does.
        if !want {
            let live: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            if live
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|p| uses(p, &name))
            {
                return Ok(None);
            }
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        set_finalizer(&api, &claim, PVC_FINALIZER, want).await
    }
}

pub struct PvProtection {
    client: kube::Client,
    volumes: Arc<Informer<PersistentVolume>>,
}

/// Starts the pv-protection controller (keyed by volume).
pub fn start_pv(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(PvProtection {
        client: ctx.client.clone(),
        volumes: ctx.informers.get::<PersistentVolume>(),
    });
    let queue = WorkQueue::new("pvprotection");
    queue.follow_live(&c.volumes, |_| true);
    Ok(crate::runtime::run_workers(queue, c, 1))
}

#[async_trait]
impl Reconcile for PvProtection {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(volume) = self.volumes.get(key) else {
            return Ok(None);
        };
        let has = volume.finalizers().iter().any(|f| f == PV_FINALIZER);
        let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let want = volume.meta().deletion_timestamp.is_none() || bound;
        if has == want {
            return Ok(None);
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        set_finalizer(&api, &volume, PV_FINALIZER, want).await
    }
}

/// Adds or removes `finalizer` with an update at the object's resourceVersion; a conflict or
/// a vanished object waits for the informer's next word.
async fn set_finalizer<K>(
    api: &Api<K>,
    current: &K,
    finalizer: &str,
    want: bool,
) -> crate::Result<Requeue>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut updated = current.clone();
    let finalizers = updated.finalizers_mut();
    if want {
        finalizers.push(finalizer.to_owned());
    } else {
        finalizers.retain(|f| f != finalizer);
    }
    tracing::debug!(object = %key_of(current), finalizer, want, "protection finalizer");
    match api
        .replace(&current.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(None),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
