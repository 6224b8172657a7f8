//! Admission steps that read other objects, run on create after defaults are known: today the
//! Priority plugin, which resolves a pod's priorityClassName to spec.priority.

use serde_json::{Value, json};

use crate::meta;
use crate::registry;
use crate::server::ApiState;
use crate::status::{ApiError, ApiResult};

/// upstream's Priority admission: spec.priority (and preemptionPolicy) come from the pod's
/// PriorityClass, or the global default class, or are 0.
pub fn pod_priority(state: &ApiState, pod: &mut Value) -> ApiResult<()> {
    let classes = registry::find("scheduling.k8s.io", "v1", "priorityclasses").expect("served");
    let name = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let class = if name.is_empty() {
        state
            .cache
            .list(classes, "")
            .objects
            .iter()
            .map(|o| o.value())
            .find(|c| c["globalDefault"] == true)
    } else {
        let key = format!("{}{name}", classes.key_prefix(&state.root));
        match state.cache.get(classes, &key) {
            Some(c) => Some(c.value()),
            None => {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    meta::name(pod),
                    &format!("no PriorityClass with name {name} was found"),
                ));
            }
        }
    };
    let (value, policy) = match &class {
        Some(c) => (
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_owned(),
        ),
        None => (0, "PreemptLowerPriority".to_owned()),
    };
    if let Some(given) = pod["spec"]["priority"].as_i64()
        && given != value
    {
        return Err(ApiError::forbidden(
            "",
            "pods",
            meta::name(pod),
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    let spec = meta::object_at(pod, &["spec"]);
    if let Some(c) = &class {
        spec.insert("priorityClassName".into(), c["metadata"]["name"].clone());
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}
