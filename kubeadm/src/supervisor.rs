//! The supervisor: what systemd and the kubelet's static pods do for upstream kubeadm. It
//! starts the node's processes in order (each waits for the one before to be up), appends
//! their output to `<data-dir>/logs/<name>.log`, restarts a process that exits (back-off
//! 1 s doubling to 30 s, reset after a minute of running), and on SIGTERM or Ctrl-C stops
//! them in reverse order (SIGTERM, then SIGKILL after a grace period). Each child runs in
//! its own process group, so a terminal's Ctrl-C reaches only the supervisor.

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::components::{Component, Ready, components, containerd_config, kubelet_config};
use crate::config::{BUSYBOX_IMAGE, DNS_IMAGE, Layout, NodeConfig, PAUSE_IMAGE};

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a process must run before its back-off starts over.
const STABLE: Duration = Duration::from_secs(60);
/// How long each process may take to stop after SIGTERM (the kubelet and the apiserver
/// finish their requests; containerd leaves containers to their shims).
const STOP_GRACE: Duration = Duration::from_secs(15);
const READY_TIMEOUT: Duration = Duration::from_secs(120);

struct Running {
    component: Component,
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

/// Runs the node until asked to stop.
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let cfg = NodeConfig::load(data_dir)?;
    let layout = Layout::new(data_dir);
    if let Some(pid) = running_supervisor(&layout) {
        anyhow::bail!(
            "another supervisor (pid {pid}) already runs the node in {}",
            data_dir.display()
        );
    }
    std::fs::write(layout.pid_file(), std::process::id().to_string())?;
    let result = supervise(&cfg, &layout).await;
    let _ = std::fs::remove_file(layout.pid_file());
    result
}

/// The pid of a live supervisor for this data dir, if one runs.
pub fn running_supervisor(layout: &Layout) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(layout.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_ours = String::from_utf8_lossy(&cmdline).contains("supervise");
    (is_ours && pid != std::process::id()).then_some(pid)
}

/// The pid of the supervised process `component` (kube-scheduler, ...) of this data dir,
/// if it runs: its pid file names a live process started from this data dir.
pub fn component_pid(layout: &Layout, component: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(layout.root.join("pids").join(component))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(&*layout.root.to_string_lossy())
        .then_some(pid)
}

/// Prepares the directories and the configuration files of containerd and the kubelet.
pub fn prepare(cfg: &NodeConfig, layout: &Layout) -> anyhow::Result<()> {
    for dir in [
        layout.logs(),
        layout.pod_logs(),
        layout.manifests(),
        layout.cni_conf_dir(),
        layout.kubelet_dir(),
        layout.containerd_dir(),
        layout.root.join("pids"),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(
        layout.containerd_dir().join("config.toml"),
        containerd_config(layout),
    )?;
    std::fs::write(layout.kubelet_config(), kubelet_config(cfg))?;
    // A socket left by a containerd that stopped would pass for the new one's readiness.
    let _ = std::fs::remove_file(layout.containerd_socket());
    Ok(())
}

async fn supervise(cfg: &NodeConfig, layout: &Layout) -> anyhow::Result<()> {
    prepare(cfg, layout)?;
    let mut procs: Vec<Running> = Vec::new();
    let stop = common::shutdown::signal();
    tokio::pin!(stop);
    for component in components(cfg, layout) {
        let mut running = Running {
            child: None,
            started: Instant::now(),
            backoff: Duration::from_secs(1),
            restart_at: None,
            component,
        };
        if let Err(e) = start(&mut running, layout) {
            // What started before goes again: no half-started node is left behind.
            stop_all(&mut procs).await;
            return Err(e);
        }
        let ready = wait_ready(&running.component);
        tokio::select! {
            r = ready => if let Err(e) = r {
                tracing::warn!(component = running.component.name, "{e:#}; going on");
            },
            _ = &mut stop => {
                procs.push(running);
                stop_all(&mut procs).await;
                return Ok(());
            }
        }
        if running.component.name == "containerd" {
            // Images: no registry is reachable, so the sandbox image and busybox are built
            // from busybox-static, and the DNS server's from its binary, and imported
            // before the kubelet asks for them.
            let socket = layout.containerd_socket();
            let dns = cfg.bin_dir.join("kube-dns");
            if let Err(e) =
                tokio::task::spawn_blocking(move || ensure_images(&socket, &dns)).await?
            {
                tracing::error!("importing the node's images: {e:#}");
            }
        }
        procs.push(running);
    }
    tracing::info!("all components started");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => watch(&mut procs, layout),
            _ = &mut stop => break,
        }
    }
    stop_all(&mut procs).await;
    Ok(())
}

/// Restarts what exited, after its back-off.
fn watch(procs: &mut [Running], layout: &Layout) {
    let now = Instant::now();
    for p in procs.iter_mut() {
        if let Some(child) = p.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            p.child = None;
            if now.duration_since(p.started) > STABLE {
                p.backoff = Duration::from_secs(1);
            }
            tracing::warn!(
                component = p.component.name,
                %status,
                "exited; restarting in {:?} (see {})",
                p.backoff,
                log_path(layout, p.component.name).display()
            );
            p.restart_at = Some(now + p.backoff);
            p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
        }
        if p.child.is_none()
            && p.restart_at.is_some_and(|t| t <= now)
            && let Err(e) = start(p, layout)
        {
            tracing::error!(component = p.component.name, "restart failed: {e:#}");
            p.restart_at = Some(now + p.backoff);
        }
    }
}

fn log_path(layout: &Layout, name: &str) -> std::path::PathBuf {
    layout.logs().join(format!("{name}.log"))
}

fn start(p: &mut Running, layout: &Layout) -> anyhow::Result<()> {
    let c = &p.component;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(layout, c.name))?;
    let child = Command::new(&c.program)
        .args(&c.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", c.program.display()))?;
    tracing::info!(component = c.name, pid = child.id(), "started");
    // Kept so `kubeadm reset` finds processes a killed supervisor left behind.
    let _ = std::fs::write(
        layout.root.join("pids").join(c.name),
        child.id().to_string(),
    );
    p.child = Some(child);
    p.started = Instant::now();
    p.restart_at = None;
    Ok(())
}

async fn wait_ready(c: &Component) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let up = match &c.ready {
            Ready::Started => true,
            Ready::Path(path) => path.exists(),
            Ready::Port(port) => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .is_ok(),
        };
        if up {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{} not up after {READY_TIMEOUT:?}", c.name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops every process, the last started first.
async fn stop_all(procs: &mut [Running]) {
    for p in procs.iter_mut().rev() {
        let Some(mut child) = p.child.take() else {
            continue;
        };
        let name = p.component.name;
        tracing::info!(component = name, "stopping");
        terminate(&mut child, STOP_GRACE).await;
    }
    tracing::info!("all components stopped");
}

/// SIGTERM, then SIGKILL if it has not exited within `grace`.
pub async fn terminate(child: &mut Child, grace: Duration) {
    signal(child.id(), rustix::process::Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `sig` to process `pid`; answers whether it was delivered.
pub fn signal(pid: u32, sig: rustix::process::Signal) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    rustix::process::kill_process(pid, sig).is_ok()
}

/// Imports the sandbox image, busybox and the DNS server (built from `dns_program`) into
/// containerd unless they are there.
pub fn ensure_images(socket: &Path, dns_program: &Path) -> anyhow::Result<()> {
    use kubelet::images::{
        ImageSpec, Source, build_and_import, busybox_layer, import, oci_archive, pause,
    };
    let out = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .context("running ctr (apt-get install containerd)")?;
    let present: HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    let mut layer = None;
    for spec in [pause(PAUSE_IMAGE), ImageSpec::new(BUSYBOX_IMAGE)] {
        if present.contains(&spec.name) {
            continue;
        }
        let layer = match &layer {
            Some(l) => l,
            None => layer.insert(busybox_layer()?),
        };
        import(socket, &oci_archive(&spec, layer)?)?;
        tracing::info!(image = %spec.name, "imported");
    }
    if !present.contains(DNS_IMAGE) {
        let started = std::time::Instant::now();
        let program = Source::Program(dns_program.to_owned());
        build_and_import(socket, DNS_IMAGE, &program, Vec::new(), Vec::new())
            .with_context(|| format!("building {DNS_IMAGE} from {}", dns_program.display()))?;
        tracing::info!(image = DNS_IMAGE, took = ?started.elapsed(), "imported");
    }
    Ok(())
}

/// Starts `kubeadm supervise` detached from this terminal (its own process group, output
/// to `<data-dir>/logs/kubeadm.log`); answers its pid.
pub fn spawn_detached(layout: &Layout) -> anyhow::Result<u32> {
    std::fs::create_dir_all(layout.logs())?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.logs().join("kubeadm.log"))?;
    let exe = std::env::current_exe().context("finding the kubeadm binary")?;
    let child = Command::new(exe)
        .arg("supervise")
        .arg("--data-dir")
        .arg(&layout.root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the supervisor")?;
    Ok(child.id())
}
