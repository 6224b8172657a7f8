//! VolumeRestrictions: two pods may not use the same single-attach disk on one node
//! (a GCE PD unless both mount it read-only, an AWS EBS volume, an RBD image or an iSCSI
//! target unless both are read-only).
//!
//! The ReadWriteOncePod check needs the scheduler to watch PersistentVolumeClaims, which it
//! does not yet; pods using such claims are not checked here.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Volume;

use crate::cache::Snapshot;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreFilterResult, Status,
};

pub const NAME: &str = "VolumeRestrictions";
pub const ERR_REASON_DISK_CONFLICT: &str = "node(s) had no available disk";

pub struct VolumeRestrictions;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(VolumeRestrictions))
}

fn is_disk(v: &Volume) -> bool {
    v.gce_persistent_disk.is_some()
        || v.aws_elastic_block_store.is_some()
        || v.rbd.is_some()
        || v.iscsi.is_some()
}

/// Whether two inline volumes are the same disk used in a conflicting way.
fn conflict(a: &Volume, b: &Volume) -> bool {
    if let (Some(x), Some(y)) = (&a.gce_persistent_disk, &b.gce_persistent_disk) {
        return x.pd_name == y.pd_name
            && !(x.read_only.unwrap_or(false) && y.read_only.unwrap_or(false));
    }
    if let (Some(x), Some(y)) = (&a.aws_elastic_block_store, &b.aws_elastic_block_store) {
        return x.volume_id == y.volume_id;
    }
    if let (Some(x), Some(y)) = (&a.iscsi, &b.iscsi) {
        return x.iqn == y.iqn && !(x.read_only.unwrap_or(false) && y.read_only.unwrap_or(false));
    }
    if let (Some(x), Some(y)) = (&a.rbd, &b.rbd) {
        let shared_monitor = x.monitors.iter().any(|m| y.monitors.contains(m));
        return shared_monitor
            && x.pool == y.pool
            && x.image == y.image
            && !(x.read_only.unwrap_or(false) && y.read_only.unwrap_or(false));
    }
    false
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Pod, &[ActionType::Delete]),
            ClusterEvent::new(EventResource::Node, &[ActionType::Add]),
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeRestrictions {
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> (PreFilterResult, Status) {
        if !pod.spec().volumes.iter().flatten().any(is_disk) {
            return (None, Status::skip());
        }
        (None, Status::success())
    }
}

impl FilterPlugin for VolumeRestrictions {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for v in pod.spec().volumes.iter().flatten().filter(|v| is_disk(v)) {
            for other in &node.pods {
                if other
                    .spec()
                    .volumes
                    .iter()
                    .flatten()
                    .any(|o| conflict(v, o))
                {
                    return Status::unschedulable(ERR_REASON_DISK_CONFLICT);
                }
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::filter_reasons;
    use crate::testing::{make_node, make_pod};
    use serde_json::json;

    fn with_pd(name: &str, pd: &str, read_only: bool) -> PodInfo {
        let mut pod = make_pod(name).obj();
        pod.spec.as_mut().unwrap().volumes = Some(vec![
            serde_json::from_value(json!({
                "name": "d", "gcePersistentDisk": {"pdName": pd, "readOnly": read_only}
            }))
            .unwrap(),
        ]);
        PodInfo::new(Arc::new(pod))
    }

    #[test]
    fn a_disk_is_attached_once_unless_read_only() {
        let nodes = || {
            vec![
                make_node("a").with_pods(vec![with_pd("x", "disk1", false)]),
                make_node("b").with_pods(vec![with_pd("y", "disk2", true)]),
            ]
        };
        let c = ERR_REASON_DISK_CONFLICT;
        for (pod, want) in [
            (make_pod("p").info(), vec!["", ""]),
            (with_pd("p", "disk1", false), vec![c, ""]),
            (with_pd("p", "disk1", true), vec![c, ""]),
            (with_pd("p", "disk2", true), vec!["", ""]),
            (with_pd("p", "disk2", false), vec!["", c]),
        ] {
            assert_eq!(filter_reasons(&VolumeRestrictions, &pod, nodes()), want);
        }
    }
}
