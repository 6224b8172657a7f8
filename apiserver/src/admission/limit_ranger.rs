//! Upstream's LimitRanger admission: the LimitRanges of a pod's namespace give its containers
//! default limits and requests (noted in the `kubernetes.io/limit-ranger` annotation), and a
//! pod or claim outside their min, max or maxLimitRequestRatio is refused 403 with upstream's
//! messages. Pods are checked on create, claims on create and update.
//!
//! Costs nothing in a namespace without LimitRanges: the watch cache says so first.

use std::collections::BTreeMap;

use common::quantity::Quantity;
use common::scheduling::resources;
use k8s_openapi::api::core::v1::{Container, LimitRange, LimitRangeItem, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use serde_json::{Map, Value, json};

use crate::registry;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The namespace's LimitRanges, in the cache's (name) order.
fn limit_ranges(state: &ApiState, namespace: &str) -> Vec<LimitRange> {
    let resource = registry::builtin("", "v1", "limitranges").expect("limit ranges are served");
    state
        .cache
        .list(resource, namespace)
        .objects
        .iter()
        .filter_map(|o| serde_json::from_slice(&o.bytes).ok())
        .collect()
}

fn items(range: &LimitRange) -> &[LimitRangeItem] {
    range.spec.as_ref().map_or(&[], |s| s.limits.as_slice())
}

/// Defaults and checks a pod being created.
pub fn admit_pod(state: &ApiState, namespace: &str, pod: &mut Value) -> ApiResult<()> {
    let ranges = limit_ranges(state, namespace);
    if ranges.is_empty() {
        return Ok(());
    }
    let name = crate::meta::name(pod).to_owned();
    for range in &ranges {
        apply_defaults(range, pod);
    }
    let typed: Pod = serde_json::from_value(pod.clone())
        .map_err(|e| ApiError::bad_request(format!("reading the pod for LimitRanger: {e}")))?;
    let Some(spec) = typed.spec.as_ref() else {
        return Ok(());
    };
    for range in &ranges {
        let errors = validate_pod(range, spec);
        if !errors.is_empty() {
            return Err(ApiError::forbidden("", "pods", &name, &aggregate(errors)));
        }
    }
    Ok(())
}

/// Checks a claim being created or resized against the PersistentVolumeClaim limits.
pub fn admit_claim(state: &ApiState, namespace: &str, claim: &Value) -> ApiResult<()> {
    let ranges = limit_ranges(state, namespace);
    if ranges.is_empty() {
        return Ok(());
    }
    let name = crate::meta::name(claim);
    let requests: BTreeMap<String, ApiQuantity> =
        serde_json::from_value(claim["spec"]["resources"]["requests"].clone()).unwrap_or_default();
    for range in &ranges {
        let mut errors = Vec::new();
        for item in items(range)
            .iter()
            .filter(|i| i.type_ == "PersistentVolumeClaim")
        {
            for (res, min) in item.min.iter().flatten() {
                errors.extend(min_error(
                    res,
                    "PersistentVolumeClaim",
                    min,
                    requests.get(res),
                    None,
                ));
            }
            for (res, max) in item.max.iter().flatten() {
                let label = ("maximum", "PersistentVolumeClaim");
                errors.extend(match requests.get(res) {
                    None => Some(format!(
                        "{} {res} usage per {} is {}.  No request is specified",
                        label.0, label.1, max.0
                    )),
                    Some(r) if milli(r) > milli(max) => Some(format!(
                        "{} {res} usage per {} is {}, but request is {}",
                        label.0, label.1, max.0, r.0
                    )),
                    Some(_) => None,
                });
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::forbidden(
                "",
                "persistentvolumeclaims",
                name,
                &aggregate(errors),
            ));
        }
    }
    Ok(())
}

/// Fills each container's missing limits from the Container items' `default` and missing
/// requests from their `defaultRequest` (after a limit the user set gave its request, as
/// API defaulting does first upstream), and records what was set.
fn apply_defaults(range: &LimitRange, pod: &mut Value) {
    let mut default_limits = Map::new();
    let mut default_requests = Map::new();
    for item in items(range).iter().filter(|i| i.type_ == "Container") {
        for (k, q) in item.default.iter().flatten() {
            default_limits.insert(k.clone(), json!(q.0));
        }
        for (k, q) in item.default_request.iter().flatten() {
            default_requests.insert(k.clone(), json!(q.0));
        }
    }
    if default_limits.is_empty() && default_requests.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        // get_mut, not indexing: indexing a missing field would insert a null.
        let Some(containers) = pod
            .get_mut("spec")
            .and_then(|s| s.get_mut(field))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            let Some((set_requests, set_limits)) =
                default_container(c, &default_requests, &default_limits)
            else {
                continue;
            };
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    if !notes.is_empty() {
        crate::meta::object_at(pod, &["metadata", "annotations"]).insert(
            ANNOTATION.into(),
            json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
        );
    }
}

/// Fills one container's missing requests (a limit it sets first, as API defaulting does) and
/// limits; the names set. None for a container whose resources are not objects: validation
/// refuses it, and nothing here may guess at it.
fn default_container(
    c: &mut Value,
    default_requests: &Map<String, Value>,
    default_limits: &Map<String, Value>,
) -> Option<(Vec<String>, Vec<String>)> {
    let container = c.as_object_mut()?;
    let resources = container
        .entry("resources")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    let is_map = |v: Option<&Value>| matches!(v, None | Some(Value::Null | Value::Object(_)));
    if !is_map(resources.get("limits")) || !is_map(resources.get("requests")) {
        return None;
    }
    let mut take = |field: &str| match resources.remove(field) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let (mut limits, mut requests) = (take("limits"), take("requests"));
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let set_requests = fill(&mut requests, default_requests);
    let set_limits = fill(&mut limits, default_limits);
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    if !requests.is_empty() {
        resources.insert("requests".into(), Value::Object(requests));
    }
    if resources.is_empty() {
        container.remove("resources");
    }
    Some((set_requests, set_limits))
}

/// Sets each of `defaults` that `target` lacks; the names set, in order.
fn fill(target: &mut Map<String, Value>, defaults: &Map<String, Value>) -> Vec<String> {
    let mut set = Vec::new();
    for (k, v) in defaults {
        if !target.contains_key(k) {
            target.insert(k.clone(), v.clone());
            set.push(k.clone());
        }
    }
    set
}

fn milli(q: &ApiQuantity) -> i64 {
    Quantity::parse(&q.0).map_or(0, |q| q.milli_value())
}

/// One container's (or the pod's) requests and limits, as quantities.
struct Amounts {
    requests: BTreeMap<String, ApiQuantity>,
    limits: BTreeMap<String, ApiQuantity>,
}

fn container_amounts(c: &Container) -> Amounts {
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    Amounts {
        requests: resources::container_requests(c)
            .map(|(k, q)| (k.to_owned(), q.clone()))
            .collect(),
        limits,
    }
}

/// The pod's totals as upstream's podRequests and podLimits (sidecars and the init
/// containers' peak), for each resource some container sets.
fn pod_amounts(spec: &PodSpec) -> Amounts {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut requested = std::collections::BTreeSet::new();
    let mut limited = std::collections::BTreeSet::new();
    for c in containers {
        let a = container_amounts(c);
        requested.extend(a.requests.into_keys());
        limited.extend(a.limits.into_keys());
    }
    let total = |name: &str, limits: bool| -> ApiQuantity {
        let sum = resources::pod_requests(
            spec,
            |c| {
                let a = container_amounts(c);
                let map = if limits { &a.limits } else { &a.requests };
                map.get(name).map_or(0, milli)
            },
            |_| 0,
        );
        ApiQuantity(format_milli(name, sum))
    };
    Amounts {
        requests: requested
            .into_iter()
            .map(|n| {
                let q = total(&n, false);
                (n, q)
            })
            .collect(),
        limits: limited
            .into_iter()
            .map(|n| {
                let q = total(&n, true);
                (n, q)
            })
            .collect(),
    }
}

/// A total in thousandths as a quantity: cpu in millicores, others in units.
fn format_milli(name: &str, milli: i64) -> String {
    if name == "cpu" {
        common::quota::format_amount("cpu", milli)
    } else {
        common::quota::format_amount(name, milli / 1000)
    }
}

/// Every Container and Pod item's min, max and ratio against the pod; the messages of what
/// fails, in upstream's order.
fn validate_pod(range: &LimitRange, spec: &PodSpec) -> Vec<String> {
    let mut errors = Vec::new();
    for item in items(range) {
        match item.type_.as_str() {
            "Container" => {
                for c in spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                {
                    errors.extend(check(item, "Container", &container_amounts(c)));
                }
            }
            "Pod" => errors.extend(check(item, "Pod", &pod_amounts(spec))),
            _ => {}
        }
    }
    errors
}

fn check(item: &LimitRangeItem, kind: &str, a: &Amounts) -> Vec<String> {
    let mut errors = Vec::new();
    for (res, min) in item.min.iter().flatten() {
        errors.extend(min_error(
            res,
            kind,
            min,
            a.requests.get(res),
            a.limits.get(res),
        ));
    }
    for (res, max) in item.max.iter().flatten() {
        let (request, limit) = (a.requests.get(res), a.limits.get(res));
        let head = format!("maximum {res} usage per {kind} is {}", max.0);
        errors.extend(match limit {
            None => Some(format!("{head}.  No limit is specified")),
            Some(l) if milli(l) > milli(max) => Some(format!("{head}, but limit is {}", l.0)),
            _ => match request {
                Some(r) if milli(r) > milli(max) => Some(format!("{head}, but request is {}", r.0)),
                _ => None,
            },
        });
    }
    for (res, ratio) in item.max_limit_request_ratio.iter().flatten() {
        let head = format!("{res} max limit to request ratio per {kind} is {}", ratio.0);
        let request = a.requests.get(res).map_or(0, milli);
        let limit = a.limits.get(res).map_or(0, milli);
        errors.extend(if request == 0 {
            Some(format!(
                "{head}, but no request is specified or request is 0"
            ))
        } else if limit == 0 {
            Some(format!("{head}, but no limit is specified or limit is 0"))
        } else {
            let provided = limit as f64 / request as f64;
            (provided > milli(ratio) as f64 / 1000.0)
                .then(|| format!("{head}, but provided ratio is {provided:.6}"))
        });
    }
    errors
}

fn min_error(
    res: &str,
    kind: &str,
    min: &ApiQuantity,
    request: Option<&ApiQuantity>,
    limit: Option<&ApiQuantity>,
) -> Option<String> {
    let head = format!("minimum {res} usage per {kind} is {}", min.0);
    match request {
        None => Some(format!("{head}.  No request is specified")),
        Some(r) if milli(r) < milli(min) => Some(format!("{head}, but request is {}", r.0)),
        _ => match limit {
            Some(l) if milli(l) < milli(min) => Some(format!("{head}, but limit is {}", l.0)),
            _ => None,
        },
    }
}

/// Upstream's error aggregate: one message alone, several as `[a, b]`, duplicates once.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        unique.remove(0)
    } else {
        format!("[{}]", unique.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}}))
            .unwrap()
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    fn errors(range: &LimitRange, pod: &Value) -> Vec<String> {
        let typed: Pod = serde_json::from_value(pod.clone()).unwrap();
        validate_pod(range, typed.spec.as_ref().unwrap())
    }

    #[test]
    fn defaults_fill_what_is_missing_and_are_noted() {
        let lr = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
        let mut p = pod(json!([
            {"name": "nginx"},
            {"name": "app", "resources": {"limits": {"cpu": "1"}}}]));
        apply_defaults(&lr, &mut p);
        let c = &p["spec"]["containers"];
        assert_eq!(
            c[0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        // The user's limit gave its request before the defaults, as upstream's decoding does.
        assert_eq!(
            c[1]["resources"],
            json!({"limits": {"cpu": "1", "memory": "256Mi"},
            "requests": {"cpu": "1", "memory": "128Mi"}})
        );
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container nginx; cpu, memory \
             limit for container nginx; memory request for container app; memory limit for \
             container app"
        );
    }

    #[test]
    fn malformed_containers_are_left_to_validation() {
        let lr = range(json!([{"type": "Container", "default": {"cpu": "500m"}}]));
        let mut p = pod(json!([
            {"name": "a", "resources": {"requests": "lots"}},
            {"name": "b", "resources": "none"},
            "not a container"]));
        let before = p.clone();
        apply_defaults(&lr, &mut p);
        assert_eq!(p, before, "nothing guessed, nothing panicked");
    }

    #[test]
    fn messages_are_upstreams() {
        let lr = range(json!([
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"},
             "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"cpu": "2"}}]));
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                        "limits": {"cpu": "1500m", "memory": "2Gi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]));
        assert_eq!(
            errors(&lr, &p),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi",
                "cpu max limit to request ratio per Container is 2, but provided ratio is \
                 30.000000",
                "maximum cpu usage per Pod is 2, but limit is 2500m",
            ]
        );
        let bare = pod(json!([{"name": "a"}]));
        assert_eq!(
            errors(&lr, &bare),
            [
                "minimum cpu usage per Container is 100m.  No request is specified",
                "maximum memory usage per Container is 1Gi.  No limit is specified",
                "cpu max limit to request ratio per Container is 2, but no request is \
                 specified or request is 0",
                "maximum cpu usage per Pod is 2.  No limit is specified",
            ]
        );
        assert_eq!(aggregate(vec!["a".into(), "a".into()]), "a");
        assert_eq!(aggregate(vec!["a".into(), "b".into()]), "[a, b]");
    }
}
