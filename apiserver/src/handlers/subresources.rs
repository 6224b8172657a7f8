//! Subresources with their own shapes: scale (autoscaling/v1 Scale), pods/binding (the
//! scheduler's write) and pods/eviction (a delete that respects PodDisruptionBudgets).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::write;
use super::{Format, Query, Target, respond};
use crate::meta;
use crate::registry::store::{self, Desired, guaranteed_update};
use crate::state::ApiState;
use crate::status::{self, ApiError, ApiResult};

/// The Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector =
        common::selector::LabelSelector::from_label_selector_json(&obj["spec"]["selector"])
            .map(|s| s.to_string())
            .unwrap_or_default();
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": { "replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0) },
        "status": { "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector },
    })
}

fn main_target(target: &Target) -> Target {
    Target {
        resource: target.resource,
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        subresource: String::new(),
    }
}

pub async fn get_scale(state: &Arc<ApiState>, target: &Target) -> ApiResult<Response> {
    let (_, obj) = store::current(state, target).await?;
    Ok(respond(StatusCode::OK, Format::Json, &scale_of(&obj)))
}

/// Writes `scale.spec.replicas` into the workload; a resourceVersion in the Scale is a precondition.
async fn set_replicas(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    scale: impl Fn(&Value) -> ApiResult<Value>,
) -> ApiResult<Response> {
    let main = main_target(target);
    let updated = guaranteed_update(state, &main, &query.write_options(), "kube-scale", |old| {
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
        new["spec"]["replicas"] = json!(replicas);
        Ok(Desired {
            object: new,
            precondition: !rv.is_empty(),
        })
    })
    .await?;
    Ok(respond(
        StatusCode::OK,
        Format::Json,
        &scale_of(&updated.object),
    ))
}

pub async fn update_scale(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    scale: Value,
) -> ApiResult<Response> {
    set_replicas(state, target, query, |_| Ok(scale.clone())).await
}

pub async fn patch_scale(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    content_type: &str,
    patch: &[u8],
) -> ApiResult<Response> {
    let scale_resource = target.resource;
    set_replicas(state, target, query, |old| {
        // Scale has no patch merge keys, so strategic merge is a plain merge here.
        let ct = if content_type == "application/strategic-merge-patch+json" {
            "application/merge-patch+json"
        } else {
            content_type
        };
        write::apply_patch(scale_resource, ct, &scale_of(old), patch)
    })
    .await
}

/// pods/binding: sets spec.nodeName once and marks the pod scheduled.
pub async fn bind(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    binding: Value,
) -> ApiResult<Response> {
    let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &target.name,
            vec![status::Cause::required("target.name")],
        ));
    }
    let uid = binding["metadata"]["uid"].as_str().map(str::to_owned);
    guaranteed_update(
        state,
        target,
        &query.write_options(),
        "kube-scheduler",
        |old| {
            if let Some(uid) = &uid
                && uid != meta::meta_str(old, "uid")
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    &target.name,
                    "the UID in the binding does not match the pod",
                ));
            }
            if meta::is_terminating(old) {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    &target.name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(current) = old["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    &target.name,
                    &format!(
                        "pod {} is already assigned to node \"{current}\"",
                        target.name
                    ),
                ));
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = json!(node);
            if let Some(annotations) = binding["metadata"]["annotations"].as_object() {
                let meta_annotations = meta::object_at(&mut new, &["metadata", "annotations"]);
                for (k, v) in annotations {
                    meta_annotations.insert(k.clone(), v.clone());
                }
            }
            set_condition(
                &mut new,
                json!({
                    "type": "PodScheduled", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": meta::now_rfc3339(),
                }),
            );
            Ok(Desired {
                object: new,
                precondition: false,
            })
        },
    )
    .await?;
    Ok(respond(
        StatusCode::CREATED,
        Format::Json,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
        }),
    ))
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
    query: &Query,
    eviction: Value,
) -> ApiResult<Response> {
    let (_, pod) = store::current(state, target).await?;
    let pdbs =
        crate::registry::find("policy", "v1", "poddisruptionbudgets").expect("pdbs are served");
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
    let options = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or(Value::Null);
    let main = main_target(target);
    store::delete(state, &main, &write::delete_options(query, &options)?).await?;
    Ok(respond(
        StatusCode::CREATED,
        Format::Json,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
        }),
    ))
}
