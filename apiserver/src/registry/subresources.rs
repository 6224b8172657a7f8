//! Subresources with their own shapes, below HTTP: scale (autoscaling/v1 Scale over a
//! workload's spec.replicas), pods/binding (the scheduler's write: spec.nodeName once and
//! the PodScheduled condition) and pods/eviction (a delete that respects
//! PodDisruptionBudgets).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Binding;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{self, DeleteOptions, Desired, WriteOptions, guaranteed_update};
use super::{ResourceInfo, Target};
use crate::meta;
use crate::state::ApiState;
use crate::status::{self, ApiError, ApiResult};

/// Where a kind keeps what its Scale shows: dotted paths (`spec.replicas`).
pub struct ScalePaths<'a> {
    pub spec_replicas: &'a str,
    pub status_replicas: &'a str,
    pub selector: ScaleSelector<'a>,
}

/// Where a kind's Scale takes its status.selector from.
pub enum ScaleSelector<'a> {
    /// A metav1.LabelSelector object (the built-in workloads' spec.selector).
    Object(&'a str),
    /// A string already in selector syntax (a CRD's labelSelectorPath), or none.
    Serialized(Option<&'a str>),
}

/// The built-in workloads' paths.
pub const WORKLOAD_SCALE: ScalePaths<'static> = ScalePaths {
    spec_replicas: "spec.replicas",
    status_replicas: "status.replicas",
    selector: ScaleSelector::Object("spec.selector"),
};

fn at<'a>(obj: &'a Value, path: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    meta::value_at(obj, path).unwrap_or(&NULL)
}

fn set_at(obj: &mut Value, path: &str, value: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().expect("a path has a field");
    meta::object_at(obj, parents).insert((*last).to_owned(), value);
}

/// The Scale view of a workload.
pub fn scale_of(resource: &ResourceInfo, obj: &Value) -> Value {
    let paths = resource.strategy.scale_paths();
    let selector = match paths.selector {
        ScaleSelector::Object(path) => {
            common::selector::LabelSelector::from_label_selector_json(at(obj, path))
                .map(|s| s.to_string())
                .unwrap_or_default()
        }
        ScaleSelector::Serialized(path) => path
            .and_then(|p| at(obj, p).as_str())
            .unwrap_or_default()
            .to_owned(),
    };
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": { "replicas": at(obj, paths.spec_replicas).as_i64().unwrap_or(0) },
        "status": { "replicas": at(obj, paths.status_replicas).as_i64().unwrap_or(0), "selector": selector },
    })
}

/// The Scale of a workload.
pub async fn get_scale(state: &ApiState, target: &Target) -> ApiResult<Value> {
    let (_, obj) = store::current(state, target).await?;
    Ok(scale_of(&target.resource, &obj))
}

/// Writes `scale.spec.replicas` into the workload; a resourceVersion in the Scale is a precondition.
pub async fn set_replicas(
    state: &Arc<ApiState>,
    target: &Target,
    options: &WriteOptions,
    scale: impl Fn(&Value) -> ApiResult<Value>,
) -> ApiResult<Value> {
    let main = target.main();
    let updated = guaranteed_update(state, &main, options, "kube-scale", |old| {
        let scale = scale(old)?;
        let replicas = scale["spec"]["replicas"]
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("Scale.spec.replicas must be an integer"))?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &target.name,
                vec![status::Cause::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let rv = meta::resource_version(&scale);
        if !rv.is_empty() && rv != meta::resource_version(old) {
            return Err(target.stale());
        }
        let mut new = old.clone();
        set_at(
            &mut new,
            target.resource.strategy.scale_paths().spec_replicas,
            json!(replicas),
        );
        Ok(Desired {
            object: new,
            precondition: !rv.is_empty(),
        })
    })
    .await?;
    Ok(scale_of(&target.resource, &updated.object))
}

/// pods/binding: sets spec.nodeName once and marks the pod scheduled.
pub async fn bind(
    state: &Arc<ApiState>,
    target: &Target,
    options: &WriteOptions,
    mut binding: Value,
) -> ApiResult<()> {
    // Typed, as upstream decodes it: annotations are strings, the target an ObjectReference
    // (a missing one is empty, so its name is reported as required below).
    if let Some(fields) = binding.as_object_mut() {
        fields.entry("target").or_insert_with(|| json!({}));
    }
    let binding = Binding::deserialize(&binding).map_err(|e| {
        ApiError::bad_request(format!(
            "Binding in version \"v1\" cannot be handled as a Binding: {e}"
        ))
    })?;
    let meta = &binding.metadata;
    if meta.name.as_deref().is_some_and(|n| n != target.name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    if meta
        .namespace
        .as_deref()
        .is_some_and(|ns| !ns.is_empty() && ns != target.namespace)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    // Upstream's ValidatePodBinding.
    let mut causes = Vec::new();
    let kind = binding.target.kind.as_deref().unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        causes.push(status::Cause::unsupported(
            "target.kind",
            &json!(kind),
            &["Node", "<empty>"],
        ));
    }
    let node = binding.target.name.clone().unwrap_or_default();
    if node.is_empty() {
        causes.push(status::Cause::required("target.name"));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("", "Binding", &target.name, causes));
    }
    let annotations = meta.annotations.as_ref().filter(|a| !a.is_empty());
    // The pod's resource in upstream's conflicts is the subresource.
    let refused = |why: &str| ApiError::conflict("", "pods/binding", &target.name, why);
    // As upstream's binding REST: the pod is written through storage, so neither the pod's
    // strategy nor field ownership runs (the scheduler owns no pod fields by binding). The
    // only input that is not ours is the binding's annotations, validated as the pod's.
    store::update_stored(state, target, options, |old| {
        for (what, wanted, actual) in [
            ("UID", meta.uid.as_deref(), meta::meta_str(old, "uid")),
            (
                "ResourceVersion",
                meta.resource_version.as_deref(),
                meta::resource_version(old),
            ),
        ] {
            if let Some(wanted) = wanted.filter(|w| !w.is_empty() && *w != actual) {
                return Err(refused(&format!(
                    "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
                )));
            }
        }
        if meta::is_terminating(old) {
            return Err(refused(&format!(
                "pod {} is being deleted, cannot be assigned to a host",
                target.name
            )));
        }
        if let Some(current) = old["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(refused(&format!(
                "pod {} is already assigned to node \"{current}\"",
                target.name
            )));
        }
        if old["spec"]["schedulingGates"]
            .as_array()
            .is_some_and(|g| !g.is_empty())
        {
            return Err(refused(&format!(
                "pod {} has non-empty .spec.schedulingGates",
                target.name
            )));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        set_condition(
            &mut new,
            json!({
                "type": "PodScheduled", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": meta::now_rfc3339(),
            }),
        );
        if let Some(annotations) = annotations {
            let meta_annotations = meta::object_at(&mut new, &["metadata", "annotations"]);
            for (k, v) in annotations {
                meta_annotations.insert(k.clone(), json!(v));
            }
            store::validate(target, &new, Some(old))?;
        }
        Ok(new)
    })
    .await?;
    Ok(())
}

/// Replaces (or adds) the pod condition of the same type.
fn set_condition(pod: &mut Value, condition: Value) {
    let conditions = meta::object_at(pod, &["status"])
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c["type"] != condition["type"]);
        list.push(condition);
    }
}

/// pods/eviction: deletes the pod unless a PodDisruptionBudget selecting it allows no disruption.
pub async fn evict(
    state: &Arc<ApiState>,
    target: &Target,
    options: &DeleteOptions,
) -> ApiResult<()> {
    let (_, pod) = store::current(state, target).await?;
    let pdbs =
        crate::registry::builtin("policy", "v1", "poddisruptionbudgets").expect("pdbs are served");
    let labels = meta::labels(&pod);
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !terminal {
        for pdb in state
            .cache
            .list(pdbs, &target.namespace)
            .objects
            .iter()
            .map(|o| o.value())
        {
            let Ok(selector) =
                common::selector::LabelSelector::from_label_selector_json(&pdb["spec"]["selector"])
            else {
                continue;
            };
            if selector.is_everything() || !selector.matches(labels) {
                continue;
            }
            if pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) <= 0 {
                let mut err = ApiError::new(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                );
                err.details = Some(Box::new(json!({ "causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!("The disruption budget {} needs {} healthy pods and has {} currently",
                        meta::name(&pdb),
                        pdb["status"]["desiredHealthy"].as_i64().unwrap_or(0),
                        pdb["status"]["currentHealthy"].as_i64().unwrap_or(0)),
                }]})));
                return Err(err);
            }
        }
    }
    store::delete(state, &target.main(), options).await?;
    Ok(())
}
