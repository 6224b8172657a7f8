//! The node's cluster configuration: what `kubeadm init` or `kubeadm join` was asked for,
//! kept in `<data-dir>/kubeadm.json` so the supervisor (and a later `kubeadm init` on the
//! same data dir) brings the same node back, and where everything lives under the data dir.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The sandbox image containerd is configured with; kubeadm builds it from busybox-static.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The image `kubectl run x --image=busybox` resolves to.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";
/// The cluster DNS server's image, which kubeadm builds from the kube-dns binary beside it.
pub const DNS_IMAGE: &str = concat!("localhost/tetsu/kube-dns:v", env!("CARGO_PKG_VERSION"));
/// The apiserver's port unless --apiserver-bind-port says otherwise.
pub const API_PORT: u16 = 6443;

/// What this node is in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the control plane (apiserver, controller-manager, scheduler) and a node.
    ControlPlane,
    /// Runs a node only (kubelet, kube-proxy), joined to a control plane.
    Worker,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub role: Role,
    pub node_name: String,
    /// The node's InternalIP; on a control-plane node also the apiserver's advertised address.
    pub advertise_address: IpAddr,
    /// The apiserver this node's components talk to (https://host:port).
    pub api_server: String,
    pub api_port: u16,
    pub pod_network_cidr: String,
    pub service_cidr: String,
    pub dns_domain: String,
    /// External etcd; the embedded store when empty.
    #[serde(default)]
    pub etcd_servers: Vec<String>,
    /// A running CRI runtime to use instead of the containerd kubeadm starts.
    #[serde(default)]
    pub cri_socket: Option<String>,
    /// Where kube-apiserver, kubelet and the others are.
    pub bin_dir: PathBuf,
    /// More flags for a component, by its name (upstream's ClusterConfiguration extraArgs).
    #[serde(default)]
    pub extra_args: std::collections::BTreeMap<String, Vec<String>>,
    /// The control-plane components' log verbosity (-v).
    #[serde(default = "default_verbosity")]
    pub verbosity: u8,
}

fn default_verbosity() -> u8 {
    2
}

impl NodeConfig {
    /// The cluster DNS Service's ClusterIP: the service CIDR's 10th address, as upstream.
    pub fn cluster_dns(&self) -> anyhow::Result<std::net::Ipv4Addr> {
        crate::pki::service_ip(&self.service_cidr, 10)
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<NodeConfig> {
        let path = Layout::new(data_dir).config();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is there a cluster here?)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let layout = Layout::new(data_dir);
        // Kubeconfigs with private keys and the PKI live here: owner-only, as upstream's.
        common::files::create_private_dir(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        std::fs::write(layout.config(), serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", layout.config().display()))
    }

    /// The CRI endpoint the kubelet uses.
    pub fn cri_endpoint(&self, layout: &Layout) -> String {
        self.cri_socket
            .clone()
            .unwrap_or_else(|| format!("unix://{}", layout.containerd_socket().display()))
    }
}

/// Where each thing lives under the data dir (upstream spreads them over /etc/kubernetes,
/// /var/lib/kubelet, /var/lib/etcd and /etc/cni; one directory makes `reset` exact).
#[derive(Clone, Debug)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_owned(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("kubeadm.json")
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    /// admin.conf, super-admin.conf, scheduler.conf, ... (upstream: /etc/kubernetes).
    pub fn kubeconfig(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }
    /// The apiserver's --audit-policy-file, beside its other configuration.
    pub fn audit_policy(&self) -> PathBuf {
        self.pki().join("audit-policy.yaml")
    }
    /// The apiserver's audit log (--audit-log-path); rotated backups sit beside it.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit/audit.log")
    }
    pub fn apiserver_data(&self) -> PathBuf {
        self.root.join("apiserver")
    }
    pub fn containerd_dir(&self) -> PathBuf {
        self.root.join("containerd")
    }
    pub fn containerd_socket(&self) -> PathBuf {
        self.containerd_dir().join("containerd.sock")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.root.join("cni/net.d")
    }
    pub fn kubelet_dir(&self) -> PathBuf {
        self.root.join("kubelet")
    }
    /// The kubelet's KubeletConfiguration (upstream's /var/lib/kubelet/config.yaml).
    pub fn kubelet_config(&self) -> PathBuf {
        self.kubelet_dir().join("config.yaml")
    }
    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn pod_logs(&self) -> PathBuf {
        self.root.join("logs/pods")
    }
    /// The supervisor's process id while it runs.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("kubeadm.pid")
    }
}
