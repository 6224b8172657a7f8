//! Pod and owner-reference helpers the controllers share (upstream's podutil and
//! controller_ref_manager helpers).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::selector::LabelSelector;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;

use crate::runtime::Informer;
use crate::runtime::informer::Object;

/// A pod still counted by its controller: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's Ready condition, if it has one.
fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// An API time as a chrono time (k8s-openapi carries jiff timestamps).
pub fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod became ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(to_chrono)
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's IsPodAvailable).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod).is_some_and(|t| t + chrono::Duration::seconds(min_ready_seconds.into()) <= now)
}

/// The owner reference with controller=true, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The cached owner of kind `K` that `meta`'s controller reference names, if its uid is
/// the one referenced (upstream's resolveControllerRef): not a namesake that replaced it.
pub fn resolve_controller_ref<K: Object>(
    owners: &Informer<K>,
    meta: &ObjectMeta,
) -> Option<Arc<K>> {
    let r = controller_ref(meta)?;
    if r.kind != K::kind(&()) {
        return None;
    }
    let owner = owners.get_in(meta.namespace.as_deref().unwrap_or(""), &r.name)?;
    (owner.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(owner)
}

/// A controller reference to `owner` (controller and blockOwnerDeletion set), as the
/// workload controllers put on what they create.
pub fn owner_ref_to<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What an owner does with a pod it sees (upstream's ControllerRefManager.ClaimPods).
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours and matching: count it.
    Keep,
    /// Matching orphan: take it (set our controller reference).
    Adopt,
    /// Ours but no longer matching: let go of it.
    Release,
    /// Someone else's, or not matching.
    Ignore,
}

/// Whether an owner of uid `owner_uid` (being deleted or not) whose selector is `selector`
/// keeps, adopts, releases or ignores `pod`.
pub fn claim(
    owner_uid: &str,
    owner_deleting: bool,
    selector: Option<&LabelSelector>,
    pod: &Pod,
) -> Claim {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let matches = selector.is_some_and(|s| s.matches_map(&labels));
    match controller_ref(&pod.metadata) {
        Some(r) if r.uid == owner_uid => {
            if matches || owner_deleting {
                Claim::Keep
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None => {
            if matches && !owner_deleting && pod.metadata.deletion_timestamp.is_none() {
                Claim::Adopt
            } else {
                Claim::Ignore
            }
        }
    }
}

/// The highest restart count among the pod's containers.
pub fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// The pod's phase, "" when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The pod informer's index by spec.nodeName (see `index_by_node`).
pub const BY_NODE: &str = "spec.nodeName";

/// Indexes the pod informer by the node each pod is bound to, so a node's pods are found
/// without a scan of every pod.
pub fn index_by_node(pods: &crate::runtime::Informer<Pod>) {
    pods.add_index(BY_NODE, |p| vec![node_name(p).to_owned()]);
}

/// The node the pod is bound to, "" when unscheduled.
pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(mut v: serde_json::Value) -> Pod {
        v["metadata"]["name"] = json!("p");
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn claims_follow_selector_and_controller_reference() {
        let sel = LabelSelector::parse("app=web").unwrap();
        let owned = |labels: serde_json::Value, uid: &str| {
            pod(json!({"metadata": {"labels": labels, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}]}}))
        };
        let cases = [
            (owned(json!({"app": "web"}), "u1"), false, Claim::Keep),
            (owned(json!({"app": "db"}), "u1"), false, Claim::Release),
            (owned(json!({"app": "db"}), "u1"), true, Claim::Keep),
            (owned(json!({"app": "web"}), "u2"), false, Claim::Ignore),
            (
                pod(json!({"metadata": {"labels": {"app": "web"}}})),
                false,
                Claim::Adopt,
            ),
            (
                pod(json!({"metadata": {"labels": {"app": "web"}}})),
                true,
                Claim::Ignore,
            ),
            (
                pod(json!({"metadata": {"labels": {"app": "db"}}})),
                false,
                Claim::Ignore,
            ),
        ];
        for (i, (p, deleting, want)) in cases.into_iter().enumerate() {
            assert_eq!(claim("u1", deleting, Some(&sel), &p), want, "case {i}");
        }
    }
}
