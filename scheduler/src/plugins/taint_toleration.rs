//! TaintToleration: nodes whose NoSchedule/NoExecute taints the pod does not tolerate are
//! filtered out; among the rest, fewer untolerated PreferNoSchedule taints score higher.

use std::sync::Arc;

use common::scheduling::tolerations::{
    does_not_schedule, find_untolerated_taint, tolerations_tolerate_taint,
};
use k8s_openapi::api::core::v1::Toleration;

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, MAX_NODE_SCORE,
    NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin, Status,
};

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(TaintToleration))
}

/// The pod's tolerations that can matter for scoring (PreferNoSchedule or any effect).
struct PreScoreState(Vec<Toleration>);

impl Plugin for TaintToleration {
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
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if node.taints.is_empty() {
            return Status::success();
        }
        let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
        match find_untolerated_taint(&node.taints, tolerations, does_not_schedule) {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        _: &crate::cache::Snapshot,
    ) -> Status {
        let tolerations = pod
            .spec()
            .tolerations
            .iter()
            .flatten()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .cloned()
            .collect();
        state.write(PreScoreState(tolerations));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    /// The number of PreferNoSchedule taints the pod does not tolerate (lower is better;
    /// normalize reverses it).
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations = state.read::<PreScoreState>().map_or(&[][..], |s| &s.0);
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !tolerations_tolerate_taint(tolerations, t))
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

/// upstream's DefaultNormalizeScore: scale so the highest is 100 (reversed: the lowest).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::{filter_reasons, score};
    use crate::testing::{make_node, make_pod};

    #[test]
    fn filter_needs_every_hard_taint_tolerated() {
        let nodes = || {
            vec![
                make_node("plain").info(),
                make_node("gpu").taint("gpu", "true", "NoSchedule").info(),
                make_node("drain").taint("maint", "", "NoExecute").info(),
                make_node("soft")
                    .taint("soft", "x", "PreferNoSchedule")
                    .info(),
            ]
        };
        let gpu = "node(s) had untolerated taint {gpu: true}";
        let drain = "node(s) had untolerated taint {maint: }";
        for (pod, want) in [
            (make_pod("p"), vec!["", gpu, drain, ""]),
            (
                make_pod("p").toleration("gpu", "Equal", "true", "NoSchedule"),
                vec!["", "", drain, ""],
            ),
            (
                make_pod("p").toleration("gpu", "Equal", "false", "NoSchedule"),
                vec!["", gpu, drain, ""],
            ),
            (
                make_pod("p").toleration("gpu", "Exists", "", ""),
                vec!["", "", drain, ""],
            ),
            (
                make_pod("p").toleration("", "Exists", "", ""),
                vec!["", "", "", ""],
            ),
            (
                make_pod("p").toleration("maint", "Exists", "", "NoSchedule"),
                vec!["", gpu, drain, ""],
            ),
        ] {
            assert_eq!(filter_reasons(&TaintToleration, &pod.info(), nodes()), want);
        }
    }

    #[test]
    fn fewer_intolerable_prefer_no_schedule_taints_score_higher() {
        let nodes = || {
            vec![
                make_node("none").info(),
                make_node("one").taint("a", "1", "PreferNoSchedule").info(),
                make_node("two")
                    .taint("a", "1", "PreferNoSchedule")
                    .taint("b", "1", "PreferNoSchedule")
                    .info(),
            ]
        };
        for (pod, want) in [
            (make_pod("p"), vec![100, 50, 0]),
            (
                make_pod("p").toleration("a", "Equal", "1", "PreferNoSchedule"),
                vec![100, 100, 0],
            ),
            (
                make_pod("p").toleration("", "Exists", "", ""),
                vec![100, 100, 100],
            ),
            // A NoSchedule toleration does not count for PreferNoSchedule taints.
            (
                make_pod("p").toleration("a", "Exists", "", "NoSchedule"),
                vec![100, 50, 0],
            ),
        ] {
            assert_eq!(score(&TaintToleration, &pod.info(), nodes()).unwrap(), want);
        }
    }
}
