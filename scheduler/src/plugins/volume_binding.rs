//! VolumeBinding, as far as the cluster serves volumes: a pod's PersistentVolumeClaims
//! must exist and be bound (there are no StorageClasses, so every claim binds
//! immediately, through the volume controller), and a node fits only if it satisfies the
//! node affinity of every bound PersistentVolume.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use crate::cache::Snapshot;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreFilterResult, Status,
};
use common::scheduling::node_affinity::node_selector_matches;

pub const NAME: &str = "VolumeBinding";
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";

pub struct VolumeBinding;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(VolumeBinding))
}

/// Claims and volumes as the snapshot holds them.
#[derive(Clone, Debug, Default)]
pub struct Volumes {
    /// "namespace/name" -> claim.
    pub claims: HashMap<String, Arc<PersistentVolumeClaim>>,
    /// name -> volume.
    pub volumes: HashMap<String, Arc<PersistentVolume>>,
}

/// The bound volumes of the pod's claims (for Filter).
struct PreFilterState(Vec<Arc<PersistentVolume>>);

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(
                EventResource::PersistentVolumeClaim,
                &[ActionType::Add, ActionType::Update],
            ),
            ClusterEvent::new(
                EventResource::PersistentVolume,
                &[ActionType::Add, ActionType::Update],
            ),
            ClusterEvent::new(EventResource::Node, &[ActionType::Add, ActionType::Update]),
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let claims: Vec<&str> = pod
            .spec()
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.as_str())
            })
            .collect();
        if claims.is_empty() {
            return (None, Status::skip());
        }
        let mut bound = Vec::new();
        for name in claims {
            let Some(claim) = snapshot
                .volumes
                .claims
                .get(&format!("{}/{name}", pod.namespace))
            else {
                return (
                    None,
                    Status::unresolvable(format!("persistentvolumeclaim \"{name}\" not found")),
                );
            };
            if claim.metadata.deletion_timestamp.is_some() {
                return (
                    None,
                    Status::unresolvable(format!(
                        "persistentvolumeclaim \"{name}\" is being deleted"
                    )),
                );
            }
            let volume = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .filter(|v| !v.is_empty())
                .and_then(|v| snapshot.volumes.volumes.get(v));
            match volume {
                Some(v) => bound.push(v.clone()),
                None => return (None, Status::unresolvable(ERR_UNBOUND_IMMEDIATE)),
            }
        }
        state.write(PreFilterState(bound));
        (None, Status::success())
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>() else {
            return Status::success();
        };
        for pv in &s.0 {
            let required = pv
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref());
            if let Some(sel) = required
                && !node_selector_matches(sel, node.fields())
            {
                return Status::unresolvable(ERR_NODE_CONFLICT);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};
    use serde_json::json;

    fn pod_with_claim(claim: &str) -> PodInfo {
        let mut p = make_pod("p").obj();
        p.spec.as_mut().unwrap().volumes = Some(vec![
            serde_json::from_value(json!({
                "name": "data", "persistentVolumeClaim": {"claimName": claim}
            }))
            .unwrap(),
        ]);
        PodInfo::new(Arc::new(p))
    }

    fn run(pod: &PodInfo, volumes: Volumes) -> Vec<String> {
        let mut snapshot = Snapshot::from_nodes(vec![
            make_node("a").label("zone", "z1").info(),
            make_node("b").label("zone", "z2").info(),
        ]);
        snapshot.volumes = volumes;
        let mut state = CycleState::default();
        let (_, s) = VolumeBinding.pre_filter(&mut state, pod, &snapshot);
        if s.is_skip() {
            return vec!["skip".into()];
        }
        if !s.is_success() {
            return vec![s.message()];
        }
        snapshot
            .nodes
            .iter()
            .map(|n| VolumeBinding.filter(&state, pod, n).message())
            .collect()
    }

    fn volumes(bound: bool) -> Volumes {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"volumeName": if bound { "pv1" } else { "" }},
        }))
        .unwrap();
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv1"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}
            ]}}},
        }))
        .unwrap();
        Volumes {
            claims: [("default/data".to_owned(), Arc::new(claim))].into(),
            volumes: [("pv1".to_owned(), Arc::new(pv))].into(),
        }
    }

    #[test]
    fn claims_must_be_bound_and_volumes_reachable() {
        assert_eq!(run(&make_pod("p").info(), Volumes::default()), vec!["skip"]);
        assert_eq!(
            run(&pod_with_claim("missing"), volumes(true)),
            vec!["persistentvolumeclaim \"missing\" not found"]
        );
        assert_eq!(
            run(&pod_with_claim("data"), volumes(false)),
            vec![ERR_UNBOUND_IMMEDIATE]
        );
        assert_eq!(
            run(&pod_with_claim("data"), volumes(true)),
            vec![ERR_NODE_CONFLICT, ""]
        );
    }
}
