//! NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate
//! the node.kubernetes.io/unschedulable:NoSchedule taint.

use std::sync::Arc;

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, Status,
};
use common::scheduling::tolerations::tolerations_tolerate_taint;

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_REASON: &str = "node(s) were unschedulable";
const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(NodeUnschedulable))
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Node, &[ActionType::Add, ActionType::Update]),
            ClusterEvent::new(EventResource::UnscheduledPod, &[ActionType::Update]),
        ]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = k8s_openapi::api::core::v1::Taint {
            key: TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
        if tolerations_tolerate_taint(tolerations, &taint) {
            return Status::success();
        }
        Status::unresolvable(ERR_REASON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::filter_reasons;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn cordoned_nodes_refuse_pods_that_do_not_tolerate_it() {
        let nodes = || vec![make_node("a").info(), make_node("b").unschedulable().info()];
        for (pod, want) in [
            (make_pod("p"), vec!["", ERR_REASON]),
            (
                make_pod("p").toleration(TAINT_KEY, "Exists", "", "NoSchedule"),
                vec!["", ""],
            ),
            (make_pod("p").toleration("", "Exists", "", ""), vec!["", ""]),
            (
                make_pod("p").toleration(TAINT_KEY, "Exists", "", "NoExecute"),
                vec!["", ERR_REASON],
            ),
        ] {
            assert_eq!(
                filter_reasons(&NodeUnschedulable, &pod.info(), nodes()),
                want
            );
        }
    }
}
