//! Where a DaemonSet's pods belong, as pure functions: whether a node passes the pod's
//! node selector, required node affinity and taints (with the tolerations every daemon pod
//! gets), and the affinity that pins a daemon pod to its node.

use common::scheduling::node_affinity::{self, NodeFields};
use common::scheduling::tolerations::{does_not_schedule, find_untolerated_taint};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    Toleration,
};

/// The tolerations upstream adds to every daemon pod: it stays through node conditions
/// that would evict or repel other pods.
pub fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// Adds the default tolerations the spec lacks.
pub fn add_default_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network.unwrap_or(false);
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in default_tolerations(host_network) {
        if !list.iter().any(|x| x.key == t.key && x.effect == t.effect) {
            list.push(t);
        }
    }
}

/// Whether a daemon pod with this spec should run on `node`: upstream's predicates, the
/// same node affinity and taint checks the scheduler's Filter makes (common's), with the
/// default tolerations every daemon pod gets.
pub fn should_run(spec: &PodSpec, node: &Node) -> bool {
    if !node_affinity::pod_matches_node(spec, NodeFields::of(node)) {
        return false;
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(default_tolerations(spec.host_network.unwrap_or(false)));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    find_untolerated_taint(taints, &tolerations, does_not_schedule).is_none()
}

/// Pins a daemon pod to `node` the way upstream does, so the default scheduler binds it
/// there: the required node affinity becomes "metadata.name In [node]".
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: where it is bound, or where its affinity pins it.
pub fn target_node(spec: &PodSpec) -> Option<String> {
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let req = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    req.node_selector_terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|f| {
            (f.key == "metadata.name" && f.operator == "In")
                .then(|| f.values.as_ref()?.first().cloned())
                .flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}}),
        )
        .unwrap()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut base = json!({"containers": [{"name": "c"}]});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn nodes_are_chosen_by_selector_affinity_and_taints() {
        let plain = node(json!({"disk": "ssd"}), json!([]));
        assert!(should_run(&spec(json!({})), &plain));
        assert!(should_run(
            &spec(json!({"nodeSelector": {"disk": "ssd"}})),
            &plain
        ));
        assert!(!should_run(
            &spec(json!({"nodeSelector": {"disk": "hdd"}})),
            &plain
        ));
        let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}});
        assert!(!should_run(&spec(json!({"affinity": affinity})), &plain));

        let tainted = node(
            json!({}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        );
        assert!(!should_run(&spec(json!({})), &tainted));
        assert!(should_run(
            &spec(json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]})),
            &tainted
        ));
        // Node conditions do not repel daemon pods.
        let unreachable = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        );
        assert!(should_run(&spec(json!({})), &unreachable));
        let soft = node(
            json!({}),
            json!([{"key": "x", "effect": "PreferNoSchedule"}]),
        );
        assert!(should_run(&spec(json!({})), &soft));
    }

    #[test]
    fn pods_are_pinned_by_affinity_to_their_node() {
        let mut s = spec(json!({}));
        pin_to_node(&mut s, "n7");
        assert_eq!(target_node(&s).as_deref(), Some("n7"));
        let n7: Node = serde_json::from_value(json!({"metadata": {"name": "n7"}})).unwrap();
        let n8: Node = serde_json::from_value(json!({"metadata": {"name": "n8"}})).unwrap();
        assert!(should_run(&s, &n7) && !should_run(&s, &n8));
    }
}
