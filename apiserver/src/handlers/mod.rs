//! The REST handlers: parse a resource request (path, verb, query, content type), then run the
//! verb against the registry entry it names. `read` serves get, list and watch from the watch
//! cache; `write` runs create, update, patch and delete against the store; `subresources`
//! serves the subresources with their own shapes (binding, scale, eviction, approval, finalize);
//! `connect` forwards pods/log, exec, attach, portforward and nodes/proxy to kubelets.

mod connect;
pub mod read;
mod subresources;
pub mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use crate::codec::{
    Format, MAX_BODY, content_type, decode, negotiate, raw_response, read_body, read_bytes, respond,
};
pub use crate::query::Query;
pub use crate::registry::Target;

use crate::request::RequestInfo;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// The entry point for every `/api` and `/apis` resource request.
pub async fn serve(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let request = match crate::auth::api::handle(&state, request).await {
        Ok(answered) => return answered,
        Err(request) => request,
    };
    let request = match connect::handle(&state, request).await {
        Ok(answered) => return answered,
        Err(request) => request,
    };
    let (mut parts, body) = request.into_parts();
    // The reading authorization used; read here only when no filter ran (never on a server).
    let info = match parts.extensions.remove::<RequestInfo>() {
        Some(info) => info,
        None => RequestInfo::read(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
        ),
    };
    let user = parts.extensions.get::<crate::auth::UserInfo>();
    let audit = parts
        .extensions
        .get::<Arc<crate::audit::AuditContext>>()
        .cloned();
    let user_name = user.map(|u| u.name.clone()).unwrap_or_default();
    let result = crate::audit::filter::serving(
        audit,
        crate::auth::REQUESTING_USER.scope(user_name, async {
            let target = Target::from_info(&info, state.cache.resources())?;
            let mut query = info.query?;
            if info.watch_path {
                if parts.method != Method::GET {
                    return Err(ApiError::method_not_allowed(format!(
                        "the server does not allow this method on the requested resource ({})",
                        parts.method
                    )));
                }
                if !target.name.is_empty() {
                    return Err(ApiError::no_route());
                }
                query.watch = true;
            }
            dispatch(
                &state,
                &parts.method,
                &parts.headers,
                user,
                target,
                query,
                body,
            )
            .await
        }),
    )
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(
    state: &Arc<ApiState>,
    method: &Method,
    headers: &HeaderMap,
    user: Option<&crate::auth::UserInfo>,
    target: Target,
    mut query: Query,
    body: Body,
) -> ApiResult<Response> {
    let collection = target.name.is_empty();
    let format = negotiate(headers, target.resource.has_protobuf())?;
    let anonymous = crate::auth::UserInfo::anonymous();
    let user = user.unwrap_or(&anonymous);
    let sub = target.subresource.as_str();
    match (method.as_str(), collection, sub) {
        ("GET", true, _) if query.watch => read::watch(state, &target, &query, format).await,
        ("GET", true, _) => read::list(state, &target, &query, format).await,
        ("GET", false, "" | "status") => read::get(state, &target, &query, format).await,
        ("GET", false, "scale") => subresources::get_scale(state, &target, format).await,
        ("POST", true, _) => {
            let obj = read_body(body, headers, &mut query).await?;
            write::create(state, &target, &query, headers, obj, format, user).await
        }
        ("POST", false, "binding") => {
            let obj = read_body(body, headers, &mut query).await?;
            subresources::bind(state, &target, &query, obj, format).await
        }
        ("POST", false, "eviction") => {
            let obj = read_body(body, headers, &mut query).await?;
            subresources::evict(state, &target, &query, obj, format).await
        }
        ("PUT", false, "scale") => {
            let obj = read_body(body, headers, &mut query).await?;
            subresources::update_scale(state, &target, &query, obj, format).await
        }
        ("PUT", false, "" | "status" | "approval" | "finalize") => {
            let obj = read_body(body, headers, &mut query).await?;
            write::update(state, &target, &query, headers, obj, format, user).await
        }
        ("PATCH", false, "scale") => {
            let content_type = content_type(headers);
            let patch = read_bytes(body).await?;
            subresources::patch_scale(state, &target, &query, &content_type, &patch, format).await
        }
        ("PATCH", false, "" | "status" | "approval") => {
            let patch = read_bytes(body).await?;
            write::patch(state, &target, &query, headers, &patch, format, user).await
        }
        ("DELETE", false, "") => {
            let options = delete_options(body, headers).await?;
            write::delete(state, &target, &query, options, format).await
        }
        ("DELETE", true, "") => {
            let options = delete_options(body, headers).await?;
            write::delete_collection(state, &target, &query, options, format).await
        }
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// A DeleteOptions body, if any (kubectl sends one; an empty body means defaults).
async fn delete_options(body: Body, headers: &HeaderMap) -> ApiResult<Value> {
    let bytes = read_bytes(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    decode(&bytes, &content_type(headers))
}
