//! The disruption controller: keeps each PodDisruptionBudget's status, the numbers the
//! eviction API and `kubectl drain` decide by: how many selected pods are healthy, how many
//! must stay healthy (minAvailable, or the expected count less maxUnavailable, where the
//! expected count comes from the pods' controllers' replicas), and how many may go now.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use common::selector::LabelSelector;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::controllers::deployment::util::scaled;
use crate::controllers::podutil;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};

pub struct DisruptionController {
    client: kube::Client,
    pdbs: Arc<Informer<PodDisruptionBudget>>,
    pods: Arc<Informer<Pod>>,
    replicasets: Arc<Informer<ReplicaSet>>,
    deployments: Arc<Informer<Deployment>>,
    statefulsets: Arc<Informer<StatefulSet>>,
    rcs: Arc<Informer<ReplicationController>>,
    recorder: Arc<Recorder>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(DisruptionController {
        client: ctx.client.clone(),
        pdbs: ctx.informers.get::<PodDisruptionBudget>(),
        pods: ctx.informers.get::<Pod>(),
        replicasets: ctx.informers.get::<ReplicaSet>(),
        deployments: ctx.informers.get::<Deployment>(),
        statefulsets: ctx.informers.get::<StatefulSet>(),
        rcs: ctx.informers.get::<ReplicationController>(),
        recorder: ctx.recorder("controllermanager"),
    });
    let queue = WorkQueue::new("disruption");
    let q = queue.clone();
    c.pdbs.on_change(move |change| {
        if let Change::Added(p) | Change::Updated { new: p, .. } = change {
            q.add(key_of(p.as_ref()));
        }
    });
    let (q, pdbs) = (queue.clone(), c.pdbs.clone());
    c.pods.on_change(move |change| {
        let (Change::Added(p) | Change::Deleted(p) | Change::Updated { new: p, .. }) = change;
        let labels = p.metadata.labels.clone().unwrap_or_default();
        for pdb in pdbs.list_namespace(p.metadata.namespace.as_deref().unwrap_or("")) {
            if selector(&pdb).is_some_and(|s| s.matches_map(&labels)) {
                q.add(key_of(&*pdb));
            }
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 2))
}

fn selector(pdb: &PodDisruptionBudget) -> Option<LabelSelector> {
    let v = serde_json::to_value(pdb.spec.as_ref()?.selector.as_ref()?).ok()?;
    LabelSelector::from_label_selector_json(&v).ok()
}

/// (desiredHealthy, expectedPods) for a budget, given the selected pods and a way to find
/// each pod's controller's scale; an error names a pod without a controller when the
/// budget needs the expected count.
pub fn desired(
    min_available: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    pods: usize,
    expected: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    match (min_available, max_unavailable) {
        (Some(IntOrString::Int(n)), _) => Ok((*n, pods as i32)),
        (Some(v @ IntOrString::String(_)), _) => {
            let e = expected()?;
            Ok((scaled(Some(v), e, true), e))
        }
        (None, Some(v)) => {
            let e = expected()?;
            Ok(((e - scaled(Some(v), e, true)).max(0), e))
        }
        (None, None) => Ok((0, pods as i32)),
    }
}

impl DisruptionController {
    /// The summed replicas of the controllers of `pods` (a Deployment's, through its
    /// ReplicaSet), each controller counted once.
    fn expected_count(&self, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, String> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        for p in pods {
            let r = podutil::controller_ref(&p.metadata)
                .ok_or_else(|| format!("found no controllers for pod {:?}", p.name_any()))?;
            let scale = match r.kind.as_str() {
                "ReplicaSet" => {
                    let rs = self.replicasets.get_in(ns, &r.name);
                    let deploy = rs
                        .as_ref()
                        .and_then(|rs| podutil::controller_ref(&rs.metadata).cloned())
                        .filter(|d| d.kind == "Deployment")
                        .and_then(|d| self.deployments.get_in(ns, &d.name));
                    match (deploy, rs) {
                        (Some(d), _) => Some((
                            d.metadata.uid.clone().unwrap_or_default(),
                            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        )),
                        (None, Some(rs)) => Some((
                            rs.metadata.uid.clone().unwrap_or_default(),
                            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        )),
                        _ => None,
                    }
                }
                "StatefulSet" => self.statefulsets.get_in(ns, &r.name).map(|s| {
                    (
                        r.uid.clone(),
                        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
                "ReplicationController" => self.rcs.get_in(ns, &r.name).map(|s| {
                    (
                        r.uid.clone(),
                        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
                _ => None,
            };
            let (uid, n) =
                scale.ok_or_else(|| format!("found no controllers for pod {:?}", p.name_any()))?;
            scales.insert(uid, n);
        }
        Ok(scales.values().sum())
    }
}

fn condition(
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    old: Option<&Condition>,
) -> Condition {
    let transition =
        old.filter(|o| o.status == status)
            .map(|o| o.last_transition_time.clone())
            .unwrap_or_else(|| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                )
            });
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: transition,
    }
}

#[async_trait]
impl Reconcile for DisruptionController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(pdb) = self.pdbs.get(key) else {
            return Ok(None);
        };
        let ns = pdb.namespace().unwrap_or_default();
        let sel = selector(&pdb);
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && sel.as_ref().is_some_and(|s| {
                        s.matches_map(&p.metadata.labels.clone().unwrap_or_default())
                    })
            })
            .collect();
        let spec = pdb.spec.clone().unwrap_or_default();
        let generation = pdb.metadata.generation;
        let old = pdb.status.clone().unwrap_or_default();
        let old_cond = old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "DisruptionAllowed")
            .cloned();
        let healthy = pods.iter().filter(|p| podutil::is_ready(p)).count() as i32;
        let mut status = PodDisruptionBudgetStatus {
            current_healthy: healthy,
            observed_generation: generation,
            disrupted_pods: old.disrupted_pods.clone(),
            ..Default::default()
        };
        match desired(
            spec.min_available.as_ref(),
            spec.max_unavailable.as_ref(),
            pods.len(),
            || self.expected_count(&ns, &pods),
        ) {
            Ok((desired_healthy, expected)) => {
                status.desired_healthy = desired_healthy;
                status.expected_pods = expected;
                status.disruptions_allowed = (healthy - desired_healthy).max(0);
                let c = if status.disruptions_allowed > 0 {
                    condition("True", "SufficientPods", "", generation, old_cond.as_ref())
                } else {
                    condition(
                        "False",
                        "InsufficientPods",
                        "",
                        generation,
                        old_cond.as_ref(),
                    )
                };
                status.conditions = Some(vec![c]);
            }
            Err(msg) => {
                self.recorder.warning(
                    &Involved::of(&*pdb),
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {msg}"),
                );
                status.conditions = Some(vec![condition(
                    "False",
                    "SyncFailed",
                    &msg,
                    generation,
                    old_cond.as_ref(),
                )]);
            }
        }
        if pdb.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &ns);
        api.replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_healthy_from_min_available_or_max_unavailable() {
        let int = |n| IntOrString::Int(n);
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(
            desired(Some(&int(2)), None, 5, || unreachable!()),
            Ok((2, 5))
        );
        assert_eq!(
            desired(Some(&pct("50%")), None, 5, || Ok(5)),
            Ok((3, 5)),
            "rounded up"
        );
        assert_eq!(desired(None, Some(&int(1)), 4, || Ok(4)), Ok((3, 4)));
        assert_eq!(
            desired(None, Some(&pct("30%")), 10, || Ok(10)),
            Ok((7, 10)),
            "unavailable rounds up"
        );
        assert!(
            desired(None, Some(&int(1)), 1, || Err(
                "found no controllers for pod \"x\"".into()
            ))
            .is_err()
        );
    }
}
