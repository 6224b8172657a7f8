//! NodePorts: a pod asking for host ports fits only on nodes where no pod holds them
//! (0.0.0.0 conflicts with every address of the same port and protocol).

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreFilterResult, Status,
};

pub const NAME: &str = "NodePorts";
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(NodePorts))
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Pod, &[ActionType::Delete]),
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

impl PreFilterPlugin for NodePorts {
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> (PreFilterResult, Status) {
        if pod.host_ports.is_empty() {
            return (None, Status::skip());
        }
        (None, Status::success())
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::filter_reasons;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn host_ports_conflict_by_port_protocol_and_address() {
        let nodes = || {
            vec![
                make_node("free").info(),
                make_node("any").with_pods(vec![make_pod("x").host_port(80, "TCP", "").info()]),
                make_node("one-ip")
                    .with_pods(vec![make_pod("y").host_port(80, "TCP", "10.0.0.1").info()]),
            ]
        };
        for (pod, want) in [
            (make_pod("p"), vec!["", "", ""]),
            (
                make_pod("p").host_port(80, "TCP", ""),
                vec!["", ERR_REASON, ERR_REASON],
            ),
            (make_pod("p").host_port(80, "UDP", ""), vec!["", "", ""]),
            (make_pod("p").host_port(81, "TCP", ""), vec!["", "", ""]),
            (
                make_pod("p").host_port(80, "TCP", "10.0.0.2"),
                vec!["", ERR_REASON, ""],
            ),
            (
                make_pod("p").host_port(80, "TCP", "10.0.0.1"),
                vec!["", ERR_REASON, ERR_REASON],
            ),
        ] {
            assert_eq!(filter_reasons(&NodePorts, &pod.info(), nodes()), want);
        }
    }
}
