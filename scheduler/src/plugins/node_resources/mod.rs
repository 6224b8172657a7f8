//! NodeResourcesFit and NodeResourcesBalancedAllocation, and the resource accounting they
//! share: how much of a resource a node would have requested with the pod on it.

pub mod balanced_allocation;
pub mod fit;

use serde::Deserialize;

use crate::framework::{NodeInfo, PodInfo};

/// A resource and its weight in a score (args `resources: [{name, weight}]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

/// cpu and memory, weight 1 each: both plugins' default.
pub fn default_resources() -> Vec<ResourceSpec> {
    ["cpu", "memory"]
        .into_iter()
        .map(|name| ResourceSpec {
            name: name.into(),
            weight: 1,
        })
        .collect()
}

/// (allocatable, requested with the pod) of one resource on a node. `non_zero` counts
/// containers without cpu/memory requests at upstream's defaults (Fit's scoring does;
/// BalancedAllocation uses the real requests). An extended resource the pod does not ask
/// for counts as absent, so it does not dilute the score.
pub fn allocatable_and_requested(
    node: &NodeInfo,
    pod: &PodInfo,
    name: &str,
    non_zero: bool,
) -> (i64, i64) {
    match name {
        "cpu" if non_zero => (
            node.allocatable.milli_cpu,
            node.non_zero_cpu + pod.non_zero_cpu,
        ),
        "memory" if non_zero => (
            node.allocatable.memory,
            node.non_zero_memory + pod.non_zero_memory,
        ),
        "cpu" | "memory" | "ephemeral-storage" => (
            node.allocatable.get(name),
            node.requested.get(name) + pod.requests.get(name),
        ),
        other => {
            let asked = pod.requests.get(other);
            if asked == 0 {
                (0, 0)
            } else {
                (
                    node.allocatable.get(other),
                    node.requested.get(other) + asked,
                )
            }
        }
    }
}
