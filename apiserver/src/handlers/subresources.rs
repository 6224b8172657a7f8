//! The subresources with their own shapes as HTTP verbs: scale, pods/binding and
//! pods/eviction, each decoded here and carried out by `registry::subresources`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::write;
use super::{Format, Query, Target, respond};
use crate::registry::subresources::{self, scale_of};
use crate::state::ApiState;
use crate::status::ApiResult;

/// What binding and eviction answer: 201 with a Success Status.
fn created(format: Format) -> Response {
    respond(
        StatusCode::CREATED,
        format,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
        }),
    )
}

pub async fn get_scale(
    state: &Arc<ApiState>,
    target: &Target,
    format: Format,
) -> ApiResult<Response> {
    let scale = subresources::get_scale(state, target).await?;
    Ok(respond(StatusCode::OK, format, &scale))
}

pub async fn update_scale(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    scale: Value,
    format: Format,
) -> ApiResult<Response> {
    let options = query.write_options();
    let updated =
        subresources::set_replicas(state, target, &options, |_| Ok(scale.clone())).await?;
    Ok(respond(StatusCode::OK, format, &updated))
}

pub async fn patch_scale(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    content_type: &str,
    patch: &[u8],
    format: Format,
) -> ApiResult<Response> {
    let scale_resource = &*target.resource;
    // Scale has no patch merge keys, so strategic merge is a plain merge here.
    let content_type = match content_type {
        "application/strategic-merge-patch+json" => "application/merge-patch+json",
        other => other,
    };
    let updated = subresources::set_replicas(state, target, &query.write_options(), |old| {
        crate::patch::apply(
            scale_resource,
            content_type,
            &scale_of(scale_resource, old),
            patch,
        )
    })
    .await?;
    Ok(respond(StatusCode::OK, format, &updated))
}

/// pods/binding.
pub async fn bind(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    binding: Value,
    format: Format,
) -> ApiResult<Response> {
    subresources::bind(state, target, &query.write_options(), binding).await?;
    Ok(created(format))
}

/// pods/eviction: the Eviction's deleteOptions are the delete's.
pub async fn evict(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    eviction: Value,
    format: Format,
) -> ApiResult<Response> {
    let options = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or(Value::Null);
    subresources::evict(state, target, &write::delete_options(query, &options)?).await?;
    Ok(created(format))
}
