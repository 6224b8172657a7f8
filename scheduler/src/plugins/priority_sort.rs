//! PrioritySort: the active queue pops higher spec.priority first, then the pod that
//! has waited longest.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Instant;

use crate::framework::{Handle, Plugin, PodInfo, QueueSortPlugin};

pub const NAME: &str = "PrioritySort";

pub struct PrioritySort;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(PrioritySort))
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn sort_key(&self, pod: &PodInfo, enqueued: Instant) -> (i32, Reverse<Instant>) {
        (pod.priority, Reverse(enqueued))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;
    use std::time::Duration;

    #[test]
    fn higher_priority_then_older_first() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let key = |p: i32, t| PrioritySort.sort_key(&make_pod("p").priority(p).info(), t);
        assert!(key(10, later) > key(5, now), "priority wins over age");
        assert!(key(5, now) > key(5, later), "older first at equal priority");
    }
}
