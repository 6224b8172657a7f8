//! Upstream's RuntimeClass admission, on pod create: a pod naming a RuntimeClass that does not
//! exist is refused; the class's fixed overhead becomes the pod's (a pod stating another, or an
//! overhead without a class that defines one, is refused), and the class's scheduling
//! constraints are merged into the pod's nodeSelector (a conflicting value is refused) and
//! tolerations.

use serde_json::{Map, Value, json};

use crate::registry;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// Admits a pod being created.
pub fn admit_pod(state: &ApiState, pod: &mut Value) -> ApiResult<()> {
    let name = crate::meta::name(pod).to_owned();
    let refuse = |why: String| ApiError::forbidden("", "pods", &name, &why);
    let class_name = pod["spec"]["runtimeClassName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let class = match &class_name {
        None => None,
        Some(class_name) => {
            let resource = registry::builtin("node.k8s.io", "v1", "runtimeclasses")
                .expect("runtime classes are served");
            let key = format!("{}{class_name}", resource.key_prefix(&state.root));
            let class = state
                .cache
                .get(resource, &key)
                .filter(|c| !c.terminating)
                .ok_or_else(|| {
                    refuse(format!(
                        "pod rejected: RuntimeClass {class_name:?} not found"
                    ))
                })?;
            Some(class.value())
        }
    };
    let spec = crate::meta::object_at(pod, &["spec"]);
    let pod_overhead = spec
        .get("overhead")
        .and_then(Value::as_object)
        .filter(|o| !o.is_empty())
        .cloned();
    match class.as_ref().map(|c| &c["overhead"]["podFixed"]) {
        Some(Value::Object(fixed)) => {
            if pod_overhead.is_some_and(|o| !same_quantities(&o, fixed)) {
                return Err(refuse(
                    "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
                        .into(),
                ));
            }
            spec.insert("overhead".into(), Value::Object(fixed.clone()));
        }
        _ if pod_overhead.is_some() => {
            return Err(refuse(
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined \
                 Overhead"
                    .into(),
            ));
        }
        _ => {}
    }
    let Some(scheduling) = class.as_ref().map(|c| &c["scheduling"]) else {
        return Ok(());
    };
    if let Some(selector) = scheduling["nodeSelector"].as_object() {
        let pod_selector = spec
            .entry("nodeSelector")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("spec.nodeSelector must be an object"))?;
        for (key, value) in selector {
            match pod_selector.get(key) {
                Some(own) if own != value => {
                    return Err(refuse(format!(
                        "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {}; \
                         pod.spec.nodeSelector[{key}] = {}",
                        value.as_str().unwrap_or_default(),
                        own.as_str().unwrap_or_default()
                    )));
                }
                Some(_) => {}
                None => {
                    pod_selector.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if let Some(tolerations) = scheduling["tolerations"].as_array() {
        let own = spec
            .entry("tolerations")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| ApiError::bad_request("spec.tolerations must be a list"))?;
        for t in tolerations {
            if !own.contains(t) {
                own.push(t.clone());
            }
        }
    }
    Ok(())
}

/// Whether two resource lists hold the same quantities (`1000m` equals `1`).
fn same_quantities(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let milli = |v: &Value| {
        v.as_str()
            .and_then(|s| common::quantity::Quantity::parse(s).ok())
            .map(|q| q.milli_value())
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.get(k)
                .is_some_and(|w| milli(v).is_some() && milli(v) == milli(w))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overheads_compare_as_quantities() {
        let a = json!({"cpu": "1", "memory": "64Mi"});
        let b = json!({"cpu": "1000m", "memory": "64Mi"});
        let c = json!({"cpu": "1"});
        assert!(same_quantities(
            a.as_object().unwrap(),
            b.as_object().unwrap()
        ));
        assert!(!same_quantities(
            a.as_object().unwrap(),
            c.as_object().unwrap()
        ));
    }
}
