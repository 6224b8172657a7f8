//! `kubeadm reset`: stops the node's processes and removes everything kubeadm created on
//! this machine: the pods' sandboxes and containers (through the CRI, so their network
//! namespaces and addresses are released), containerd's shims, kube-proxy's nftables
//! tables and routes, the CNI bridge and state, mounts under the data dir, and the data dir.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{Layout, NodeConfig};
use crate::supervisor;

pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(data_dir);
    let cfg = NodeConfig::load(data_dir).ok();
    println!("[reset] Stopping the node's processes");
    stop_supervisor(&layout).await;
    kill_leftovers(&layout);

    let managed_runtime = cfg.as_ref().is_none_or(|c| c.cri_socket.is_none());
    if managed_runtime && layout.containerd_dir().join("config.toml").exists() {
        println!("[reset] Removing the pods' containers and sandboxes");
        remove_pods(&layout).await;
    }
    println!("[reset] Removing kube-proxy's nftables tables, routes and CNI configuration");
    let proxy = cfg
        .as_ref()
        .map(|c| c.bin_dir.join("kube-proxy"))
        .unwrap_or_else(|| "kube-proxy".into());
    let cleaned = Command::new(&proxy)
        .arg("--cleanup")
        .arg("--cni-conf-dir")
        .arg(layout.cni_conf_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !cleaned {
        println!(
            "[reset] warning: {} --cleanup failed; remove the nft table ip kube-proxy by hand",
            proxy.display()
        );
    }
    let _ = Command::new("ip")
        .args(["link", "del", "cni0"])
        .stderr(Stdio::null())
        .status();
    println!("[reset] Deleting contents of {}", data_dir.display());
    unmount_under(data_dir);
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)?;
    }
    println!(
        "[reset] Done. kubeconfig files copied elsewhere (e.g. $HOME/.kube/config) are not removed."
    );
    Ok(())
}

async fn stop_supervisor(layout: &Layout) {
    let Some(pid) = supervisor::running_supervisor(layout) else {
        return;
    };
    supervisor::signal(pid, rustix::process::Signal::TERM);
    // Each component has its grace period; the supervisor stops them one after another.
    for _ in 0..900 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    supervisor::signal(pid, rustix::process::Signal::KILL);
}

/// Components a killed supervisor left running.
fn kill_leftovers(layout: &Layout) {
    let Ok(entries) = std::fs::read_dir(layout.root.join("pids")) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(pid) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        // Only if the pid still belongs to a process started from this data dir.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&*layout.root.to_string_lossy()) {
            supervisor::signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Starts containerd long enough to stop and remove every sandbox through the CRI.
async fn remove_pods(layout: &Layout) {
    let socket = layout.containerd_socket();
    // A socket left by the stopped containerd would look ready before the new one listens.
    let _ = std::fs::remove_file(&socket);
    let mut child = Command::new("containerd")
        .arg("--config")
        .arg(layout.containerd_dir().join("config.toml"))
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(layout.logs().join("containerd-reset.log"))
                .map_or(Stdio::null(), Stdio::from),
        )
        .spawn()
        .ok();
    if kubelet::cri::wait_for_socket(&socket, Duration::from_secs(20)).await {
        let endpoint = format!("unix://{}", socket.display());
        match kubelet::cri::Cri::connect(&endpoint).await {
            Ok(cri) => {
                for c in cri.list_containers().await.unwrap_or_default() {
                    let _ = cri.stop_container(&c.id, Duration::ZERO).await;
                    if let Err(e) = cri.remove_container(&c.id).await {
                        println!("[reset] warning: removing container {}: {e:#}", c.id);
                    }
                }
                let sandboxes = cri.list_pod_sandboxes().await.unwrap_or_else(|e| {
                    println!("[reset] warning: listing the pod sandboxes: {e:#}");
                    Vec::new()
                });
                println!("[reset] Removing {} pod sandboxes", sandboxes.len());
                for s in sandboxes {
                    let removed = match cri.stop_pod_sandbox(&s.id).await {
                        Ok(()) => cri.remove_pod_sandbox(&s.id).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = removed {
                        println!("[reset] warning: removing sandbox {}: {e:#}", s.id);
                    }
                }
            }
            Err(e) => println!("[reset] warning: the container runtime did not answer: {e:#}"),
        }
    } else {
        println!("[reset] warning: containerd did not start; its containers may remain");
    }
    if let Some(child) = child.as_mut() {
        supervisor::terminate(child, Duration::from_secs(10)).await;
    }
    kubelet::containerd::kill_shims(&socket);
}

/// Unmounts everything mounted under `dir` (deepest first): container root filesystems,
/// the pods' volumes.
fn unmount_under(dir: &Path) {
    let prefix = dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}
