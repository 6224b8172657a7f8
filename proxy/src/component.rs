//! The kube-proxy process: [`Config`] (what its flags say) and [`run`], which main.rs and
//! the tests start it with.

use crate::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::component::Component;

use crate::host::Host;
use crate::netpol::enforcer::NetworkPolicies;
use crate::podnet::PodNetwork;
use crate::proxier::{Proxier, Timing};

/// What kube-proxy's flags ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The apiserver's address and credentials; the in-cluster configuration or
    /// ~/.kube/config when absent.
    pub kubeconfig: Option<PathBuf>,
    /// Only "nftables" is supported.
    pub proxy_mode: String,
    /// The pod network's range.
    pub cluster_cidr: String,
    /// This node's name, when it is not the hostname.
    pub hostname_override: Option<String>,
    /// /healthz (None turns it off).
    pub healthz_bind_address: Option<SocketAddr>,
    /// /metrics (None turns it off).
    pub metrics_bind_address: Option<SocketAddr>,
    pub sync_period: Duration,
    pub min_sync_period: Duration,
    /// Remove the rules, routes and CNI configuration kube-proxy created, then return.
    pub cleanup: bool,
    /// Run the pod network agent (CNI configuration, routes, masquerade).
    pub pod_network: bool,
    /// Enforce NetworkPolicies for this node's pods (off for people who bring their own).
    pub network_policy: bool,
    pub cni_conf_dir: PathBuf,
    pub cni_ipam_data_dir: Option<PathBuf>,
    /// Where the rules and routes go: this host's network namespace from main.rs.
    pub host: Host,
}

/// Keeps the Services programmed (and runs the pod network agent and NetworkPolicy
/// enforcement) until `shutdown` resolves. The rules stay when it returns: Services keep working while kube-proxy
/// restarts.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    if config.proxy_mode != "nftables" {
        return Err(Error::Invalid(format!(
            "proxy mode {:?} is not supported: use --proxy-mode nftables",
            config.proxy_mode
        )));
    }
    let host = config.host.clone();
    if config.cleanup {
        Proxier::cleanup(&host).await?;
        PodNetwork::cleanup(&host, &config.cni_conf_dir).await?;
        NetworkPolicies::cleanup(&host).await?;
        tracing::info!("removed kube-proxy's rules, routes and CNI configuration");
        return Ok(());
    }
    let node = common::component::node_name(config.hostname_override.as_deref());
    let mut component = Component::new("kube-proxy", shutdown);
    let client = common::client::client(config.kubeconfig.as_deref()).await?;
    let rules = crate::nftables::Config {
        cluster_cidr: Some(config.cluster_cidr.clone()),
    };
    let proxier = Proxier::new(host.clone(), rules, &node);
    tracing::info!(%node, mode = %config.proxy_mode, cluster_cidr = %config.cluster_cidr, "kube-proxy starting");

    if let Some(addr) = config.healthz_bind_address {
        let p = proxier.clone();
        let health = common::health::Health {
            check: Box::new(move || p.health()),
            metrics: Box::new(crate::metrics::render),
        };
        component.serve(addr, health);
    }
    if let Some(addr) = config.metrics_bind_address {
        let health = common::health::Health {
            check: Box::new(|| Ok(())),
            metrics: Box::new(crate::metrics::render),
        };
        component.serve(addr, health);
    }
    let timing = Timing {
        sync_period: config.sync_period,
        min_sync_period: config.min_sync_period,
    };
    let podnet = async {
        if config.pod_network {
            PodNetwork::with_ipam_data_dir(
                host.clone(),
                &node,
                &config.cluster_cidr,
                &config.cni_conf_dir,
                config.cni_ipam_data_dir.clone(),
            )
            .run(client.clone())
            .await
        } else {
            std::future::pending().await
        }
    };
    let network_policy = async {
        if config.network_policy {
            NetworkPolicies::new(host.clone(), &node)
                .run(client.clone(), timing)
                .await
        } else {
            std::future::pending().await
        }
    };
    let work = async {
        tokio::select! {
            _ = proxier.run(client.clone(), timing) => {}
            _ = podnet => {}
            _ = network_policy => {}
        }
    };
    component.run_until(work).await?;
    Ok(())
}
