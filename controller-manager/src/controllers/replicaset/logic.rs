//! The ReplicaSet controller's decisions as pure functions: which pods go first when
//! scaling down, and the status.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use crate::controllers::podutil;

fn phase_rank(pod: &Pod) -> u8 {
    match podutil::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<DateTime<Utc>> {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(podutil::to_chrono)
}

/// Orders `pods` so that the ones to delete first come first, by upstream's ranking:
/// unscheduled before scheduled, Pending before Unknown before Running, not ready before
/// ready, lower pod-deletion-cost first, pods doubled up on a node (counting `related`,
/// the pods of all sibling ReplicaSets) before others, ready for less time first, more
/// restarts first, newer first.
pub fn order_for_deletion(pods: &mut [Arc<Pod>], related: &[Arc<Pod>]) {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if podutil::is_active(p) {
            *per_node.entry(podutil::node_name(p)).or_default() += 1;
        }
    }
    let rank = |p: &Pod| -> usize {
        let node = podutil::node_name(p);
        if node.is_empty() {
            0
        } else {
            per_node.get(node).copied().unwrap_or(0)
        }
    };
    pods.sort_by(|a, b| {
        let (a, b) = (&**a, &**b);
        let scheduled = |p: &Pod| !podutil::node_name(p).is_empty();
        scheduled(a)
            .cmp(&scheduled(b))
            .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
            .then_with(|| podutil::is_ready(a).cmp(&podutil::is_ready(b)))
            .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
            .then_with(|| rank(b).cmp(&rank(a)))
            .then_with(|| {
                if podutil::is_ready(a) && podutil::is_ready(b) {
                    // Ready more recently (later timestamp) goes first.
                    podutil::ready_since(b).cmp(&podutil::ready_since(a))
                } else {
                    Ordering::Equal
                }
            })
            .then_with(|| podutil::max_restarts(b).cmp(&podutil::max_restarts(a)))
            .then_with(|| match (created(a), created(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            })
    });
}

/// The counts a ReplicaSet's (or ReplicationController's) status reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
}

/// Counts over the owner's active pods; `template_labels` decides "fully labeled".
pub fn count(
    pods: &[Arc<Pod>],
    template_labels: &std::collections::BTreeMap<String, String>,
    min_ready_seconds: i32,
    now: DateTime<Utc>,
) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        c.replicas += 1;
        let labels = p.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            c.fully_labeled += 1;
        }
        if podutil::is_ready(p) {
            c.ready += 1;
            if podutil::is_available(p, min_ready_seconds, now) {
                c.available += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, v: serde_json::Value) -> Arc<Pod> {
        let mut base = json!({"metadata": {"name": name, "namespace": "ns"}});
        merge(&mut base, v);
        Arc::new(serde_json::from_value(base).unwrap())
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn ready(since: &str) -> serde_json::Value {
        json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": since}]}})
    }

    #[test]
    fn deletion_order_follows_upstream_ranking() {
        let mut pods = vec![
            pod("ready-old", ready("2026-01-01T00:00:00Z")),
            pod("ready-new", ready("2026-01-02T00:00:00Z")),
            pod("unscheduled", json!({"status": {"phase": "Pending"}})),
            pod(
                "pending",
                json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}}),
            ),
            pod(
                "running-unready",
                json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}),
            ),
            pod("costly-new", {
                let mut v = ready("2026-01-03T00:00:00Z");
                v["metadata"] =
                    json!({"annotations": {"controller.kubernetes.io/pod-deletion-cost": "100"}});
                v
            }),
        ];
        order_for_deletion(&mut pods, &[]);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "running-unready",
                "ready-new",
                "ready-old",
                "costly-new"
            ]
        );
    }

    #[test]
    fn doubled_up_pods_go_first() {
        let on = |name: &str, node: &str| {
            pod(
                name,
                json!({"spec": {"nodeName": node}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
            )
        };
        let mut pods = vec![on("alone", "n1"), on("crowded", "n2")];
        let related = vec![on("alone", "n1"), on("crowded", "n2"), on("sibling", "n2")];
        order_for_deletion(&mut pods, &related);
        assert_eq!(pods[0].metadata.name.as_deref(), Some("crowded"));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now: DateTime<Utc> = "2026-01-01T00:00:30Z".parse().unwrap();
        let pods = vec![
            pod("a", ready("2026-01-01T00:00:00Z")),
            pod("b", ready("2026-01-01T00:00:25Z")),
            pod(
                "c",
                json!({"metadata": {"labels": {"app": "web", "tier": "x"}}}),
            ),
        ];
        let labels = [("app".to_owned(), "web".to_owned())].into_iter().collect();
        let c = count(&pods, &labels, 10, now);
        assert_eq!(
            c,
            Counts {
                replicas: 3,
                fully_labeled: 1,
                ready: 2,
                available: 1
            }
        );
    }
}
