//! Building an API client from `--kubeconfig` (or, without one, the in-cluster or default
//! kubeconfig, as client-go does). Over HTTPS the client offers HTTP/2 (ALPN), as client-go
//! does, so a component's requests and watches share one connection as streams; plain HTTP
//! stays HTTP/1.1. A kubeconfig that names client certificate files gets a client that
//! re-reads them when they change, as client-go's certificate rotation does, and a kubelet
//! rotating its own certificate hands its [`DynamicCert`] in ([`client_with_identity`]).
//! When the certificate changes, open connections are closed (watches included: they resume
//! from their resourceVersion), since a connection stays authenticated by the certificate of
//! its handshake.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls::pki_types::CertificateDer;

use crate::dynamic_cert::DynamicCert;
use crate::error::invalid;

/// A client for the cluster the kubeconfig names; `qps`-style throttling is not applied.
pub async fn client(kubeconfig: Option<&Path>) -> crate::Result<kube::Client> {
    let config = config(kubeconfig).await?;
    let files = match &config.auth_info {
        a if a.client_certificate_data.is_none() && a.client_key_data.is_none() => {
            a.client_certificate.as_ref().zip(a.client_key.as_ref())
        }
        _ => None,
    };
    match files {
        Some((cert, key)) if config.root_cert.is_some() || config.accept_invalid_certs => {
            let identity = DynamicCert::from_files(Path::new(cert), Path::new(key))?;
            build(config, Some(identity))
        }
        _ => build(config, None),
    }
}

/// A client for the cluster of `kubeconfig` that authenticates with whatever `identity`
/// holds (the kubeconfig's own credentials are not used), closing its connections when the
/// identity changes.
pub async fn client_with_identity(
    kubeconfig: &Path,
    identity: Arc<DynamicCert>,
) -> crate::Result<kube::Client> {
    let mut config = config(Some(kubeconfig)).await?;
    config.auth_info = Default::default();
    build(config, Some(identity))
}

async fn config(kubeconfig: Option<&Path>) -> crate::Result<kube::Config> {
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| invalid(format_args!("reading kubeconfig {}", path.display()), e))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| invalid(format_args!("kubeconfig {}", path.display()), e))
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| invalid("no --kubeconfig given and none found", e)),
    }
}

/// How often an HTTP/2 connection with nothing to read is pinged, and how long the answer
/// may take before the connection is given up (client-go's ReadIdleTimeout and PingTimeout):
/// a silently dead connection would otherwise hang every request multiplexed on it.
const H2_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const H2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Flow-control windows of Go's HTTP/2 transport (client-go's): every watch shares the
/// connection, so hyper's 5 MB connection window would let a few slow readers stall every
/// request on it (Lease renewals included) until they read.
const H2_STREAM_WINDOW: u32 = 4 << 20;
const H2_CONNECTION_WINDOW: u32 = 1 << 30;

/// kube's client stack (base URI, retries, credentials, impersonation, timeouts) over a TLS
/// connector that offers HTTP/2; with `identity`, the connector asks it for the client
/// certificate at each handshake and closes its connections when it changes.
fn build(config: kube::Config, identity: Option<Arc<DynamicCert>>) -> crate::Result<kube::Client> {
    // kube's stack (built without its proxy features) refuses a proxy rather than ignore it.
    if let Some(proxy) = &config.proxy_url {
        return Err(crate::Error::Invalid(format!(
            "the kubeconfig's proxy-url (or HTTPS_PROXY) {proxy}: proxies are not supported"
        )));
    }
    let tls = match &identity {
        Some(identity) => rotating_tls(&config, identity.clone())?,
        None => config
            .rustls_client_config()
            .map_err(|e| invalid("the kubeconfig's TLS settings", e))?,
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let closable = ClosableConnector {
        inner: http,
        identity,
    };
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| invalid("the kubeconfig's tls-server-name", e))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut connector =
        hyper_timeout::TimeoutConnector::new(https.enable_all_versions().wrap_connector(closable));
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(H2_PING_INTERVAL)
        .http2_keep_alive_timeout(H2_PING_TIMEOUT)
        .http2_initial_stream_window_size(H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
        .build::<_, kube::client::Body>(connector);
    // kube's own stack retries 429, 503 and 504 with back-off (honouring Retry-After): an
    // apiserver past its in-flight limit is waited for, not failed. (client-go retries
    // only answers that carry Retry-After, as the apiserver's 429 does.)
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The TLS settings of `config` with the client certificate taken from `identity`.
fn rotating_tls(
    config: &kube::Config,
    identity: Arc<DynamicCert>,
) -> crate::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = if config.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(crate::tls::any_server_certificate())
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for der in config.root_cert.iter().flatten() {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| invalid("the kubeconfig's certificate authority", e))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut tls = builder.with_client_cert_resolver(identity);
    // A resumed session carries the certificate of the handshake it resumes, so a new
    // certificate would never be shown: every connection makes a full handshake.
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(tls)
}

/// Dials with `inner`, handing out connections that fail once `identity` (if any) changes.
#[derive(Clone)]
struct ClosableConnector {
    inner: HttpConnector,
    identity: Option<Arc<DynamicCert>>,
}

impl tower::Service<http::Uri> for ClosableConnector {
    type Response = Closable<<HttpConnector as tower::Service<http::Uri>>::Response>;
    type Error = <HttpConnector as tower::Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let changes = self.identity.as_ref().map(|i| i.changes());
        let dial = self.inner.call(uri);
        Box::pin(async move {
            let io = dial.await?;
            let closed: Pin<Box<dyn Future<Output = ()> + Send>> = match changes {
                Some(mut changes) => Box::pin(async move {
                    let _ = changes.changed().await;
                }),
                None => Box::pin(std::future::pending()),
            };
            Ok(Closable { io, closed })
        })
    }
}

/// A connection that ends (reads and writes fail) when `closed` resolves.
struct Closable<T> {
    io: T,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<T> Closable<T> {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed: the client certificate changed",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Closable<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Closable<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Closable<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves the HTTP version each request came in on.
    fn version_app() -> axum::Router {
        axum::Router::new().route(
            "/version",
            axum::routing::get(|req: axum::extract::Request| async move {
                format!("{:?}", req.version())
            }),
        )
    }

    async fn version_seen(kubeconfig: &Path) -> String {
        let client = client(Some(kubeconfig)).await.unwrap();
        let request = http::Request::get("/version").body(Vec::new()).unwrap();
        client.request_text(request).await.unwrap()
    }

    fn write_kubeconfig(path: &Path, cluster: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    {cluster}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
        );
        std::fs::write(path, text).unwrap();
    }

    /// Over HTTPS the client offers HTTP/2 and the server takes it, as client-go and
    /// kube-apiserver do; plain HTTP stays HTTP/1.1.
    #[tokio::test]
    async fn https_speaks_http2_and_plain_http_stays_http1() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_owned()];
        let (cert, key) = crate::tls::self_signed(dir.path(), "server", names).unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = crate::tls::server(&cert, &key, None).unwrap();
        tokio::spawn(crate::tls::serve(listener, tls, version_app(), stopped));
        let kubeconfig = dir.path().join("https");
        let cluster = format!(
            "server: https://{addr}\n    certificate-authority: {}",
            cert.display()
        );
        write_kubeconfig(&kubeconfig, &cluster);
        assert_eq!(version_seen(&kubeconfig).await, "HTTP/2.0");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, version_app()).await });
        let kubeconfig = dir.path().join("http");
        write_kubeconfig(&kubeconfig, &format!("server: http://{addr}"));
        assert_eq!(version_seen(&kubeconfig).await, "HTTP/1.1");
    }
}
