//! A pod's resource requests as upstream's component-helpers/resource PodRequests: regular
//! containers and sidecars (restartable init containers) are summed; each other init
//! container runs with the sidecars started before it, and the pod needs the largest of
//! those moments if it is more; the pod overhead is added. Pod-level resources are alpha
//! (off) in 1.33 and ignored; in-place resize's status resources are not read.
//!
//! The sum is generic (`Amounts`) so the scheduler keeps its flat `Resource` and a caller
//! counting one resource can use a plain i64, with no map built per pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A set of resource amounts PodRequests can combine.
pub trait Amounts: Default {
    /// Adds `other`'s amounts to these.
    fn add_amounts(&mut self, other: &Self);
    /// Raises each amount to `other`'s where that is larger.
    fn max_amounts(&mut self, other: &Self);
}

impl Amounts for i64 {
    fn add_amounts(&mut self, other: &Self) {
        *self = self.saturating_add(*other);
    }
    fn max_amounts(&mut self, other: &Self) {
        *self = (*self).max(*other);
    }
}

/// A container's requests as API defaulting leaves them: a resource with a limit and no
/// request requests its limit.
pub fn container_requests(c: &Container) -> impl Iterator<Item = (&str, &Quantity)> {
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let missing = move |name: &String| requests.is_none_or(|r| !r.contains_key(name));
    requests
        .into_iter()
        .flatten()
        .chain(
            limits
                .into_iter()
                .flatten()
                .filter(move |(n, _)| missing(n)),
        )
        .map(|(n, q)| (n.as_str(), q))
}

/// Whether the container requests `name` (after defaulting from its limit).
pub fn requests_resource(c: &Container, name: &str) -> bool {
    let res = c.resources.as_ref();
    let has = |m: Option<&BTreeMap<String, Quantity>>| m.is_some_and(|m| m.contains_key(name));
    has(res.and_then(|r| r.requests.as_ref())) || has(res.and_then(|r| r.limits.as_ref()))
}

/// Upstream's PodRequests: `container` gives one container's amounts (its requests, with
/// whatever defaults the caller applies), `overhead` the amounts of spec.overhead (return
/// the default to leave the overhead out).
pub fn pod_requests<A: Amounts>(
    spec: &PodSpec,
    mut container: impl FnMut(&Container) -> A,
    overhead: impl FnOnce(&BTreeMap<String, Quantity>) -> A,
) -> A {
    let mut total = A::default();
    for c in &spec.containers {
        total.add_amounts(&container(c));
    }
    let mut sidecars = A::default();
    let mut init_peak = A::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = container(c);
        if c.restart_policy.as_deref() == Some("Always") {
            total.add_amounts(&r);
            sidecars.add_amounts(&r);
            init_peak.max_amounts(&sidecars);
        } else {
            r.add_amounts(&sidecars);
            init_peak.max_amounts(&r);
        }
    }
    total.max_amounts(&init_peak);
    if let Some(o) = spec.overhead.as_ref() {
        total.add_amounts(&overhead(o));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The pod's cpu request in millicores, overhead included.
    fn cpu(spec: serde_json::Value) -> i64 {
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        let milli = |q: Option<&Quantity>| {
            q.and_then(|q| crate::quantity::Quantity::parse(&q.0).ok())
                .map_or(0, |q| q.milli_value())
        };
        pod_requests(
            &spec,
            |c| {
                milli(
                    container_requests(c)
                        .find(|(n, _)| *n == "cpu")
                        .map(|(_, q)| q),
                )
            },
            |o| milli(o.get("cpu")),
        )
    }

    fn c(cpu: &str) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": {"cpu": cpu}}})
    }

    fn sidecar(cpu: &str) -> serde_json::Value {
        json!({"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": cpu}}})
    }

    #[test]
    fn containers_sum_and_init_containers_peak() {
        assert_eq!(cpu(json!({"containers": [c("1"), c("500m")]})), 1500);
        assert_eq!(cpu(json!({"containers": [{"name": "c"}]})), 0);
        // An init container larger than the containers sets the request.
        assert_eq!(
            cpu(json!({"initContainers": [c("2"), c("1")], "containers": [c("1")]})),
            2000
        );
        assert_eq!(
            cpu(json!({"initContainers": [c("500m")], "containers": [c("1")]})),
            1000
        );
        // A limit without a request counts as the request.
        assert_eq!(
            cpu(json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "3"}}}]})),
            3000
        );
        assert_eq!(
            cpu(json!({"containers": [c("1")], "overhead": {"cpu": "250m"}})),
            1250
        );
    }

    #[test]
    fn sidecars_run_beside_later_init_containers_and_the_containers() {
        // Sidecar 1 + containers 1 = 2; the init container after it runs beside it: 1 + 3 = 4.
        assert_eq!(
            cpu(json!({"initContainers": [sidecar("1"), c("3")], "containers": [c("1")]})),
            4000
        );
        // An init container before the sidecar runs alone: max(3, 1 + 1) = 3.
        assert_eq!(
            cpu(json!({"initContainers": [c("3"), sidecar("1")], "containers": [c("1")]})),
            3000
        );
        assert_eq!(
            cpu(json!({"initContainers": [sidecar("1"), sidecar("2")], "containers": [c("1")]})),
            4000
        );
    }
}
