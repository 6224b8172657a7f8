//! SchedulingGates: a pod with spec.schedulingGates waits outside the active queue until
//! the gates are removed (an update of the pod).

use std::sync::Arc;

use crate::framework::{
    ActionType, ClusterEvent, EventResource, Handle, Plugin, PodInfo, PreEnqueuePlugin, Status,
};

pub const NAME: &str = "SchedulingGates";

pub struct SchedulingGates;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(SchedulingGates))
}

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::new(
            EventResource::UnscheduledPod,
            &[ActionType::Update],
        )]
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        Some(self)
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        let gates = pod.spec().scheduling_gates.as_deref().unwrap_or_default();
        if gates.is_empty() {
            return Status::success();
        }
        let names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
        Status::unresolvable(format!(
            "waiting for scheduling gates: [{}]",
            names.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;

    #[test]
    fn gated_pods_wait() {
        for (pod, want) in [
            (make_pod("p"), ""),
            (
                make_pod("p").gate("a").gate("b"),
                "waiting for scheduling gates: [a b]",
            ),
        ] {
            assert_eq!(SchedulingGates.pre_enqueue(&pod.info()).message(), want);
        }
    }
}
