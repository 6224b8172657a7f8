//! The server: configuration, startup (store, watch cache, bootstrap objects), the router with
//! its non-resource endpoints, TLS and plain listeners, and graceful shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::error::Context as _;
use serde_json::Value;

use crate::auth::{Auth, AuthConfig, Trusted};
use crate::cache::Cache;
use crate::codec::{Format, respond};
use crate::handlers;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::services::{Allocator, Cidr, PortRange};
pub use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::encryption::{self, EncryptedStore};
use crate::storage::{Store, etcd::EtcdStore, sqlite::SqliteStore};
use crate::{bootstrap, conn, discovery, openapi, tls};

/// Everything `run` needs; built from the flags by main.rs.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind_address: IpAddr,
    /// HTTPS port; 0 turns HTTPS off.
    pub secure_port: u16,
    /// Plain HTTP on 127.0.0.1 for local development, without authentication.
    pub insecure_port: Option<u16>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// etcd endpoints; empty means the embedded store under `data_dir`.
    pub etcd_servers: Vec<String>,
    pub etcd_prefix: String,
    /// Upstream's EncryptionConfiguration file (--encryption-provider-config): which resources
    /// are encrypted at rest, and with which keys.
    pub encryption_provider_config: Option<PathBuf>,
    /// --encryption-provider-config-automatic-reload: the file is read again every
    /// `encryption_reload_interval` and a changed, valid one is put in force.
    pub encryption_provider_config_automatic_reload: bool,
    /// How often the encryption configuration is checked for changes (a minute, as
    /// upstream's controller; tests shorten it).
    pub encryption_reload_interval: Duration,
    /// How often KMS v2 plugins are asked their Status (upstream: a minute, ten seconds while
    /// one fails); tests shorten it.
    pub kms_timing: encryption::kms::Timing,
    pub data_dir: PathBuf,
    pub service_cluster_ip_range: Cidr,
    pub service_node_port_range: PortRange,
    /// The address published in the `kubernetes` Endpoints; detected when absent.
    pub advertise_address: Option<IpAddr>,
    /// How often history older than one interval is compacted away; zero never.
    pub compaction_interval: Duration,
    /// Authentication and authorization of the secure port.
    pub auth: AuthConfig,
    /// The admission plugins that run. The default leaves ServiceAccount out (see
    /// `admission::Plugins`); the binary's flags start from upstream's set, which has it.
    pub admission: crate::admission::Plugins,
    /// The client certificate and key presented to kubelets (--kubelet-client-certificate,
    /// --kubelet-client-key); without them the apiserver dials kubelets anonymously.
    pub kubelet_client_certificate: Option<PathBuf>,
    pub kubelet_client_key: Option<PathBuf>,
    /// Kubelets' serving certificates are checked against these CAs
    /// (--kubelet-certificate-authority); without it, not at all, as upstream.
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// The deadline of requests that are not long-running (--request-timeout).
    pub request_timeout: Duration,
    /// A watch without timeoutSeconds lasts between this and twice this (--min-request-timeout).
    pub min_request_timeout: Duration,
    /// Read-only and mutating requests served at once; 0 is unlimited.
    pub max_requests_inflight: usize,
    pub max_mutating_requests_inflight: usize,
    /// The listeners' header-read and idle timeouts.
    pub timeouts: crate::conn::Timeouts,
    /// Auditing (--audit-policy-file and its backends); off without a policy.
    pub audit: crate::audit::AuditConfig,
    /// Picks a name for an object created with generateName (a scripted one in tests that
    /// need collisions).
    pub generate_name: fn(&str) -> String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            secure_port: 6443,
            insecure_port: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            etcd_servers: Vec::new(),
            etcd_prefix: "/registry".into(),
            encryption_provider_config: None,
            encryption_provider_config_automatic_reload: false,
            encryption_reload_interval: Duration::from_secs(60),
            kms_timing: Default::default(),
            data_dir: PathBuf::from("/var/lib/tetsu/apiserver"),
            service_cluster_ip_range: "10.96.0.0/12".parse().expect("valid default"),
            service_node_port_range: "30000-32767".parse().expect("valid default"),
            advertise_address: None,
            compaction_interval: Duration::from_secs(300),
            auth: AuthConfig::default(),
            admission: Default::default(),
            kubelet_client_certificate: None,
            kubelet_client_key: None,
            kubelet_certificate_authority: None,
            request_timeout: Duration::from_secs(60),
            min_request_timeout: Duration::from_secs(1800),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            timeouts: Default::default(),
            audit: Default::default(),
            generate_name: crate::meta::generate_name,
        }
    }
}

/// The address other machines reach this host at: the source address of the default route.
fn detect_address() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
            s.connect("10.255.255.255:1")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The store, wrapped in [`EncryptedStore`] (returned too) when --encryption-provider-config
/// is given.
async fn open_store(
    config: &Config,
) -> crate::Result<(Arc<dyn Store>, Option<Arc<EncryptedStore>>)> {
    // Read first: a bad file fails before the store is touched.
    let encryption = match &config.encryption_provider_config {
        Some(path) => {
            Some(encryption::Config::load(path).map_err(|e| Error::Invalid(e.to_string()))?)
        }
        None => None,
    };
    let store = open_backend(config).await?;
    Ok(match (encryption, &config.encryption_provider_config) {
        (Some(encryption), Some(path)) => {
            encryption.start_kms(config.kms_timing).await;
            let encrypted = Arc::new(EncryptedStore::new(store, &config.etcd_prefix, &encryption));
            if config.encryption_provider_config_automatic_reload {
                tokio::spawn(reload_encryption(
                    encrypted.clone(),
                    path.clone(),
                    config.encryption_reload_interval,
                    config.kms_timing,
                ));
            }
            (encrypted.clone() as Arc<dyn Store>, Some(encrypted))
        }
        _ => (store, None),
    })
}

/// Puts the encryption configuration at `path` in force whenever its content changes and
/// it is valid; an invalid file is logged and the configuration in force stays.
async fn reload_encryption(
    store: Arc<EncryptedStore>,
    path: PathBuf,
    every: Duration,
    kms_timing: encryption::kms::Timing,
) {
    let mut last = std::fs::read(&path).ok();
    loop {
        tokio::time::sleep(every).await;
        let Ok(now) = std::fs::read(&path) else {
            tracing::error!(path = %path.display(), "the encryption configuration cannot be read; keeping the one in force");
            continue;
        };
        if last.as_deref() == Some(now.as_slice()) {
            continue;
        }
        let loaded = match encryption::Config::load(&path) {
            Ok(config) => {
                // As upstream: new KMS plugins must answer before the file is put in force.
                config.start_kms(kms_timing).await;
                match config.wait_kms_healthy(Duration::from_secs(10)).await {
                    Ok(()) => Ok(config),
                    Err(e) => Err(format!("its KMS plugins are not healthy: {e}")),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match loaded {
            Ok(config) => {
                store.reload(&config);
                tracing::info!(path = %path.display(), "loaded the changed encryption configuration");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "the changed encryption configuration is invalid, keeping the one in force: {e}");
            }
        }
        last = Some(now);
    }
}

async fn open_backend(config: &Config) -> crate::Result<Arc<dyn Store>> {
    if config.etcd_servers.is_empty() {
        // Owner-only, as the store holds every Secret.
        common::files::create_private_dir(&config.data_dir)
            .io(|| format!("creating --data-dir {}", config.data_dir.display()))?;
        let path = config.data_dir.join("state.db");
        tracing::info!(path = %path.display(), "using the embedded store");
        Ok(Arc::new(SqliteStore::open(&path).map_err(Error::store(
            format!("opening {}", path.display()),
        ))?))
    } else {
        tracing::info!(servers = ?config.etcd_servers, "using etcd");
        let store = tokio::time::timeout(
            Duration::from_secs(30),
            EtcdStore::connect(&config.etcd_servers),
        )
        .await
        .map_err(|_| Error::Store {
            what: "connecting to etcd".into(),
            source: crate::storage::Error::Unavailable("timed out after 30s".into()),
        })?
        .map_err(Error::store("connecting to etcd"))?;
        Ok(Arc::new(store))
    }
}

/// Builds the shared state: store, watch cache, allocators, bootstrap objects.
pub async fn prepare(config: &Config) -> crate::Result<Arc<ApiState>> {
    // First: a bad policy stops startup before anything else is touched.
    let audit = crate::audit::Auditor::start(&config.audit).await?;
    let (store, encryption) = open_store(config).await?;
    let root = config.etcd_prefix.trim_end_matches('/').to_owned();
    let cache = Cache::start(store.clone(), &root)
        .await
        .map_err(Error::store("loading the watch cache"))?;
    let services = Arc::new(Allocator::new(
        config.service_cluster_ip_range,
        config.service_node_port_range,
    ));
    let svc = crate::registry::builtin("", "v1", "services").expect("services are served");
    for s in cache.list(svc, "").objects {
        services.observe(&s.value());
    }
    let advertise = config
        .advertise_address
        .unwrap_or_else(|| match config.bind_address {
            ip if ip.is_unspecified() || ip.is_loopback() => detect_address(),
            ip => ip,
        });
    let port = if config.secure_port != 0 {
        config.secure_port
    } else {
        config.insecure_port.unwrap_or(0)
    };
    let auth = Auth::new(&config.auth, cache.clone())?;
    let ca = config.kubelet_certificate_authority.as_deref();
    let kubelet_tls = match (
        &config.kubelet_client_certificate,
        &config.kubelet_client_key,
    ) {
        (Some(cert), Some(key)) => common::tls::client_config(ca, Some((cert, key)))?,
        (None, None) => common::tls::client_config(ca, None)?,
        _ => {
            return Err(Error::Invalid(
                "--kubelet-client-certificate and --kubelet-client-key must be given together"
                    .into(),
            ));
        }
    };
    let state = Arc::new(ApiState {
        auth,
        store,
        encryption,
        cache,
        root,
        services,
        metrics: Metrics::default(),
        server_address: SocketAddr::new(advertise, port).to_string(),
        terminating_namespaces: Default::default(),
        admission: config.admission.clone(),
        kubelet_tls,
        limits: Arc::new(Limits::new(
            config.max_requests_inflight,
            config.max_mutating_requests_inflight,
            config.request_timeout,
            config.min_request_timeout,
        )),
        generate_name: config.generate_name,
        audit,
    });
    bootstrap::ensure(&state, advertise, port)
        .await
        .map_err(|e| Error::Invalid(format!("creating the bootstrap objects: {e}")))?;
    if !config.compaction_interval.is_zero() {
        tokio::spawn(compactor(state.store.clone(), config.compaction_interval));
    }
    crate::crd::controller::spawn(state.clone());
    Ok(state)
}

/// Compacts the store every interval to the revision seen one interval earlier, as the
/// upstream apiserver does, so history stays bounded but recent watches can resume.
async fn compactor(store: Arc<dyn Store>, interval: Duration) {
    let mut previous = None;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        if let Some(rev) = previous
            && let Err(e) = store.compact(rev).await
        {
            tracing::warn!(error = %e, revision = rev, "compaction failed");
        }
        previous = store.current_revision().await.ok();
    }
}

/// The HTTP routes: non-resource endpoints, then every resource path.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/healthz/{check}", get(health))
        .route("/livez/{check}", get(health))
        .route("/readyz/{check}", get(health))
        .route("/metrics", get(metrics))
        .route("/version", get(|| async { json_ok(&discovery::version()) }))
        .route("/api", get(api_versions))
        .route(
            "/apis",
            get(|State(s): State<Arc<ApiState>>| async move {
                json_ok(&discovery::api_groups(s.cache.resources()))
            }),
        )
        .route(
            "/api/{version}",
            get(
                |State(s): State<Arc<ApiState>>, Path(v): Path<String>| async move {
                    found(discovery::resource_list(s.cache.resources(), "", &v))
                },
            ),
        )
        .route(
            "/apis/{group}",
            get(
                |State(s): State<Arc<ApiState>>, Path(g): Path<String>| async move {
                    found(discovery::api_group(s.cache.resources(), &g))
                },
            ),
        )
        .route(
            "/apis/{group}/{version}",
            get(
                |State(s): State<Arc<ApiState>>, Path((g, v)): Path<(String, String)>| async move {
                    found(discovery::resource_list(s.cache.resources(), &g, &v))
                },
            ),
        )
        .route(
            "/openapi/v2",
            get(|headers: axum::http::HeaderMap| async move { openapi::v2(&headers) }),
        )
        .route(
            "/openapi/v3",
            get(|State(s): State<Arc<ApiState>>| async move {
                json_ok(&openapi::v3_index(s.cache.resources()))
            }),
        )
        .route(
            "/openapi/v3/api/{version}",
            get(
                |State(s): State<Arc<ApiState>>, Path(v): Path<String>| async move {
                    found(openapi::v3_document(s.cache.resources(), "", &v))
                },
            ),
        )
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(
                |State(s): State<Arc<ApiState>>, Path((g, v)): Path<(String, String)>| async move {
                    found(openapi::v3_document(s.cache.resources(), &g, &v))
                },
            ),
        )
        .fallback(handlers::serve)
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            crate::limits::filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

fn json_ok(v: &Value) -> Response {
    respond(StatusCode::OK, Format::Json, v)
}

fn found<V: std::borrow::Borrow<Value>>(v: Option<V>) -> Response {
    match v {
        Some(v) => json_ok(v.borrow()),
        None => ApiError::no_route().into_response(),
    }
}

async fn api_versions(State(state): State<Arc<ApiState>>) -> Response {
    json_ok(&discovery::api_versions(&state.server_address))
}

/// /healthz, /livez, /readyz and their named checks: `etcd` (the store answers) and, with a
/// KMS v2 plugin configured, `kms-providers` (not part of /livez, as upstream).
async fn health(
    State(state): State<Arc<ApiState>>,
    uri: axum::http::Uri,
    check: Option<axum::extract::Path<String>>,
) -> Response {
    let only = check.as_ref().map(|c| c.0.as_str());
    let kms = state
        .encryption
        .as_ref()
        .filter(|e| e.has_kms() && !uri.path().starts_with("/livez"));
    match only {
        None | Some("etcd") | Some("ping") | Some("log") => {}
        Some("kms-providers") if kms.is_some() => {}
        Some(_) => return (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
    let mut failed = Vec::new();
    if matches!(only, None | Some("etcd"))
        && let Err(e) = state.store.current_revision().await
    {
        failed.push(format!("[-]etcd failed: {e}"));
    }
    if let Some(encryption) = kms
        && matches!(only, None | Some("kms-providers"))
        && let Err(e) = encryption.kms_health().await
    {
        failed.push(format!("[-]kms-providers failed: {e}"));
    }
    if failed.is_empty() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}\nhealthz check failed", failed.join("\n")),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let mut body = state.metrics.render(state.cache.revision());
    body.push_str(&state.limits.render());
    body.push_str(&state.cache.render_watch_metrics());
    if let Some(audit) = &state.audit {
        audit.render(&mut body);
    }
    if state.encryption.is_some() {
        encryption::metrics::render(&mut body);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// A server running in this process on an ephemeral plain-HTTP port (benches and tests).
pub struct InProcess {
    pub addr: SocketAddr,
    pub state: Arc<ApiState>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl InProcess {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (open watches end).
    pub fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// Starts the API on 127.0.0.1 with an ephemeral port, without TLS, inside this process.
pub async fn spawn_in_process(mut config: Config) -> crate::Result<InProcess> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .io(|| "binding 127.0.0.1:0".into())?;
    let addr = listener.local_addr().io(|| "binding 127.0.0.1:0".into())?;
    // The kubernetes Service and its endpoints name the port actually served (port 0 is
    // invalid there).
    if config.secure_port == 0 && config.insecure_port.is_none() {
        config.insecure_port = Some(addr.port());
    }
    let state = prepare(&config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let app = router(state.clone()).layer(axum::Extension(Trusted));
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(InProcess { addr, state, stop })
}

/// Runs the server until `shutdown` completes, then drains connections and returns.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let state = prepare(&config).await?;
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    if let Some(port) = config.insecure_port {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .io(|| format!("binding the insecure port {addr}"))?;
        tracing::info!(%addr, "serving plain HTTP (no authentication; local development only)");
        let app = app.clone().layer(axum::Extension(Trusted));
        servers.spawn(conn::serve_plain(
            listener,
            app,
            config.timeouts,
            stop_rx.clone(),
        ));
    }
    if config.secure_port != 0 {
        let addr = SocketAddr::new(config.bind_address, config.secure_port);
        let tls_server = tls::server(&config)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .io(|| format!("binding the secure port {addr}"))?;
        tracing::info!(%addr, "serving HTTPS");
        servers.spawn(conn::serve_tls(
            listener,
            tls_server,
            app,
            config.timeouts,
            stop_rx.clone(),
        ));
    }
    if servers.is_empty() {
        return Err(Error::Invalid(
            "nothing to serve: --secure-port is 0 and no --insecure-port was given".into(),
        ));
    }
    tokio::select! {
        _ = shutdown => {}
        Some(result) = servers.join_next() => {
            result.map_err(|panicked| common::Error::Component(Box::new(panicked)))??;
        }
    }
    let _ = stop_tx.send(true);
    // Give open requests a moment to finish; watches end with the connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    tracing::info!("kube-apiserver stopped");
    Ok(())
}
