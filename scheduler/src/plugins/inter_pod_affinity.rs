//! InterPodAffinity: required pod affinity (the node's topology domain must hold a
//! matching pod), required anti-affinity (it must not), and existing pods' anti-affinity
//! towards the incoming pod; preferred terms on both sides score topology domains.
//!
//! PreFilter counts matching pods per (topology key, value) once per cycle, so Filter is a
//! few map lookups per node.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::Snapshot;
use crate::framework::interner::Memo;
use crate::framework::label_class::class_memo;
use crate::framework::types::{AffinityTerm, LabelsRef, Term, term_memo};
use crate::framework::{
    ALL, ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, MAX_NODE_SCORE,
    NodeInfo, Plugin, PodInfo, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    Status,
};
use crate::topology::Domains;

pub const NAME: &str = "InterPodAffinity";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

pub struct InterPodAffinity {
    hard_pod_affinity_weight: i64,
    ignore_preferred_terms_of_existing_pods: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Args {
    hard_pod_affinity_weight: Option<i64>,
    #[serde(default)]
    ignore_preferred_terms_of_existing_pods: bool,
}

pub fn factory(
    args: Option<&serde_json::Value>,
    _: &Arc<Handle>,
) -> crate::Result<Arc<dyn Plugin>> {
    let args: Args = crate::framework::registry::decode_args(args, "InterPodAffinityArgs")?;
    let weight = args.hard_pod_affinity_weight.unwrap_or(1);
    if !(0..=100).contains(&weight) {
        crate::invalid!(
            "InterPodAffinityArgs: hardPodAffinityWeight: Invalid value: {weight}: not in valid range [0-100]"
        );
    }
    Ok(Arc::new(InterPodAffinity {
        hard_pod_affinity_weight: weight,
        ignore_preferred_terms_of_existing_pods: args.ignore_preferred_terms_of_existing_pods,
    }))
}

/// topology key -> value -> count (nested so lookups borrow the node's labels).
type Counts = HashMap<String, HashMap<String, i64>>;

/// Adds `by` at (key, value); allocates only for a key or value not seen before.
fn add(counts: &mut Counts, key: &str, value: &str, by: i64) {
    if !counts.contains_key(key) {
        counts.insert(key.to_owned(), HashMap::new());
    }
    let values = counts.get_mut(key).expect("inserted");
    match values.get_mut(value) {
        Some(c) => *c += by,
        None => {
            values.insert(value.to_owned(), by);
        }
    }
}

/// Counts gathered by node index into arrays per topology key (the snapshot's domains),
/// then turned into `Counts` once: a cycle hashes each touched domain once, not each pod.
struct Tally<'a> {
    snapshot: &'a Snapshot,
    keys: Vec<(String, Arc<Domains>, Vec<Option<i64>>)>,
}

impl<'a> Tally<'a> {
    fn new(snapshot: &'a Snapshot) -> Tally<'a> {
        Tally {
            snapshot,
            keys: Vec::new(),
        }
    }

    /// The slot of a topology key (few per cycle: a linear search).
    fn slot(&mut self, key: &str) -> usize {
        if let Some(i) = self.keys.iter().position(|(k, _, _)| k == key) {
            return i;
        }
        let domains = self.snapshot.domains(key);
        let counts = vec![None; domains.len()];
        self.keys.push((key.to_owned(), domains, counts));
        self.keys.len() - 1
    }

    /// Adds `by` in the domain of the snapshot's node `node` (nothing without the key).
    fn add(&mut self, slot: usize, node: usize, by: i64) {
        let (_, domains, counts) = &mut self.keys[slot];
        let d = domains.of_node[node];
        if d != Domains::NONE {
            *counts[d as usize].get_or_insert(0) += by;
        }
    }

    fn into_counts(self) -> Counts {
        self.keys
            .into_iter()
            .filter(|(_, _, counts)| counts.iter().any(Option::is_some))
            .map(|(key, domains, counts)| {
                let values = counts
                    .into_iter()
                    .enumerate()
                    .filter_map(|(d, c)| Some((domains.values[d].clone(), c?)))
                    .collect();
                (key, values)
            })
            .collect()
    }
}

fn count(counts: &Counts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|m| m.get(value))
        .copied()
        .unwrap_or(0)
}

#[derive(Clone, Default)]
struct PreFilterState {
    /// Existing pods whose required anti-affinity matches the incoming pod.
    existing_anti_affinity: Counts,
    /// Existing pods matching each of the incoming pod's required affinity terms (all terms
    /// counted together, as upstream does).
    affinity: Counts,
    anti_affinity: Counts,
    /// The incoming pod matches all of its own affinity terms (it may start a group).
    self_affinity: bool,
}

fn ns_lookup(snapshot: &Snapshot) -> impl Fn(&str) -> Option<LabelsRef> + '_ {
    |ns| snapshot.namespace_labels(ns)
}

fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels.get(key) {
        add(counts, key, v, by);
    }
}

/// The incoming pod's terms with a per-cycle memo of the label classes each selects.
fn memoized(terms: &[Term]) -> Vec<(&AffinityTerm, Memo)> {
    terms.iter().map(|t| (&***t, class_memo())).collect()
}

/// Adds, for each term, the pods on node `n` it selects (decided per label class).
fn tally_terms(
    tally: &mut Tally,
    terms: &mut [(&AffinityTerm, Memo)],
    weights: &[i64],
    n: usize,
    node: &NodeInfo,
    ns: &dyn Fn(&str) -> Option<LabelsRef>,
) {
    for ((term, memo), weight) in terms.iter_mut().zip(weights) {
        let matching: i64 = node
            .classes
            .iter()
            .filter(|(class, _)| memo.get(class, |k| term.matches_class(k, ns)))
            .map(|(_, count)| i64::from(*count))
            .sum();
        if matching > 0 && *weight != 0 {
            let slot = tally.slot(&term.topology_key);
            tally.add(slot, n, matching * weight);
        }
    }
}

impl InterPodAffinity {
    fn counts(&self, pod: &PodInfo, snapshot: &Snapshot) -> PreFilterState {
        let ns = ns_lookup(snapshot);
        let mut s = PreFilterState::default();
        let mut existing_anti = Tally::new(snapshot);
        // Existing pods' terms towards the incoming pod, each distinct term decided once.
        let mut selects_pod = term_memo();
        for &i in &snapshot.with_required_anti_affinity {
            for existing in &snapshot.nodes[i].pods {
                for term in &existing.required_anti_affinity {
                    if selects_pod.get(term, |t| t.matches(pod, &ns)) {
                        let slot = existing_anti.slot(&term.topology_key);
                        existing_anti.add(slot, i, 1);
                    }
                }
            }
        }
        s.existing_anti_affinity = existing_anti.into_counts();
        if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
            return s;
        }
        let (mut affinity, mut anti) = (Tally::new(snapshot), Tally::new(snapshot));
        let mut affinity_terms = memoized(&pod.required_affinity);
        let mut anti_terms = memoized(&pod.required_anti_affinity);
        let ones = vec![1; affinity_terms.len().max(anti_terms.len())];
        for (n, node) in snapshot.nodes.iter().enumerate() {
            tally_terms(&mut affinity, &mut affinity_terms, &ones, n, node, &ns);
            tally_terms(&mut anti, &mut anti_terms, &ones, n, node, &ns);
        }
        s.affinity = affinity.into_counts();
        s.anti_affinity = anti.into_counts();
        s.self_affinity = pod.required_affinity.iter().all(|t| t.matches(pod, &ns));
        s
    }
}

fn in_domain(counts: &Counts, node: &NodeInfo, key: &str) -> bool {
    node.labels
        .get(key)
        .is_some_and(|v| count(counts, key, v) > 0)
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Pod, ALL),
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

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let s = self.counts(pod, snapshot);
        if pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
            && s.existing_anti_affinity.is_empty()
        {
            return (None, Status::skip());
        }
        state.write(s);
        (None, Status::success())
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        update_for(state, pod, added, node, 1);
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) {
        update_for(state, pod, removed, node, -1);
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

/// Preemption's what-if: `other` appears on (by 1) or leaves (by -1) `node`.
fn update_for(state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
    let Some(s) = state.read_mut::<PreFilterState>() else {
        return;
    };
    let none = |_: &str| None;
    for term in &other.required_anti_affinity {
        if term.matches(pod, &none) {
            bump(&mut s.existing_anti_affinity, node, &term.topology_key, by);
        }
    }
    for term in &pod.required_affinity {
        if term.matches(other, &none) {
            bump(&mut s.affinity, node, &term.topology_key, by);
        }
    }
    for term in &pod.required_anti_affinity {
        if term.matches(other, &none) {
            bump(&mut s.anti_affinity, node, &term.topology_key, by);
        }
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>() else {
            return Status::error("InterPodAffinity: no PreFilter state");
        };
        if s.existing_anti_affinity.iter().any(|(key, values)| {
            node.labels
                .get(key)
                .is_some_and(|v| values.get(v).is_some_and(|c| *c > 0))
        }) {
            return Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY);
        }
        if !pod.required_affinity.is_empty() {
            let all = pod
                .required_affinity
                .iter()
                .all(|t| in_domain(&s.affinity, node, &t.topology_key));
            // The first pod of a group that selects itself may go anywhere the keys exist.
            let first_of_group = s
                .affinity
                .values()
                .flat_map(|m| m.values())
                .all(|c| *c <= 0)
                && s.self_affinity
                && pod
                    .required_affinity
                    .iter()
                    .all(|t| node.labels.contains_key(&t.topology_key));
            if !all && !first_of_group {
                return Status::unresolvable(ERR_AFFINITY);
            }
        }
        if pod
            .required_anti_affinity
            .iter()
            .any(|t| in_domain(&s.anti_affinity, node, &t.topology_key))
        {
            return Status::unschedulable(ERR_ANTI_AFFINITY);
        }
        Status::success()
    }
}

/// topology key -> value -> score.
#[derive(Default)]
struct PreScoreState(Counts);

impl InterPodAffinity {
    /// Adds `weight` in node `n`'s domain of the term's key when the term selects the
    /// incoming pod (`selects_pod` remembers the answer per distinct term).
    fn score_term(
        tally: &mut Tally,
        term: &Term,
        weight: i64,
        selects_pod: &mut dyn FnMut(&Term) -> bool,
        n: usize,
    ) {
        if weight != 0 && selects_pod(term) {
            let slot = tally.slot(&term.topology_key);
            tally.add(slot, n, weight);
        }
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        let has_preferred =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !has_preferred && snapshot.with_affinity.is_empty() {
            return Status::skip();
        }
        let ns = ns_lookup(snapshot);
        let mut incoming: Vec<(&AffinityTerm, Memo)> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for (terms, sign) in [
            (&pod.preferred_affinity, 1),
            (&pod.preferred_anti_affinity, -1),
        ] {
            for t in terms {
                incoming.push((&t.term, class_memo()));
                weights.push(sign * i64::from(t.weight));
            }
        }
        let mut tally = Tally::new(snapshot);
        let mut memo = term_memo();
        let mut selects_pod = |t: &Term| memo.get(t, |t| t.matches(pod, &ns));
        let nodes: Box<dyn Iterator<Item = usize>> = if has_preferred {
            Box::new(0..snapshot.nodes.len())
        } else {
            Box::new(snapshot.with_affinity.iter().copied())
        };
        for n in nodes {
            let node = &snapshot.nodes[n];
            // The incoming pod's preferences towards the existing pods.
            tally_terms(&mut tally, &mut incoming, &weights, n, node, &ns);
            if node.pods_with_affinity == 0 {
                continue;
            }
            // The existing pods' terms towards the incoming pod.
            for existing in node.pods.iter().filter(|p| p.has_affinity()) {
                for t in &existing.required_affinity {
                    Self::score_term(
                        &mut tally,
                        t,
                        self.hard_pod_affinity_weight,
                        &mut selects_pod,
                        n,
                    );
                }
                if !self.ignore_preferred_terms_of_existing_pods {
                    for t in &existing.preferred_affinity {
                        Self::score_term(
                            &mut tally,
                            &t.term,
                            i64::from(t.weight),
                            &mut selects_pod,
                            n,
                        );
                    }
                    for t in &existing.preferred_anti_affinity {
                        Self::score_term(
                            &mut tally,
                            &t.term,
                            -i64::from(t.weight),
                            &mut selects_pod,
                            n,
                        );
                    }
                }
            }
        }
        let scores = tally.into_counts();
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(PreScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>() else {
            return 0;
        };
        s.0.iter()
            .filter_map(|(key, values)| node.labels.get(key).and_then(|v| values.get(v)))
            .sum()
    }

    /// Min-max scaling into 0..=100.
    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
            return;
        };
        for s in scores {
            *s = if max > min {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / (max - min) as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::{build, filter_reasons, score};
    use crate::testing::{make_node, make_pod};

    const ZONE: &str = "topology.kubernetes.io/zone";
    const HOST: &str = "kubernetes.io/hostname";

    fn nodes() -> Vec<NodeInfo> {
        vec![
            make_node("a")
                .label(ZONE, "z1")
                .with_pods(vec![make_pod("web").label("app", "web").info()]),
            make_node("b").label(ZONE, "z1").info(),
            make_node("c")
                .label(ZONE, "z2")
                .with_pods(vec![make_pod("db").label("app", "db").info()]),
            make_node("d").info(),
        ]
    }

    #[test]
    fn required_affinity_and_anti_affinity() {
        let p = build(factory);
        let (aff, anti, exist) = (ERR_AFFINITY, ERR_ANTI_AFFINITY, ERR_EXISTING_ANTI_AFFINITY);
        for (pod, want) in [
            (make_pod("p"), vec!["", "", "", ""]),
            (
                make_pod("p").pod_affinity(&[("app", "web")], ZONE),
                vec!["", "", aff, aff],
            ),
            (
                make_pod("p").pod_affinity(&[("app", "web")], HOST),
                vec!["", aff, aff, aff],
            ),
            (
                make_pod("p").pod_anti_affinity(&[("app", "web")], ZONE),
                vec![anti, anti, "", ""],
            ),
            (
                make_pod("p").pod_anti_affinity(&[("app", "web")], HOST),
                vec![anti, "", "", ""],
            ),
            // No pod matches yet, but the pod matches its own term: it may start the group
            // wherever the topology key exists.
            (
                make_pod("p")
                    .label("app", "cache")
                    .pod_affinity(&[("app", "cache")], ZONE),
                vec!["", "", "", aff],
            ),
            (
                make_pod("p").pod_affinity(&[("app", "cache")], ZONE),
                vec![aff, aff, aff, aff],
            ),
            // Other namespaces' pods do not count.
            (
                make_pod("p")
                    .namespace("other")
                    .pod_anti_affinity(&[("app", "web")], ZONE),
                vec!["", "", "", ""],
            ),
        ] {
            assert_eq!(filter_reasons(p.as_ref(), &pod.info(), nodes()), want);
        }
        // An existing pod's anti-affinity keeps matching pods out of its domain.
        let guarded = vec![
            make_node("a").label(ZONE, "z1").with_pods(vec![
                make_pod("x")
                    .pod_anti_affinity(&[("app", "web")], ZONE)
                    .info(),
            ]),
            make_node("b").label(ZONE, "z1").info(),
            make_node("c").label(ZONE, "z2").info(),
        ];
        let pod = make_pod("p").label("app", "web").info();
        assert_eq!(
            filter_reasons(p.as_ref(), &pod, guarded),
            vec![exist, exist, ""]
        );
    }

    #[test]
    fn preferred_terms_score_domains() {
        let p = build(factory);
        let pod = make_pod("p")
            .preferred_pod_affinity(10, &[("app", "web")], ZONE)
            .preferred_pod_anti_affinity(5, &[("app", "db")], ZONE)
            .info();
        // z1: +10, z2: -5, no zone: 0 -> min-max over [10, 10, -5, 0].
        assert_eq!(
            score(p.as_ref(), &pod, nodes()).unwrap(),
            vec![100, 100, 0, 33]
        );
        assert_eq!(score(p.as_ref(), &make_pod("p").info(), nodes()), None);
        // An existing pod's required affinity towards the incoming pod counts with
        // hardPodAffinityWeight.
        let with_hard = vec![
            make_node("a").label(ZONE, "z1").with_pods(vec![
                make_pod("x").pod_affinity(&[("app", "api")], ZONE).info(),
            ]),
            make_node("b").label(ZONE, "z2").info(),
        ];
        let api = make_pod("p").label("app", "api").info();
        assert_eq!(score(p.as_ref(), &api, with_hard).unwrap(), vec![100, 0]);
    }
}
