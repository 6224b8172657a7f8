//! The small server every component runs: /healthz (and /livez, /readyz; /health and
//! /ready as CoreDNS names them) and the
//! Prometheus /metrics text; plain HTTP ([`serve`], kubelet's 10248 and kube-proxy's ports)
//! or HTTPS with delegated authentication and authorization ([`serve_secure`],
//! kube-scheduler's 10259 and kube-controller-manager's 10257). [`https_get`] is the client
//! kubeadm and the tests check them with.

use crate::error::{Context as _, Error};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What the server reports.
pub struct Health {
    /// "ok", or why not.
    pub check: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
}

fn router(health: Health) -> Router {
    let health = Arc::new(health);
    let check = |h: Arc<Health>| async move {
        match (h.check)() {
            Ok(()) => (StatusCode::OK, "ok".to_owned()),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    };
    let (h1, h2, h3, h4) = (
        health.clone(),
        health.clone(),
        health.clone(),
        health.clone(),
    );
    let (h5, h6) = (health.clone(), health);
    Router::new()
        .route("/healthz", get(move || check(h1.clone())))
        .route("/livez", get(move || check(h2.clone())))
        .route("/readyz", get(move || check(h3.clone())))
        // CoreDNS's paths, where the cluster DNS server's probes look.
        .route("/health", get(move || check(h5.clone())))
        .route("/ready", get(move || check(h6.clone())))
        .route(
            "/metrics",
            get(move || {
                let h = h4.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        (h.metrics)(),
                    )
                        .into_response()
                }
            }),
        )
}

/// Serves plain HTTP until `shutdown` resolves. Fails if the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let app = router(health);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .io(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "serving /healthz and /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .io(|| format!("serving on {addr}"))
}

/// Serves HTTPS with `tls` until `shutdown` resolves, every request authenticated and
/// authorized by `auth`. Fails if the address cannot be bound.
pub async fn serve_secure(
    addr: SocketAddr,
    tls: crate::tls::TlsServer,
    auth: Arc<crate::delegated_auth::Delegated>,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let app = router(health).layer(axum::middleware::from_fn_with_state(
        auth,
        crate::delegated_auth::filter,
    ));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .io(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "serving /healthz and /metrics over HTTPS");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    crate::tls::serve(listener, tls, app, stopped).await
}

/// One HTTPS GET of `path` on 127.0.0.1:`port`, the server's certificate not verified (as
/// upstream kubeadm checks the components), with `client` (e.g.
/// [`crate::tls::insecure_client_with_identity`] for a client certificate, or
/// [`crate::tls::insecure_client`]) and an optional bearer token: (status, body).
pub async fn https_get(
    port: u16,
    path: &str,
    client: Arc<rustls::ClientConfig>,
    bearer: Option<&str>,
) -> crate::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let what = || format!("GET https://127.0.0.1:{port}{path}");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .io(what)?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .io(what)?;
    let authorization = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}Connection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.io(what)?;
    let mut answer = Vec::new();
    // A server closing without close_notify still gave its whole answer.
    if let Err(e) = tls.read_to_end(&mut answer).await
        && answer.is_empty()
    {
        return Err(e).io(what);
    }
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::Http(format!("{}: no HTTP answer", what())))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::Http(format!("{}: no status in {head:?}", what())))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((code, body))
}

/// A chunked body's data.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
