//! `kubeadm reset`: stops the node's processes and removes everything kubeadm created on
//! this machine: the pods' sandboxes and containers (through the CRI once the runtime is
//! ready, so their network namespaces and addresses are released; then whatever of a pod
//! survived: its processes, runc state and network namespace), containerd's shims,
//! kube-proxy's nftables
//! tables and routes, the CNI bridge and state, mounts under the data dir, and the data dir.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{Layout, NodeConfig};
use crate::supervisor;

/// Asks on `output` whether to go ahead, as upstream's reset does without --force; true only
/// for a `y` or `yes` answer (any case) on `input`.
pub fn confirm(input: &mut impl std::io::BufRead, output: &mut impl std::io::Write) -> bool {
    let _ = write!(
        output,
        "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.\n\
         [reset] Are you sure you want to proceed? [y/N]: "
    );
    let _ = output.flush();
    let mut answer = String::new();
    if input.read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(data_dir);
    let cfg = NodeConfig::load(data_dir).ok();
    println!("[reset] Stopping the node's processes");
    stop_supervisor(&layout).await;
    kill_leftovers(&layout);

    let managed_runtime = cfg.as_ref().is_none_or(|c| c.cri_socket.is_none());
    let mut pods_left = None;
    if managed_runtime && layout.containerd_dir().join("config.toml").exists() {
        println!("[reset] Removing the pods' containers and sandboxes");
        if let Err(e) = remove_pods(&layout).await {
            println!("[reset] error: {e:#}");
            pods_left = Some(e);
        }
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
    if let Some(e) = pods_left {
        // Everything else is cleaned up; the pods' leftovers are for the operator.
        return Err(e.context("the node's pods were not all removed"));
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
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = supervisor::component_pid(layout, &name) {
            supervisor::signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// How long reset waits for the restarted runtime to answer the CRI.
const RUNTIME_READY: Duration = Duration::from_secs(90);

/// Starts containerd long enough to stop and remove every sandbox through the CRI.
async fn remove_pods(layout: &Layout) -> anyhow::Result<()> {
    let log = layout.logs().join("containerd-reset.log");
    let _ = std::fs::create_dir_all(layout.logs());
    let mut containerd = Command::new("containerd");
    containerd
        .arg("--config")
        .arg(layout.containerd_dir().join("config.toml"));
    remove_pods_of(containerd, &layout.containerd_socket(), &log).await
}

/// Ends what a node's containerd (started by `containerd`, serving `socket`) still runs:
/// every pod sandbox is stopped (its containers killed, its network torn down through CNI,
/// its network namespace removed) and removed; then no process of a pod may survive,
/// whether the runtime knew it or not, nor a pod's network namespace under /var/run/netns.
pub async fn remove_pods_of(
    mut containerd: Command,
    socket: &Path,
    log: &Path,
) -> anyhow::Result<()> {
    // What ran before containerd is asked: a pod the runtime forgot is still ours to end.
    let before = kubelet::containerd::pod_processes(socket);
    let namespaces: HashSet<u64> = before.iter().filter_map(|p| p.net_namespace()).collect();
    // A socket left by the stopped containerd would look ready before the new one listens.
    let _ = std::fs::remove_file(socket);
    let mut child = containerd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).map_or(Stdio::null(), Stdio::from))
        .spawn();
    let through_cri = match &mut child {
        Ok(child) => remove_sandboxes(socket, child).await,
        Err(e) => Err(anyhow::anyhow!("starting containerd: {e}")),
    };
    if let Ok(child) = child.as_mut() {
        supervisor::terminate(child, Duration::from_secs(10)).await;
    }
    kubelet::containerd::kill_shims(socket);

    // Nothing of a pod survives: its processes (those below the shims, before and now)...
    let mut procs = before;
    procs.extend(kubelet::containerd::pod_processes(socket));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut survivors = kubelet::containerd::kill_survivors(&procs);
    while !survivors.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        survivors = kubelet::containerd::kill_survivors(&survivors);
    }
    // ...its runc state (runc's delete also removes the cgroups)...
    let runc_left = remove_runc_state(&procs);
    // ...and its network namespace, which CNI's teardown removes; one left (the runtime
    // never answered) is unmounted here.
    let left = remove_pod_namespaces(&namespaces);
    let mut problems = Vec::new();
    if let Err(e) = through_cri {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        problems.push(format!(
            "{e:#}; containerd's log ends:\n{}",
            tail.join("\n")
        ));
    }
    if !survivors.is_empty() {
        let pids: Vec<String> = survivors.iter().map(|p| p.pid.to_string()).collect();
        problems.push(format!(
            "pod processes still running after SIGKILL: {}",
            pids.join(" ")
        ));
    }
    if !runc_left.is_empty() {
        problems.push(format!("runc state left: {}", runc_left.join(" ")));
    }
    if !left.is_empty() {
        problems.push(format!("pod network namespaces left: {}", left.join(" ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", problems.join("; "))
    }
}

/// Once containerd answers the CRI (its CRI plugin refuses calls while it initializes:
/// "server is not initialized yet"), stops and removes every container and sandbox.
async fn remove_sandboxes(
    socket: &Path,
    containerd: &mut std::process::Child,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + RUNTIME_READY;
    let endpoint = format!("unix://{}", socket.display());
    let (cri, sandboxes) = loop {
        let attempt = async {
            let cri = kubelet::cri::Cri::connect(&endpoint).await?;
            cri.version().await?;
            let sandboxes = cri.list_pod_sandboxes().await?;
            anyhow::Ok((cri, sandboxes))
        };
        match attempt.await {
            Ok(ready) => break ready,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!(
                    "the container runtime at {endpoint} was not ready within {}s: {e:#}",
                    RUNTIME_READY.as_secs()
                )
            }
            Err(e) => {
                if let Ok(Some(status)) = containerd.try_wait() {
                    anyhow::bail!("containerd exited ({status}) before it was ready: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await
            }
        }
    };
    for c in cri.list_containers().await.unwrap_or_default() {
        let _ = cri.stop_container(&c.id, Duration::ZERO).await;
        if let Err(e) = cri.remove_container(&c.id).await {
            println!("[reset] warning: removing container {}: {e:#}", c.id);
        }
    }
    println!("[reset] Removing {} pod sandboxes", sandboxes.len());
    let mut failed = Vec::new();
    for s in sandboxes {
        // Stopping tears the sandbox's network down (CNI DEL) and removes its namespace.
        let removed = match cri.stop_pod_sandbox(&s.id).await {
            Ok(()) => cri.remove_pod_sandbox(&s.id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            failed.push(format!("{}: {e:#}", s.id));
        }
    }
    let left = cri.list_pod_sandboxes().await?;
    if !failed.is_empty() || !left.is_empty() {
        anyhow::bail!("{} pod sandboxes remain: {}", left.len(), failed.join("; "));
    }
    Ok(())
}

/// Unmounts and removes the /var/run/netns/cni-* entries bound to one of `namespaces` (the
/// pods' network namespaces); answers those that could not be removed.
fn remove_pod_namespaces(namespaces: &HashSet<u64>) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Only the runtime's: the node's own namespace may be bound here too.
        if !name.starts_with("cni-") {
            continue;
        }
        let path = e.path();
        let ours = std::fs::metadata(&path).is_ok_and(|m| namespaces.contains(&m.ino()));
        if !ours {
            continue;
        }
        let _ = Command::new("umount")
            .arg(&path)
            .stderr(Stdio::null())
            .status();
        if std::fs::remove_file(&path).is_err() {
            left.push(path.display().to_string());
        }
    }
    left
}

/// Where containerd's runc shims keep runc's state, one directory per containerd namespace.
pub const RUNC_ROOT: &str = "/run/containerd/runc";

/// Deletes the runc state of the containers whose init process is one of `procs` (the
/// root is shared with any other containerd on the machine: only ours go); answers the
/// entries that remain.
fn remove_runc_state(procs: &[kubelet::containerd::Proc]) -> Vec<String> {
    let mut left = Vec::new();
    for root in std::fs::read_dir(RUNC_ROOT).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(root.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else {
                continue;
            };
            let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let pid = state["init_process_pid"].as_i64().unwrap_or(-1);
            let start = state["init_process_start"].as_u64().or_else(|| {
                state["init_process_start"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
            });
            if !procs
                .iter()
                .any(|p| i64::from(p.pid) == pid && Some(p.start) == start)
            {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            let _ = Command::new("runc")
                .arg("--root")
                .arg(root.path())
                .args(["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if entry.path().exists() {
                left.push(entry.path().display().to_string());
            }
        }
    }
    left
}

/// Where network namespaces are bound (`ip netns`, and the CRI's sandboxes).
const NETNS_DIR: &str = "/var/run/netns";

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

#[cfg(test)]
mod tests {
    use super::confirm;

    fn answer(input: &str) -> (bool, String) {
        let mut out = Vec::new();
        let ok = confirm(&mut input.as_bytes(), &mut out);
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn reset_goes_ahead_only_when_the_answer_is_yes() {
        for yes in ["y\n", "Y\n", "yes\n", "YES", " y \n"] {
            assert!(answer(yes).0, "{yes:?}");
        }
        for no in ["n\n", "N\n", "\n", "", "no\n", "yep\n", "sure\n"] {
            assert!(!answer(no).0, "{no:?}");
        }
        let (_, prompt) = answer("n\n");
        assert!(
            prompt.ends_with("[reset] Are you sure you want to proceed? [y/N]: "),
            "{prompt}"
        );
    }
}
