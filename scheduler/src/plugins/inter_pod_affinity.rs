//! InterPodAffinity: required pod affinity (the node's topology domain must hold a
//! matching pod), required anti-affinity (it must not), and existing pods' anti-affinity
//! towards the incoming pod; preferred terms on both sides score topology domains.
//!
//! PreFilter counts matching pods per (topology key, domain) once per cycle, deciding each
//! label class and each distinct term once, so Filter is a lookup per term per node.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::Snapshot;
use crate::framework::interner::Memo;
use crate::framework::label_class::class_memos;
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

/// Matching pods (or score) per topology key and domain: arrays over the snapshot's
/// domains, and a map for values outside them (only preemption's what-ifs add those).
#[derive(Clone, Default)]
struct Counts {
    keys: Vec<KeyCounts>,
    other: HashMap<String, HashMap<String, i64>>,
}

#[derive(Clone)]
struct KeyCounts {
    key: String,
    domains: Arc<Domains>,
    /// Per domain; None where nothing was counted.
    counts: Vec<Option<i64>>,
}

impl Counts {
    /// Whether nothing was counted anywhere.
    fn is_empty(&self) -> bool {
        self.other.is_empty()
            && self
                .keys
                .iter()
                .all(|k| k.counts.iter().all(Option::is_none))
    }

    /// The count in `node`'s domain of `key` (0 without the key or a count).
    fn at(&self, node: &NodeInfo, key: &str) -> i64 {
        let Some(v) = node.labels.get(key) else {
            return 0;
        };
        let counted = self
            .keys
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.domains.id(v).and_then(|d| k.counts[d]));
        counted.unwrap_or(0)
            + self
                .other
                .get(key)
                .and_then(|m| m.get(v))
                .copied()
                .unwrap_or(0)
    }

    /// Every key counted, once each.
    fn key_names(&self) -> impl Iterator<Item = &str> {
        let own = self.keys.iter().map(|k| k.key.as_str());
        let other = self
            .other
            .keys()
            .map(String::as_str)
            .filter(|o| !self.keys.iter().any(|k| k.key == *o));
        own.chain(other)
    }

    /// The sum over keys of `node`'s domain counts (a node's score).
    fn sum_at(&self, node: &NodeInfo) -> i64 {
        self.key_names().map(|k| self.at(node, k)).sum()
    }

    fn any_positive_at(&self, node: &NodeInfo) -> bool {
        self.key_names().any(|k| self.at(node, k) > 0)
    }

    fn all_non_positive(&self) -> bool {
        self.keys
            .iter()
            .flat_map(|k| k.counts.iter().flatten())
            .chain(self.other.values().flat_map(HashMap::values))
            .all(|c| *c <= 0)
    }

    /// Adds `by` in `node`'s domain of `key` (any node: preemption's what-ifs).
    fn bump(&mut self, node: &NodeInfo, key: &str, by: i64) {
        let Some(v) = node.labels.get(key) else {
            return;
        };
        if let Some(k) = self.keys.iter_mut().find(|k| k.key == key)
            && let Some(d) = k.domains.id(v)
        {
            *k.counts[d].get_or_insert(0) += by;
            return;
        }
        *self
            .other
            .entry(key.to_owned())
            .or_default()
            .entry(v.clone())
            .or_default() += by;
    }
}

/// Builds `Counts` by the snapshot's node index: a cycle touches arrays, not hash maps.
struct Tally<'a> {
    snapshot: &'a Snapshot,
    counts: Counts,
    /// Keys the snapshot keeps no domains for (past its limit): counted by label value.
    by_value: Vec<String>,
}

#[derive(Clone, Copy)]
enum Slot {
    /// Index into `counts.keys`.
    Array(usize),
    /// Index into `by_value`.
    Value(usize),
}

impl<'a> Tally<'a> {
    fn new(snapshot: &'a Snapshot) -> Tally<'a> {
        Tally {
            snapshot,
            counts: Counts::default(),
            by_value: Vec::new(),
        }
    }

    /// The slot of a topology key (few per cycle: a linear search).
    fn slot(&mut self, key: &str) -> Slot {
        let keys = &mut self.counts.keys;
        if let Some(i) = keys.iter().position(|k| k.key == key) {
            return Slot::Array(i);
        }
        if let Some(j) = self.by_value.iter().position(|k| k == key) {
            return Slot::Value(j);
        }
        let Some(domains) = self.snapshot.kept_domains(key) else {
            // Building a table per cycle for a key pods may name by the thousand would
            // cost every pod's cycle O(nodes) per key; count its values instead.
            self.by_value.push(key.to_owned());
            return Slot::Value(self.by_value.len() - 1);
        };
        keys.push(KeyCounts {
            key: key.to_owned(),
            counts: vec![None; domains.len()],
            domains,
        });
        Slot::Array(keys.len() - 1)
    }

    /// Adds `by` in the domain of the snapshot's node `node` (nothing without the key).
    fn add(&mut self, slot: Slot, node: usize, by: i64) {
        match slot {
            Slot::Array(i) => {
                let k = &mut self.counts.keys[i];
                let d = k.domains.of_node[node];
                if d != Domains::NONE {
                    *k.counts[d as usize].get_or_insert(0) += by;
                }
            }
            Slot::Value(j) => {
                let key = &self.by_value[j];
                self.counts.bump(&self.snapshot.nodes[node], key, by);
            }
        }
    }

    fn finish(self) -> Counts {
        self.counts
    }
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
    /// No existing pod matches the incoming pod's affinity terms (kept with `affinity`).
    no_affinity_match: bool,
}

fn ns_lookup(snapshot: &Snapshot) -> impl Fn(&str) -> Option<LabelsRef> + '_ {
    |ns| snapshot.namespace_labels(ns)
}

/// The incoming pod's terms with a per-cycle memo of the label classes each selects.
fn memoized(terms: &[Term]) -> Vec<(&AffinityTerm, Memo)> {
    terms
        .iter()
        .map(|t| &***t)
        .zip(class_memos(terms.len()))
        .collect()
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
        s.existing_anti_affinity = existing_anti.finish();
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
        s.affinity = affinity.finish();
        s.no_affinity_match = s.affinity.all_non_positive();
        s.anti_affinity = anti.finish();
        s.self_affinity = pod.required_affinity.iter().all(|t| t.matches(pod, &ns));
        s
    }
}

fn in_domain(counts: &Counts, node: &NodeInfo, key: &str) -> bool {
    counts.at(node, key) > 0
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
            s.existing_anti_affinity.bump(node, &term.topology_key, by);
        }
    }
    for term in &pod.required_affinity {
        if term.matches(other, &none) {
            s.affinity.bump(node, &term.topology_key, by);
        }
    }
    s.no_affinity_match = s.affinity.all_non_positive();
    for term in &pod.required_anti_affinity {
        if term.matches(other, &none) {
            s.anti_affinity.bump(node, &term.topology_key, by);
        }
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>() else {
            return Status::error("InterPodAffinity: no PreFilter state");
        };
        if s.existing_anti_affinity.any_positive_at(node) {
            return Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY);
        }
        if !pod.required_affinity.is_empty() {
            let all = pod
                .required_affinity
                .iter()
                .all(|t| in_domain(&s.affinity, node, &t.topology_key));
            // The first pod of a group that selects itself may go anywhere the keys exist.
            let first_of_group = s.no_affinity_match
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
        let mut incoming: Vec<&AffinityTerm> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for (terms, sign) in [
            (&pod.preferred_affinity, 1),
            (&pod.preferred_anti_affinity, -1),
        ] {
            for t in terms {
                incoming.push(&t.term);
                weights.push(sign * i64::from(t.weight));
            }
        }
        let memos = class_memos(incoming.len());
        let mut incoming: Vec<(&AffinityTerm, Memo)> = incoming.into_iter().zip(memos).collect();
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
        let scores = tally.finish();
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
        s.0.sum_at(node)
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
    fn counts_take_values_outside_the_snapshot() {
        let snapshot = Snapshot::from_nodes(nodes());
        let mut tally = Tally::new(&snapshot);
        let zone = tally.slot(ZONE);
        tally.add(zone, 0, 2);
        tally.add(zone, 3, 5); // node d has no zone: not counted
        let mut counts = tally.finish();
        let (a, c, d) = (&snapshot.nodes[0], &snapshot.nodes[2], &snapshot.nodes[3]);
        assert_eq!(
            (counts.at(a, ZONE), counts.at(c, ZONE), counts.at(d, ZONE)),
            (2, 0, 0)
        );
        assert!(counts.any_positive_at(a) && !counts.any_positive_at(c));
        // A what-if on a node outside the snapshot's domains (a new zone, a new key).
        let elsewhere = make_node("e").label(ZONE, "z9").label(HOST, "e").info();
        counts.bump(&elsewhere, ZONE, 1);
        counts.bump(&elsewhere, HOST, -3);
        assert_eq!(
            (counts.at(&elsewhere, ZONE), counts.at(&elsewhere, HOST)),
            (1, -3)
        );
        assert_eq!(counts.sum_at(&elsewhere), -2);
        assert!(!counts.all_non_positive());
        counts.bump(a, ZONE, -2);
        counts.bump(&elsewhere, ZONE, -1);
        assert!(counts.all_non_positive() && !counts.is_empty());

        // Past the keys a snapshot keeps domains for, a key is counted by value, alike.
        let full = Snapshot::from_nodes(nodes());
        for i in 0..100 {
            full.kept_domains(&format!("example.com/k{i}"));
        }
        assert!(full.kept_domains(ZONE).is_none());
        let mut tally = Tally::new(&full);
        let zone = tally.slot(ZONE);
        assert!(matches!(zone, Slot::Value(_)));
        tally.add(zone, 0, 2);
        tally.add(zone, 1, 1);
        tally.add(zone, 3, 5);
        let counts = tally.finish();
        let (a, c) = (&full.nodes[0], &full.nodes[2]);
        assert_eq!(
            (counts.at(a, ZONE), counts.at(c, ZONE), counts.sum_at(a)),
            (3, 0, 3)
        );
        assert!(counts.any_positive_at(a) && !counts.any_positive_at(c));
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
