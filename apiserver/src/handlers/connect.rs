//! The connect subresources: pods/log, pods/exec, pods/attach, pods/portforward and
//! nodes/proxy. Each finds the pod's node, dials its kubelet (the node's address and its
//! daemonEndpoints port, over TLS) and forwards the request, splicing upgraded streams
//! (WebSocket, SPDY) as upstream's apiserver does. A kubelet's refusal comes back as a
//! Status with the kubelet's code and words, so kubectl prints them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Uri;
use axum::response::Response;
use serde_json::Value;

use crate::cache::CachedObject;
use crate::registry;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// A connect request the path names.
#[derive(Debug, PartialEq)]
pub enum Connect {
    Pod {
        namespace: String,
        name: String,
        /// log, exec, attach or portforward.
        sub: &'static str,
    },
    Node {
        name: String,
        /// The kubelet path after `proxy`, with its leading slash.
        rest: String,
    },
}

/// Recognizes `/api/v1/namespaces/NS/pods/NAME/{log,exec,attach,portforward}` and
/// `/api/v1/nodes/NAME/proxy[/PATH]`.
pub fn route(path: &str) -> Option<Connect> {
    let rest = path.strip_prefix("/api/v1/")?;
    if let Some(node) = rest.strip_prefix("nodes/") {
        let (name, after) = node.split_once('/')?;
        let tail = after.strip_prefix("proxy")?;
        if !(tail.is_empty() || tail.starts_with('/')) || name.is_empty() {
            return None;
        }
        return Some(Connect::Node {
            name: name.to_owned(),
            rest: if tail.is_empty() {
                "/".into()
            } else {
                tail.to_owned()
            },
        });
    }
    // Every /api/v1 request passes here: match without allocating.
    let mut parts = rest.split('/');
    let segments = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    match segments {
        (Some("namespaces"), Some(ns), Some("pods"), Some(name), Some(sub), None)
            if !ns.is_empty() && !name.is_empty() =>
        {
            let sub = ["log", "exec", "attach", "portforward"]
                .into_iter()
                .find(|s| *s == sub)?;
            Some(Connect::Pod {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                sub,
            })
        }
        _ => None,
    }
}

/// Whether the request's one reading names the stream `route` found.
fn agrees(connect: &Connect, info: &crate::request::RequestInfo) -> bool {
    let a = &info.attrs;
    if !a.resource_request || !a.api_group.is_empty() || a.api_version != "v1" {
        return false;
    }
    match connect {
        Connect::Pod {
            namespace,
            name,
            sub,
        } => {
            a.resource == "pods"
                && info.in_namespace
                && a.namespace == *namespace
                && info.path_name == *name
                && a.subresource == *sub
                && info.trailing_segments == 0
        }
        Connect::Node { name, .. } => {
            a.resource == "nodes"
                && !info.in_namespace
                && info.path_name == *name
                && a.subresource == "proxy"
        }
    }
}

/// Upstream's connect methods: exec, attach and portforward by GET (WebSocket) or POST
/// (SPDY), log by GET, node proxy by any standard method.
fn method_allowed(connect: &Connect, method: &str) -> bool {
    match connect {
        Connect::Pod { sub: "log", .. } => method == "GET",
        Connect::Pod { .. } => matches!(method, "GET" | "POST"),
        Connect::Node { .. } => matches!(
            method,
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
        ),
    }
}

pub async fn serve(
    state: &Arc<ApiState>,
    request: Request,
    connect: Connect,
) -> ApiResult<Response> {
    let mut query = request.uri().query().unwrap_or("").to_owned();
    if matches!(
        connect,
        Connect::Pod {
            sub: "portforward",
            ..
        }
    ) {
        query = kubelet_ports(&query).map_err(ApiError::bad_request)?;
    }
    let (node, path) = match &connect {
        Connect::Node { name, rest } => (name.clone(), rest.clone()),
        Connect::Pod {
            namespace,
            name,
            sub,
        } => {
            let pod = load(state, "pods", namespace, name).await?;
            let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
            if node.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            let path = match *sub {
                "portforward" => format!("/portForward/{namespace}/{name}"),
                _ => {
                    let container = container_of(&pod, name, &query)?;
                    let endpoint = if *sub == "log" { "containerLogs" } else { sub };
                    format!("/{endpoint}/{namespace}/{name}/{container}")
                }
            };
            (node.to_owned(), path)
        }
    };
    let node_obj = load(state, "nodes", "", &node).await?;
    let host = kubelet_host(&node_obj).ok_or_else(|| {
        ApiError::new(
            500,
            "InternalError",
            format!("node {node:?} has no address"),
        )
    })?;
    let port = node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = if query.is_empty() {
        format!("https://{host}:{port}{path}")
    } else {
        format!("https://{host}:{port}{path}?{query}")
    };
    let target: Uri = url
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{url}: {e}")))?;
    // The kubelets' certificates are self-signed unless the cluster's CA issued them
    // (--rotate-server-certificates); they are checked for the dialed address only with
    // --kubelet-certificate-authority, as upstream. Our client certificate
    // (--kubelet-client-certificate) is what a kubelet authenticates us by.
    let response = common::proxy::forward(request, &target, Some(state.kubelet_tls.clone()))
        .await
        .map_err(|e| ApiError::new(500, "InternalError", format!("{url}: {e:#}")))?;
    let code = response.status().as_u16();
    if code < 400 {
        return Ok(response);
    }
    // The kubelet's words, as a Status.
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    Err(ApiError::new(code, reason(code), message))
}

/// A port-forward's query for the kubelet: the `ports` parameter (repeated or
/// comma-separated, as PodPortForwardOptions decodes it) becomes upstream's one `port`
/// parameter, which a WebSocket port-forward needs to open a channel pair per port.
fn kubelet_ports(query: &str) -> Result<String, String> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',') {
            // Go's strconv.ParseUint(p, 10, 16), with its words.
            let port = if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(format!("strconv.ParseUint: parsing {p:?}: invalid syntax"))
            } else {
                p.parse::<u16>()
                    .map_err(|_| format!("strconv.ParseUint: parsing {p:?}: value out of range"))
            };
            ports.push(port.map_err(|e| format!("cannot convert to []int32: {e}"))?);
        }
    }
    if ports.is_empty() {
        return Ok(String::new());
    }
    let joined: Vec<String> = ports.iter().map(u16::to_string).collect();
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair("port", &joined.join(","))
        .finish())
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// The object from the store (a consistent read), or upstream's NotFound.
async fn load(
    state: &Arc<ApiState>,
    plural: &str,
    namespace: &str,
    name: &str,
) -> ApiResult<Value> {
    let resource = registry::builtin("", "v1", plural).ok_or_else(ApiError::no_route)?;
    let target = super::Target {
        resource: resource.clone(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        subresource: String::new(),
    };
    let kv = state
        .store
        .get(&target.key(&state.root))
        .await
        .map_err(|e| target.store_error(e))?;
    kv.as_ref()
        .and_then(|kv| CachedObject::from_kv(kv, Some(resource)))
        .map(|o| o.value())
        .ok_or_else(|| ApiError::not_found(&resource.group, &resource.plural, name))
}

/// The container a log, exec or attach is for: the `container` parameter, or the pod's only
/// container, with upstream's errors otherwise.
fn container_of(pod: &Value, name: &str, query: &str) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (containers, init, ephemeral) = (
        names("containers"),
        names("initContainers"),
        names("ephemeralContainers"),
    );
    let requested = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if requested.is_empty() {
        if containers.len() == 1 {
            return Ok(containers[0].clone());
        }
        let mut message = format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        );
        if !init.is_empty() {
            message.push_str(&format!(
                " or one of the init containers: [{}]",
                init.join(" ")
            ));
        }
        return Err(ApiError::bad_request(message));
    }
    if containers.contains(&requested)
        || init.contains(&requested)
        || ephemeral.contains(&requested)
    {
        return Ok(requested);
    }
    Err(ApiError::bad_request(format!(
        "container {requested} is not valid for pod {name}"
    )))
}

/// The address to dial the node's kubelet on: InternalIP first, as kubeadm configures
/// upstream's --kubelet-preferred-address-types (a Hostname rarely resolves), then
/// InternalDNS, Hostname, ExternalIP and ExternalDNS.
fn kubelet_host(node: &Value) -> Option<String> {
    let addresses = node["status"]["addresses"].as_array()?;
    let of = |kind: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .map(str::to_owned)
    };
    [
        "InternalIP",
        "InternalDNS",
        "Hostname",
        "ExternalIP",
        "ExternalDNS",
    ]
    .into_iter()
    .find_map(of)
}

/// Whether the request is for a connect subresource; answers it if so.
pub async fn handle(
    state: &Arc<ApiState>,
    request: Request<Body>,
) -> Result<Response, Request<Body>> {
    // Only the methods upstream connects with, on a path whose one reading names the same
    // subresource (so the authorizers judged exactly this stream).
    let connect = route(request.uri().path()).filter(|c| {
        method_allowed(c, request.method().as_str())
            && match request.extensions().get::<crate::request::RequestInfo>() {
                Some(info) => agrees(c, info),
                None => agrees(
                    c,
                    &crate::request::RequestInfo::read(
                        request.method().as_str(),
                        request.uri().path(),
                        request.uri().query().unwrap_or(""),
                    ),
                ),
            }
    });
    match connect {
        Some(connect) => Ok(serve(state, request, connect)
            .await
            .unwrap_or_else(axum::response::IntoResponse::into_response)),
        None => Err(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes() {
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p/log"),
            Some(Connect::Pod {
                namespace: "a".into(),
                name: "p".into(),
                sub: "log"
            })
        );
        assert_eq!(
            route("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(Connect::Node {
                name: "n1".into(),
                rest: "/stats/summary".into()
            })
        );
        assert_eq!(
            route("/api/v1/nodes/n1/proxy"),
            Some(Connect::Node {
                name: "n1".into(),
                rest: "/".into()
            })
        );
        assert_eq!(route("/api/v1/namespaces/a/pods/p/status"), None);
        assert_eq!(route("/api/v1/nodes/n1/proxyx"), None);
        assert_eq!(route("/apis/apps/v1/namespaces/a/pods/p/log"), None);
    }

    #[test]
    fn container_choice() {
        let one = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(container_of(&one, "p", "").unwrap(), "c");
        assert_eq!(
            container_of(&one, "p", "container=c&follow=true").unwrap(),
            "c"
        );
        let e = container_of(&one, "p", "container=x").unwrap_err();
        assert_eq!(e.message, "container x is not valid for pod p");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                  "initContainers": [{"name": "i"}]}});
        let e = container_of(&two, "p", "").unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(container_of(&two, "p", "container=i").unwrap(), "i");
    }

    #[test]
    fn port_forward_query() {
        assert_eq!(
            kubelet_ports("ports=80&ports=443,8080").unwrap(),
            "port=80%2C443%2C8080"
        );
        assert_eq!(kubelet_ports("").unwrap(), "");
        assert_eq!(
            kubelet_ports("ports=x").unwrap_err(),
            "cannot convert to []int32: strconv.ParseUint: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            kubelet_ports("ports=99999").unwrap_err(),
            "cannot convert to []int32: strconv.ParseUint: parsing \"99999\": value out of range"
        );
        // Port 0 decodes; the kubelet refuses it.
        assert_eq!(kubelet_ports("ports=0").unwrap(), "port=0");
    }

    #[test]
    fn kubelet_address() {
        let node = json!({"status": {"addresses": [
            {"type": "Hostname", "address": "n1"},
            {"type": "InternalIP", "address": "10.0.0.5"}]}});
        assert_eq!(kubelet_host(&node).as_deref(), Some("10.0.0.5"));
    }
}
