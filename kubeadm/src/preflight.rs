//! Preflight checks, as upstream's: each failure names the check and says how to fix it,
//! and all are reported together before anything is changed on the machine.

use std::net::TcpListener;
use std::path::Path;

use crate::config::{Layout, NodeConfig, Role};

/// One failed check: upstream prints `[ERROR <name>]: <message>`.
#[derive(Debug)]
pub struct Failure {
    pub name: String,
    pub message: String,
}

/// The ports a node's components listen on (upstream's list).
fn ports(cfg: &NodeConfig) -> Vec<u16> {
    let mut p = vec![10250, 10248, 10256, 10249];
    if cfg.role == Role::ControlPlane {
        p.extend([cfg.api_port, 10257, 10259]);
    }
    p
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs every check; `ignore` names checks to skip ("all" skips them all).
pub fn check(cfg: &NodeConfig, layout: &Layout, ignore: &[String]) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut fail = |name: String, message: String| {
        let skipped = ignore
            .iter()
            .any(|i| i.eq_ignore_ascii_case("all") || i.eq_ignore_ascii_case(&name));
        if !skipped {
            failures.push(Failure { name, message });
        }
    };
    if !rustix::process::geteuid().is_root() {
        fail(
            "IsPrivilegedUser".into(),
            "user is not running as root (run kubeadm with sudo)".into(),
        );
    }
    let mut programs = vec![("nft", "nftables"), ("ip", "iproute2")];
    if cfg.cri_socket.is_none() {
        programs.extend([
            ("containerd", "containerd"),
            ("ctr", "containerd"),
            ("runc", "runc"),
        ]);
    }
    for (program, package) in programs {
        if !on_path(program) {
            fail(
                format!("FileExisting-{program}"),
                format!("{program} not found in system path (apt-get install {package})"),
            );
        }
    }
    for plugin in ["bridge", "host-local", "loopback", "portmap"] {
        let path = Path::new("/usr/lib/cni").join(plugin);
        if !path.is_file() {
            fail(
                format!("FileExisting-{plugin}"),
                format!(
                    "{} not found (apt-get install containernetworking-plugins)",
                    path.display()
                ),
            );
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        fail(
            "FileExisting-busybox".into(),
            "/bin/busybox not found: the node's images are built from it (apt-get install busybox-static)".into(),
        );
    }
    // Every node runs the DNS server's image, built from its binary.
    let mut components = vec!["kubelet", "kube-proxy", "kube-dns"];
    if cfg.role == Role::ControlPlane {
        components.extend([
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]);
    }
    for name in components {
        let path = cfg.bin_dir.join(name);
        if !path.is_file() {
            fail(
                format!("FileExisting-{name}"),
                format!(
                    "{} not found (cargo build --release, or pass --bin-dir)",
                    path.display()
                ),
            );
        }
    }
    for port in ports(cfg) {
        if TcpListener::bind(("0.0.0.0", port)).is_err() {
            fail(format!("Port-{port}"), format!("Port {port} is in use"));
        }
    }
    if let Some(socket) = &cfg.cri_socket {
        let path = socket.trim_start_matches("unix://");
        if !Path::new(path).exists() {
            fail(
                "CRI".into(),
                format!("container runtime is not running: {path} does not exist"),
            );
        }
    }
    if layout.config().exists() {
        fail(
            "DirAvailable--data-dir".into(),
            format!(
                "{} holds another node's configuration (kubeadm reset --data-dir {} removes it)",
                layout.root.display(),
                layout.root.display()
            ),
        );
    }
    failures
}

/// The error upstream prints when checks fail.
pub fn report(failures: &[Failure]) -> anyhow::Error {
    let mut text = String::from("[preflight] Some fatal errors occurred:\n");
    for f in failures {
        text.push_str(&format!("\t[ERROR {}]: {}\n", f.name, f.message));
    }
    text.push_str("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`");
    anyhow::anyhow!(text)
}
