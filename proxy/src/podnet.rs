//! The pod network agent (flannel's host-gw model, built in): from this node's
//! spec.podCIDR it writes the CNI configuration containerd uses (bridge + host-local
//! IPAM over that range, portmap, loopback), so every pod gets an address of its node's
//! range; it keeps a route to every other node's podCIDR via that node's InternalIP; and
//! it masquerades pod traffic leaving the cluster CIDR.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::informer::Informer;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::error::Error;
use crate::host::Host;
use crate::metrics;
use common::error::Context as _;

/// The CNI network's name and file.
pub const NETWORK: &str = "tetsu";
pub const CONFLIST: &str = "10-tetsu.conflist";
const LOOPBACK: &str = "99-loopback.conf";
/// The routing protocol number our routes carry, to tell them from anyone else's.
pub const ROUTE_PROTO: &str = "75";
/// Our masquerade table.
pub const TABLE: &str = "tetsu-podnet";

pub struct PodNetwork {
    pub host: Host,
    pub node: String,
    pub cluster_cidr: String,
    pub cni_conf_dir: PathBuf,
    /// Where host-local keeps its address leases (the plugin's default,
    /// /var/lib/cni/networks, when None): kubeadm keeps them under the node's data dir, so
    /// several nodes on one machine (network namespaces) and `kubeadm reset` stay apart.
    pub ipam_data_dir: Option<PathBuf>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The podCIDR the CNI configuration was written for.
    configured: Option<String>,
    masquerade: bool,
}

/// The CNI configuration list for a node's pod range.
pub fn conflist(pod_cidr: &str, ipam_data_dir: Option<&Path>) -> Value {
    let mut conf = json!({
        "cniVersion": "0.4.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge", "bridge": "cni0", "isGateway": true,
                // We masquerade ourselves, for the whole cluster CIDR.
                "ipMasq": false, "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    if let Some(dir) = ipam_data_dir {
        conf["plugins"][0]["ipam"]["dataDir"] = json!(dir.display().to_string());
    }
    conf
}

/// Routes as (podCIDR -> InternalIP) for every node but `me` that has both.
pub fn desired_routes<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    me: &str,
) -> BTreeMap<String, String> {
    nodes
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
            let ip = n
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| {
                    a.type_ == "InternalIP" && a.address.parse::<std::net::Ipv4Addr>().is_ok()
                })?
                .address
                .clone();
            Some((cidr, ip))
        })
        .collect()
}

impl PodNetwork {
    pub fn new(host: Host, node: &str, cluster_cidr: &str, cni_conf_dir: &Path) -> Arc<PodNetwork> {
        Self::with_ipam_data_dir(host, node, cluster_cidr, cni_conf_dir, None)
    }

    /// An agent whose host-local leases are kept in `ipam_data_dir`.
    pub fn with_ipam_data_dir(
        host: Host,
        node: &str,
        cluster_cidr: &str,
        cni_conf_dir: &Path,
        ipam_data_dir: Option<PathBuf>,
    ) -> Arc<PodNetwork> {
        Arc::new(PodNetwork {
            host,
            node: node.to_owned(),
            cluster_cidr: cluster_cidr.to_owned(),
            cni_conf_dir: cni_conf_dir.to_owned(),
            ipam_data_dir,
            state: Default::default(),
        })
    }

    /// Watches Nodes and keeps configuration, routes and masquerading in step, until
    /// dropped.
    pub async fn run(self: Arc<Self>, client: kube::Client) {
        let nodes = Informer::<Node>::new();
        let changed = Arc::new(Notify::new());
        let notify = changed.clone();
        nodes.on_change(move |_| notify.notify_one());
        let _running = nodes.spawn(Api::all(client), watcher::Config::default());
        nodes.wait_for_sync().await;
        loop {
            // A failed apply is retried after a while even if no node changes.
            let retry = match self.apply(&nodes.list()).await {
                Ok(()) => Duration::MAX,
                Err(e) => {
                    tracing::error!("pod network: {e:#}");
                    Duration::from_secs(5)
                }
            };
            let _ = tokio::time::timeout(retry, changed.notified()).await;
        }
    }

    /// Brings this host in line with the nodes.
    pub async fn apply(&self, nodes: &[Arc<Node>]) -> crate::Result<()> {
        let mut state = self.state.lock().await;
        if !state.masquerade {
            self.host_setup().await?;
            state.masquerade = true;
        }
        let mine = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.node.as_str()))
            .and_then(|n| n.spec.as_ref()?.pod_cidr.clone());
        if let Some(cidr) = mine
            && state.configured.as_deref() != Some(&cidr)
        {
            self.write_cni_config(&cidr)?;
            tracing::info!(pod_cidr = %cidr, dir = %self.cni_conf_dir.display(), "wrote the CNI configuration");
            state.configured = Some(cidr);
        }
        self.sync_routes(&desired_routes(nodes.iter().map(|n| &**n), &self.node))
            .await
    }

    /// Forwarding, bridged traffic through netfilter (a pod reaching a ClusterIP served on
    /// its own bridge needs conntrack to see the reply), and the masquerade table.
    async fn host_setup(&self) -> crate::Result<()> {
        self.host.sysctl("net.ipv4.ip_forward", "1").await?;
        if let Err(e) = self
            .host
            .sysctl("net.bridge.bridge-nf-call-iptables", "1")
            .await
        {
            tracing::warn!(
                "br_netfilter is not loaded; pods reaching a Service served on their own node may fail: {e:#}"
            );
        }
        let cidr = &self.cluster_cidr;
        self.host
            .nft(&format!(
                "add table ip {TABLE}\ndelete table ip {TABLE}\nadd table ip {TABLE}\n\
                 add chain ip {TABLE} postrouting {{ type nat hook postrouting priority 100 ; }}\n\
                 add rule ip {TABLE} postrouting ip saddr {cidr} ip daddr != {cidr} masquerade fully-random\n"
            ))
            .await
    }

    fn write_cni_config(&self, cidr: &str) -> crate::Result<()> {
        let dir = &self.cni_conf_dir;
        std::fs::create_dir_all(dir).io(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, v: &Value| -> crate::Result<()> {
            // Written whole and renamed: the runtime never reads half a file.
            let tmp = dir.join(format!(".{name}.tmp"));
            let data = serde_json::to_vec_pretty(v).expect("JSON values serialize");
            std::fs::write(&tmp, data)
                .and_then(|()| std::fs::rename(&tmp, dir.join(name)))
                .io(|| format!("writing {}", dir.join(name).display()))
                .map_err(Error::from)
        };
        write(CONFLIST, &conflist(cidr, self.ipam_data_dir.as_deref()))?;
        write(
            LOOPBACK,
            &json!({"cniVersion": "0.4.0", "name": "lo", "type": "loopback"}),
        )
    }

    /// Adds, changes and removes our routes to match `want`.
    async fn sync_routes(&self, want: &BTreeMap<String, String>) -> crate::Result<()> {
        let have = self.routes().await?;
        for (cidr, via) in want {
            if have.get(cidr) != Some(via) {
                self.host
                    .run(
                        "ip",
                        &["route", "replace", cidr, "via", via, "proto", ROUTE_PROTO],
                    )
                    .await?;
                tracing::info!(%cidr, %via, "route to a node's pods");
            }
        }
        for cidr in have.keys() {
            if !want.contains_key(cidr) {
                self.host
                    .run("ip", &["route", "del", cidr, "proto", ROUTE_PROTO])
                    .await?;
                tracing::info!(%cidr, "removed the route of a node that is gone");
            }
        }
        metrics::ROUTES.set(&[], want.len() as f64);
        Ok(())
    }

    /// Our routes now: podCIDR -> gateway.
    async fn routes(&self) -> crate::Result<BTreeMap<String, String>> {
        let out = self
            .host
            .run("ip", &["-4", "route", "show", "proto", ROUTE_PROTO])
            .await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let cidr = words.next()?;
                let via = words.skip_while(|w| *w != "via").nth(1)?;
                Some((cidr.to_owned(), via.to_owned()))
            })
            .collect())
    }

    /// Removes our routes, masquerade table and CNI configuration.
    pub async fn cleanup(host: &Host, cni_conf_dir: &Path) -> crate::Result<()> {
        host.run("ip", &["route", "flush", "proto", ROUTE_PROTO])
            .await?;
        host.nft(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"))
            .await?;
        for f in [CONFLIST, LOOPBACK] {
            let _ = std::fs::remove_file(cni_conf_dir.join(f));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_go_to_every_other_node_with_a_range() {
        let node = |name: &str, cidr: Option<&str>, ip: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"podCIDR": cidr},
                "status": {"addresses": [{"type": "Hostname", "address": name},
                                         {"type": "InternalIP", "address": ip}]}
            }))
            .unwrap()
        };
        let nodes = [
            node("a", Some("10.244.0.0/24"), "10.0.0.1"),
            node("b", Some("10.244.1.0/24"), "10.0.0.2"),
            node("c", None, "10.0.0.3"),
        ];
        let routes = desired_routes(nodes.iter(), "a");
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            [("10.244.1.0/24".to_owned(), "10.0.0.2".to_owned())]
        );
        let conf = conflist("10.244.0.0/24", None);
        assert_eq!(
            conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.0.0/24"
        );
    }
}
