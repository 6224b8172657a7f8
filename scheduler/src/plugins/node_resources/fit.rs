//! NodeResourcesFit: a pod fits a node when each resource it requests is free there (and
//! the node has room for one more pod); feasible nodes are scored by the configured
//! strategy: LeastAllocated (the default: spread), MostAllocated (bin-pack) or
//! RequestedToCapacityRatio (a piecewise-linear shape over utilization).

use std::sync::Arc;

use serde::Deserialize;

use super::{ResourceSpec, allocatable_and_requested, default_resources};
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, MAX_NODE_SCORE,
    NodeInfo, Plugin, PodInfo, ScorePlugin, Status,
};

pub const NAME: &str = "NodeResourcesFit";

/// How nodes are scored.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    LeastAllocated,
    MostAllocated,
    /// (utilization 0..=100, score 0..=100) points, utilization ascending.
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

pub struct Fit {
    resources: Vec<ResourceSpec>,
    strategy: Strategy,
    ignored_resources: Vec<String>,
    ignored_groups: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Args {
    #[serde(default)]
    ignored_resources: Vec<String>,
    #[serde(default)]
    ignored_resource_groups: Vec<String>,
    scoring_strategy: Option<ScoringStrategy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScoringStrategy {
    #[serde(rename = "type")]
    kind: Option<String>,
    resources: Option<Vec<ResourceSpec>>,
    requested_to_capacity_ratio: Option<Ratio>,
}

#[derive(Deserialize)]
struct Ratio {
    shape: Vec<ShapePoint>,
}

#[derive(Deserialize)]
struct ShapePoint {
    utilization: i64,
    score: i64,
}

pub fn factory(
    args: Option<&serde_json::Value>,
    _: &Arc<Handle>,
) -> crate::Result<Arc<dyn Plugin>> {
    let args: Args = crate::framework::registry::decode_args(args, "NodeResourcesFitArgs")?;
    let (resources, strategy) = match args.scoring_strategy {
        None => (default_resources(), Strategy::LeastAllocated),
        Some(s) => {
            let resources = s.resources.unwrap_or_else(default_resources);
            let strategy = match s.kind.as_deref().unwrap_or("LeastAllocated") {
                "LeastAllocated" => Strategy::LeastAllocated,
                "MostAllocated" => Strategy::MostAllocated,
                "RequestedToCapacityRatio" => {
                    let shape = s
                        .requested_to_capacity_ratio
                        .ok_or_else(|| {
                            crate::Error::Invalid(
                                "NodeResourcesFitArgs: scoringStrategy.requestedToCapacityRatio: Required value".into(),
                            )
                        })?
                        .shape;
                    if shape.is_empty() {
                        crate::invalid!(
                            "NodeResourcesFitArgs: scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point must be specified"
                        );
                    }
                    // Scores in the args are 0..=10; upstream scales them to 0..=100.
                    Strategy::RequestedToCapacityRatio(
                        shape
                            .iter()
                            .map(|p| (p.utilization, p.score * 10))
                            .collect(),
                    )
                }
                other => crate::invalid!(
                    "NodeResourcesFitArgs: scoringStrategy.type: Unsupported value: {other:?}"
                ),
            };
            (resources, strategy)
        }
    };
    Ok(Arc::new(Fit {
        resources,
        strategy,
        ignored_resources: args.ignored_resources,
        ignored_groups: args.ignored_resource_groups,
    }))
}

impl Fit {
    fn ignored(&self, name: &str) -> bool {
        self.ignored_resources.iter().any(|r| r == name)
            || name
                .split_once('/')
                .is_some_and(|(group, _)| self.ignored_groups.iter().any(|g| g == group))
    }

    /// The reasons the pod does not fit, and whether one is beyond the node's capacity.
    pub fn insufficient(&self, pod: &PodInfo, node: &NodeInfo) -> (Vec<String>, bool) {
        let mut reasons = Vec::new();
        let mut unresolvable = false;
        if node.pods.len() as i64 + 1 > node.allocatable.allowed_pod_number {
            reasons.push("Too many pods".to_owned());
        }
        let req = &pod.requests;
        if req.is_zero() {
            return (reasons, false);
        }
        let alloc = &node.allocatable;
        let used = &node.requested;
        let mut check = |name: &str, want: i64, alloc: i64, used: i64| {
            if want > 0 && want > alloc - used {
                reasons.push(format!("Insufficient {name}"));
                unresolvable |= want > alloc;
            }
        };
        check("cpu", req.milli_cpu, alloc.milli_cpu, used.milli_cpu);
        check("memory", req.memory, alloc.memory, used.memory);
        check(
            "ephemeral-storage",
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
        );
        for (name, want) in &req.scalar {
            if *want == 0 || self.ignored(name) {
                continue;
            }
            check(name, *want, alloc.scalar(name), used.scalar(name));
        }
        (reasons, unresolvable)
    }
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            // An assigned pod going away frees resources; one arriving never does.
            ClusterEvent::new(EventResource::Pod, &[ActionType::Delete]),
            ClusterEvent::new(EventResource::Node, &[ActionType::Add, ActionType::Update]),
            ClusterEvent::new(EventResource::UnscheduledPod, &[ActionType::Update]),
        ]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for Fit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let (reasons, unresolvable) = self.insufficient(pod, node);
        if reasons.is_empty() {
            return Status::success();
        }
        Status {
            code: if unresolvable {
                crate::framework::Code::UnschedulableAndUnresolvable
            } else {
                crate::framework::Code::Unschedulable
            },
            reasons: reasons.into_iter().map(Into::into).collect(),
            plugin: NAME,
        }
    }
}

/// Score of one resource under a strategy.
fn resource_score(strategy: &Strategy, requested: i64, allocatable: i64) -> i64 {
    match strategy {
        Strategy::LeastAllocated => {
            if requested > allocatable {
                0
            } else {
                (allocatable - requested) * MAX_NODE_SCORE / allocatable
            }
        }
        Strategy::MostAllocated => requested.min(allocatable) * MAX_NODE_SCORE / allocatable,
        Strategy::RequestedToCapacityRatio(shape) => {
            let utilization = requested.min(allocatable) * MAX_NODE_SCORE / allocatable;
            piecewise(shape, utilization)
        }
    }
}

/// The shape's value at `x`, linear between points and flat outside them.
fn piecewise(shape: &[(i64, i64)], x: i64) -> i64 {
    let (first, last) = (shape[0], shape[shape.len() - 1]);
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    for w in shape.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    last.1
}

impl ScorePlugin for Fit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let mut total = 0;
        let mut weights = 0;
        for r in &self.resources {
            let (alloc, req) = allocatable_and_requested(node, pod, r, true);
            if alloc == 0 {
                continue;
            }
            total += resource_score(&self.strategy, req, alloc) * r.weight;
            weights += r.weight;
        }
        if weights == 0 {
            return 0;
        }
        match self.strategy {
            // upstream rounds this one to nearest; the others truncate.
            Strategy::RequestedToCapacityRatio(_) => (total as f64 / weights as f64).round() as i64,
            _ => total / weights,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::{build, build_with, filter_reasons, score};
    use crate::testing::{make_node, make_pod};
    use serde_json::json;

    #[test]
    fn filter_reports_every_insufficient_resource() {
        let fit = build(factory);
        let nodes = || {
            vec![
                make_node("empty").cpu("4").memory("8Gi").info(),
                make_node("busy")
                    .cpu("4")
                    .memory("8Gi")
                    .with_pods(vec![make_pod("x").cpu("3").memory("7Gi").info()]),
                make_node("full")
                    .pods("1")
                    .with_pods(vec![make_pod("y").info()]),
                make_node("gpu").capacity("example.com/gpu", "2").info(),
            ]
        };
        for (pod, want) in [
            (make_pod("p"), vec!["", "", "Too many pods", ""]),
            (
                make_pod("p").cpu("2"),
                vec!["", "Insufficient cpu", "Too many pods", ""],
            ),
            (
                make_pod("p").cpu("2").memory("2Gi"),
                vec![
                    "",
                    "Insufficient cpu, Insufficient memory",
                    "Too many pods",
                    "",
                ],
            ),
            (
                make_pod("p").request("example.com/gpu", "1"),
                vec![
                    "Insufficient example.com/gpu",
                    "Insufficient example.com/gpu",
                    "Too many pods, Insufficient example.com/gpu",
                    "",
                ],
            ),
            // Init containers count at their largest.
            (
                {
                    let mut p = make_pod("p").cpu("1").obj();
                    let mut init = p.spec.as_ref().unwrap().containers[0].clone();
                    init.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
                        requests: Some(
                            [(
                                "cpu".to_owned(),
                                k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                    "3500m".into(),
                                ),
                            )]
                            .into(),
                        ),
                        ..Default::default()
                    });
                    p.spec.as_mut().unwrap().init_containers = Some(vec![init]);
                    crate::testing::PodBuilder::from(p)
                },
                vec!["", "Insufficient cpu", "Too many pods", ""],
            ),
        ] {
            assert_eq!(filter_reasons(fit.as_ref(), &pod.info(), nodes()), want);
        }
    }

    #[test]
    fn beyond_capacity_is_unresolvable() {
        let fit = build(factory);
        let node = make_node("n").cpu("2").info();
        let s = fit.as_filter().unwrap().filter(
            &CycleState::default(),
            &make_pod("p").cpu("3").info(),
            &node,
        );
        assert_eq!(s.code, crate::framework::Code::UnschedulableAndUnresolvable);
        let busy = make_node("n")
            .cpu("2")
            .with_pods(vec![make_pod("x").cpu("1").info()]);
        let s = fit.as_filter().unwrap().filter(
            &CycleState::default(),
            &make_pod("p").cpu("2").info(),
            &busy,
        );
        assert_eq!(s.code, crate::framework::Code::Unschedulable);
    }

    fn nodes() -> Vec<NodeInfo> {
        vec![
            make_node("a").cpu("4").memory("10Gi").info(),
            make_node("b")
                .cpu("6")
                .memory("10Gi")
                .with_pods(vec![make_pod("x").cpu("3").memory("5Gi").info()]),
        ]
    }

    #[test]
    fn least_allocated_prefers_free_nodes() {
        // a: cpu (4000-1000)/4000 = 75, memory (10-2)/10 = 80 -> 77.
        // b: cpu (6000-4000)/6000 = 33, memory (10-7)/10 = 30 -> 31.
        let pod = make_pod("p").cpu("1").memory("2Gi").info();
        assert_eq!(
            score(build(factory).as_ref(), &pod, nodes()).unwrap(),
            vec![77, 31]
        );
        // A pod without requests counts as 100m and 200Mi.
        let best_effort = make_pod("p").info();
        assert_eq!(
            score(build(factory).as_ref(), &best_effort, nodes()).unwrap(),
            vec![97, 48]
        );
    }

    #[test]
    fn most_allocated_and_ratio_strategies() {
        let pod = make_pod("p").cpu("1").memory("2Gi").info();
        let most = build_with(
            factory,
            Some(json!({"scoringStrategy": {"type": "MostAllocated"}})),
        );
        assert_eq!(score(most.as_ref(), &pod, nodes()).unwrap(), vec![22, 68]);
        let ratio = build_with(
            factory,
            Some(
                json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
                "resources": [{"name": "cpu", "weight": 1}],
                "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}),
            ),
        );
        // Bin-packing on cpu only: a is 25% used, b 66%.
        assert_eq!(score(ratio.as_ref(), &pod, nodes()).unwrap(), vec![25, 66]);
        assert!(
            factory(
                Some(&json!({"scoringStrategy": {"type": "Bogus"}})),
                &Arc::new(Handle {
                    client: Arc::new(crate::client::NoopClient)
                })
            )
            .is_err()
        );
    }
}
