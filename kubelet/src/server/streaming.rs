//! /exec, /attach and /portForward: the kubelet asks the runtime (CRI Exec, Attach,
//! PortForward) for a one-time streaming URL and splices the client's upgraded connection
//! (WebSocket or SPDY) onto the runtime's streaming server, as upstream's kubelet does when
//! it proxies rather than redirects. The v5.channel.k8s.io WebSocket protocol, which the
//! runtime does not speak, is translated here (see `channel`).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_cri::v1 as cri;

use super::{Kubelet, Refused, error, flag, query_pairs};

/// What an exec or attach asks for.
#[derive(Debug, Default, PartialEq)]
pub struct StreamOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    pub fn parse(query: &str) -> StreamOptions {
        let mut o = StreamOptions::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "command" => o.command.push(v),
                "stdin" | "input" => o.stdin = flag(&v),
                "stdout" | "output" => o.stdout = flag(&v),
                "stderr" | "error" => o.stderr = flag(&v),
                "tty" => o.tty = flag(&v),
                _ => {}
            }
        }
        // A terminal merges stderr into stdout.
        o.stderr &= !o.tty;
        o
    }

    fn check(&self) -> Result<(), String> {
        if !(self.stdin || self.stdout || self.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(())
    }
}

/// The id of the running container `name` of `namespace/pod`.
async fn running_container(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    name: &str,
) -> Result<String, Refused> {
    let p = k.pod(namespace, pod)?;
    let uid = p.metadata.uid.as_deref().unwrap_or("");
    let runs = k
        .runtime
        .container_runs(uid, name)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    runs.into_iter()
        .find(|s| s.state == cri::ContainerState::ContainerRunning as i32)
        .map(|s| s.id)
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("container not found ({name:?})"),
            )
        })
}

pub async fn exec(
    State(k): State<Arc<Kubelet>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    container_stream(&k, &namespace, &pod, &container, request, true).await
}

pub async fn attach(
    State(k): State<Arc<Kubelet>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    container_stream(&k, &namespace, &pod, &container, request, false).await
}

/// An exec (a new process) or an attach (the container's own stdio) session.
async fn container_stream(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    container: &str,
    request: Request,
    exec: bool,
) -> Response {
    let opts = StreamOptions::parse(request.uri().query().unwrap_or(""));
    if let Err(e) = opts.check() {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if exec && opts.command.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command",
        );
    }
    let id = match running_container(k, namespace, pod, container).await {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let cri = &k.runtime.cri;
    let url = if exec {
        cri.exec(cri::ExecRequest {
            container_id: id,
            cmd: opts.command.clone(),
            tty: opts.tty,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
    } else {
        cri.attach(cri::AttachRequest {
            container_id: id,
            stdin: opts.stdin,
            tty: opts.tty,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
    };
    // An exec's stdin must be able to end (`echo hi | kubectl exec -i pod -- cat`). An
    // attach keeps the v4 relay: containerd detaches an attach whose stdin ends from the
    // container's output at once (unless stdinOnce), which would cut `kubectl attach -i`'s
    // output short.
    splice(request, url, exec.then_some(&opts)).await
}

/// The ports a WebSocket port-forward asks for (`port=80&port=443` or `port=80,443`), with
/// upstream's refusals. SPDY clients name the port per stream instead, so they pass none.
pub fn forwarded_ports(headers: &axum::http::HeaderMap, query: &str) -> Result<Vec<i32>, String> {
    if !is_websocket(headers) {
        return Ok(Vec::new());
    }
    let values: Vec<String> = query_pairs(query)
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v)
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    let mut ports = Vec::new();
    for value in &values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            let port = go_parse_port(p)
                .map_err(|e| format!("unable to parse {value:?} as a port: {e}"))?;
            if port < 1 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(i32::from(port));
        }
    }
    Ok(ports)
}

/// Go's strconv.ParseUint(s, 10, 16), with its error words.
fn go_parse_port(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u16>()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// Upstream's wsstream.IsWebSocketRequest: `Connection: upgrade` and `Upgrade: websocket`.
fn is_websocket(headers: &axum::http::HeaderMap) -> bool {
    common::proxy::is_upgrade(headers)
        && headers
            .get_all(axum::http::header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

pub async fn port_forward(
    State(k): State<Arc<Kubelet>>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
    let ports = match forwarded_ports(request.headers(), request.uri().query().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let p = match k.pod(&namespace, &pod) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let uid = p.metadata.uid.as_deref().unwrap_or("");
    let sandbox = match k.runtime.ready_sandbox(uid).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("pod {pod:?} has no running sandbox"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let url = k.runtime.cri.port_forward(&sandbox.id, ports).await;
    splice(request, url, None).await
}

/// Hands the client's request to the runtime's streaming server at `url`; `opts` are an
/// exec's.
async fn splice(
    request: Request,
    url: crate::cri::Result<String>,
    opts: Option<&StreamOptions>,
) -> Response {
    let target = match url
        .map_err(|e| format!("{e:#}"))
        .and_then(|u| u.parse::<axum::http::Uri>().map_err(|e| format!("{e:#}")))
    {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if super::channel::wants_v5(request.headers()) {
        // Only SPDY carries the end of an exec's stdin to the runtime.
        if let Some(opts) = opts.filter(|o| o.stdin) {
            return super::channel::translate_v5_spdy(request, target, opts).await;
        }
        return super::channel::translate_v5(request, target).await;
    }
    match common::proxy::forward(request, &target, None).await {
        Ok(r) => r,
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("the runtime's streaming server: {e:#}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = StreamOptions::parse("command=ls&command=%2F&stdout=true&stderr=true&tty=true");
        assert_eq!(o.command, ["ls", "/"]);
        assert!(o.stdout && !o.stderr && o.tty && !o.stdin);
        assert!(StreamOptions::parse("command=ls").check().is_err());
    }

    #[test]
    fn port_forward_ports() {
        let mut ws = axum::http::HeaderMap::new();
        ws.insert("connection", "Upgrade".parse().unwrap());
        ws.insert("upgrade", "websocket".parse().unwrap());
        assert_eq!(
            forwarded_ports(&ws, "port=80&port=443,8080"),
            Ok(vec![80, 443, 8080])
        );
        assert_eq!(
            forwarded_ports(&ws, "ports=80"),
            Err("query parameter \"port\" is required".into())
        );
        assert_eq!(
            forwarded_ports(&ws, "port="),
            Err("query parameter \"port\" cannot be empty".into())
        );
        assert_eq!(
            forwarded_ports(&ws, "port=80,x"),
            Err("unable to parse \"80,x\" as a port: strconv.ParseUint: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            forwarded_ports(&ws, "port=70000"),
            Err("unable to parse \"70000\" as a port: strconv.ParseUint: parsing \"70000\": value out of range".into())
        );
        assert_eq!(
            forwarded_ports(&ws, "port=0"),
            Err("port \"0\" must be > 0".into())
        );
        // SPDY names the port per stream.
        assert_eq!(forwarded_ports(&Default::default(), ""), Ok(vec![]));
    }
}
