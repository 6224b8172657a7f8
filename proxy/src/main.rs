//! kube-proxy: flags -> Config -> proxy::run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::flags::bind_address;
use common::flags::parse_duration;
use proxy::Config;
use proxy::host::Host;

#[derive(Parser, Debug)]
#[command(
    name = "kube-proxy",
    version,
    about = "The Kubernetes network proxy: makes each Service's ClusterIP, NodePort and externalIPs reach the Service's ready endpoints by programming nftables on this node. It also runs tetsu's pod network agent: the CNI configuration for this node's podCIDR and routes to every other node's pods."
)]
struct Flags {
    /// Path to a kubeconfig with the apiserver's address and credentials. Without it the
    /// in-cluster configuration or ~/.kube/config is used.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Which proxy mode to use: only 'nftables' (IPVS is not available on our kernel).
    #[arg(long, default_value = "nftables")]
    proxy_mode: String,
    /// The pod network's range. Traffic from outside it to a ClusterIP is masqueraded,
    /// and pod traffic leaving it is masqueraded by the pod network agent.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// This node's name, when it is not the hostname.
    #[arg(long)]
    hostname_override: Option<String>,
    /// Address and port of /healthz (empty turns it off).
    #[arg(long, default_value = "0.0.0.0:10256")]
    healthz_bind_address: String,
    /// Address and port of /metrics (empty turns it off).
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_bind_address: String,
    /// Longest time between syncs of the rules (e.g. 30s, 1m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    sync_period: Duration,
    /// Shortest time between syncs (two may follow each other at once, as upstream).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    min_sync_period: Duration,
    /// Remove the rules, routes and CNI configuration kube-proxy created, then exit.
    #[arg(long)]
    cleanup: bool,
    /// Run the pod network agent (CNI configuration, routes, masquerade).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pod_network: bool,
    /// Enforce NetworkPolicies for this node's pods in nftables (table inet tetsu-netpol);
    /// false for people who bring their own enforcement.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    network_policy: bool,
    /// Where the CNI configuration for the container runtime goes.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// Where the host-local IPAM plugin keeps its address leases (default: the plugin's
    /// own, /var/lib/cni/networks).
    #[arg(long)]
    cni_ipam_data_dir: Option<PathBuf>,
    /// Log verbosity (0-5); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    verbosity: u8,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    common::component::main("kube-proxy", config(flags), proxy::run).await;
}

fn config(flags: Flags) -> anyhow::Result<Config> {
    Ok(Config {
        healthz_bind_address: bind_address(&flags.healthz_bind_address)?,
        metrics_bind_address: bind_address(&flags.metrics_bind_address)?,
        kubeconfig: flags.kubeconfig,
        proxy_mode: flags.proxy_mode,
        cluster_cidr: flags.cluster_cidr,
        hostname_override: flags.hostname_override,
        sync_period: flags.sync_period,
        min_sync_period: flags.min_sync_period,
        cleanup: flags.cleanup,
        pod_network: flags.pod_network,
        network_policy: flags.network_policy,
        cni_conf_dir: flags.cni_conf_dir,
        cni_ipam_data_dir: flags.cni_ipam_data_dir,
        host: Host::current(),
    })
}
