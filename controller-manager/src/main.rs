//! kube-controller-manager: runs the controllers that drive Deployments, ReplicaSets and
//! the rest of the cluster's objects toward their spec.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::flags::{LeaderElectionFlags, parse_duration};
use controller_manager::controllers;
use controller_manager::runtime::{Options, metrics};

#[derive(Parser, Debug)]
#[command(
    name = "kube-controller-manager",
    version,
    about = "The Kubernetes controller manager: the control loops (deployment, replicaset, ...) that watch the cluster through the apiserver and drive each object toward its spec."
)]
struct Flags {
    /// Path to a kubeconfig with the apiserver's address and credentials. Without it the
    /// in-cluster configuration or ~/.kube/config is used.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Controllers to run: '*' runs those on by default, 'foo' turns foo on, '-foo' turns
    /// it off. Known: see the list in the error for an unknown name.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    #[command(flatten)]
    leader_election: LeaderElectionFlags,
    #[command(flatten)]
    serving: common::delegated_auth::ServingFlags,
    /// Address of the /healthz and /metrics server.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Port of the HTTPS /healthz and /metrics server (0 turns it off).
    #[arg(long, default_value_t = 10257)]
    secure_port: u16,
    /// Deployments synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    /// ReplicaSets synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    /// ReplicationControllers synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_rc_syncs: usize,
    /// Namespaces synced (emptied) at once.
    #[arg(long, default_value_t = 10)]
    concurrent_namespace_syncs: usize,
    /// Garbage collector workers.
    #[arg(long, default_value_t = 20)]
    concurrent_gc_syncs: usize,
    /// Services whose Endpoints are synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_endpoint_syncs: usize,
    /// Services whose EndpointSlices are synced at once.
    #[arg(long, default_value_t = 5)]
    concurrent_service_endpoint_syncs: usize,
    /// ServiceAccounts synced at once.
    #[arg(long, default_value_t = 1)]
    concurrent_serviceaccount_syncs: usize,
    /// Allocate a pod CIDR (spec.podCIDR) to every Node from --cluster-cidr.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allocate_node_cidrs: bool,
    /// The range pod CIDRs are allocated from, e.g. 10.244.0.0/16.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Prefix length of each Node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may go without renewing its Lease or posting status before it is
    /// marked Unknown and tainted unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// Terminated pods kept before the oldest are deleted (0 disables).
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
    /// PEM CA certificate csrsigning signs approved CertificateSigningRequests with.
    #[arg(long)]
    cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --cluster-signing-cert-file.
    #[arg(long)]
    cluster_signing_key_file: Option<std::path::PathBuf>,
    /// The longest validity of a signed certificate (spec.expirationSeconds may ask less).
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    cluster_signing_duration: Duration,
    /// The cluster CA, published to every namespace as the ConfigMap kube-root-ca.crt.
    #[arg(long)]
    root_ca_file: Option<std::path::PathBuf>,
    /// Log verbosity (0-5); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 2)]
    verbosity: u8,
}

impl Flags {
    fn options(&self) -> Options {
        Options {
            concurrent_deployment_syncs: self.concurrent_deployment_syncs,
            concurrent_replicaset_syncs: self.concurrent_replicaset_syncs,
            concurrent_rc_syncs: self.concurrent_rc_syncs,
            concurrent_namespace_syncs: self.concurrent_namespace_syncs,
            concurrent_gc_syncs: self.concurrent_gc_syncs,
            concurrent_endpoint_syncs: self.concurrent_endpoint_syncs,
            concurrent_service_endpoint_syncs: self.concurrent_service_endpoint_syncs,
            concurrent_serviceaccount_syncs: self.concurrent_serviceaccount_syncs,
            allocate_node_cidrs: self.allocate_node_cidrs,
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            cluster_signing_cert_file: self.cluster_signing_cert_file.clone(),
            cluster_signing_key_file: self.cluster_signing_key_file.clone(),
            cluster_signing_duration: self.cluster_signing_duration,
            root_ca_file: self.root_ca_file.clone(),
            ..Options::default()
        }
    }
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    if let Err(e) = run(flags).await {
        tracing::error!("{e:#}");
        eprintln!("kube-controller-manager: {e:#}");
        std::process::exit(1);
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    // Check the flags before connecting anywhere.
    let enabled = controllers::enabled(&flags.controllers)?;
    let client = common::client::client(flags.kubeconfig.as_deref()).await?;
    tracing::info!(controllers = ?enabled.iter().map(|d| d.name).collect::<Vec<_>>(), "kube-controller-manager starting");

    if flags.secure_port != 0 {
        let addr = SocketAddr::new(flags.bind_address, flags.secure_port);
        let health = common::health::Health {
            check: Box::new(|| Ok(())),
            metrics: Box::new(metrics::render),
        };
        let tls = flags.serving.tls("kube-controller-manager")?;
        let auth = std::sync::Arc::new(flags.serving.delegated(flags.kubeconfig.as_deref()).await?);
        // Bind before electing, so that probes see a live process while it waits.
        tokio::spawn(async move {
            let shutdown = common::shutdown::signal();
            if let Err(e) = common::health::serve_secure(addr, tls, auth, health, shutdown).await {
                tracing::error!("{e:#}");
                std::process::exit(1);
            }
        });
    }

    let mut leading = None;
    if flags.leader_election.leader_elect {
        let election = flags.leader_election.election("kube-controller-manager");
        let acquired = tokio::select! {
            rx = election.acquire(client.clone()) => rx,
            _ = common::shutdown::signal() => return Ok(()),
        };
        metrics::LEADER.set(&["kube-controller-manager"], 1.0);
        leading = Some(acquired);
    }

    let running = tokio::select! {
        r = controller_manager::start(client, flags.options(), &enabled) => r?,
        _ = common::shutdown::signal() => return Ok(()),
    };
    let lost = common::flags::leadership_lost(leading.as_mut());
    tokio::select! {
        _ = common::shutdown::signal() => {}
        _ = lost => {
            metrics::LEADER.set(&["kube-controller-manager"], 0.0);
            drop(running);
            anyhow::bail!("leaderelection lost");
        }
    }
    drop(running);
    tracing::info!("kube-controller-manager stopped");
    Ok(())
}
