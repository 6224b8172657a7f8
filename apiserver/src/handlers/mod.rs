//! The REST handlers: parse a resource request (path, verb, query, content type), then run the
//! verb against the registry entry it names. `read` serves get, list and watch from the watch
//! cache; `write` runs create, update, patch and delete against the store; `subresources`
//! serves the subresources with their own shapes (binding, scale, eviction, approval, finalize);
//! `connect` forwards pods/log, exec, attach, portforward and nodes/proxy to kubelets.

mod connect;
mod duplicates;
mod query;
pub mod read;
mod subresources;
pub mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

pub use crate::registry::Target;
pub use query::Query;

use crate::registry;
use crate::request::RequestInfo;
use crate::server::ApiState;
use crate::status::{ApiError, ApiResult};

/// The most a request body may hold, as upstream's limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

impl Target {
    /// The resource, namespace, name and subresource a request's reading names; 404 for a
    /// path no resource serves. It reads only [`RequestInfo`], so it names exactly what was
    /// authorized.
    pub fn from_info(info: &RequestInfo) -> ApiResult<Target> {
        let attrs = &info.attrs;
        if !attrs.resource_request || info.trailing_segments > 0 {
            return Err(ApiError::no_route());
        }
        let resource = registry::find(&attrs.api_group, &attrs.api_version, &attrs.resource)
            .ok_or_else(ApiError::no_route)?;
        // A namespaced resource is named inside a namespace, or listed across all of them;
        // a cluster-scoped one never follows `namespaces/NS/`.
        let scope_ok = match (resource.namespaced, info.in_namespace) {
            (true, true) => !attrs.namespace.is_empty(),
            (true, false) => info.path_name.is_empty(),
            (false, in_namespace) => !in_namespace,
        };
        if !scope_ok {
            return Err(ApiError::no_route());
        }
        let subresource = attrs.subresource.clone();
        if !subresource.is_empty()
            && (info.path_name.is_empty() || !resource.has_subresource(&subresource))
        {
            return Err(ApiError::no_route());
        }
        Ok(Target {
            resource,
            namespace: if resource.namespaced {
                attrs.namespace.clone()
            } else {
                String::new()
            },
            name: info.path_name.clone(),
            subresource,
        })
    }
}

/// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` into a target.
pub fn parse_path(path: &str) -> ApiResult<Target> {
    Target::from_info(&RequestInfo::read("GET", path, ""))
}

/// How the client wants the answer encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// meta.k8s.io/v1 Table (server-side printing).
    Table,
}

/// Picks the answer format from the Accept header, as upstream's content negotiation.
pub fn negotiate(headers: &HeaderMap) -> ApiResult<Format> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Format::Json);
    }
    for choice in accept.split(',') {
        let mut params = choice.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let params: Vec<&str> = params.collect();
        let as_table = params.contains(&"as=Table");
        let v1 = params.contains(&"v=v1") && params.contains(&"g=meta.k8s.io");
        match media {
            "application/json" | "*/*" | "application/*" if as_table && v1 => {
                return Ok(Format::Table);
            }
            "application/json" | "*/*" | "application/*"
                if !params.iter().any(|p| p.starts_with("as=")) =>
            {
                return Ok(Format::Json);
            }
            "application/yaml" if !as_table => return Ok(Format::Yaml),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// Serializes an answer in the negotiated format.
pub fn respond(status: StatusCode, format: Format, body: &Value) -> Response {
    let (bytes, content_type) = match format {
        Format::Yaml => (
            serde_yaml::to_string(body).unwrap_or_default().into_bytes(),
            "application/yaml",
        ),
        _ => {
            let mut bytes = serde_json::to_vec(body).unwrap_or_default();
            // Upstream's JSON encoder ends every body with a newline; clients compare bytes.
            bytes.push(b'\n');
            (bytes, "application/json")
        }
    };
    raw_response(status, content_type, Bytes::from(bytes))
}

pub fn raw_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Reads a request body (at most [`MAX_BODY`]) and decodes JSON, YAML or protobuf into a JSON
/// value. Duplicate fields of a JSON body are noted in `query` for fieldValidation.
pub async fn read_body(body: Body, headers: &HeaderMap, query: &mut Query) -> ApiResult<Value> {
    let bytes = read_bytes(body).await?;
    let content_type = content_type(headers);
    let value = decode(&bytes, &content_type)?;
    if content_type == "application/json" || content_type.is_empty() {
        query.duplicate_fields = duplicates::duplicate_fields(&bytes);
    }
    Ok(value)
}

pub async fn read_bytes(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

/// Decodes a JSON or YAML document into a JSON value; malformed input is a 400.
pub fn decode(bytes: &[u8], content_type: &str) -> ApiResult<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == "application/vnd.kubernetes.protobuf" {
        return crate::protobuf::decode(bytes).map_err(|e| {
            ApiError::bad_request(format!("unable to decode the protobuf body: {e}"))
        });
    }
    let is_yaml = media == "application/yaml" || media == "application/apply-patch+yaml";
    check_body_shape(bytes, is_yaml)?;
    let value: Value = if is_yaml {
        serde_yaml::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
        })?
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    Ok(value)
}

/// The deepest flow nesting (`[` and `{`) a YAML body may have, as upstream's YAML decoder.
const MAX_YAML_DEPTH: usize = 10_000;

/// The most objects and arrays one body may hold. Each costs a few hundred bytes once decoded
/// and copied along the write path while `[` costs one byte to send, so 3 MiB of brackets
/// would take over a gigabyte; with this bound one body costs at most about 35 MiB (see
/// the README's worst requests). Real objects hold a few thousand (an EndpointSlice of 1,000
/// endpoints about 5,000).
pub const MAX_CONTAINERS: usize = 1 << 16;

/// Refuses, before any decoder runs, a body whose decoding would cost more than its size
/// warrants: more than [`MAX_CONTAINERS`] objects and arrays, or YAML nested deeper than
/// [`MAX_YAML_DEPTH`] (the YAML parser's time grows with the square of the nesting). JSON
/// strings are skipped exactly; in YAML every bracket counts, strings too, which a real
/// document stays far from.
pub fn check_body_shape(bytes: &[u8], yaml: bool) -> ApiResult<()> {
    let (mut depth, mut containers) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if !yaml => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                containers += 1;
                if yaml && depth > MAX_YAML_DEPTH {
                    return Err(ApiError::bad_request(format!(
                        "error converting YAML to JSON: yaml: exceeded max depth of {MAX_YAML_DEPTH}"
                    )));
                }
                // Far past the JSON decoder's own depth limit (128): the same 400, earlier.
                if !yaml && depth > 1000 {
                    return Err(ApiError::bad_request(
                        "couldn't get version/kind; json parse error: recursion limit exceeded",
                    ));
                }
                if containers > MAX_CONTAINERS {
                    return Err(ApiError::new(
                        413,
                        "RequestEntityTooLarge",
                        format!(
                            "Request entity too large: the body holds more than {MAX_CONTAINERS} objects and arrays"
                        ),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

tokio::task_local! {
    /// The user a resource request acts as, for admission that exempts users (PodSecurity).
    static REQUESTING_USER: String;
}

/// The name of the user the request being served acts as; None outside a request (or for
/// an unauthenticated one).
pub fn requesting_user() -> Option<String> {
    REQUESTING_USER
        .try_with(Clone::clone)
        .ok()
        .filter(|u| !u.is_empty())
}

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
        REQUESTING_USER.scope(user_name, async {
            let target = Target::from_info(&info)?;
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
    let format = negotiate(headers)?;
    let anonymous = crate::auth::UserInfo::anonymous();
    let user = user.unwrap_or(&anonymous);
    let sub = target.subresource.as_str();
    match (method.as_str(), collection, sub) {
        ("GET", true, _) if query.watch => read::watch(state, &target, &query, format).await,
        ("GET", true, _) => read::list(state, &target, &query, format).await,
        ("GET", false, "" | "status") => read::get(state, &target, &query, format).await,
        ("GET", false, "scale") => subresources::get_scale(state, &target).await,
        ("POST", true, _) => {
            let mut obj = read_body(body, headers, &mut query).await?;
            if target.resource.plural == "certificatesigningrequests" {
                // The requester is recorded by the server, never taken from the client.
                let user = user.clone();
                if let Some(spec) = obj
                    .as_object_mut()
                    .map(|o| {
                        o.entry("spec")
                            .or_insert_with(|| Value::Object(Default::default()))
                    })
                    .and_then(Value::as_object_mut)
                {
                    spec.insert("username".into(), user.name.into());
                    spec.insert("uid".into(), user.uid.into());
                    spec.insert("groups".into(), user.groups.into());
                    let extra = serde_json::to_value(user.extra).unwrap_or_default();
                    spec.insert("extra".into(), extra);
                }
            }
            write::create(state, &target, &query, headers, obj, format, user).await
        }
        ("POST", false, "binding") => {
            let obj = read_body(body, headers, &mut query).await?;
            subresources::bind(state, &target, &query, obj).await
        }
        ("POST", false, "eviction") => {
            let obj = read_body(body, headers, &mut query).await?;
            subresources::evict(state, &target, &query, obj).await
        }
        ("PUT", false, "scale") => {
            let obj = read_body(body, headers, &mut query).await?;
            subresources::update_scale(state, &target, &query, obj).await
        }
        ("PUT", false, "" | "status" | "approval" | "finalize") => {
            let obj = read_body(body, headers, &mut query).await?;
            write::update(state, &target, &query, headers, obj, format, user).await
        }
        ("PATCH", false, "scale") => {
            let content_type = content_type(headers);
            let patch = read_bytes(body).await?;
            subresources::patch_scale(state, &target, &query, &content_type, &patch).await
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

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// A DeleteOptions body, if any (kubectl sends one; an empty body means defaults).
async fn delete_options(body: Body, headers: &HeaderMap) -> ApiResult<Value> {
    let bytes = read_bytes(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    decode(&bytes, &content_type(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: Option<(&str, &str, &str, &str)>) {
        let got = parse_path(path).ok().map(|t| {
            (
                t.resource.plural,
                t.namespace.clone(),
                t.name.clone(),
                t.subresource.clone(),
            )
        });
        let expected = expected.map(|(r, ns, n, s)| (r, ns.to_owned(), n.to_owned(), s.to_owned()));
        assert_eq!(got, expected, "{path}");
    }

    #[test]
    fn paths() {
        check("/api/v1/pods", Some(("pods", "", "", "")));
        check(
            "/api/v1/namespaces/default/pods/p/status",
            Some(("pods", "default", "p", "status")),
        );
        check("/api/v1/namespaces", Some(("namespaces", "", "", "")));
        check(
            "/api/v1/namespaces/kube-system",
            Some(("namespaces", "", "kube-system", "")),
        );
        check(
            "/api/v1/namespaces/x/finalize",
            Some(("namespaces", "", "x", "finalize")),
        );
        check(
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            Some(("deployments", "a", "d", "scale")),
        );
        check("/api/v1/namespaces/a/nodes", None);
        check("/apis/apps/v1/widgets", None);
        check("/api/v1/namespaces/a/pods/p/bogus", None);
    }

    #[test]
    fn decoding_fails_fast_on_hostile_bodies() {
        let start = std::time::Instant::now();
        // Nesting past the decoders' depth limit is refused, not recursed into.
        let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            decode(deep_json.as_bytes(), "application/json")
                .unwrap_err()
                .code,
            400
        );

        let deep_yaml = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            decode(deep_yaml.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            400
        );
        // Just under the scan's limit, the parser itself refuses the depth, quickly.
        let deep_yaml = format!("a: {}{}", "[".repeat(9_999), "]".repeat(9_999));
        assert_eq!(
            decode(deep_yaml.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            400
        );

        // A billion laughs: aliases that would expand to 10^9 strings.
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..9u8 {
            let (name, prev) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            let refs = vec![format!("*{prev}"); 9].join(",");
            laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        assert_eq!(
            decode(laughs.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            400
        );
        // Many containers, shallow or deep, in JSON or YAML: refused before decoding.
        let many = format!("[{}[]]", "[],".repeat(MAX_CONTAINERS));
        assert_eq!(
            decode(many.as_bytes(), "application/json")
                .unwrap_err()
                .code,
            413
        );
        assert_eq!(
            decode(many.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            413
        );
        // Brackets inside JSON strings are text, not containers.
        let text = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(MAX_CONTAINERS + 1));
        assert!(decode(text.as_bytes(), "application/json").is_ok());
        // Positive control: an ordinary document decodes.
        assert!(decode(b"a: [1, 2]", "application/yaml").is_ok());
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn content_negotiation() {
        let mut h = HeaderMap::new();
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        h.insert(header::ACCEPT, HeaderValue::from_static(table));
        assert_eq!(negotiate(&h).unwrap(), Format::Table);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert_eq!(negotiate(&h).unwrap(), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
        );
        assert!(negotiate(&h).is_err());
    }
}
