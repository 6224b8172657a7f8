//! kubelet: the node agent. Registers this machine as a Node, keeps its Lease and status
//! fresh, and runs the pods bound to it through the container runtime's CRI (containerd). `kubelet images
//! import` builds an image from busybox-static or a root filesystem and imports it, since
//! no registry is reachable.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kubelet::cri::Cri;
use kubelet::node::{Heartbeat, Machine, NodeConfig};
use kubelet::pods::worker::PodRuntime;

#[derive(Parser, Debug)]
#[command(
    name = "kubelet",
    version,
    about = "The Kubernetes node agent: registers the node with the apiserver, renews its Lease, reports its status, and runs its pods through the container runtime's CRI (containerd)."
)]
struct Flags {
    #[command(subcommand)]
    command: Option<Commands>,
    /// Path to a kubeconfig with the apiserver's address and credentials.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A kubeconfig with bootstrap credentials (a bootstrap token). When --kubeconfig does not
    /// exist, the kubelet asks for a client certificate with it (a CertificateSigningRequest
    /// the controller-manager approves and signs), then writes --kubeconfig to use it.
    #[arg(long)]
    bootstrap_kubeconfig: Option<PathBuf>,
    /// The node's name (default: the machine's hostname, lowercased).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The node's InternalIP address.
    #[arg(long)]
    node_ip: Option<String>,
    /// Labels to add when registering, as key=value pairs separated by commas.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// The container runtime: "remote" (CRI at --container-runtime-endpoint) or "hollow"
    /// (simulated: nothing runs; kubemark's hollow node).
    #[arg(long, default_value = "remote", value_parser = ["remote", "hollow"])]
    runtime: String,
    /// The container runtime's CRI endpoint.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    container_runtime_endpoint: String,
    /// The kubelet's state directory.
    #[arg(long, default_value = "/var/lib/kubelet")]
    root_dir: PathBuf,
    /// A directory of static pod manifests the kubelet runs on its own (read every 20 s),
    /// shown in the API as mirror pods.
    #[arg(long)]
    pod_manifest_path: Option<PathBuf>,
    /// Where container logs go (/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log).
    #[arg(long, default_value = "/var/log/pods")]
    pod_log_dir: PathBuf,
    /// Address of the /healthz and /metrics server.
    #[arg(long, default_value = "127.0.0.1")]
    healthz_bind_address: IpAddr,
    /// Port of the /healthz and /metrics server (0 turns it off).
    #[arg(long, default_value_t = 10248)]
    healthz_port: u16,
    /// The port of the kubelet API (HTTPS; announced in the Node's daemonEndpoints).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// The address the kubelet API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// The kubelet API's serving certificate (default: a self-signed one in --cert-dir).
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file.
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// Where the self-signed serving certificate and the client certificate from TLS
    /// bootstrapping are kept (default: <root-dir>/pki).
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// CA certificates for client certificates of the kubelet API: a client presenting one
    /// they signed is the user of its CommonName, in the groups of its Organizations.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Requests to the kubelet API without credentials are system:anonymous (which
    /// --authorization-mode then judges); false answers them 401 Unauthorized.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Bearer tokens to the kubelet API are checked with a TokenReview to the apiserver.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    authentication_token_webhook: bool,
    /// How long TokenReview answers are cached.
    #[arg(long, default_value = "2m", value_parser = common::flags::parse_duration)]
    authentication_token_webhook_cache_ttl: std::time::Duration,
    /// Who may do what on the kubelet API: AlwaysAllow (anyone authenticated, anonymous
    /// included) or Webhook (a SubjectAccessReview to the apiserver per request, on the
    /// Node's subresources: nodes/proxy, nodes/stats, nodes/metrics, nodes/log, ...).
    #[arg(long, default_value = "AlwaysAllow")]
    authorization_mode: kubelet::server::auth::Mode,
    /// How long allowed SubjectAccessReview answers are cached.
    #[arg(long, default_value = "5m", value_parser = common::flags::parse_duration)]
    authorization_webhook_cache_authorized_ttl: std::time::Duration,
    /// How long denied SubjectAccessReview answers are cached.
    #[arg(long, default_value = "30s", value_parser = common::flags::parse_duration)]
    authorization_webhook_cache_unauthorized_ttl: std::time::Duration,
    /// Log verbosity (0-5); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 2)]
    verbosity: u8,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run many hollow nodes (kubemark's): the kubelet's node and pod logic over a
    /// simulated runtime, to test and benchmark the control plane at scale.
    Hollow(HollowFlags),
    /// Build and import images into containerd (no registry is reachable).
    Images {
        #[command(subcommand)]
        command: ImageCommands,
    },
}

#[derive(clap::Args, Debug)]
struct HollowFlags {
    /// How many hollow nodes to run in this process.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Node names are this prefix followed by the node's index.
    #[arg(long, default_value = "hollow-node-")]
    name_prefix: String,
    /// How long a started container takes to run.
    #[arg(long, default_value = "100ms", value_parser = common::flags::parse_duration)]
    start_delay: std::time::Duration,
    /// How often to log this process's memory and CPU use (0 turns it off).
    #[arg(long, default_value = "30s", value_parser = common::flags::parse_duration)]
    report_every: std::time::Duration,
}

#[derive(Subcommand, Debug)]
enum ImageCommands {
    /// Build an image from busybox-static (default) or a root filesystem directory and
    /// import it into containerd's k8s.io namespace under NAME.
    Import {
        #[command(flatten)]
        image: kubelet::images::ImportArgs,
        /// containerd's socket.
        #[arg(long, default_value = "/run/containerd/containerd.sock")]
        address: PathBuf,
    },
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    if let Err(e) = run(flags).await {
        tracing::error!("{e:#}");
        eprintln!("kubelet: {e:#}");
        std::process::exit(1);
    }
}

fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for l in pairs {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--node-labels: {l:?} is not key=value"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

/// `kubelet hollow`: many hollow nodes until SIGTERM, reporting memory and CPU as it goes.
async fn run_hollow(
    kubeconfig: Option<&std::path::Path>,
    labels: BTreeMap<String, String>,
    h: HollowFlags,
) -> anyhow::Result<()> {
    let client = common::client::client(kubeconfig).await?;
    let mut config = kubelet::hollow::HollowConfig::new(h.nodes);
    config.name_prefix = h.name_prefix;
    config.start_delay = h.start_delay;
    config.labels = labels;
    let before = kubelet::hollow::Usage::now();
    eprintln!(
        "starting {} hollow nodes ({}0..{}{})",
        h.nodes,
        config.name_prefix,
        config.name_prefix,
        h.nodes.saturating_sub(1)
    );
    let nodes = h.nodes;
    let report = async move {
        if h.report_every.is_zero() {
            return std::future::pending().await;
        }
        let mut last = kubelet::hollow::Usage::now();
        loop {
            tokio::time::sleep(h.report_every).await;
            let now = kubelet::hollow::Usage::now();
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
    tokio::select! {
        _ = kubelet::hollow::run(client, config) => {}
        _ = report => {}
        _ = common::shutdown::signal() => tracing::info!("hollow nodes stopping"),
    }
    Ok(())
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    if let Some(Commands::Images {
        command: ImageCommands::Import { image, address },
    }) = flags.command
    {
        return image.run(&address);
    }
    let labels = parse_labels(&flags.node_labels)?;
    if let Some(Commands::Hollow(h)) = flags.command {
        return run_hollow(flags.kubeconfig.as_deref(), labels, h).await;
    }
    let name = flags
        .hostname_override
        .clone()
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .to_lowercase();
    if let Some(bootstrap) = &flags.bootstrap_kubeconfig {
        let kubeconfig = flags
            .kubeconfig
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--bootstrap-kubeconfig needs --kubeconfig to write"))?;
        let cert_dir = flags
            .cert_dir
            .clone()
            .unwrap_or_else(|| kubelet::bootstrap::cert_dir(&flags.root_dir));
        kubelet::bootstrap::ensure_kubeconfig(
            kubeconfig,
            bootstrap,
            &name,
            &cert_dir,
            std::time::Duration::from_secs(15 * 60),
        )
        .await?;
    }
    let client = common::client::client(flags.kubeconfig.as_deref()).await?;
    let runtime = if flags.runtime == "hollow" {
        let hollow = kubelet::hollow::HollowRuntime::new(0, std::time::Duration::from_millis(100));
        Cri::from_service(Arc::new(hollow))
    } else {
        Cri::connect(&flags.container_runtime_endpoint).await?
    };
    let version = runtime.version().await.map_err(|e| {
        anyhow::anyhow!(
            "container runtime at {} is not answering: {e:#}",
            flags.container_runtime_endpoint
        )
    })?;
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, node = %name, "kubelet starting");
    std::fs::create_dir_all(&flags.root_dir)?;

    // Runtime health for the Ready condition, refreshed in the background.
    let healthy = Arc::new(parking_lot::Mutex::new(Ok(())));
    {
        let (healthy, runtime) = (healthy.clone(), runtime.clone());
        tokio::spawn(async move {
            loop {
                let h = match runtime.version().await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("container runtime is down: {e}")),
                };
                *healthy.lock() = h;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
    }
    if flags.healthz_port != 0 {
        let addr = SocketAddr::new(flags.healthz_bind_address, flags.healthz_port);
        let h = healthy.clone();
        let health = common::health::Health {
            check: Box::new(move || h.lock().clone()),
            metrics: Box::new(String::new),
        };
        tokio::spawn(async move {
            if let Err(e) = common::health::serve(addr, health, common::shutdown::signal()).await {
                tracing::error!("{e:#}");
                std::process::exit(1);
            }
        });
    }
    let cfg = NodeConfig {
        name,
        node_ip: flags.node_ip.clone(),
        labels,
        runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
        kubelet_port: flags.port.into(),
    };
    let h = healthy.clone();
    let node_name = cfg.name.clone();
    let node = kubelet::node::run(
        client.clone(),
        cfg,
        Machine::read(&flags.root_dir),
        Heartbeat::default(),
        Arc::new(move || h.lock().clone()),
    );
    let host_ip = flags.node_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
    let pods = Arc::new(
        PodRuntime::new(runtime, client, flags.pod_log_dir.clone(), host_ip)
            .with_root_dir(flags.root_dir.clone()),
    );
    let auth = kubelet::server::auth::Auth::new(
        kubelet::server::auth::AuthConfig {
            anonymous: flags.anonymous_auth,
            token_webhook: flags.authentication_token_webhook,
            token_cache_ttl: flags.authentication_token_webhook_cache_ttl,
            mode: flags.authorization_mode,
            authorized_ttl: flags.authorization_webhook_cache_authorized_ttl,
            unauthorized_ttl: flags.authorization_webhook_cache_unauthorized_ttl,
        },
        &node_name,
        Some(Arc::new(pods.client.clone())),
    )?;
    let api = kubelet::server::Kubelet::new(pods.clone(), node_name.clone()).with_auth(auth);
    let mut names = vec![node_name.clone(), "localhost".into(), "127.0.0.1".into()];
    names.extend(flags.node_ip.clone());
    names.extend(common::tls::hostname());
    let serve = kubelet::server::ServeConfig {
        addr: SocketAddr::new(flags.address, flags.port),
        tls_cert_file: flags.tls_cert_file.clone(),
        tls_private_key_file: flags.tls_private_key_file.clone(),
        cert_dir: flags
            .cert_dir
            .clone()
            .unwrap_or_else(|| flags.root_dir.join("pki")),
        names,
        client_ca_file: flags.client_ca_file.clone(),
    };
    let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(kubelet::server::serve(serve, Arc::new(api), api_stopped));
    tokio::select! {
        _ = node => {}
        _ = kubelet::pods::run_with_static_pods(pods, node_name, flags.pod_manifest_path.clone().map(kubelet::pods::StaticPods::new)) => {}
        served = api => {
            served??;
        }
        // Pods keep running: a restarted kubelet adopts them.
        _ = common::shutdown::signal() => tracing::info!("kubelet stopping"),
    }
    let _ = stop_api.send(true);
    Ok(())
}
