//! Machines for whole-cluster tests: each "host" is a network namespace on a bridge of its
//! own (10.251.N.0/24, N picked per test so tests run side by side), with a default route
//! through this machine, which keeps 10.251.N.1. kubeadm runs inside a host with
//! `nsenter --net` (not `ip netns exec`, which remounts /sys and hides the cgroup
//! hierarchies runc needs), so each host has its own ports, nftables, routes and CNI bridge.
//! Dropping the network resets every host and deletes the namespaces and the bridge.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A machine: a network namespace with an address on the test network.
pub struct Host {
    /// Its name, which is also its node's name.
    pub name: String,
    pub netns: String,
    pub ip: String,
    /// kubeadm's --data-dir on this host.
    pub data_dir: PathBuf,
}

/// The test network and its hosts.
pub struct Network {
    pub bridge: String,
    pub subnet: u8,
    pub dir: tempfile::TempDir,
    pub hosts: Vec<Host>,
    pub bin_dir: PathBuf,
}

fn sh(script: &str) -> Output {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Where cargo put the binaries: the test runs from target/<profile>/deps.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned();
    for name in [
        "kubeadm",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kube-dns",
    ] {
        assert!(
            dir.join(name).is_file(),
            "{} missing: build the workspace's binaries first (cargo build --bins)",
            dir.join(name).display()
        );
    }
    dir
}

/// The word after `flag` in kubeadm's output (`--token`, `--discovery-token-ca-cert-hash`).
pub fn after<'a>(out: &'a str, flag: &str) -> &'a str {
    out.split_whitespace()
        .skip_while(|w| *w != flag)
        .nth(1)
        .unwrap_or_else(|| panic!("no {flag} in:\n{out}"))
}

impl Network {
    /// A bridge on a free 10.251.N.0/24.
    pub fn create() -> Network {
        let taken = String::from_utf8_lossy(&sh("ip -4 -o addr show").stdout).into_owned();
        let start = std::process::id() as usize;
        let subnet = (0..240)
            .map(|k| 10 + ((start + k) % 240) as u8)
            .find(|n| !taken.contains(&format!("10.251.{n}.")))
            .expect("a free test subnet");
        let bridge = format!("tk{subnet}");
        sh(&format!(
            "ip link add {bridge} type bridge && ip addr add 10.251.{subnet}.1/24 dev {bridge} && ip link set {bridge} up && sysctl -qw net.ipv4.ip_forward=1"
        ));
        Network {
            bridge,
            subnet,
            dir: tempfile::tempdir().expect("a temporary directory"),
            hosts: Vec::new(),
            bin_dir: bin_dir(),
        }
    }

    /// Adds host `name` at 10.251.N.<octet>; answers its index.
    pub fn add_host(&mut self, name: &str, octet: u8) -> usize {
        let netns = format!("{}-{name}", self.bridge);
        let ip = format!("10.251.{}.{octet}", self.subnet);
        let veth = format!("{}v{octet}", self.bridge);
        sh(&format!(
            "ip netns add {netns} && ip link add {veth} type veth peer name eth0 netns {netns} && \
             ip link set {veth} master {br} up && ip netns exec {netns} ip link set lo up && \
             ip netns exec {netns} ip addr add {ip}/24 dev eth0 && ip netns exec {netns} ip link set eth0 up && \
             ip netns exec {netns} ip route add default via 10.251.{s}.1 && \
             ip netns exec {netns} sysctl -qw net.ipv4.ip_forward=1",
            br = self.bridge,
            s = self.subnet,
        ));
        self.hosts.push(Host {
            name: name.to_owned(),
            netns,
            ip,
            data_dir: self.dir.path().join(name),
        });
        self.hosts.len() - 1
    }

    /// Runs `kubeadm ARGS` on host `i`: (success, stdout, stderr).
    pub fn kubeadm(&self, i: usize, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.hosts[i].netns))
            .arg(self.bin_dir.join("kubeadm"))
            .args(args)
            .output()
            .expect("run kubeadm");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `kubeadm ARGS` on host `i` with `input` on its stdin: (success, stdout, stderr).
    pub fn kubeadm_with_input(
        &self,
        i: usize,
        args: &[&str],
        input: &str,
    ) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.hosts[i].netns))
            .arg(self.bin_dir.join("kubeadm"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubeadm");
        // kubeadm may exit before reading it all; a closed pipe is no error here.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes());
        let out = child.wait_with_output().expect("wait for kubeadm");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kubeadm init` on host `i`, its node named after the host and advertising its
    /// address, with `extra` flags: (success, stdout, stderr).
    pub fn init(&self, i: usize, extra: &[&str]) -> (bool, String, String) {
        let h = &self.hosts[i];
        let data_dir = h.data_dir.display().to_string();
        let mut args = vec![
            "init",
            "--data-dir",
            &data_dir,
            "--node-name",
            &h.name,
            "--apiserver-advertise-address",
            &h.ip,
        ];
        args.extend_from_slice(extra);
        self.kubeadm(i, &args)
    }

    /// `kubeadm join` of host `i` to the control plane on host `cp`, with the token and CA
    /// pin printed in `init_out` (init's output); the node is named after the host and
    /// advertises its address: (success, stdout, stderr).
    pub fn join(&self, i: usize, cp: usize, init_out: &str) -> (bool, String, String) {
        self.join_with(i, cp, init_out, &[])
    }

    /// [`Network::join`] with `extra` flags.
    pub fn join_with(
        &self,
        i: usize,
        cp: usize,
        init_out: &str,
        extra: &[&str],
    ) -> (bool, String, String) {
        let h = &self.hosts[i];
        let endpoint = format!("{}:6443", self.hosts[cp].ip);
        let data_dir = h.data_dir.display().to_string();
        let mut args = vec![
            "join",
            &endpoint,
            "--token",
            after(init_out, "--token"),
            "--discovery-token-ca-cert-hash",
            after(init_out, "--discovery-token-ca-cert-hash"),
            "--data-dir",
            &data_dir,
            "--node-name",
            &h.name,
            "--node-ip",
            &h.ip,
        ];
        args.extend_from_slice(extra);
        self.kubeadm(i, &args)
    }

    /// Runs a command inside host `i`'s network namespace.
    pub fn on_host(&self, i: usize, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.hosts[i].netns))
            .args(args)
            .output()
            .expect("nsenter")
    }

    /// The end of a component's log on host `i`.
    pub fn log(&self, i: usize, component: &str) -> String {
        let path = self.hosts[i]
            .data_dir
            .join("logs")
            .join(format!("{component}.log"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for i in (0..self.hosts.len()).rev() {
            if self.hosts[i].data_dir.exists() {
                let data_dir = self.hosts[i].data_dir.display().to_string();
                let _ = self.kubeadm(i, &["reset", "-f", "--data-dir", &data_dir]);
            }
            let h = &self.hosts[i];
            let _ = Command::new("ip").args(["netns", "del", &h.netns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
