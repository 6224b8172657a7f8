//! kube-dns: flags -> Config -> dns::run.

use std::path::PathBuf;

use clap::Parser;
use common::flags::bind_address as address;
use dns::Config;
use dns::forward::Forwarder;

#[derive(Parser, Debug)]
#[command(
    name = "kube-dns",
    version,
    about = "The cluster's DNS server: answers for Services, their endpoints and pods by name (<service>.<namespace>.svc.<cluster-domain>, SRV for named ports, PTR, ExternalName CNAMEs, <a-b-c-d>.<namespace>.pod.<cluster-domain>) as Kubernetes' DNS specification defines them, from a watch on the apiserver, and forwards every other name to the resolvers of --resolv-conf."
)]
struct Flags {
    /// Path to a kubeconfig with the apiserver's address and credentials. Without it the
    /// in-cluster configuration or ~/.kube/config is used.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The cluster's domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Address and port DNS is served on, over UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    dns_bind_address: String,
    /// TTL of the cluster's records, in seconds (kubeadm's CoreDNS uses 30).
    #[arg(long, default_value_t = 30)]
    ttl: u32,
    /// The resolv.conf whose nameservers get every name outside the cluster's domain
    /// (empty: such names are refused).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: String,
    /// Address and port of /health (empty turns it off).
    #[arg(long, default_value = "0.0.0.0:8080")]
    health_bind_address: String,
    /// Address and port of /ready, which fails until the cluster has been listed (empty
    /// turns it off).
    #[arg(long, default_value = "0.0.0.0:8181")]
    ready_bind_address: String,
    /// Address and port of /metrics (empty turns it off).
    #[arg(long, default_value = "0.0.0.0:9153")]
    metrics_bind_address: String,
    /// Log verbosity (0-5; 4 and above log every query); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    verbosity: u8,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    // hickory's server logs every query at info; CoreDNS logs them only with its `log`
    // plugin, which kubeadm's configuration leaves out.
    common::logging::init_quieting(flags.verbosity, &["hickory_server"]);
    common::component::main("kube-dns", config(flags), dns::run).await;
}

fn config(flags: Flags) -> anyhow::Result<Config> {
    let upstream = if flags.resolv_conf.is_empty() {
        Vec::new()
    } else {
        let text = std::fs::read_to_string(&flags.resolv_conf)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", flags.resolv_conf))?;
        Forwarder::servers_of_resolv_conf(&text)
    };
    Ok(Config {
        kubeconfig: flags.kubeconfig,
        cluster_domain: flags.cluster_domain,
        dns_address: address(&flags.dns_bind_address)?
            .ok_or_else(|| anyhow::anyhow!("--dns-bind-address is required"))?,
        ttl: flags.ttl,
        upstream,
        health_address: address(&flags.health_bind_address)?,
        ready_address: address(&flags.ready_bind_address)?,
        metrics_address: address(&flags.metrics_bind_address)?,
    })
}
