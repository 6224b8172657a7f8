//! Forwards one HTTP request to a backend and streams the answer back; when the backend
//! switches protocols (WebSocket, SPDY), the two connections are spliced byte for byte.
//! This is how the apiserver reaches kubelets (pods/log, pods/exec, nodes/proxy) and how
//! the kubelet hands exec, attach and port-forward streams to the runtime's streaming server.

use std::sync::Arc;

use crate::error::{Context as _, Error};
use axum::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Headers that belong to one connection, not the request (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether the request asks to switch protocols.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && headers.contains_key(header::UPGRADE)
}

/// Sends `request` to `target` (an absolute http or https URL; `tls` is used for https) and
/// answers with the backend's response. The caller's credentials are not passed on.
pub async fn forward(
    mut request: Request<Body>,
    target: &Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> crate::Result<Response<Body>> {
    let upgrade = is_upgrade(request.headers());
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut request));
    let no_host = || Error::Invalid(format!("the backend URL {target} has no host"));
    let host = target.host().ok_or_else(no_host)?;
    let https = target.scheme_str() == Some("https");
    let port = target.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .io(|| format!("dialing {host}:{port}"))?;
    let _ = tcp.set_nodelay(true);

    let (mut parts, body) = request.into_parts();
    parts.uri = target
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| crate::error::invalid("the backend path", e))?;
    parts.version = http::Version::HTTP_11;
    let kept_upgrade = parts.headers.get(header::UPGRADE).cloned();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    parts.headers.remove(header::AUTHORIZATION);
    if let Some(protocol) = kept_upgrade.filter(|_| upgrade) {
        parts.headers.insert(header::UPGRADE, protocol);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    let authority = target.authority().ok_or_else(no_host)?;
    let host_header = HeaderValue::from_str(authority.as_str())
        .map_err(|e| crate::error::invalid("the backend's authority", e))?;
    parts.headers.insert(header::HOST, host_header);
    let request = Request::from_parts(parts, body);

    let mut response = if https {
        let config = tls.ok_or_else(|| {
            Error::Invalid("an https backend needs a TLS client configuration".into())
        })?;
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| crate::error::invalid("the backend's host name", e))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .io(|| format!("TLS handshake with {authority}"))?;
        send(stream, request).await?
    } else {
        send(tcp, request).await?
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return Err(Error::Http(
                "the backend switched protocols on a request that did not ask to".into(),
            ));
        };
        let backend_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match futures::future::try_join(client_side, backend_side).await {
                Ok((client, backend)) => {
                    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

async fn send<I>(io: I, request: Request<Body>) -> crate::Result<Response<hyper::body::Incoming>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Error::Http(format!("HTTP handshake with the backend: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended with an error");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| Error::Http(format!("sending the request to the backend: {e}")))
}
