//! A pod's QoS class as upstream's ComputePodQOS (pkg/apis/core/v1/helper/qos): each
//! container is Guaranteed (cpu and memory requests equal to their non-zero limits),
//! BestEffort (neither set) or Burstable; the pod is the class its containers share, else
//! Burstable. Only cpu and memory count; pod-level resources are alpha (off) in 1.33 and
//! ignored. A request missing beside a limit counts as the limit, as API defaulting sets it,
//! so a pod not yet defaulted gets the class it will have. Amounts compare in thousandths.
//!
//! `container_qos` takes lookups, not a typed container, so the apiserver can classify its
//! serde_json pods without converting them on every create.

use k8s_openapi::api::core::v1::{Pod, PodSpec, ResourceRequirements};

use crate::quantity::Quantity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// One container's class: `any_set` says whether it has any request or limit at all;
/// `request` and `limit` look up a resource's quantity.
pub fn container_qos(
    any_set: bool,
    request: impl Fn(&str) -> Option<Quantity>,
    limit: impl Fn(&str) -> Option<Quantity>,
) -> QosClass {
    if !any_set {
        return QosClass::BestEffort;
    }
    let mut class = None;
    for resource in ["cpu", "memory"] {
        let lim = limit(resource).map_or(0, |q| q.milli_value());
        let req = request(resource).map_or(lim, |q| q.milli_value());
        if req != lim {
            return QosClass::Burstable;
        }
        let this = if lim == 0 {
            QosClass::BestEffort
        } else {
            QosClass::Guaranteed
        };
        if class.is_some_and(|c| c != this) {
            return QosClass::Burstable;
        }
        class = Some(this);
    }
    class.unwrap_or(QosClass::BestEffort)
}

/// The pod's class from its containers' classes (no containers: BestEffort).
pub fn pod_qos(containers: impl IntoIterator<Item = QosClass>) -> QosClass {
    let mut class = None;
    for c in containers {
        match class {
            _ if c == QosClass::Burstable => return c,
            Some(p) if p != c => return QosClass::Burstable,
            _ => class = Some(c),
        }
    }
    class.unwrap_or(QosClass::BestEffort)
}

fn requirements_qos(r: Option<&ResourceRequirements>) -> QosClass {
    let requests = r.and_then(|r| r.requests.as_ref());
    let limits = r.and_then(|r| r.limits.as_ref());
    container_qos(
        requests.is_some_and(|m| !m.is_empty()) || limits.is_some_and(|m| !m.is_empty()),
        |name| Quantity::parse(&requests?.get(name)?.0).ok(),
        |name| Quantity::parse(&limits?.get(name)?.0).ok(),
    )
}

/// The QoS class of a pod with this spec (init containers and containers).
pub fn qos_class(spec: &PodSpec) -> QosClass {
    pod_qos(
        spec.init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| requirements_qos(c.resources.as_ref())),
    )
}

/// Upstream's GetPodQOS: the class the apiserver recorded in status.qosClass, else computed.
pub fn pod_qos_class(pod: &Pod) -> QosClass {
    let recorded = pod.status.as_ref().and_then(|s| s.qos_class.as_deref());
    match recorded {
        Some("Guaranteed") => QosClass::Guaranteed,
        Some("Burstable") => QosClass::Burstable,
        Some("BestEffort") => QosClass::BestEffort,
        _ => pod.spec.as_ref().map_or(QosClass::BestEffort, qos_class),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(containers: serde_json::Value, want: QosClass) {
        let spec: PodSpec = serde_json::from_value(json!({"containers": containers})).unwrap();
        assert_eq!(qos_class(&spec), want, "{containers}");
    }

    fn c(resources: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "resources": resources})
    }

    #[test]
    fn classes() {
        use QosClass::*;
        let both = json!({"cpu": "1", "memory": "1Gi"});
        check(json!([]), BestEffort);
        check(json!([c(json!({}))]), BestEffort);
        check(json!([{"name": "c"}]), BestEffort);
        check(json!([c(json!({"limits": both}))]), Guaranteed);
        check(
            json!([c(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": both})
            )]),
            Guaranteed,
        );
        check(json!([c(json!({"requests": {"cpu": "1"}}))]), Burstable);
        check(
            json!([c(json!({"requests": {"cpu": "500m"}, "limits": both}))]),
            Burstable,
        );
        // cpu alone is not enough for Guaranteed.
        check(json!([c(json!({"limits": {"cpu": "1"}}))]), Burstable);
        // Other resources do not count; zero amounts count as unset.
        check(
            json!([c(json!({"requests": {"ephemeral-storage": "1Gi"}}))]),
            BestEffort,
        );
        check(
            json!([c(json!({"limits": {"cpu": "0", "memory": "0"}}))]),
            BestEffort,
        );
        // Containers that disagree make the pod Burstable.
        check(json!([c(json!({"limits": both})), c(json!({}))]), Burstable);
        check(
            json!([c(json!({"limits": both})), c(json!({"limits": both}))]),
            Guaranteed,
        );
    }

    #[test]
    fn a_recorded_class_wins() {
        let pod: Pod = serde_json::from_value(json!({
            "spec": {"containers": [c(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))]},
            "status": {"qosClass": "Burstable"}}))
        .unwrap();
        assert_eq!(pod_qos_class(&pod), QosClass::Burstable);
        assert_eq!(qos_class(pod.spec.as_ref().unwrap()), QosClass::Guaranteed);
    }

    #[test]
    fn init_containers_count() {
        let spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [{"name": "i", "resources": {"requests": {"memory": "1Gi"}}}],
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}))
        .unwrap();
        assert_eq!(qos_class(&spec), QosClass::Burstable);
    }
}
