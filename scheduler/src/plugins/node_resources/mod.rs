//! NodeResourcesFit and NodeResourcesBalancedAllocation, and the resource accounting they
//! share: how much of a resource a node would have requested with the pod on it.

pub mod balanced_allocation;
pub mod fit;

use serde::Deserialize;

use crate::framework::{NodeInfo, PodInfo};

/// A resource and its weight in a score (args `resources: [{name, weight}]`), with the
/// name resolved once so scoring never compares strings for the common resources.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(from = "RawSpec")]
pub struct ResourceSpec {
    pub name: String,
    pub weight: i64,
    pub kind: ResourceKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Cpu,
    Memory,
    EphemeralStorage,
    Pods,
    Scalar,
}

#[derive(Deserialize)]
struct RawSpec {
    name: String,
    #[serde(default = "one")]
    weight: i64,
}

impl From<RawSpec> for ResourceSpec {
    fn from(r: RawSpec) -> Self {
        ResourceSpec::new(&r.name, r.weight)
    }
}

impl ResourceSpec {
    pub fn new(name: &str, weight: i64) -> ResourceSpec {
        let kind = match name {
            "cpu" => ResourceKind::Cpu,
            "memory" => ResourceKind::Memory,
            "ephemeral-storage" => ResourceKind::EphemeralStorage,
            "pods" => ResourceKind::Pods,
            _ => ResourceKind::Scalar,
        };
        ResourceSpec {
            name: name.to_owned(),
            weight,
            kind,
        }
    }
}

fn one() -> i64 {
    1
}

/// cpu and memory, weight 1 each: both plugins' default.
pub fn default_resources() -> Vec<ResourceSpec> {
    vec![ResourceSpec::new("cpu", 1), ResourceSpec::new("memory", 1)]
}

/// (allocatable, requested with the pod) of one resource on a node. `non_zero` counts
/// containers without cpu/memory requests at upstream's defaults (Fit's scoring does;
/// BalancedAllocation uses the real requests). An extended resource the pod does not ask
/// for counts as absent, so it does not dilute the score.
#[inline]
pub fn allocatable_and_requested(
    node: &NodeInfo,
    pod: &PodInfo,
    r: &ResourceSpec,
    non_zero: bool,
) -> (i64, i64) {
    let (alloc, req) = (&node.allocatable, &node.requested);
    match r.kind {
        ResourceKind::Cpu if non_zero => (alloc.milli_cpu, node.non_zero_cpu + pod.non_zero_cpu),
        ResourceKind::Memory if non_zero => {
            (alloc.memory, node.non_zero_memory + pod.non_zero_memory)
        }
        ResourceKind::Cpu => (alloc.milli_cpu, req.milli_cpu + pod.requests.milli_cpu),
        ResourceKind::Memory => (alloc.memory, req.memory + pod.requests.memory),
        ResourceKind::EphemeralStorage => (
            alloc.ephemeral_storage,
            req.ephemeral_storage + pod.requests.ephemeral_storage,
        ),
        ResourceKind::Pods => (alloc.allowed_pod_number, node.pods.len() as i64 + 1),
        ResourceKind::Scalar => {
            let asked = pod.requests.scalar(&r.name);
            if asked == 0 {
                (0, 0)
            } else {
                (alloc.scalar(&r.name), req.scalar(&r.name) + asked)
            }
        }
    }
}
