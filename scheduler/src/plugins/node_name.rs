//! NodeName: a pod that names its node (spec.nodeName) fits only there.

use std::sync::Arc;

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, Status,
};

pub const NAME: &str = "NodeName";
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(NodeName))
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::new(
            EventResource::Node,
            &[ActionType::Add, ActionType::Update],
        )]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod.node_name.is_empty() || pod.node_name == node.name {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::filter_reasons;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn only_the_named_node_fits() {
        let nodes = || vec![make_node("a").info(), make_node("b").info()];
        for (pod, want) in [
            (make_pod("p"), vec!["", ""]),
            (make_pod("p").node("b"), vec![ERR_REASON, ""]),
            (make_pod("p").node("c"), vec![ERR_REASON, ERR_REASON]),
        ] {
            assert_eq!(filter_reasons(&NodeName, &pod.info(), nodes()), want);
        }
    }
}
