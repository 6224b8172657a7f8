//! The kubelet process: [`Config`] (what its flags say) and [`run`], which main.rs and the
//! tests start it with.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::component::Component;
use common::dynamic_cert::DynamicCert;

use crate::certificates::{Manager, Store, Subject, Template};
use crate::cri::Cri;
use crate::error::{Error, io};
use crate::node::{Heartbeat, Machine, NodeConfig};
use crate::pods::worker::PodRuntime;
use crate::server::auth::AuthConfig;

/// Where the pods run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The CRI at `container_runtime_endpoint`.
    Remote,
    /// Simulated: nothing runs (kubemark's hollow node).
    Hollow,
}

/// What the kubelet's flags ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The apiserver's address and credentials.
    pub kubeconfig: Option<PathBuf>,
    /// Bootstrap credentials to get a client certificate with when `kubeconfig` does not
    /// exist yet.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// The node's name (default: the hostname, lowercased).
    pub hostname_override: Option<String>,
    /// The node's InternalIP address.
    pub node_ip: Option<String>,
    /// Labels to add when registering.
    pub node_labels: BTreeMap<String, String>,
    pub runtime: Runtime,
    pub container_runtime_endpoint: String,
    /// The kubelet's state directory.
    pub root_dir: PathBuf,
    /// Static pod manifests.
    pub pod_manifest_path: Option<PathBuf>,
    pub pod_log_dir: PathBuf,
    /// The plain /healthz and /metrics server; port 0 turns it off.
    pub healthz_bind_address: IpAddr,
    pub healthz_port: u16,
    /// The kubelet API (HTTPS).
    pub address: IpAddr,
    pub port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// Default: `<root_dir>/pki`.
    pub cert_dir: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    /// Authentication and authorization of the kubelet API.
    pub auth: AuthConfig,
    /// --rotate-certificates: renew the client certificate before it expires.
    pub rotate_certificates: bool,
    /// --rotate-server-certificates: serve a certificate from the cluster CA (signer
    /// kubernetes.io/kubelet-serving), renewed before it expires.
    pub rotate_server_certificates: bool,
    /// --cluster-dns: the DNS servers of ClusterFirst pods.
    pub cluster_dns: Vec<IpAddr>,
    /// --cluster-domain.
    pub cluster_domain: String,
    /// --resolv-conf: the host's resolver configuration (None: the runtime's default).
    pub resolv_conf: Option<PathBuf>,
}

impl Default for Config {
    /// The flags' defaults.
    fn default() -> Config {
        Config {
            kubeconfig: None,
            bootstrap_kubeconfig: None,
            hostname_override: None,
            node_ip: None,
            node_labels: BTreeMap::new(),
            runtime: Runtime::Remote,
            container_runtime_endpoint: "unix:///run/containerd/containerd.sock".into(),
            root_dir: "/var/lib/kubelet".into(),
            pod_manifest_path: None,
            pod_log_dir: "/var/log/pods".into(),
            healthz_bind_address: [127, 0, 0, 1].into(),
            healthz_port: 10248,
            address: [0, 0, 0, 0].into(),
            port: 10250,
            tls_cert_file: None,
            tls_private_key_file: None,
            cert_dir: None,
            client_ca_file: None,
            auth: AuthConfig::default(),
            rotate_certificates: false,
            rotate_server_certificates: false,
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: Some("/etc/resolv.conf".into()),
        }
    }
}

/// `key=value` pairs (--node-labels).
pub fn parse_labels(pairs: &[String]) -> crate::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for l in pairs {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("--node-labels: {l:?} is not key=value")))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

/// Registers the node and runs its pods until `shutdown` resolves. The pods keep running
/// when it returns: a restarted kubelet adopts them.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let name = common::component::node_name(config.hostname_override.as_deref());
    let cert_dir = config
        .cert_dir
        .clone()
        .unwrap_or_else(|| crate::bootstrap::cert_dir(&config.root_dir));
    let mut component = Component::new("kubelet", shutdown);
    if let Some(bootstrap) = &config.bootstrap_kubeconfig {
        let kubeconfig = config.kubeconfig.as_deref().ok_or_else(|| {
            Error::Invalid("--bootstrap-kubeconfig needs --kubeconfig to write".into())
        })?;
        crate::bootstrap::ensure_kubeconfig(
            kubeconfig,
            bootstrap,
            &name,
            &cert_dir,
            std::time::Duration::from_secs(15 * 60),
        )
        .await?;
    }
    let mut rotations = Vec::new();
    let client = match (config.rotate_certificates, config.kubeconfig.as_deref()) {
        (true, Some(kubeconfig)) => {
            let (client, manager) = rotating_client(kubeconfig, &cert_dir, &name).await?;
            rotations.extend(manager);
            client
        }
        _ => common::client::client(config.kubeconfig.as_deref())
            .await
            .map_err(Error::component)?,
    };
    let runtime = match config.runtime {
        Runtime::Hollow => {
            let hollow =
                crate::hollow::HollowRuntime::new(0, std::time::Duration::from_millis(100));
            Cri::from_service(Arc::new(hollow))
        }
        Runtime::Remote => Cri::connect(&config.container_runtime_endpoint).await?,
    };
    let version = runtime.version().await.map_err(|e| {
        Error::from(e).context(format!(
            "container runtime at {} is not answering",
            config.container_runtime_endpoint
        ))
    })?;
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, node = %name, "kubelet starting");
    std::fs::create_dir_all(&config.root_dir)
        .map_err(io(format!("creating {}", config.root_dir.display())))?;

    // Runtime health for the Ready condition, refreshed in the background.
    let healthy = Arc::new(parking_lot::Mutex::new(Ok(())));
    let probe = {
        let (healthy, runtime) = (healthy.clone(), runtime.clone());
        async move {
            loop {
                let h = match runtime.version().await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("container runtime is down: {e}")),
                };
                *healthy.lock() = h;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    };
    if config.healthz_port != 0 {
        let addr = SocketAddr::new(config.healthz_bind_address, config.healthz_port);
        let h = healthy.clone();
        let health = common::health::Health {
            check: Box::new(move || h.lock().clone()),
            metrics: Box::new(String::new),
        };
        component.serve(addr, health);
    }
    let node_config = NodeConfig {
        name: name.clone(),
        node_ip: config.node_ip.clone(),
        labels: config.node_labels.clone(),
        runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
        kubelet_port: config.port.into(),
    };
    let h = healthy.clone();
    let node = crate::node::run(
        client.clone(),
        node_config,
        Machine::read(&config.root_dir),
        Heartbeat::default(),
        Arc::new(move || h.lock().clone()),
    );
    let host_ip = config.node_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
    let dns = crate::pods::dns::Settings {
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        host: match &config.resolv_conf {
            Some(path) => Some(crate::pods::dns::ResolvConf::parse(
                &std::fs::read_to_string(path).map_err(|e| {
                    Error::Invalid(format!("--resolv-conf {}: {e}", path.display()))
                })?,
            )),
            None => None,
        },
    };
    let pods = Arc::new(
        PodRuntime::new(runtime, client, config.pod_log_dir.clone(), host_ip)
            .with_root_dir(config.root_dir.clone())
            .with_dns(dns),
    );
    let auth = crate::server::auth::Auth::new(
        config.auth.clone(),
        &name,
        Some(Arc::new(pods.client.clone())),
    )?;
    let api = crate::server::Kubelet::new(pods.clone(), name.clone()).with_auth(auth);
    let mut names = vec![name.clone(), "localhost".into(), "127.0.0.1".into()];
    names.extend(config.node_ip.clone());
    names.extend(common::tls::hostname());
    let rotated = if config.rotate_server_certificates {
        let (cert, manager) = rotating_serving_cert(&pods.client, &cert_dir, &name, names.clone())?;
        rotations.push(manager);
        Some(cert)
    } else {
        None
    };
    let serve = crate::server::ServeConfig {
        addr: SocketAddr::new(config.address, config.port),
        tls_cert_file: config.tls_cert_file.clone(),
        tls_private_key_file: config.tls_private_key_file.clone(),
        cert_dir: cert_dir.clone(),
        names,
        client_ca_file: config.client_ca_file.clone(),
        rotated,
    };
    let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(crate::server::serve(serve, Arc::new(api), api_stopped));
    let static_pods = config
        .pod_manifest_path
        .clone()
        .map(crate::pods::StaticPods::new);
    let work = async {
        tokio::select! {
            _ = probe => Ok::<(), Error>(()),
            _ = node => Ok(()),
            _ = crate::pods::run_with_static_pods(pods, name, static_pods) => Ok(()),
            _ = rotate(rotations) => Ok(()),
            // The API server's task ended: with its error, or it panicked.
            served = api => served
                .map_err(|panicked| Error::component(common::Error::Component(Box::new(panicked))))
                .and_then(|r| r),
        }
    };
    let result = component.run_until(work).await;
    let _ = stop_api.send(true);
    result.map_err(Error::component)?.transpose()?;
    Ok(())
}

/// Runs the certificate managers, forever (also when there are none).
async fn rotate(managers: Vec<Manager>) {
    futures::future::join_all(managers.into_iter().map(Manager::run)).await;
    std::future::pending::<()>().await
}

/// The API client of --rotate-certificates: it authenticates with the client store's
/// current certificate (seeded from the kubeconfig's own when the store is empty, as
/// upstream's kubelet does), and a manager that renews it.
async fn rotating_client(
    kubeconfig: &Path,
    cert_dir: &Path,
    node: &str,
) -> crate::Result<(kube::Client, Option<Manager>)> {
    let store = Store::client(cert_dir);
    let pem = match store.load() {
        Some(pem) => pem,
        None => match crate::bootstrap::kubeconfig_identity(kubeconfig)? {
            Some(pem) => {
                store.save(&pem, b"")?;
                pem
            }
            None => {
                tracing::warn!(kubeconfig = %kubeconfig.display(), "--rotate-certificates: the kubeconfig has no client certificate to rotate");
                let client = common::client::client(Some(kubeconfig))
                    .await
                    .map_err(Error::component)?;
                return Ok((client, None));
            }
        },
    };
    let cert = DynamicCert::from_pem(&pem, &pem).map_err(Error::component)?;
    let client = common::client::client_with_identity(kubeconfig, cert.clone())
        .await
        .map_err(Error::component)?;
    let manager = Manager {
        client: client.clone(),
        store,
        cert,
        subject: Subject::Client(Template::client(node)),
        issued: true,
    };
    Ok((client, Some(manager)))
}

/// The serving certificate of --rotate-server-certificates: the serving store's current one,
/// or a self-signed stand-in until the first is issued, and a manager that renews it.
fn rotating_serving_cert(
    client: &kube::Client,
    cert_dir: &Path,
    node: &str,
    names: Vec<String>,
) -> crate::Result<(Arc<DynamicCert>, Manager)> {
    let store = Store::serving(cert_dir);
    let (cert, issued) = match store.load() {
        Some(pem) => (DynamicCert::from_pem(&pem, &pem), true),
        None => {
            let (c, k) =
                common::tls::self_signed(cert_dir, "kubelet", names).map_err(Error::component)?;
            let read = |p: &Path| std::fs::read(p).map_err(io(format!("reading {}", p.display())));
            (DynamicCert::from_pem(&read(&c)?, &read(&k)?), false)
        }
    };
    let cert = cert.map_err(Error::component)?;
    let manager = Manager {
        client: client.clone(),
        store,
        cert: cert.clone(),
        subject: Subject::Serving {
            node: node.to_owned(),
        },
        issued,
    };
    Ok((cert, manager))
}

/// `kubelet hollow`: many hollow nodes over the apiserver of `kubeconfig` until `shutdown`
/// resolves, logging this process's memory and CPU every `report_every` (zero: never).
pub async fn run_hollow(
    kubeconfig: Option<&std::path::Path>,
    config: crate::hollow::HollowConfig,
    report_every: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    use crate::hollow::Usage;
    let mut component = Component::new("kubelet", shutdown);
    let mut clients = Vec::new();
    for _ in 0..config
        .nodes
        .div_ceil(crate::hollow::NODES_PER_CLIENT)
        .max(1)
    {
        let client = common::client::client(kubeconfig)
            .await
            .map_err(Error::component)?;
        clients.push(client);
    }
    let before = Usage::now();
    let nodes = config.nodes;
    eprintln!(
        "starting {nodes} hollow nodes ({}0..{}{})",
        config.name_prefix,
        config.name_prefix,
        nodes.saturating_sub(1)
    );
    let report = async move {
        if report_every.is_zero() {
            return std::future::pending().await;
        }
        let mut last = Usage::now();
        loop {
            tokio::time::sleep(report_every).await;
            let now = Usage::now();
            let cpu = now.cpu_percent_since(&last);
            let per_node = now.rss_bytes.saturating_sub(before.rss_bytes) / nodes.max(1) as u64;
            tracing::info!(
                nodes,
                rss_mib = now.rss_bytes >> 20,
                per_node_kib = per_node >> 10,
                cpu_percent = format!("{cpu:.1}"),
                "hollow nodes"
            );
            last = now;
        }
    };
    let work = async {
        tokio::select! {
            _ = crate::hollow::run(clients, config) => {}
            _ = report => {}
        }
    };
    component.run_until(work).await.map_err(Error::component)?;
    Ok(())
}
