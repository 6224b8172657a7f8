//! What a ResourceQuota counts of an object, as upstream's quota evaluators
//! (pkg/quota/v1/evaluator/core): pods and their compute resources, services and their node
//! ports and load balancers, claims and their storage, and object counts. The resource quota
//! controller sums it into status.used and the apiserver's ResourceQuota admission adds one
//! object's usage to it, so both count alike.
//!
//! Amounts are integers: cpu in millicores, everything else in units (bytes, objects).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodSpec, ResourceQuotaSpec,
    ScopedResourceSelectorRequirement, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::Quantity;
use crate::scheduling::qos::{QosClass, pod_qos_class};
use crate::scheduling::resources;

/// Quota resource names to amounts.
pub type Usage = BTreeMap<String, i64>;

/// The compute resources a pod's requests and limits are counted for by name.
const COMPUTE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// An amount of `resource` as the quota counts it: cpu (and `*.cpu`) in millicores, others in
/// units.
pub fn amount(resource: &str, q: &Quantity) -> i64 {
    if resource == "cpu" || resource.ends_with(".cpu") {
        q.milli_value()
    } else {
        q.value()
    }
}

fn api_amount(resource: &str, q: Option<&ApiQuantity>) -> i64 {
    q.and_then(|q| Quantity::parse(&q.0).ok())
        .map_or(0, |q| amount(resource, &q))
}

/// An amount as a quantity string: cpu in cores or millicores, memory and storage in binary
/// units when they divide evenly, others as integers.
pub fn format_amount(resource: &str, v: i64) -> String {
    if resource == "cpu" || resource.ends_with(".cpu") {
        return if v % 1000 == 0 {
            (v / 1000).to_string()
        } else {
            format!("{v}m")
        };
    }
    if resource.ends_with("memory") || resource.ends_with("storage") {
        for (suffix, unit) in [
            ("Ti", 1i64 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if v != 0 && v % unit == 0 {
                return format!("{}{suffix}", v / unit);
            }
        }
    }
    v.to_string()
}

/// Whether the pod still holds what it asked for: terminal pods and pods being deleted are
/// not counted, as upstream's QuotaV1Pod (which lets a deleting pod go once its grace period
/// is over; tetsu counts it out at once).
pub fn pod_counts(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's request (or limit) of one resource: upstream's PodRequests (sidecars, the init
/// containers' peak, the overhead); for limits the overhead is added only to a resource some
/// container limits, as upstream's PodLimits.
pub fn pod_amount(spec: &PodSpec, limits: bool, resource: &str) -> i64 {
    if !limits {
        return resources::pod_requests(
            spec,
            |c| {
                api_amount(
                    resource,
                    resources::container_requests(c)
                        .find_map(|(n, q)| (n == resource).then_some(q)),
                )
            },
            |o| api_amount(resource, o.get(resource)),
        );
    }
    fn limit<'a>(c: &'a Container, resource: &str) -> Option<&'a ApiQuantity> {
        c.resources.as_ref()?.limits.as_ref()?.get(resource)
    }
    let total = resources::pod_requests(spec, |c| api_amount(resource, limit(c, resource)), |_| 0);
    let limited = all_containers(spec).any(|c| limit(c, resource).is_some());
    let overhead = spec.overhead.as_ref().filter(|_| limited);
    total + api_amount(resource, overhead.and_then(|o| o.get(resource)))
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
}

/// What one pod counts for: `count/pods`; unless it is done (terminal or deleted), `pods`,
/// its requests (as `requests.<name>` and, for cpu, memory, ephemeral-storage and hugepages,
/// the bare name too) and its limits of cpu, memory and ephemeral-storage (`limits.<name>`);
/// extended resources are counted by request only.
pub fn pod_usage(pod: &Pod) -> Usage {
    let mut usage = Usage::new();
    usage.insert("count/pods".into(), 1);
    if !pod_counts(pod) {
        return usage;
    }
    usage.insert("pods".into(), 1);
    let Some(spec) = pod.spec.as_ref() else {
        return usage;
    };
    let mut requested = std::collections::BTreeSet::new();
    let mut limited = std::collections::BTreeSet::new();
    for c in all_containers(spec) {
        requested.extend(resources::container_requests(c).map(|(n, _)| n.to_owned()));
        if let Some(l) = c.resources.as_ref().and_then(|r| r.limits.as_ref()) {
            limited.extend(l.keys().cloned());
        }
    }
    for name in requested {
        let v = pod_amount(spec, false, &name);
        if COMPUTE.contains(&name.as_str()) || name.starts_with("hugepages-") {
            usage.insert(name.clone(), v);
        }
        usage.insert(format!("requests.{name}"), v);
    }
    for name in limited {
        if COMPUTE.contains(&name.as_str()) {
            usage.insert(format!("limits.{name}"), pod_amount(spec, true, &name));
        }
    }
    usage
}

/// What one service counts for: `services`, `count/services`, `services.loadbalancers` and
/// its node ports (`services.nodeports`: every port of a NodePort or LoadBalancer service, as
/// upstream counts them even when a load balancer allocates none).
pub fn service_usage(svc: &Service) -> Usage {
    let mut usage = Usage::from([("services".into(), 1), ("count/services".into(), 1)]);
    let spec = svc.spec.as_ref();
    let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    let ports = spec.and_then(|s| s.ports.as_ref()).map_or(0, Vec::len) as i64;
    let (balancers, node_ports) = match kind {
        "LoadBalancer" => (1, ports),
        "NodePort" => (0, ports),
        _ => (0, 0),
    };
    usage.insert("services.loadbalancers".into(), balancers);
    usage.insert("services.nodeports".into(), node_ports);
    usage
}

/// What one claim counts for: `persistentvolumeclaims`, `requests.storage`, and both per
/// storage class (`<class>.storageclass.storage.k8s.io/...`).
pub fn claim_usage(claim: &PersistentVolumeClaim) -> Usage {
    let spec = claim.spec.as_ref();
    let storage = api_amount(
        "storage",
        spec.and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage")),
    );
    let mut usage = Usage::from([
        ("persistentvolumeclaims".into(), 1),
        ("count/persistentvolumeclaims".into(), 1),
        ("requests.storage".into(), storage),
    ]);
    if let Some(class) = spec
        .and_then(|s| s.storage_class_name.as_deref())
        .filter(|c| !c.is_empty())
    {
        let prefix = format!("{class}.storageclass.storage.k8s.io/");
        usage.insert(format!("{prefix}persistentvolumeclaims"), 1);
        usage.insert(format!("{prefix}requests.storage"), storage);
    }
    usage
}

/// The names one object of `plural` in `group` counts for when no evaluator above knows its
/// kind: `count/<plural>[.<group>]`, and the legacy bare names of core kinds.
pub fn object_count_usage(group: &str, plural: &str) -> Usage {
    let count = if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    };
    let mut usage = Usage::from([(count, 1)]);
    if group.is_empty()
        && matches!(
            plural,
            "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
        )
    {
        usage.insert(plural.to_owned(), 1);
    }
    usage
}

/// The quota resource names a scoped quota may track: upstream lets BestEffort/NotBestEffort
/// quotas track only pods (and, for NotBestEffort, compute resources), and every other scope
/// any pod resource.
fn scope_tracks(scope: &str, resource: &str) -> bool {
    let compute = resource.starts_with("requests.")
        || resource.starts_with("limits.")
        || resource.starts_with("hugepages-")
        || COMPUTE.contains(&resource);
    let pods = matches!(resource, "pods" | "count/pods");
    match scope {
        "BestEffort" => pods,
        _ => pods || compute,
    }
}

/// The quota's scopes: spec.scopes and the scope selector's requirements (a bare scope is a
/// requirement with operator Exists).
fn scope_requirements(spec: &ResourceQuotaSpec) -> Vec<ScopedResourceSelectorRequirement> {
    let mut out: Vec<ScopedResourceSelectorRequirement> = spec
        .scopes
        .iter()
        .flatten()
        .map(|s| ScopedResourceSelectorRequirement {
            scope_name: s.clone(),
            operator: "Exists".into(),
            values: None,
        })
        .collect();
    if let Some(selector) = &spec.scope_selector {
        out.extend(selector.match_expressions.iter().flatten().cloned());
    }
    out
}

/// Whether a quota with `spec` covers this pod: every scope matches it (a quota with none
/// covers every pod).
pub fn quota_matches_pod(spec: &ResourceQuotaSpec, pod: &Pod) -> bool {
    scope_requirements(spec)
        .iter()
        .all(|r| scope_matches(r, pod))
}

/// Whether a quota with `spec` covers objects that are not pods: only a quota without scopes.
pub fn quota_matches_other(spec: &ResourceQuotaSpec) -> bool {
    scope_requirements(spec).is_empty()
}

/// Whether `resource` in a quota with `spec` is tracked for pods under its scopes.
pub fn quota_tracks(spec: &ResourceQuotaSpec, resource: &str) -> bool {
    scope_requirements(spec)
        .iter()
        .all(|r| scope_tracks(&r.scope_name, resource))
}

fn scope_matches(r: &ScopedResourceSelectorRequirement, pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let terminating = spec
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0);
    let best_effort = pod_qos_class(pod) == QosClass::BestEffort;
    let holds = match r.scope_name.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "CrossNamespacePodAffinity" => spec.is_some_and(uses_cross_namespace_affinity),
        "PriorityClass" => {
            let class = spec
                .and_then(|s| s.priority_class_name.as_deref())
                .unwrap_or("");
            let values = r.values.as_deref().unwrap_or_default();
            return match r.operator.as_str() {
                "In" => values.iter().any(|v| v == class),
                "NotIn" => !values.iter().any(|v| v == class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            };
        }
        _ => false,
    };
    match r.operator.as_str() {
        "Exists" | "In" => holds,
        "DoesNotExist" | "NotIn" => !holds,
        _ => false,
    }
}

/// Whether the pod's (anti-)affinity terms reach other namespaces (namespaces or a
/// namespaceSelector set).
fn uses_cross_namespace_affinity(spec: &PodSpec) -> bool {
    let Some(affinity) = spec.affinity.as_ref() else {
        return false;
    };
    // Affinity and anti-affinity have the same two lists in different types.
    let lists = [
        affinity.pod_affinity.as_ref().map(|a| {
            (
                &a.required_during_scheduling_ignored_during_execution,
                &a.preferred_during_scheduling_ignored_during_execution,
            )
        }),
        affinity.pod_anti_affinity.as_ref().map(|a| {
            (
                &a.required_during_scheduling_ignored_during_execution,
                &a.preferred_during_scheduling_ignored_during_execution,
            )
        }),
    ];
    let mut terms = Vec::new();
    for (required, preferred) in lists.into_iter().flatten() {
        terms.extend(required.iter().flatten());
        terms.extend(preferred.iter().flatten().map(|w| &w.pod_affinity_term));
    }
    terms.iter().any(|t| {
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    })
}

/// The compute resources a quota can require every container to set (upstream's
/// "must specify" constraint).
const REQUIRED_PER_CONTAINER: [(&str, bool, &str); 6] = [
    ("cpu", false, "cpu"),
    ("memory", false, "memory"),
    ("requests.cpu", false, "cpu"),
    ("requests.memory", false, "memory"),
    ("limits.cpu", true, "cpu"),
    ("limits.memory", true, "memory"),
];

/// Upstream's pod constraint for a quota limiting `hard` names: each of cpu, memory and their
/// requests and limits the quota limits must be set by every container (a request may come
/// from its limit); the message names the containers that do not.
pub fn pod_constraints(hard: &[&str], pod: &Pod) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, limit, resource) in REQUIRED_PER_CONTAINER {
        if !hard.contains(&name) {
            continue;
        }
        for c in all_containers(spec) {
            let set = if limit {
                c.resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .is_some_and(|l| l.contains_key(resource))
            } else {
                resources::requests_resource(c, resource)
            };
            if !set {
                missing.entry(name).or_default().push(&c.name);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(name, mut containers)| {
            containers.sort();
            format!("{name} for: {}", containers.join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// Adds `usage` into `total`.
pub fn add(total: &mut Usage, usage: &Usage) {
    for (name, v) in usage {
        *total.entry(name.clone()).or_default() += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn pods_count_their_requests_limits_and_init_peak() {
        let p = pod(json!({
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                            "limits": {"memory": "128Mi", "nvidia.com/gpu": "1"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}]}));
        let u = pod_usage(&p);
        assert_eq!(u["pods"], 1);
        assert_eq!(u["requests.cpu"], 2000, "the init container needs more");
        assert_eq!(u["cpu"], 2000);
        assert_eq!(u["requests.memory"], 128 << 20);
        assert_eq!(u["limits.memory"], 128 << 20);
        assert_eq!(
            u["requests.nvidia.com/gpu"], 1,
            "a limit alone is the request"
        );
        assert!(!u.contains_key("limits.cpu") && !u.contains_key("limits.nvidia.com/gpu"));
        // A sidecar runs beside the containers; the overhead counts, for limits only where set.
        let p = pod(json!({
            "initContainers": [{"name": "s", "restartPolicy": "Always",
                                "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}],
            "overhead": {"cpu": "100m", "memory": "10Mi"}}));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(pod_amount(spec, false, "cpu"), 2100);
        assert_eq!(pod_amount(spec, true, "cpu"), 3100);
        assert_eq!(pod_amount(spec, false, "memory"), 10 << 20);
        assert_eq!(pod_amount(spec, true, "memory"), 0);
        assert_eq!(format_amount("requests.cpu", 750), "750m");
        assert_eq!(format_amount("limits.cpu", 2000), "2");
        assert_eq!(format_amount("requests.memory", 128 << 20), "128Mi");
        assert_eq!(format_amount("requests.memory", 1000), "1000");
        assert_eq!(format_amount("pods", 3), "3");
        // A finished pod holds nothing but its count.
        let mut done = p.clone();
        done.status = serde_json::from_value(json!({"phase": "Succeeded"})).unwrap();
        assert_eq!(pod_usage(&done), Usage::from([("count/pods".into(), 1)]));
        // The quota's "must specify" constraint names the containers that miss a value.
        let p = pod(json!({"containers": [
            {"name": "b", "resources": {"limits": {"cpu": "1"}}},
            {"name": "a"}]}));
        assert_eq!(
            pod_constraints(&["pods", "requests.cpu"], &p).unwrap_err(),
            "must specify requests.cpu for: a"
        );
        assert_eq!(
            pod_constraints(&["limits.cpu", "limits.memory"], &p).unwrap_err(),
            "must specify limits.cpu for: a; limits.memory for: a,b"
        );
        assert_eq!(pod_constraints(&["pods"], &p), Ok(()));
    }

    #[test]
    fn services_and_claims_count_as_upstream() {
        let svc: Service = serde_json::from_value(json!({"spec": {"type": "LoadBalancer",
            "ports": [{"port": 80}, {"port": 443}]}}))
        .unwrap();
        let u = service_usage(&svc);
        assert_eq!(
            (
                u["services"],
                u["services.loadbalancers"],
                u["services.nodeports"]
            ),
            (1, 1, 2)
        );
        let cluster_ip: Service =
            serde_json::from_value(json!({"spec": {"ports": [{"port": 80}]}})).unwrap();
        assert_eq!(service_usage(&cluster_ip)["services.nodeports"], 0);
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({"spec": {
            "storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap();
        let u = claim_usage(&claim);
        assert_eq!(u["requests.storage"], 1 << 30);
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/requests.storage"],
            1 << 30
        );
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/persistentvolumeclaims"],
            1
        );
        assert_eq!(
            object_count_usage("apps", "deployments"),
            Usage::from([("count/deployments.apps".into(), 1)])
        );
        assert_eq!(object_count_usage("", "secrets")["secrets"], 1);
    }

    #[test]
    fn scopes_select_pods_as_upstream() {
        let spec =
            |v: serde_json::Value| -> ResourceQuotaSpec { serde_json::from_value(v).unwrap() };
        let best_effort = pod(json!({"containers": [{"name": "a"}]}));
        let burstable = pod(
            json!({"activeDeadlineSeconds": 30, "priorityClassName": "high",
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        let be = spec(json!({"scopes": ["BestEffort"]}));
        assert!(quota_matches_pod(&be, &best_effort) && !quota_matches_pod(&be, &burstable));
        assert!(quota_tracks(&be, "pods") && !quota_tracks(&be, "requests.cpu"));
        let term = spec(json!({"scopes": ["Terminating", "NotBestEffort"]}));
        assert!(quota_matches_pod(&term, &burstable) && !quota_matches_pod(&term, &best_effort));
        assert!(quota_tracks(&term, "requests.cpu"));
        let high = spec(json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}));
        assert!(quota_matches_pod(&high, &burstable) && !quota_matches_pod(&high, &best_effort));
        assert!(!quota_matches_other(&high) && quota_matches_other(&spec(json!({}))));
        let cross = spec(json!({"scopes": ["CrossNamespacePodAffinity"]}));
        let reaching = pod(
            json!({"containers": [{"name": "a"}], "affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "zone", "namespaceSelector": {}}]}}}),
        );
        assert!(quota_matches_pod(&cross, &reaching) && !quota_matches_pod(&cross, &best_effort));
    }
}
