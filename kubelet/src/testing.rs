//! Test support: a private containerd (CRI plugin on, runc, our own root, state and socket
//! under a temporary directory) started as a child process and stopped on drop, with the
//! configuration our machines need (PLATFORM.md: restrict_oom_score_adj).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The sandbox ("pause") image the test containerd is configured with; built from
/// busybox-static by `import_test_images`.
pub const PAUSE_IMAGE: &str = "tetsu.local/pause:1";
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";

pub struct Containerd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The network namespace containerd (and so the pods' bridge) lives in, if any.
    pub netns: Option<String>,
}

impl Containerd {
    /// Starts containerd and waits for its socket; panics with its log if it does not come up.
    pub async fn start() -> Containerd {
        Self::launch(None).await
    }

    /// Starts containerd inside a new network namespace with a CNI bridge network over
    /// `subnet` (e.g. "10.244.7.0/24"): pods get addresses there. A veth pair links the
    /// namespace to this host (10.250.<subnet's third octet>.1 here, .2 there) with a host
    /// route to `subnet`, so a kubelet on the host reaches pods (probes) and containerd's
    /// streaming server (exec). Everything goes when the namespace is deleted on drop.
    pub async fn start_with_pod_network(subnet: &str) -> Containerd {
        Self::launch(Some(subnet)).await
    }

    async fn launch(subnet: Option<&str>) -> Containerd {
        let dir = tempfile::tempdir().expect("temp dir for containerd");
        let d = dir.path();
        // The link network between this host and the pod network's namespace.
        let link = subnet.map(|s| {
            let octet = s.split('.').nth(2).unwrap_or("0").to_owned();
            (
                format!("10.250.{octet}.1"),
                format!("10.250.{octet}.2"),
                octet,
            )
        });
        let stream_address = link
            .as_ref()
            .map_or("127.0.0.1", |(_, ns_side, _)| ns_side.as_str());
        let socket = d.join("containerd.sock");
        std::fs::create_dir_all(d.join("cni")).unwrap();
        let config = crate::containerd::config(&crate::containerd::Config {
            dir: d,
            socket: &socket,
            sandbox_image: PAUSE_IMAGE,
            stream_address,
            cni_conf_dir: &d.join("cni"),
        });
        let config_path = d.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut netns = None;
        if let Some(subnet) = subnet {
            let name = format!(
                "tetsu-{}",
                d.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .trim_start_matches('.')
            );
            let ok = Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip netns add {name} (needs root)");
            let _ = Command::new("ip")
                .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
                .status();
            if let Some((host_side, ns_side, octet)) = &link {
                let (host_dev, ns_dev) = (format!("tvh{octet}"), format!("tvn{octet}"));
                let sh = |script: String| {
                    let ok = Command::new("sh")
                        .args(["-c", &script])
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "{script}");
                };
                sh(format!(
                    "ip link del {host_dev} 2>/dev/null; \
                     ip link add {host_dev} type veth peer name {ns_dev} && \
                     ip link set {ns_dev} netns {name} && \
                     ip addr add {host_side}/30 dev {host_dev} && ip link set {host_dev} up && \
                     ip netns exec {name} ip addr add {ns_side}/30 dev {ns_dev} && \
                     ip netns exec {name} ip link set {ns_dev} up && \
                     ip netns exec {name} sysctl -qw net.ipv4.ip_forward=1 && \
                     ip route replace {subnet} via {ns_side}"
                ));
            }
            let conflist = serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "tetsu-test",
                "plugins": [{
                    "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}], "dataDir": d.join("ipam").display().to_string()},
                }],
            });
            std::fs::write(d.join("cni/10-tetsu.conflist"), conflist.to_string()).unwrap();
            netns = Some(name);
        }
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let mut cmd = match &netns {
            // nsenter switches only the network namespace; `ip netns exec` would also
            // remount /sys and hide the cgroup hierarchies runc needs.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/var/run/netns/{ns}"))
                    .arg("containerd");
                c
            }
            None => Command::new("containerd"),
        };
        let child = cmd
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd (apt-get install containerd runc)");
        let c = Containerd {
            child,
            dir,
            socket,
            netns,
        };
        if !crate::cri::wait_for_socket(&c.socket, Duration::from_secs(20)).await {
            panic!("containerd did not start:\n{}", c.log());
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Imports busybox and the pause image built from it.
    pub fn import_test_images(&self) -> crate::Result<()> {
        use crate::images::{ImageSpec, busybox_layer, import, oci_archive, pause};
        let layer = busybox_layer()?;
        import(
            &self.socket,
            &oci_archive(&ImageSpec::new(BUSYBOX_IMAGE), &layer)?,
        )?;
        import(&self.socket, &oci_archive(&pause(PAUSE_IMAGE), &layer)?)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Sandboxes left behind by a test: removed through the CRI, so their network
        // namespaces (/var/run/netns/cni-*) and addresses go too. Drop runs inside the
        // test's runtime, which cannot block on a future: a thread with its own does.
        let endpoint = self.endpoint();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let removal = remove_sandboxes(&endpoint);
                let _ = tokio::time::timeout(Duration::from_secs(20), removal).await;
            });
        })
        .join();
        // Tasks left behind by a test: delete them so their shims exit.
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(["-n", "k8s.io"])
                .args(args)
                .output()
        };
        if let Ok(out) = ctr(&["tasks", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = ctr(&["tasks", "delete", "--force", id]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive containerd by design; ours go with it.
        crate::containerd::kill_shims(&self.socket);
        if let Some(ns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Containerd {
    /// Stops and removes every sandbox (and so its network namespace): tests call this
    /// before dropping a containerd whose pods had their own networks.
    pub async fn remove_all_sandboxes(&self) {
        remove_sandboxes(&self.endpoint()).await;
    }

    /// Stops the containerd daemon as a node's supervisor does (SIGTERM), leaving its shims
    /// and their containers running.
    pub async fn stop_daemon(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The command that starts this containerd again (in its network namespace, if any).
    pub fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/var/run/netns/{ns}"))
                    .arg("containerd");
                c
            }
            None => Command::new("containerd"),
        };
        cmd.arg("--config").arg(self.dir.path().join("config.toml"));
        cmd
    }

    /// Runs busybox `sh -c script` as container "c" (log "c/0.log") in a new sandbox of
    /// `sandbox_config`, straight through the CRI: (sandbox id, container id).
    pub async fn run_busybox(
        &self,
        runtime: &crate::cri::Cri,
        sandbox_config: k8s_cri::v1::PodSandboxConfig,
        script: &str,
    ) -> (String, String) {
        use k8s_cri::v1 as cri;
        let sandbox = runtime
            .run_pod_sandbox(sandbox_config.clone(), "")
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()));
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: BUSYBOX_IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: "c/0.log".into(),
            ..Default::default()
        };
        let container = runtime
            .create_container(&sandbox, config, sandbox_config)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()));
        runtime
            .start_container(&container)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()));
        (sandbox, container)
    }

    /// Runs a command inside the pod network's namespace (where pod addresses are reachable).
    pub fn in_netns(&self, args: &[&str]) -> std::process::Output {
        let ns = self
            .netns
            .as_deref()
            .expect("a containerd with a pod network");
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{ns}"))
            .args(args)
            .output()
            .expect("nsenter")
    }
}

/// Stops and removes every sandbox of the runtime at `endpoint`.
async fn remove_sandboxes(endpoint: &str) {
    let Ok(cri) = crate::cri::Cri::connect(endpoint).await else {
        return;
    };
    for s in cri.list_pod_sandboxes().await.unwrap_or_default() {
        let _ = cri.stop_pod_sandbox(&s.id).await;
        let _ = cri.remove_pod_sandbox(&s.id).await;
    }
}

/// A kubelet for node `name` started in this process (`kubelet::run`): the apiserver of
/// `kubeconfig`, the test containerd at `endpoint` (`Containerd::endpoint`), its state and
/// logs under `dir`, InternalIP 127.0.0.1, its API on 127.0.0.1:`port`, no health server.
pub fn config(
    name: &str,
    kubeconfig: PathBuf,
    endpoint: String,
    dir: &std::path::Path,
    port: u16,
) -> crate::Config {
    crate::Config {
        kubeconfig: Some(kubeconfig),
        hostname_override: Some(name.into()),
        node_ip: Some("127.0.0.1".into()),
        container_runtime_endpoint: endpoint,
        root_dir: dir.join("kubelet"),
        pod_log_dir: dir.join("logs"),
        healthz_port: 0,
        address: [127, 0, 0, 1].into(),
        port,
        ..Default::default()
    }
}
