//! PodTopologySpread: spreads matching pods across topology domains. DoNotSchedule
//! constraints filter nodes whose domain would exceed maxSkew over the least loaded
//! domain; ScheduleAnyway constraints (and, for pods without constraints, the system
//! default ones: hostname maxSkew 3, zone maxSkew 5) score emptier domains higher.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::selector::{LabelSelector, Operator, Requirement};
use serde::Deserialize;

use super::node_affinity::pod_matches_node;
use crate::cache::Snapshot;
use crate::framework::interner::Memo;
use crate::framework::label_class::{ClassKey, class_memos};
use crate::framework::{
    ALL, ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, MAX_NODE_SCORE,
    NodeInfo, Plugin, PodInfo, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    Status,
};
use crate::topology::Domains;
use common::scheduling::node_affinity::required_node_affinity;
use common::scheduling::tolerations::{does_not_schedule, find_untolerated_taint};

pub const NAME: &str = "PodTopologySpread";
pub const ERR_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";
/// The raw score of a node missing a topology key (real scores are never negative).
const IGNORED: i64 = -1;

/// One constraint, parsed.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: LabelSelector,
    min_domains: i64,
    honor_node_affinity: bool,
    honor_taints: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DefaultConstraint {
    max_skew: i64,
    topology_key: String,
    when_unsatisfiable: String,
}

pub struct PodTopologySpread {
    /// Constraints for pods that have none, with the selector taken from the Services and
    /// workloads that select the pod.
    defaults: Vec<DefaultConstraint>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Args {
    #[serde(default)]
    default_constraints: Vec<DefaultConstraint>,
    defaulting_type: Option<String>,
}

fn system_defaults() -> Vec<DefaultConstraint> {
    vec![
        DefaultConstraint {
            max_skew: 3,
            topology_key: HOSTNAME.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
        },
        DefaultConstraint {
            max_skew: 5,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
        },
    ]
}

pub fn factory(
    args: Option<&serde_json::Value>,
    _: &Arc<Handle>,
) -> crate::Result<Arc<dyn Plugin>> {
    let args: Args = crate::framework::registry::decode_args(args, "PodTopologySpreadArgs")?;
    let defaults = match args.defaulting_type.as_deref().unwrap_or("System") {
        "System" => {
            if !args.default_constraints.is_empty() {
                crate::invalid!(
                    "PodTopologySpreadArgs: defaultConstraints: Invalid value: when .defaultingType is \"System\", .defaultConstraints must be empty"
                );
            }
            system_defaults()
        }
        "List" => args.default_constraints,
        other => {
            crate::invalid!("PodTopologySpreadArgs: defaultingType: Unsupported value: {other:?}")
        }
    };
    Ok(Arc::new(PodTopologySpread { defaults }))
}

impl PodTopologySpread {
    /// The pod's constraints with `when` (DoNotSchedule or ScheduleAnyway), or the defaults.
    fn constraints(&self, pod: &PodInfo, snapshot: &Snapshot, when: &str) -> Vec<Constraint> {
        let own = pod
            .spec()
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default();
        if !own.is_empty() {
            return own
                .iter()
                .filter(|c| c.when_unsatisfiable == when)
                .map(|c| {
                    let mut selector = c
                        .label_selector
                        .as_ref()
                        .and_then(|s| serde_json::to_value(s).ok())
                        .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
                        .unwrap_or_else(nothing);
                    if let Some(keys) = &c.match_label_keys {
                        let mut reqs = selector.requirements().to_vec();
                        for k in keys {
                            if let Some(v) = pod.labels.get(k) {
                                reqs.push(Requirement {
                                    key: k.clone(),
                                    op: Operator::In,
                                    values: vec![v.clone()],
                                });
                            }
                        }
                        selector = LabelSelector::from_requirements(reqs);
                    }
                    Constraint {
                        max_skew: i64::from(c.max_skew),
                        topology_key: c.topology_key.clone(),
                        selector,
                        min_domains: i64::from(c.min_domains.unwrap_or(1)),
                        honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                        honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                    }
                })
                .collect();
        }
        let defaults: Vec<&DefaultConstraint> = self
            .defaults
            .iter()
            .filter(|d| d.when_unsatisfiable == when)
            .collect();
        if defaults.is_empty() {
            return Vec::new();
        }
        let Some(selector) = snapshot.default_spread_selector(pod) else {
            return Vec::new();
        };
        defaults
            .into_iter()
            .map(|d| Constraint {
                max_skew: d.max_skew,
                topology_key: d.topology_key.clone(),
                selector: selector.clone(),
                min_domains: 1,
                honor_node_affinity: true,
                honor_taints: false,
            })
            .collect()
    }
}

/// A selector that matches nothing (a constraint without labelSelector).
fn nothing() -> LabelSelector {
    LabelSelector::from_requirements(vec![Requirement {
        key: "tetsu.io/never".into(),
        op: Operator::In,
        values: Vec::new(),
    }])
}

/// Whether `c` counts the pods of a class: same namespace, selected, not terminating.
fn selects(c: &Constraint, namespace: &str, class: &ClassKey) -> bool {
    class.namespace == namespace && !class.terminating && c.selector.matches_map(&class.labels)
}

/// Pods on `node` that `c` counts, deciding each label class once per `memo`.
fn count_matching(c: &Constraint, namespace: &str, node: &NodeInfo, memo: &mut Memo) -> i64 {
    node.classes
        .iter()
        .filter(|(class, _)| memo.get(class, |k| selects(c, namespace, k)))
        .map(|(_, n)| i64::from(*n))
        .sum()
}

/// Whether `node` takes part in the counting for the pod's constraints.
fn node_counts(pod: &PodInfo, constraints: &[Constraint], node: &NodeInfo) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
        && node_qualifies(pod, constraints, node)
}

/// Whether every node with the constraints' keys counts, so that the snapshot's per-domain
/// class counts can stand for a visit of every node: no node affinity or selector to honor,
/// no taints to honor, and no node holding one of the keys but not another.
fn every_node_counts(pod: &PodInfo, constraints: &[Constraint], domains: &[Arc<Domains>]) -> bool {
    let spec = pod.spec();
    let no_node_constraints = spec.node_selector.as_ref().is_none_or(|s| s.is_empty())
        && required_node_affinity(spec).is_none();
    (no_node_constraints || constraints.iter().all(|c| !c.honor_node_affinity))
        && constraints.iter().all(|c| !c.honor_taints)
        && (domains.len() == 1 || domains.iter().all(|d| d.missing == 0))
}

/// The policies' part of `node_counts` (node affinity, taints), topology keys aside.
fn node_qualifies(pod: &PodInfo, constraints: &[Constraint], node: &NodeInfo) -> bool {
    if constraints.iter().any(|c| c.honor_node_affinity) && !pod_matches_node(pod, node) {
        return false;
    }
    if constraints.iter().any(|c| c.honor_taints) {
        let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
        if find_untolerated_taint(&node.taints, tolerations, does_not_schedule).is_some() {
            return false;
        }
    }
    true
}

#[derive(Clone)]
struct PreFilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: the snapshot's domains of its topology key.
    domains: Vec<Arc<Domains>>,
    /// Per constraint and domain: matching pods; None for a domain no counted node is in.
    counts: Vec<Vec<Option<i64>>>,
    /// Per constraint: the smallest count over its domains (0 below minDomains).
    min_counts: Vec<i64>,
    self_match: Vec<i64>,
}

impl PreFilterState {
    fn recompute_min(&mut self) {
        for (i, c) in self.constraints.iter().enumerate() {
            let present = self.counts[i].iter().flatten();
            self.min_counts[i] = if (present.clone().count() as i64) < c.min_domains {
                0
            } else {
                present.copied().min().unwrap_or(0)
            };
        }
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
        if !node_counts(pod, &self.constraints, node) || other.namespace != pod.namespace {
            return;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if c.selector.matches_map(&other.labels)
                && let Some(d) = self.domains[i].of(node, &c.topology_key)
            {
                *self.counts[i][d].get_or_insert(0) += by;
            }
        }
        self.recompute_min();
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Pod, ALL),
            ClusterEvent::new(EventResource::Node, ALL),
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

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let constraints = self.constraints(pod, snapshot, "DoNotSchedule");
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        let domains: Vec<Arc<Domains>> = constraints
            .iter()
            .map(|c| snapshot.domains(&c.topology_key))
            .collect();
        let mut counts: Vec<Vec<Option<i64>>> =
            domains.iter().map(|d| vec![None; d.len()]).collect();
        let mut memos = class_memos(constraints.len());
        let fast = every_node_counts(pod, &constraints, &domains);
        for (i, c) in constraints.iter().enumerate().filter(|_| fast) {
            let by_domain = snapshot.with_topology(&c.topology_key, |t| {
                t.counts(&mut memos[i], |k| selects(c, &pod.namespace, k))
            });
            counts[i] = by_domain.into_iter().map(Some).collect();
        }
        for (n, node) in snapshot.nodes.iter().enumerate().filter(|_| !fast) {
            if domains.iter().any(|d| d.of_node[n] == Domains::NONE)
                || !node_qualifies(pod, &constraints, node)
            {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                let matching = count_matching(c, &pod.namespace, node, &mut memos[i]);
                *counts[i][domains[i].of_node[n] as usize].get_or_insert(0) += matching;
            }
        }
        let self_match = constraints
            .iter()
            .map(|c| i64::from(c.selector.matches_map(&pod.labels)))
            .collect();
        let n = constraints.len();
        let mut s = PreFilterState {
            constraints,
            domains,
            counts,
            min_counts: vec![0; n],
            self_match,
        };
        s.recompute_min();
        state.write(s);
        (None, Status::success())
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>() {
            s.update(pod, added, node, 1);
        }
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) {
        if let Some(s) = state.read_mut::<PreFilterState>() {
            s.update(pod, removed, node, -1);
        }
    }

    fn clone_state(
        &self,
        state: &dyn std::any::Any,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        state
            .downcast_ref::<PreFilterState>()
            .map(|s| Box::new(s.clone()) as Box<dyn std::any::Any + Send + Sync>)
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>() else {
            return Status::error("PodTopologySpread: no PreFilter state");
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_MISSING_LABEL);
            };
            let matching = s.domains[i].id(v).and_then(|d| s.counts[i][d]).unwrap_or(0);
            let skew = matching + s.self_match[i] - s.min_counts[i];
            if skew > c.max_skew {
                return Status::unschedulable(ERR_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

struct PreScoreState {
    constraints: Vec<Constraint>,
    /// Nodes (by name) missing a topology key: they score 0.
    ignored: HashSet<String>,
    /// Per constraint: the snapshot's domains of its topology key.
    domains: Vec<Arc<Domains>>,
    /// Per constraint (not hostname ones) and domain: matching pods.
    counts: Vec<Vec<i64>>,
    /// Per constraint: which label classes it counts (those of the scored nodes' pods).
    memos: Vec<Memo>,
    /// Per constraint: log(domains + 2), so constraints over few domains weigh less.
    weights: Vec<f64>,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        let constraints = self.constraints(pod, snapshot, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let domains: Vec<Arc<Domains>> = constraints
            .iter()
            .map(|c| snapshot.domains(&c.topology_key))
            .collect();
        let mut memos = class_memos(constraints.len());
        let mut ignored = HashSet::new();
        // Per constraint and domain: whether a scored node is in it.
        let mut scored: Vec<Vec<bool>> = domains.iter().map(|d| vec![false; d.len()]).collect();
        for n in nodes {
            let ids: Option<Vec<usize>> = constraints
                .iter()
                .zip(&domains)
                .map(|(c, d)| d.of(n, &c.topology_key))
                .collect();
            let Some(ids) = ids else {
                ignored.insert(n.name.clone());
                continue;
            };
            for (i, c) in constraints.iter().enumerate() {
                scored[i][ids[i]] = true;
                // Score reads these classes for hostname constraints.
                if c.topology_key == HOSTNAME {
                    for (class, _) in &n.classes {
                        memos[i].get(class, |k| selects(c, &pod.namespace, k));
                    }
                }
            }
        }
        let mut counts: Vec<Vec<i64>> = domains.iter().map(|d| vec![0; d.len()]).collect();
        let needs_counts = constraints.iter().any(|c| c.topology_key != HOSTNAME);
        if needs_counts && every_node_counts(pod, &constraints, &domains) {
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let by_domain = snapshot.with_topology(&c.topology_key, |t| {
                    t.counts(&mut memos[i], |k| selects(c, &pod.namespace, k))
                });
                for (d, n) in by_domain.into_iter().enumerate() {
                    if scored[i][d] {
                        counts[i][d] = n;
                    }
                }
            }
        } else if needs_counts {
            for (n, node) in snapshot.nodes.iter().enumerate() {
                if domains.iter().any(|d| d.of_node[n] == Domains::NONE)
                    || !node_qualifies(pod, &constraints, node)
                {
                    continue;
                }
                for (i, c) in constraints.iter().enumerate() {
                    let d = domains[i].of_node[n] as usize;
                    if c.topology_key != HOSTNAME && scored[i][d] {
                        counts[i][d] += count_matching(c, &pod.namespace, node, &mut memos[i]);
                    }
                }
            }
        }
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME {
                    nodes.len() - ignored.len()
                } else {
                    scored[i].iter().filter(|s| **s).count()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        state.write(PreScoreState {
            constraints,
            ignored,
            domains,
            counts,
            memos,
            weights,
        });
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>() else {
            return 0;
        };
        if s.ignored.contains(&node.name) {
            return IGNORED;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                node.classes
                    .iter()
                    .filter(|(class, _)| {
                        s.memos[i]
                            .known(class)
                            .unwrap_or_else(|| selects(c, &pod.namespace, class))
                    })
                    .map(|(_, n)| i64::from(*n))
                    .sum()
            } else {
                s.domains[i].id(v).map_or(0, |d| s.counts[i][d])
            };
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    /// Fewer matching pods is better: 100 * (max + min - score) / max; ignored nodes 0.
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let (min, max) = scores
            .iter()
            .filter(|s| **s != IGNORED)
            .fold((i64::MAX, i64::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

impl Snapshot {
    /// upstream's DefaultSelector: the requirements of every Service and workload in the
    /// pod's namespace that selects it, merged; None when nothing selects the pod.
    pub fn default_spread_selector(&self, pod: &PodInfo) -> Option<LabelSelector> {
        let selectors = self.spread_selectors.get(&pod.namespace)?;
        let mut reqs: BTreeMap<(String, String), Requirement> = BTreeMap::new();
        for s in selectors
            .iter()
            .filter(|s| !s.is_everything() && s.matches_map(&pod.labels))
        {
            for r in s.requirements() {
                reqs.entry((r.key.clone(), format!("{:?}{:?}", r.op, r.values)))
                    .or_insert_with(|| r.clone());
            }
        }
        (!reqs.is_empty()).then(|| LabelSelector::from_requirements(reqs.into_values().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::{build, filter_reasons, score};
    use crate::testing::{make_node, make_pod};

    const ZONE: &str = "topology.kubernetes.io/zone";

    fn web(name: &str) -> crate::framework::PodInfo {
        make_pod(name).label("app", "web").info()
    }

    fn nodes() -> Vec<NodeInfo> {
        vec![
            make_node("a")
                .label(ZONE, "z1")
                .with_pods(vec![web("w1"), web("w2")]),
            make_node("b").label(ZONE, "z1").with_pods(vec![web("w3")]),
            make_node("c").label(ZONE, "z2").info(),
            make_node("d").info(),
        ]
    }

    #[test]
    fn do_not_schedule_keeps_skew_within_max() {
        let p = build(factory);
        let (no, missing) = (ERR_CONSTRAINTS_NOT_MATCH, ERR_MISSING_LABEL);
        let spread = |skew, key| {
            make_pod("p")
                .label("app", "web")
                .spread(skew, key, "DoNotSchedule", &[("app", "web")])
        };
        for (pod, want) in [
            // z1 has 3, z2 has 0: only z2 keeps the skew at 1.
            (spread(1, ZONE), vec![no, no, "", missing]),
            (spread(4, ZONE), vec!["", "", "", missing]),
            // Per host: a 2, b 1, c 0, d 0 (d has a hostname label too).
            (spread(1, "kubernetes.io/hostname"), vec![no, no, "", ""]),
            (spread(2, "kubernetes.io/hostname"), vec![no, "", "", ""]),
            // ScheduleAnyway constraints never filter.
            (
                make_pod("p").spread(1, ZONE, "ScheduleAnyway", &[("app", "web")]),
                vec!["", "", "", ""],
            ),
        ] {
            assert_eq!(filter_reasons(p.as_ref(), &pod.info(), nodes()), want);
        }
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let p = build(factory);
        let pod = make_pod("p")
            .label("app", "web")
            .spread(1, ZONE, "ScheduleAnyway", &[("app", "web")])
            .info();
        // z1 has 3 pods, z2 none; d has no zone and scores 0.
        assert_eq!(
            score(p.as_ref(), &pod, nodes()).unwrap(),
            vec![0, 0, 100, 0]
        );
        let pod = make_pod("p")
            .spread(
                1,
                "kubernetes.io/hostname",
                "ScheduleAnyway",
                &[("app", "web")],
            )
            .info();
        let s = score(p.as_ref(), &pod, nodes()).unwrap();
        assert!(s[0] < s[1] && s[1] < s[2] && s[2] == s[3], "{s:?}");
        // No constraints and nothing selecting the pod: skipped.
        assert_eq!(score(p.as_ref(), &web("p"), nodes()), None);
    }
}
