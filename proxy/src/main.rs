//! kube-proxy: programs Services into nftables on this node and runs the pod network
//! agent (CNI configuration from the node's podCIDR, routes to the other nodes' pods).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::flags::parse_duration;
use proxy::host::Host;
use proxy::nftables::Config;
use proxy::podnet::PodNetwork;
use proxy::proxier::{Proxier, Timing};

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

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    common::logging::init(flags.verbosity);
    if let Err(e) = run(flags).await {
        eprintln!("kube-proxy: {e:#}");
        std::process::exit(1);
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    if flags.proxy_mode != "nftables" {
        anyhow::bail!(
            "proxy mode {:?} is not supported: use --proxy-mode nftables",
            flags.proxy_mode
        );
    }
    let host = Host::current();
    if flags.cleanup {
        Proxier::cleanup(&host).await?;
        PodNetwork::cleanup(&host, &flags.cni_conf_dir).await?;
        tracing::info!("removed kube-proxy's rules, routes and CNI configuration");
        return Ok(());
    }
    let node = flags
        .hostname_override
        .clone()
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .to_lowercase();
    let client = common::client::client(flags.kubeconfig.as_deref()).await?;
    let config = Config {
        cluster_cidr: Some(flags.cluster_cidr.clone()),
    };
    let proxier = Proxier::new(host.clone(), config, &node);
    tracing::info!(%node, mode = %flags.proxy_mode, cluster_cidr = %flags.cluster_cidr, "kube-proxy starting");

    let serve = |addr: &str, health: common::health::Health| -> anyhow::Result<()> {
        if addr.is_empty() {
            return Ok(());
        }
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("bad address {addr:?}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = common::health::serve(addr, health, common::shutdown::signal()).await {
                tracing::error!("{e:#}");
                std::process::exit(1);
            }
        });
        Ok(())
    };
    let p = proxier.clone();
    serve(
        &flags.healthz_bind_address,
        common::health::Health {
            check: Box::new(move || p.health()),
            metrics: Box::new(proxy::metrics::render),
        },
    )?;
    serve(
        &flags.metrics_bind_address,
        common::health::Health {
            check: Box::new(|| Ok(())),
            metrics: Box::new(proxy::metrics::render),
        },
    )?;
    let timing = Timing {
        sync_period: flags.sync_period,
        min_sync_period: flags.min_sync_period,
    };
    let podnet = async {
        if flags.pod_network {
            PodNetwork::with_ipam_data_dir(
                host.clone(),
                &node,
                &flags.cluster_cidr,
                &flags.cni_conf_dir,
                flags.cni_ipam_data_dir.clone(),
            )
            .run(client.clone())
            .await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        _ = proxier.run(client.clone(), timing) => {}
        _ = podnet => {}
        // Rules stay: Services keep working while kube-proxy restarts.
        _ = common::shutdown::signal() => tracing::info!("kube-proxy stopping"),
    }
    Ok(())
}
