//! kube-controller-manager: flags -> Config -> controller_manager::run.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::flags::{LeaderElectionFlags, parse_duration};
use controller_manager::Config;
use controller_manager::runtime::Options;

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

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    let config = Config {
        options: flags.options(),
        kubeconfig: flags.kubeconfig,
        controllers: flags.controllers,
        leader_election: flags.leader_election,
        serving: flags.serving,
        bind_address: flags.bind_address,
        secure_port: flags.secure_port,
    };
    common::component::main(
        "kube-controller-manager",
        Ok::<_, controller_manager::Error>(config),
        controller_manager::run,
    )
    .await;
}
