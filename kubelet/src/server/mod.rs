//! The kubelet's API on --port (10250, HTTPS): /healthz, /pods, /containerLogs, /exec,
//! /attach, /portForward, /stats/summary and /metrics. The apiserver reaches it for kubectl
//! logs, exec, attach, port-forward and nodes/proxy. Without --tls-cert-file the kubelet
//! serves a self-signed certificate kept in --cert-dir, as upstream does, and with
//! --rotate-server-certificates one the cluster CA issued (see `certificates`). Every path,
//! /healthz included, passes `auth` first (--client-ca-file, --anonymous-auth,
//! --authentication-token-webhook, --authorization-mode).

pub mod auth;
pub mod channel;
pub mod logs;
pub mod spdy;
pub mod stats;
pub mod streaming;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::dynamic_cert::DynamicCert;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;

use crate::error::{Error, io};
use crate::pods::worker::PodRuntime;

/// What the API serves from.
pub struct Kubelet {
    pub runtime: Arc<PodRuntime>,
    pub node_name: String,
    /// When this kubelet started (RFC 3339).
    pub started: String,
    /// Who may call the API; upstream's defaults (anyone, anything) unless set.
    pub auth: Arc<auth::Auth>,
}

impl Kubelet {
    pub fn new(runtime: Arc<PodRuntime>, node_name: String) -> Kubelet {
        Kubelet {
            runtime,
            auth: Arc::new(auth::Auth::always_allow(&node_name)),
            node_name,
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// Secures the API with `auth`.
    pub fn with_auth(mut self, auth: auth::Auth) -> Kubelet {
        self.auth = Arc::new(auth);
        self
    }

    /// The pod bound here, or the 404 upstream's kubelet answers.
    fn pod(&self, namespace: &str, name: &str) -> Result<Arc<Pod>, Refused> {
        self.runtime.pod(namespace, name).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("pod \"{namespace}/{name}\" does not exist"),
            )
        })
    }
}

/// A refusal: the status and the plain-text reason.
pub type Refused = (StatusCode, String);

/// Where and how to serve.
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub cert_dir: PathBuf,
    /// Names and addresses for a self-signed certificate.
    pub names: Vec<String>,
    /// --client-ca-file: clients may present certificates signed by these CAs (CN the user,
    /// O the groups).
    pub client_ca_file: Option<PathBuf>,
    /// A certificate the certificate manager keeps fresh (--rotate-server-certificates);
    /// the files above are not used then.
    pub rotated: Option<Arc<DynamicCert>>,
}

pub fn router(kubelet: Arc<Kubelet>) -> Router {
    let auth = kubelet.auth.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods))
        .route("/metrics", get(metrics))
        .route("/stats/summary", get(stats::summary))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        // Streams open with GET (WebSocket) or POST (SPDY), as upstream's kubelet serves them.
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(streaming::exec).post(streaming::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(streaming::attach).post(streaming::attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(streaming::port_forward).post(streaming::port_forward),
        )
        .with_state(kubelet)
        .layer(axum::middleware::from_fn_with_state(auth, auth::filter))
}

/// Serves the API until `stop` turns true. Fails if the port cannot be bound.
pub async fn serve(
    config: ServeConfig,
    kubelet: Arc<Kubelet>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    let cert = match (
        config.rotated,
        config.tls_cert_file,
        config.tls_private_key_file,
    ) {
        (Some(rotated), _, _) => rotated,
        (None, Some(c), Some(k)) => DynamicCert::from_files(&c, &k).map_err(Error::component)?,
        (None, None, None) => {
            let (c, k) = common::tls::self_signed(&config.cert_dir, "kubelet", config.names)
                .map_err(Error::component)?;
            DynamicCert::from_files(&c, &k).map_err(Error::component)?
        }
        _ => crate::error::invalid!(
            "--tls-cert-file and --tls-private-key-file must be given together"
        ),
    };
    let client_ca = config
        .client_ca_file
        .as_deref()
        .map(common::tls::ClientCa::load)
        .transpose()
        .map_err(Error::component)?;
    let tls = common::tls::server_with(cert, client_ca).map_err(Error::component)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(io(format!("listening on {}", config.addr)))?;
    tracing::info!(addr = %config.addr, "serving the kubelet API over HTTPS");
    common::tls::serve(listener, tls, router(kubelet), stop)
        .await
        .map_err(Error::component)
}

/// A plain-text error, as upstream's kubelet writes them.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// A query string's pairs, decoded; keys may repeat (`command=ls&command=/`).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// A boolean query parameter: "true" or "1" (as Go's strconv.ParseBool accepts).
pub fn flag(value: &str) -> bool {
    matches!(value, "true" | "1" | "True" | "TRUE" | "t" | "T")
}

/// The pods bound to this node, as a PodList.
async fn pods(State(k): State<Arc<Kubelet>>) -> Response {
    let mut items: Vec<Arc<Pod>> = k.runtime.pods.read().values().cloned().collect();
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    axum::Json(serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items.iter().map(|p| p.as_ref()).collect::<Vec<&Pod>>(),
    }))
    .into_response()
}

async fn metrics(State(k): State<Arc<Kubelet>>) -> Response {
    let sandboxes = k.runtime.cri.list_pod_sandboxes().await.unwrap_or_default();
    let containers = k.runtime.cri.list_containers().await.unwrap_or_default();
    let running_pods = sandboxes
        .iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .count();
    let count = |state: cri::ContainerState| {
        containers
            .iter()
            .filter(|c| c.state == state as i32)
            .count()
    };
    let body = format!(
        "# HELP kubelet_running_pods Number of pods that have a running pod sandbox.\n\
         # TYPE kubelet_running_pods gauge\n\
         kubelet_running_pods {running_pods}\n\
         # HELP kubelet_running_containers Number of containers currently running.\n\
         # TYPE kubelet_running_containers gauge\n\
         kubelet_running_containers{{container_state=\"created\"}} {}\n\
         kubelet_running_containers{{container_state=\"exited\"}} {}\n\
         kubelet_running_containers{{container_state=\"running\"}} {}\n\
         # HELP kubelet_node_name The node's name. The count is always 1.\n\
         # TYPE kubelet_node_name gauge\n\
         kubelet_node_name{{node=\"{}\"}} 1\n",
        count(cri::ContainerState::ContainerCreated),
        count(cri::ContainerState::ContainerExited),
        count(cri::ContainerState::ContainerRunning),
        k.node_name,
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}
