//! Node affinity as upstream's component-helpers/scheduling/corev1/nodeaffinity: a pod's
//! spec.nodeSelector and required NodeSelectorTerms against a node's labels and name, and
//! the weights of the preferred terms a node matches.
//!
//! A requirement upstream would fail to parse (In or NotIn without values, Exists with values,
//! Gt or Lt without exactly one integer, a field other than metadata.name, a field operator
//! other than In or NotIn with one value) makes its term match nothing, as upstream ignores
//! such terms. Label keys and values are not revalidated here: the apiserver rejects them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, PreferredSchedulingTerm,
};

/// What node affinity reads of a node: its labels and its name (the one field it supports).
#[derive(Clone, Copy, Debug)]
pub struct NodeFields<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub name: &'a str,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl<'a> NodeFields<'a> {
    pub fn of(node: &'a Node) -> NodeFields<'a> {
        NodeFields {
            labels: node.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
            name: node.metadata.name.as_deref().unwrap_or(""),
        }
    }
}

/// Whether a label requirement holds for the node's value of its key (None: no such label).
fn label_requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let contains = |v: &str| values.iter().any(|x| x == v);
    match r.operator.as_str() {
        "In" => !values.is_empty() && value.is_some_and(contains),
        "NotIn" => !values.is_empty() && !value.is_some_and(contains),
        "Exists" => values.is_empty() && value.is_some(),
        "DoesNotExist" => values.is_empty() && value.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else {
                return false;
            };
            let (Ok(bound), Some(Ok(v))) = (bound.parse::<i64>(), value.map(str::parse::<i64>))
            else {
                return false;
            };
            if op == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

/// Whether a field requirement holds: only metadata.name, with In or NotIn and one value.
fn field_requirement_matches(r: &NodeSelectorRequirement, name: &str) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match (r.key.as_str(), r.operator.as_str(), values) {
        ("metadata.name", "In", [v]) => v == name,
        ("metadata.name", "NotIn", [v]) => v != name,
        _ => false,
    }
}

/// A term matches when all its expressions and fields do; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: NodeFields<'_>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| label_requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| field_requirement_matches(r, node.name))
}

/// A NodeSelector's terms are ORed: no terms match nothing.
pub fn node_selector_matches(selector: &NodeSelector, node: NodeFields<'_>) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|t| term_matches(t, node))
}

/// The pod's requiredDuringSchedulingIgnoredDuringExecution node affinity, if any.
pub fn required_node_affinity(spec: &PodSpec) -> Option<&NodeSelector> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// The pod's preferredDuringSchedulingIgnoredDuringExecution terms (empty when none).
pub fn preferred_node_affinity(spec: &PodSpec) -> &[PreferredSchedulingTerm] {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// Upstream's GetRequiredNodeAffinity(pod).Match(node): every spec.nodeSelector label
/// equal, and a required term matching when there are any.
pub fn pod_matches_node(spec: &PodSpec, node: NodeFields<'_>) -> bool {
    if let Some(sel) = spec.node_selector.as_ref()
        && !sel.iter().all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return false;
    }
    required_node_affinity(spec).is_none_or(|req| node_selector_matches(req, node))
}

/// Upstream's PreferredSchedulingTerms.Score: the sum of the weights of the matching terms.
pub fn preferred_score(terms: &[PreferredSchedulingTerm], node: NodeFields<'_>) -> i64 {
    terms
        .iter()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
        .map(|t| i64::from(t.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        let labels: BTreeMap<_, _> = labels.iter().map(|(k, v)| (*k, *v)).collect();
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut base = json!({"containers": [{"name": "c"}]});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn required(terms: serde_json::Value) -> PodSpec {
        spec(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> serde_json::Value {
        json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}])
    }

    /// Which of the nodes a, b and c (zone z1 gen 3, zone z2 gen 5, no labels) match.
    fn check(spec: PodSpec, want: [bool; 3]) {
        let nodes = [
            node("a", &[("zone", "z1"), ("gen", "3")]),
            node("b", &[("zone", "z2"), ("gen", "5")]),
            node("c", &[]),
        ];
        let got = nodes
            .each_ref()
            .map(|n| pod_matches_node(&spec, NodeFields::of(n)));
        assert_eq!(got, want, "{spec:?}");
    }

    #[test]
    fn selectors_and_required_terms() {
        check(spec(json!({})), [true, true, true]);
        check(
            spec(json!({"nodeSelector": {"zone": "z1"}})),
            [true, false, false],
        );
        check(
            required(expr("zone", "In", &["z2", "z3"])),
            [false, true, false],
        );
        check(
            required(expr("zone", "NotIn", &["z2"])),
            [true, false, true],
        );
        check(required(expr("zone", "Exists", &[])), [true, true, false]);
        check(
            required(expr("zone", "DoesNotExist", &[])),
            [false, false, true],
        );
        check(required(expr("gen", "Gt", &["4"])), [false, true, false]);
        check(required(expr("gen", "Lt", &["4"])), [true, false, false]);
        // Terms are ORed, their requirements ANDed; the selector and the affinity are ANDed.
        check(
            required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}])),
            [true, true, false],
        );
        check(
            required(json!([{"matchExpressions": [
                {"key": "zone", "operator": "Exists"},
                {"key": "gen", "operator": "Gt", "values": ["3"]}]}])),
            [false, true, false],
        );
        let mut both = required(expr("zone", "In", &["z2"]));
        both.node_selector = Some([("zone".into(), "z1".into())].into());
        check(both, [false, false, false]);
        // No terms, or an empty term, match nothing.
        check(required(json!([])), [false, false, false]);
        check(required(json!([{}])), [false, false, false]);
    }

    #[test]
    fn fields_match_the_node_name() {
        let field = |op: &str, values: &[&str]| {
            required(
                json!([{"matchFields": [{"key": "metadata.name", "operator": op, "values": values}]}]),
            )
        };
        check(field("In", &["b"]), [false, true, false]);
        check(field("NotIn", &["b"]), [true, false, true]);
        // Upstream allows exactly one value per field requirement.
        check(field("In", &["a", "b"]), [false, false, false]);
        check(
            required(
                json!([{"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["a"]}]}]),
            ),
            [false, false, false],
        );
    }

    #[test]
    fn requirements_upstream_cannot_parse_match_nothing() {
        check(required(expr("zone", "In", &[])), [false, false, false]);
        check(required(expr("zone", "NotIn", &[])), [false, false, false]);
        check(
            required(expr("zone", "Exists", &["z1"])),
            [false, false, false],
        );
        check(
            required(expr("gen", "Gt", &["3", "4"])),
            [false, false, false],
        );
        check(required(expr("gen", "Gt", &["x"])), [false, false, false]);
        check(required(expr("zone", "Gt", &["1"])), [false, false, false]);
        check(
            required(expr("zone", "Near", &["z1"])),
            [false, false, false],
        );
        // A bad term does not spoil a good one.
        check(
            required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}])),
            [true, false, false],
        );
    }

    #[test]
    fn preferred_terms_sum_their_weights() {
        let s = spec(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
            {"weight": 80, "preference": {"matchExpressions": [{"key": "gen", "operator": "In", "values": ["5", "3"]}]}},
            {"weight": 0, "preference": {"matchExpressions": [{"key": "gen", "operator": "Exists"}]}},
            {"weight": 7, "preference": {}}]}}}),
        );
        let terms = preferred_node_affinity(&s);
        let score = |n: &Node| preferred_score(terms, NodeFields::of(n));
        assert_eq!(score(&node("a", &[("zone", "z1"), ("gen", "3")])), 100);
        assert_eq!(score(&node("b", &[("gen", "5")])), 80);
        assert_eq!(score(&node("c", &[])), 0);
        assert!(preferred_node_affinity(&spec(json!({}))).is_empty());
    }
}
