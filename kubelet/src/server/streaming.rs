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
            cmd: opts.command,
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
    splice(request, url).await
}

pub async fn port_forward(
    State(k): State<Arc<Kubelet>>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
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
    let url = k.runtime.cri.port_forward(&sandbox.id).await;
    splice(request, url).await
}

/// Hands the client's request to the runtime's streaming server at `url`.
async fn splice(request: Request, url: anyhow::Result<String>) -> Response {
    let target = match url.and_then(|u| Ok(u.parse::<axum::http::Uri>()?)) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    if super::channel::wants_v5(request.headers()) {
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
}
