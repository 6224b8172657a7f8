//! NodeAffinity: spec.nodeSelector and required node affinity filter nodes (unresolvable:
//! no preemption helps); preferred terms add their weights to a node's score.

use std::collections::HashSet;
use std::sync::Arc;

use common::scheduling::node_affinity;

use super::taint_toleration::default_normalize;
use crate::cache::Snapshot;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin, Status,
};

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

pub struct NodeAffinity;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(NodeAffinity))
}

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub fn pod_matches_node(pod: &PodInfo, node: &NodeInfo) -> bool {
    node_affinity::pod_matches_node(pod.spec(), node.fields())
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Node, &[ActionType::Add, ActionType::Update]),
            ClusterEvent::new(EventResource::UnscheduledPod, &[ActionType::Update]),
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeAffinity {
    /// Skips pods without a node selector or required affinity; when every required term
    /// names nodes by metadata.name, only those nodes are filtered.
    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let spec = pod.spec();
        let required = node_affinity::required_node_affinity(spec);
        if spec.node_selector.as_ref().is_none_or(|s| s.is_empty()) && required.is_none() {
            return (None, Status::skip());
        }
        let Some(required) = required else {
            return (None, Status::success());
        };
        // Upstream's node names: a term's metadata.name In requirements are ANDed
        // (intersected), the terms ORed (united); a term without one admits every node.
        let mut names: HashSet<String> = HashSet::new();
        for term in &required.node_selector_terms {
            let mut term_names: Option<HashSet<&String>> = None;
            for f in term.match_fields.iter().flatten() {
                if f.key == "metadata.name" && f.operator == "In" {
                    let these: HashSet<&String> = f.values.iter().flatten().collect();
                    term_names = Some(match term_names {
                        None => these,
                        Some(prev) => prev.intersection(&these).copied().collect(),
                    });
                }
            }
            let Some(term_names) = term_names else {
                return (None, Status::success());
            };
            names.extend(term_names.into_iter().cloned());
        }
        if names.is_empty() {
            return (None, Status::unresolvable(ERR_REASON_CONFLICT));
        }
        (Some(names), Status::success())
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod_matches_node(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        _: &Snapshot,
    ) -> Status {
        let preferred = node_affinity::preferred_node_affinity(pod.spec());
        if preferred.is_empty() {
            return Status::skip();
        }
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        node_affinity::preferred_score(
            node_affinity::preferred_node_affinity(pod.spec()),
            node.fields(),
        )
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::{filter_reasons, score};
    use crate::testing::{make_node, make_pod};

    fn nodes() -> Vec<NodeInfo> {
        vec![
            make_node("a").label("zone", "z1").label("gen", "3").info(),
            make_node("b").label("zone", "z2").label("gen", "5").info(),
            make_node("c").info(),
        ]
    }

    #[test]
    fn selectors_and_required_terms() {
        let no = ERR_REASON_POD;
        for (pod, want) in [
            (make_pod("p"), vec!["", "", ""]),
            (make_pod("p").node_selector("zone", "z1"), vec!["", no, no]),
            (
                make_pod("p").node_affinity_in("zone", "In", &["z2", "z3"]),
                vec![no, "", no],
            ),
            (
                make_pod("p").node_affinity_in("zone", "NotIn", &["z2"]),
                vec!["", no, ""],
            ),
            (
                make_pod("p").node_affinity_in("zone", "Exists", &[]),
                vec!["", "", no],
            ),
            (
                make_pod("p").node_affinity_in("zone", "DoesNotExist", &[]),
                vec![no, no, ""],
            ),
            (
                make_pod("p").node_affinity_in("gen", "Gt", &["4"]),
                vec![no, "", no],
            ),
            (
                make_pod("p").node_affinity_in("gen", "Lt", &["4"]),
                vec!["", no, no],
            ),
            // Terms are ORed; the selector and the affinity are ANDed.
            (
                make_pod("p")
                    .node_affinity_in("zone", "In", &["z1"])
                    .node_affinity_in("zone", "In", &["z2"]),
                vec!["", "", no],
            ),
            (
                make_pod("p")
                    .node_selector("zone", "z1")
                    .node_affinity_in("zone", "In", &["z2"]),
                vec![no, no, no],
            ),
        ] {
            assert_eq!(filter_reasons(&NodeAffinity, &pod.info(), nodes()), want);
        }
    }

    #[test]
    fn match_fields_narrow_the_nodes_in_pre_filter() {
        let mut pod = make_pod("p").obj();
        pod.spec.as_mut().unwrap().affinity = serde_json::from_value(serde_json::json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}
            ]}}
        }))
        .unwrap();
        let pod = PodInfo::new(Arc::new(pod));
        let (result, status) =
            NodeAffinity.pre_filter(&mut CycleState::default(), &pod, &Snapshot::default());
        assert!(status.is_success());
        assert_eq!(result.unwrap(), HashSet::from(["b".to_owned()]));
        assert_eq!(filter_reasons(&NodeAffinity, &pod, nodes())[1], "");
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let pod = make_pod("p")
            .preferred_node_affinity(20, "zone", &["z1"])
            .preferred_node_affinity(80, "gen", &["5"])
            .info();
        assert_eq!(
            score(&NodeAffinity, &pod, nodes()).unwrap(),
            vec![25, 100, 0]
        );
        assert_eq!(score(&NodeAffinity, &make_pod("p").info(), nodes()), None);
    }
}
