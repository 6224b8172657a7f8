//! The processes a node runs and their command lines, as upstream kubeadm's static pod
//! manifests and kubelet flags set them: containerd (unless --cri-socket names a running
//! runtime), then on a control-plane node kube-apiserver, kube-controller-manager and
//! kube-scheduler, then on every node the kubelet (with its configuration file) and
//! kube-proxy.

use std::path::PathBuf;

use crate::config::{Layout, NodeConfig, PAUSE_IMAGE, Role};

/// One supervised process.
#[derive(Clone, Debug)]
pub struct Component {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// How to tell it is up before starting the next one.
    pub ready: Ready,
}

#[derive(Clone, Debug)]
pub enum Ready {
    /// A file (a socket, a kubeconfig) exists.
    Path(PathBuf),
    /// Something listens on 127.0.0.1:port (init checks /healthz itself).
    Port(u16),
    /// Nothing to wait for.
    Started,
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

/// Every component of this node, in start order.
pub fn components(cfg: &NodeConfig, layout: &Layout) -> Vec<Component> {
    let bin = |name: &str| cfg.bin_dir.join(name);
    let pki = |file: &str| path(layout.pki().join(file));
    let v = cfg.verbosity.to_string();
    let mut out = Vec::new();
    if cfg.cri_socket.is_none() {
        out.push(Component {
            name: "containerd",
            program: "containerd".into(),
            args: vec![
                "--config".into(),
                path(layout.containerd_dir().join("config.toml")),
            ],
            ready: Ready::Path(layout.containerd_socket()),
        });
    }
    if cfg.role == Role::ControlPlane {
        let mut args = vec![
            "--advertise-address".into(),
            cfg.advertise_address.to_string(),
            "--secure-port".into(),
            cfg.api_port.to_string(),
            "--data-dir".into(),
            path(layout.apiserver_data()),
            "--tls-cert-file".into(),
            pki("apiserver.crt"),
            "--tls-private-key-file".into(),
            pki("apiserver.key"),
            "--client-ca-file".into(),
            pki("ca.crt"),
            "--kubelet-client-certificate".into(),
            pki("apiserver-kubelet-client.crt"),
            "--kubelet-client-key".into(),
            pki("apiserver-kubelet-client.key"),
            // Kubelets serve certificates from the cluster CA (--rotate-server-certificates).
            "--kubelet-certificate-authority".into(),
            pki("ca.crt"),
            "--authorization-mode".into(),
            "Node,RBAC".into(),
            "--enable-bootstrap-token-auth".into(),
            "--service-account-issuer".into(),
            format!("https://kubernetes.default.svc.{}", cfg.dns_domain),
            "--service-account-key-file".into(),
            pki("sa.pub"),
            "--service-account-signing-key-file".into(),
            pki("sa.key"),
            "--service-cluster-ip-range".into(),
            cfg.service_cidr.clone(),
            "--encryption-provider-config".into(),
            pki(crate::pki::ENCRYPTION_CONFIG),
            "-v".into(),
            v.clone(),
        ];
        args.extend(crate::audit::apiserver_args(layout));
        if !cfg.etcd_servers.is_empty() {
            args.push("--etcd-servers".into());
            args.push(cfg.etcd_servers.join(","));
        }
        out.push(Component {
            name: "kube-apiserver",
            program: bin("kube-apiserver"),
            args,
            ready: Ready::Port(cfg.api_port),
        });
        out.push(Component {
            name: "kube-controller-manager",
            program: bin("kube-controller-manager"),
            args: vec![
                "--kubeconfig".into(),
                path(layout.kubeconfig("controller-manager.conf")),
                "--controllers".into(),
                "*,bootstrapsigner,tokencleaner".into(),
                "--allocate-node-cidrs=true".into(),
                "--cluster-cidr".into(),
                cfg.pod_network_cidr.clone(),
                "--cluster-signing-cert-file".into(),
                pki("ca.crt"),
                "--cluster-signing-key-file".into(),
                pki("ca.key"),
                "--root-ca-file".into(),
                pki("ca.crt"),
                "--authentication-kubeconfig".into(),
                path(layout.kubeconfig("controller-manager.conf")),
                "--authorization-kubeconfig".into(),
                path(layout.kubeconfig("controller-manager.conf")),
                "--client-ca-file".into(),
                pki("ca.crt"),
                "--cert-dir".into(),
                path(layout.pki().join("kube-controller-manager")),
                "-v".into(),
                v.clone(),
            ],
            ready: Ready::Started,
        });
        out.push(Component {
            name: "kube-scheduler",
            program: bin("kube-scheduler"),
            args: vec![
                "--kubeconfig".into(),
                path(layout.kubeconfig("scheduler.conf")),
                "--authentication-kubeconfig".into(),
                path(layout.kubeconfig("scheduler.conf")),
                "--authorization-kubeconfig".into(),
                path(layout.kubeconfig("scheduler.conf")),
                "--client-ca-file".into(),
                pki("ca.crt"),
                "--cert-dir".into(),
                path(layout.pki().join("kube-scheduler")),
                "-v".into(),
                v.clone(),
            ],
            ready: Ready::Started,
        });
    }
    let mut kubelet = vec![
        "--kubeconfig".into(),
        path(layout.kubeconfig("kubelet.conf")),
        "--hostname-override".into(),
        cfg.node_name.clone(),
        "--node-ip".into(),
        cfg.advertise_address.to_string(),
        "--container-runtime-endpoint".into(),
        cfg.cri_endpoint(layout),
        "--root-dir".into(),
        path(layout.kubelet_dir()),
        "--pod-manifest-path".into(),
        path(layout.manifests()),
        "--pod-log-dir".into(),
        path(layout.pod_logs()),
        // The kubelet API: callers prove who they are (the apiserver with
        // apiserver-kubelet-client.crt) and the apiserver decides what they may do.
        "--anonymous-auth=false".into(),
        "--client-ca-file".into(),
        pki("ca.crt"),
        "--authentication-token-webhook".into(),
        "--authorization-mode".into(),
        "Webhook".into(),
        // Client and serving certificates from the cluster CA, renewed before they expire.
        "--rotate-certificates".into(),
        "--rotate-server-certificates".into(),
        // The KubeletConfiguration kubelet_config writes: the cluster DNS.
        "--config".into(),
        path(layout.kubelet_config()),
        "-v".into(),
        v.clone(),
    ];
    let mut ready = Ready::Started;
    if cfg.role == Role::Worker {
        // TLS bootstrapping: the kubelet asks for its own certificate with the token, and
        // kube-proxy, which uses that certificate too, waits for it.
        kubelet.push("--bootstrap-kubeconfig".into());
        kubelet.push(path(layout.kubeconfig("bootstrap-kubelet.conf")));
        ready = Ready::Path(layout.kubeconfig("kubelet.conf"));
    }
    out.push(Component {
        name: "kubelet",
        program: bin("kubelet"),
        args: kubelet,
        ready,
    });
    // On a control-plane node kube-proxy has its own identity (system:kube-proxy, bound to
    // system:node-proxier); a worker's kube-proxy uses the kubelet's credentials, which
    // the node-proxier binding for system:nodes covers (see init's RBAC phase).
    let proxy_conf = match cfg.role {
        Role::ControlPlane => "kube-proxy.conf",
        Role::Worker => "kubelet.conf",
    };
    out.push(Component {
        name: "kube-proxy",
        program: bin("kube-proxy"),
        args: vec![
            "--kubeconfig".into(),
            path(layout.kubeconfig(proxy_conf)),
            "--cluster-cidr".into(),
            cfg.pod_network_cidr.clone(),
            "--hostname-override".into(),
            cfg.node_name.clone(),
            "--cni-conf-dir".into(),
            path(layout.cni_conf_dir()),
            "--cni-ipam-data-dir".into(),
            path(layout.root.join("cni/ipam")),
            "-v".into(),
            v,
        ],
        ready: Ready::Started,
    });
    for c in &mut out {
        if let Some(extra) = cfg.extra_args.get(c.name) {
            c.args.extend(extra.iter().cloned());
        }
    }
    out
}

/// The kubelet's configuration file (upstream kubeadm's /var/lib/kubelet/config.yaml): pods
/// resolve names through the cluster DNS Service kubeadm installs.
pub fn kubelet_config(cfg: &NodeConfig) -> String {
    let mut out = format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDomain: {}\n",
        cfg.dns_domain
    );
    if let Ok(dns) = cfg.cluster_dns() {
        out.push_str(&format!("clusterDNS:\n- {dns}\n"));
    }
    out
}

/// Parses `--component-arg NAME=--flag=value` into (NAME, --flag=value).
pub fn parse_component_arg(s: &str) -> Result<(String, String), String> {
    const NAMES: [&str; 6] = [
        "containerd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
    ];
    match s.split_once('=') {
        Some((name, arg)) if NAMES.contains(&name) && arg.starts_with('-') => {
            Ok((name.to_owned(), arg.to_owned()))
        }
        _ => Err(format!(
            "expected COMPONENT=--flag[=value] with COMPONENT one of {}",
            NAMES.join(", ")
        )),
    }
}

/// containerd's configuration: our own root, state and sockets under the data dir, the
/// sandbox image kubeadm builds, the CNI configuration kube-proxy's pod network agent
/// writes.
pub fn containerd_config(layout: &Layout) -> String {
    kubelet::containerd::config(&kubelet::containerd::Config {
        dir: &layout.containerd_dir(),
        socket: &layout.containerd_socket(),
        sandbox_image: PAUSE_IMAGE,
        stream_address: "127.0.0.1",
        cni_conf_dir: &layout.cni_conf_dir(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(role: Role) -> NodeConfig {
        NodeConfig {
            role,
            node_name: "n1".into(),
            advertise_address: "10.0.0.2".parse().unwrap(),
            api_server: "https://10.0.0.2:6443".into(),
            api_port: 6443,
            pod_network_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            etcd_servers: vec![],
            cri_socket: None,
            bin_dir: "/opt/bin".into(),
            extra_args: Default::default(),
            verbosity: 2,
        }
    }

    #[test]
    fn a_control_plane_runs_everything_and_a_worker_only_the_node() {
        let layout = Layout::new("/var/lib/tetsu".as_ref());
        let names = |role| -> Vec<&str> {
            components(&config(role), &layout)
                .iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(
            names(Role::ControlPlane),
            [
                "containerd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet",
                "kube-proxy"
            ]
        );
        assert_eq!(names(Role::Worker), ["containerd", "kubelet", "kube-proxy"]);
        let worker = components(&config(Role::Worker), &layout);
        let kubelet = worker.iter().find(|c| c.name == "kubelet").unwrap();
        assert!(kubelet.args.contains(&"--bootstrap-kubeconfig".to_owned()));
        let i = kubelet.args.iter().position(|a| a == "--config").unwrap();
        assert_eq!(kubelet.args[i + 1], "/var/lib/tetsu/kubelet/config.yaml");
        assert_eq!(
            kubelet_config(&config(Role::Worker)),
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDomain: cluster.local\nclusterDNS:\n- 10.96.0.10\n"
        );
        let control_plane = components(&config(Role::ControlPlane), &layout);
        let apiserver = control_plane
            .iter()
            .find(|c| c.name == "kube-apiserver")
            .unwrap();
        let flag = |name: &str| {
            let i = apiserver.args.iter().position(|a| a == name).unwrap();
            apiserver.args[i + 1].clone()
        };
        assert_eq!(flag("--audit-log-path"), "/var/lib/tetsu/audit/audit.log");
        assert_eq!(
            flag("--audit-policy-file"),
            "/var/lib/tetsu/pki/audit-policy.yaml"
        );
    }

    #[test]
    fn the_pod_network_cidr_reaches_node_ipam_and_the_agent() {
        let layout = Layout::new("/d".as_ref());
        let mut cfg = config(Role::ControlPlane);
        cfg.pod_network_cidr = "10.200.0.0/16".into();
        let all = components(&cfg, &layout);
        for name in ["kube-controller-manager", "kube-proxy"] {
            let c = all.iter().find(|c| c.name == name).unwrap();
            let i = c.args.iter().position(|a| a == "--cluster-cidr").unwrap();
            assert_eq!(c.args[i + 1], "10.200.0.0/16", "{name}");
        }
    }

    #[test]
    fn an_external_runtime_is_not_started() {
        let layout = Layout::new("/d".as_ref());
        let mut cfg = config(Role::Worker);
        cfg.cri_socket = Some("unix:///run/containerd/containerd.sock".into());
        let all = components(&cfg, &layout);
        assert_eq!(all[0].name, "kubelet");
        assert!(
            all[0]
                .args
                .contains(&"unix:///run/containerd/containerd.sock".to_owned())
        );
    }
}
