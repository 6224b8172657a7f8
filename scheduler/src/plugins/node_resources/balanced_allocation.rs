//! NodeResourcesBalancedAllocation: prefers nodes where, with the pod, cpu and memory
//! would be used in equal shares (score 100 * (1 - standard deviation of the shares)).

use std::sync::Arc;

use serde::Deserialize;

use super::{ResourceSpec, allocatable_and_requested, default_resources};
use crate::cache::Snapshot;
use crate::framework::{
    CycleState, Handle, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin,
    Status,
};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

pub struct BalancedAllocation {
    resources: Vec<ResourceSpec>,
}

#[derive(Deserialize, Default)]
struct Args {
    resources: Option<Vec<ResourceSpec>>,
}

pub fn factory(
    args: Option<&serde_json::Value>,
    _: &Arc<Handle>,
) -> crate::Result<Arc<dyn Plugin>> {
    let args: Args =
        crate::framework::registry::decode_args(args, "NodeResourcesBalancedAllocationArgs")?;
    Ok(Arc::new(BalancedAllocation {
        resources: args.resources.unwrap_or_else(default_resources),
    }))
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    /// A pod that requests none of the resources is skipped, as upstream does, so that
    /// best-effort pods do not all pile onto the most balanced node.
    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        _: &Snapshot,
    ) -> Status {
        if self
            .resources
            .iter()
            .all(|r| pod.requests.get(&r.name) == 0)
        {
            return Status::skip();
        }
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let mut shares = [0f64; 8];
        let mut n = 0;
        for r in &self.resources {
            let (alloc, req) = allocatable_and_requested(node, pod, r, false);
            if alloc == 0 || n == shares.len() {
                continue;
            }
            shares[n] = (req as f64 / alloc as f64).min(1.0);
            n += 1;
        }
        let shares = &shares[..n];
        let std = match n {
            0 | 1 => 0.0,
            2 => (shares[0] - shares[1]).abs() / 2.0,
            _ => {
                let mean = shares.iter().sum::<f64>() / n as f64;
                (shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
            }
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::{build, score};
    use crate::testing::{make_node, make_pod};

    #[test]
    fn balanced_nodes_score_higher() {
        let nodes = || {
            vec![
                // With the pod: cpu 2/4 = 0.5, memory 4/8 = 0.5 -> 100.
                make_node("even")
                    .cpu("4")
                    .memory("8Gi")
                    .with_pods(vec![make_pod("x").cpu("1").memory("2Gi").info()]),
                // cpu 4/4 = 1, memory 2/8 = 0.25 -> std 0.375 -> 62.
                make_node("skewed")
                    .cpu("4")
                    .memory("8Gi")
                    .with_pods(vec![make_pod("y").cpu("3").info()]),
            ]
        };
        let pod = make_pod("p").cpu("1").memory("2Gi").info();
        let ba = build(factory);
        assert_eq!(score(ba.as_ref(), &pod, nodes()).unwrap(), vec![100, 62]);
        assert_eq!(
            score(ba.as_ref(), &make_pod("p").info(), nodes()),
            None,
            "best effort skips"
        );
    }
}
