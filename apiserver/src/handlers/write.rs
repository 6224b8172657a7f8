//! create, update (PUT, including the status, approval and finalize subresources), patch,
//! delete and deletecollection as HTTP verbs: each decodes its body, checks the writer
//! (RBAC escalation, certificates, NodeRestriction) and writes through `registry::store`
//! (upstream's optimistic concurrency: every write is a compare-and-swap on the object's
//! resourceVersion, retried on conflict unless the client named a resourceVersion itself).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Format, Query, Target, respond};
use crate::apply::managed;
use crate::auth::{UserInfo, escalation, node};
use crate::meta::{self, metadata_mut};
use crate::registry::store::{self, DeleteOptions, Desired, create_object, guaranteed_update};
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult, Cause};

/// Adds `Warning` headers, as upstream does for fieldValidation=Warn.
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The checks of who writes against what is written: RBAC escalation prevention, the
/// certificate plugins and, for a kubelet, NodeRestriction.
fn admit_writer(
    state: &ApiState,
    user: &UserInfo,
    target: &Target,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    escalation::check(state, user, target, obj, old)?;
    crate::admission::certificates::admit(
        state,
        state.admission.certificates,
        user,
        target,
        obj,
        old,
    )?;
    if let Some(node) = node::node_name(user) {
        node::admit_write(&state.cache, node, target, obj, old)?;
    }
    Ok(())
}

/// POST to a collection.
pub async fn create(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    obj: Value,
    format: Format,
    user: &UserInfo,
) -> ApiResult<Response> {
    admit_writer(state, user, target, &obj, None)?;
    let manager = managed::manager_name(&query.field_manager, user_agent(headers));
    let (obj, warnings) =
        create_object(state, target, &query.write_options(), user, &manager, obj).await?;
    Ok(with_warnings(
        respond(StatusCode::CREATED, format, &obj),
        &warnings,
    ))
}

/// The resourceVersion a body names, if any.
fn named_revision(obj: &Value) -> Option<String> {
    Some(meta::resource_version(obj).to_owned()).filter(|s| !s.is_empty())
}

/// PUT of an object or of its status/approval/finalize subresource.
pub async fn update(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    obj: Value,
    format: Format,
    user: &UserInfo,
) -> ApiResult<Response> {
    let manager = managed::manager_name(&query.field_manager, user_agent(headers));
    let wanted = named_revision(&obj);
    let updated = guaranteed_update(state, target, &query.write_options(), &manager, |old| {
        if let Some(rv) = &wanted
            && rv != meta::resource_version(old)
        {
            return Err(target.stale());
        }
        admit_writer(state, user, target, &obj, Some(old))?;
        Ok(Desired {
            object: obj.clone(),
            precondition: wanted.is_some(),
        })
    })
    .await?;
    Ok(with_warnings(
        respond(StatusCode::OK, format, &updated.object),
        &updated.warnings,
    ))
}

/// PATCH of an object or its status: the patch is re-applied to the current object on conflict.
pub async fn patch(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    patch: &[u8],
    format: Format,
    user: &UserInfo,
) -> ApiResult<Response> {
    let resource = &*target.resource;
    let content_type = super::content_type(headers);
    if content_type == "application/apply-patch+yaml" {
        return apply(state, target, query, patch, format, user).await;
    }
    if query.force.is_some() {
        return Err(patch_options_invalid(Cause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )));
    }
    let manager = managed::manager_name(&query.field_manager, user_agent(headers));
    let updated = guaranteed_update(state, target, &query.write_options(), &manager, |old| {
        let mut patched = crate::patch::apply(resource, &content_type, old, patch)?;
        // A resourceVersion in the patch is a precondition on the current object.
        let named = named_revision(&patched);
        let precondition = named
            .as_deref()
            .is_some_and(|rv| rv != meta::resource_version(old))
            || patch_names_revision(patch);
        if let Some(rv) = named
            && rv != meta::resource_version(old)
        {
            return Err(target.stale());
        }
        metadata_mut(&mut patched).remove("resourceVersion");
        admit_writer(state, user, target, &patched, Some(old))?;
        Ok(Desired {
            object: patched,
            precondition,
        })
    })
    .await?;
    Ok(with_warnings(
        respond(StatusCode::OK, format, &updated.object),
        &updated.warnings,
    ))
}

/// Upstream's 422 for a PATCH's options.
fn patch_options_invalid(cause: Cause) -> ApiError {
    ApiError::invalid("meta.k8s.io", "PatchOptions", "", vec![cause])
}

/// Server-side apply (PATCH with application/apply-patch+yaml): the body is an applied
/// configuration merged into the object by field ownership; creates the object when there
/// is none, which takes the right to create it as well as to patch it.
async fn apply(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    body: &[u8],
    format: Format,
    user: &UserInfo,
) -> ApiResult<Response> {
    let manager = query.field_manager.as_str();
    if manager.is_empty() {
        return Err(patch_options_invalid(Cause::required_detail(
            "fieldManager",
            "is required for apply patch",
        )));
    }
    if manager.len() > 128 {
        return Err(patch_options_invalid(Cause::too_long("fieldManager", 128)));
    }
    let config = crate::codec::decode(body, "application/apply-patch+yaml")?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the applied configuration must be an object",
        ));
    }
    if !config["metadata"]["managedFields"].is_null() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let mut options = query.write_options();
    options.apply = Some(query.force.unwrap_or(false));
    let wanted = named_revision(&config);
    let updated = guaranteed_update(state, target, &options, manager, |old| {
        if let Some(rv) = &wanted
            && rv != meta::resource_version(old)
        {
            return Err(target.stale());
        }
        let mut config = config.clone();
        metadata_mut(&mut config).remove("resourceVersion");
        admit_writer(state, user, target, &config, Some(old))?;
        Ok(Desired {
            object: config,
            precondition: wanted.is_some(),
        })
    })
    .await;
    match updated {
        Ok(updated) => Ok(with_warnings(
            respond(StatusCode::OK, format, &updated.object),
            &updated.warnings,
        )),
        Err(e) if e.code == 404 && target.subresource.is_empty() => {
            may_create(state, target, user)?;
            admit_writer(state, user, target, &config, None)?;
            let (obj, warnings) =
                create_object(state, target, &options, user, manager, config).await?;
            Ok(with_warnings(
                respond(StatusCode::CREATED, format, &obj),
                &warnings,
            ))
        }
        Err(e) => Err(e),
    }
}

/// An apply that creates needs `create` on the resource besides the `patch` it was
/// authorized for.
fn may_create(state: &ApiState, target: &Target, user: &UserInfo) -> ApiResult<()> {
    let resource = &*target.resource;
    let attrs = crate::auth::attributes::Attributes {
        verb: "create".into(),
        resource_request: true,
        api_group: resource.group.clone(),
        api_version: resource.version.clone(),
        resource: resource.plural.clone(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        ..Default::default()
    };
    match state.auth.authorize(&state.cache, user, &attrs) {
        crate::auth::Decision::Allow(_) => Ok(()),
        _ => Err(ApiError::forbidden(
            &resource.group,
            &resource.plural,
            &target.name,
            &attrs.forbidden_text(&user.name),
        )),
    }
}

fn patch_names_revision(patch: &[u8]) -> bool {
    serde_json::from_slice::<Value>(patch)
        .ok()
        .is_some_and(|p| p["metadata"]["resourceVersion"].is_string())
}

/// The options of a delete, from its DeleteOptions body and query.
pub fn delete_options(query: &Query, body: &Value) -> ApiResult<DeleteOptions> {
    let mut propagation = body["propagationPolicy"]
        .as_str()
        .unwrap_or(&query.propagation_policy)
        .to_owned();
    let orphan = body["orphanDependents"]
        .as_bool()
        .or(query.orphan_dependents);
    if propagation.is_empty() {
        if let Some(o) = orphan {
            propagation = if o { "Orphan" } else { "Background" }.to_owned();
        }
    } else if orphan.is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![Cause::invalid(
                "propagationPolicy",
                &json!(propagation),
                "orphanDependents and deletionPropagation cannot be both set",
            )],
        ));
    }
    if !matches!(
        propagation.as_str(),
        "" | "Orphan" | "Background" | "Foreground"
    ) {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![Cause::unsupported(
                "propagationPolicy",
                &json!(propagation),
                &["Foreground", "Background", "Orphan", "nil"],
            )],
        ));
    }
    let dry_run = query.dry_run
        || body["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        cascading_requested: orphan == Some(false),
        grace_period: body["gracePeriodSeconds"]
            .as_i64()
            .or(query.grace_period_seconds),
        propagation,
        uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
        dry_run,
    })
}

/// Upstream answers 202 to a delete that leaves the object in place only when the client
/// asked for orphanDependents=false; 200 otherwise.
pub fn delete_status(options: &DeleteOptions, deleted: &store::Deleted) -> StatusCode {
    if deleted.pending && options.cascading_requested {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

/// DELETE of one object.
pub async fn delete(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    body: Value,
    format: Format,
) -> ApiResult<Response> {
    let options = delete_options(query, &body)?;
    let deleted = store::delete(state, target, &options).await?;
    Ok(respond(
        delete_status(&options, &deleted),
        format,
        &deleted.answer,
    ))
}

/// DELETE of a collection: every object the selectors pick is deleted as a single delete
/// would be, and the answer is the list of them as selected.
pub async fn delete_collection(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    body: Value,
    format: Format,
) -> ApiResult<Response> {
    let options = delete_options(query, &body)?;
    let list =
        store::delete_collection(state, target, &options, |o| query.list_options().selects(o))
            .await?;
    Ok(respond(StatusCode::OK, format, &list))
}
