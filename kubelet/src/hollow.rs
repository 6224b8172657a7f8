//! Hollow nodes, as kubemark's: the kubelet's own node and pod logic over a simulated
//! runtime, so one process can stand in for many nodes when testing and benchmarking the
//! control plane. Sandboxes get made-up addresses; every image is present; a container
//! runs `start_delay` after it is started, and one whose command ends in `exit N` exits
//! with N at that moment (so Jobs finish); the others run until stopped. Probes pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_cri::v1 as cri;
use parking_lot::Mutex;

use crate::cri::{Cri, RuntimeService};
use crate::node::{Heartbeat, Machine, NodeConfig};
use crate::pods::worker::PodRuntime;

struct Sandbox {
    config: cri::PodSandboxConfig,
    ready: bool,
    created_at: i64,
    ip: String,
}

impl Sandbox {
    fn state(&self) -> i32 {
        if self.ready {
            cri::PodSandboxState::SandboxReady as i32
        } else {
            cri::PodSandboxState::SandboxNotready as i32
        }
    }
}

struct Container {
    sandbox_id: String,
    config: cri::ContainerConfig,
    created_at: i64,
    /// When StartContainer was called.
    start_requested: Option<i64>,
    /// Set by StopContainer: (finished at, exit code).
    stopped: Option<(i64, i32)>,
}

/// One hollow node's runtime.
pub struct HollowRuntime {
    sandboxes: Mutex<HashMap<String, Sandbox>>,
    containers: Mutex<HashMap<String, Container>>,
    next_id: AtomicU64,
    /// The first three octets of this node's made-up pod addresses.
    subnet: [u8; 3],
    start_delay: Duration,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `exit N` at the end of a container's command line: its exit code.
pub fn exit_code_of(config: &cri::ContainerConfig) -> Option<i32> {
    let line = config
        .command
        .iter()
        .chain(&config.args)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let mut words = line.split_whitespace().rev();
    let code = words.next()?.trim_end_matches(';').parse().ok()?;
    (words.next()? == "exit").then_some(code)
}

impl HollowRuntime {
    /// The runtime of hollow node number `index` (its pods get 10.x.y.z addresses of their own).
    pub fn new(index: usize, start_delay: Duration) -> HollowRuntime {
        HollowRuntime {
            sandboxes: Mutex::new(HashMap::new()),
            containers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            subnet: [10, 128 + ((index >> 8) & 0x7f) as u8, (index & 0xff) as u8],
            start_delay,
        }
    }

    fn id(&self, kind: &str) -> String {
        format!(
            "{kind}{:016x}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn status_of(&self, id: &str, c: &Container) -> cri::ContainerStatus {
        let now = now_nanos();
        let delay = self.start_delay.as_nanos() as i64;
        let (mut state, mut started_at, mut finished_at, mut exit_code, mut reason) = (
            cri::ContainerState::ContainerCreated,
            0,
            0,
            0,
            String::new(),
        );
        if let Some(requested) = c.start_requested {
            let started = requested + delay;
            if now >= started {
                state = cri::ContainerState::ContainerRunning;
                started_at = started;
                if let Some(code) = exit_code_of(&c.config) {
                    state = cri::ContainerState::ContainerExited;
                    (finished_at, exit_code) = (started, code);
                    reason = if code == 0 { "Completed" } else { "Error" }.into();
                }
            }
        }
        if let Some((at, code)) = c.stopped
            && state != cri::ContainerState::ContainerExited
        {
            state = cri::ContainerState::ContainerExited;
            (finished_at, exit_code) = (at, code);
            started_at = started_at.min(at);
            reason = "Error".into();
        }
        cri::ContainerStatus {
            id: id.to_owned(),
            metadata: c.config.metadata.clone(),
            state: state as i32,
            created_at: c.created_at,
            started_at,
            finished_at,
            exit_code,
            image: c.config.image.clone(),
            image_ref: format!("sha256:hollow-{}", image_name(&c.config)),
            reason,
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            ..Default::default()
        }
    }

    fn container_entry(&self, id: &str, c: &Container) -> cri::Container {
        let status = self.status_of(id, c);
        cri::Container {
            id: id.to_owned(),
            pod_sandbox_id: c.sandbox_id.clone(),
            metadata: c.config.metadata.clone(),
            image: c.config.image.clone(),
            image_ref: status.image_ref,
            state: status.state,
            created_at: c.created_at,
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            ..Default::default()
        }
    }
}

fn image_name(config: &cri::ContainerConfig) -> String {
    config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default()
}

fn missing(kind: &'static str, id: &str) -> crate::cri::Error {
    crate::cri::Error::NotFound {
        kind,
        id: id.to_owned(),
    }
}

#[async_trait::async_trait]
impl RuntimeService for HollowRuntime {
    async fn version(&self) -> crate::cri::Result<cri::VersionResponse> {
        Ok(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "hollow".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        _handler: &str,
    ) -> crate::cri::Result<String> {
        let id = self.id("sandbox");
        let mut sandboxes = self.sandboxes.lock();
        let [a, b, c] = self.subnet;
        let ip = format!("{a}.{b}.{c}.{}", 2 + sandboxes.len() % 250);
        sandboxes.insert(
            id.clone(),
            Sandbox {
                config,
                ready: true,
                created_at: now_nanos(),
                ip,
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> crate::cri::Result<()> {
        if let Some(s) = self.sandboxes.lock().get_mut(id) {
            s.ready = false;
        }
        let now = now_nanos();
        for c in self.containers.lock().values_mut() {
            if c.sandbox_id == id && c.stopped.is_none() {
                c.stopped = Some((now, 137));
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> crate::cri::Result<()> {
        self.sandboxes.lock().remove(id);
        self.containers.lock().retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> crate::cri::Result<cri::PodSandboxStatus> {
        let sandboxes = self.sandboxes.lock();
        let s = sandboxes.get(id).ok_or_else(|| missing("sandbox", id))?;
        Ok(cri::PodSandboxStatus {
            id: id.to_owned(),
            metadata: s.config.metadata.clone(),
            state: s.state(),
            created_at: s.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: s.ip.clone(),
                additional_ips: Vec::new(),
            }),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            ..Default::default()
        })
    }

    async fn list_pod_sandboxes(&self) -> crate::cri::Result<Vec<cri::PodSandbox>> {
        Ok(self
            .sandboxes
            .lock()
            .iter()
            .map(|(id, s)| cri::PodSandbox {
                id: id.clone(),
                metadata: s.config.metadata.clone(),
                state: s.state(),
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: String::new(),
            })
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        _sandbox_config: cri::PodSandboxConfig,
    ) -> crate::cri::Result<String> {
        if !self.sandboxes.lock().contains_key(sandbox_id) {
            return Err(missing("sandbox", sandbox_id));
        }
        let id = self.id("container");
        self.containers.lock().insert(
            id.clone(),
            Container {
                sandbox_id: sandbox_id.to_owned(),
                config,
                created_at: now_nanos(),
                start_requested: None,
                stopped: None,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> crate::cri::Result<()> {
        let mut containers = self.containers.lock();
        let c = containers
            .get_mut(id)
            .ok_or_else(|| missing("container", id))?;
        c.start_requested = Some(now_nanos());
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> crate::cri::Result<()> {
        if let Some(c) = self.containers.lock().get_mut(id)
            && c.stopped.is_none()
        {
            // A simulated process honours SIGTERM at once: 128 + 15.
            c.stopped = Some((now_nanos(), 143));
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> crate::cri::Result<()> {
        self.containers.lock().remove(id);
        Ok(())
    }

    async fn container_status(&self, id: &str) -> crate::cri::Result<cri::ContainerStatus> {
        let containers = self.containers.lock();
        let c = containers.get(id).ok_or_else(|| missing("container", id))?;
        Ok(self.status_of(id, c))
    }

    async fn list_containers(&self) -> crate::cri::Result<Vec<cri::Container>> {
        let containers = self.containers.lock();
        Ok(containers
            .iter()
            .map(|(id, c)| self.container_entry(id, c))
            .collect())
    }

    async fn exec_sync(
        &self,
        _id: &str,
        _cmd: &[&str],
        _timeout: Duration,
    ) -> crate::cri::Result<(i32, Vec<u8>, Vec<u8>)> {
        Ok((0, Vec::new(), Vec::new()))
    }

    async fn image_status(&self, image: &str) -> crate::cri::Result<Option<cri::Image>> {
        Ok(Some(cri::Image {
            id: format!("sha256:hollow-{image}"),
            repo_tags: vec![image.to_owned()],
            ..Default::default()
        }))
    }

    async fn pull_image(&self, image: &str) -> crate::cri::Result<String> {
        Ok(format!("sha256:hollow-{image}"))
    }

    async fn list_sandbox_containers(
        &self,
        sandbox_id: &str,
    ) -> crate::cri::Result<Vec<cri::Container>> {
        let containers = self.containers.lock();
        Ok(containers
            .iter()
            .filter(|(_, c)| c.sandbox_id == sandbox_id)
            .map(|(id, c)| self.container_entry(id, c))
            .collect())
    }

    async fn exec(&self, _req: cri::ExecRequest) -> crate::cri::Result<String> {
        Err(crate::cri::Error::Unsupported(
            "a hollow node runs no processes to exec into",
        ))
    }

    async fn attach(&self, _req: cri::AttachRequest) -> crate::cri::Result<String> {
        Err(crate::cri::Error::Unsupported(
            "a hollow node runs no processes to attach to",
        ))
    }

    async fn port_forward(
        &self,
        _sandbox_id: &str,
        _ports: Vec<i32>,
    ) -> crate::cri::Result<String> {
        Err(crate::cri::Error::Unsupported(
            "a hollow node has no network to forward into",
        ))
    }

    async fn container_stats(&self) -> crate::cri::Result<Vec<cri::ContainerStats>> {
        Ok(Vec::new())
    }

    async fn list_images(&self) -> crate::cri::Result<Vec<cri::Image>> {
        Ok(Vec::new())
    }

    fn simulated(&self) -> bool {
        true
    }
}

/// This process's resident memory and CPU time, from /proc/self.
#[derive(Clone, Debug)]
pub struct Usage {
    pub rss_bytes: u64,
    pub cpu: Duration,
    pub at: std::time::Instant,
}

impl Usage {
    pub fn now() -> Usage {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        // utime and stime are fields 14 and 15, after the parenthesized command name.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let ticks: u64 = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|f| f.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        Usage {
            rss_bytes: rss_kib * 1024,
            // USER_HZ is 100 on Linux.
            cpu: Duration::from_millis(ticks * 10),
            at: std::time::Instant::now(),
        }
    }

    /// CPU use between `earlier` and this sample, in percent of one core.
    pub fn cpu_percent_since(&self, earlier: &Usage) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / wall * 100.0
    }
}

/// How the hollow nodes present themselves.
#[derive(Clone, Debug)]
pub struct HollowConfig {
    pub nodes: usize,
    /// Node names are `<prefix><index>`.
    pub name_prefix: String,
    pub machine: Machine,
    pub heartbeat: Heartbeat,
    pub start_delay: Duration,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl HollowConfig {
    /// `nodes` nodes of 4 CPUs, 32 GiB and 110 pods, as upstream's scheduler_perf nodes.
    pub fn new(nodes: usize) -> HollowConfig {
        HollowConfig {
            nodes,
            name_prefix: "hollow-node-".into(),
            machine: Machine {
                cpus: 4,
                memory_bytes: 32 << 30,
                ephemeral_storage_bytes: 100 << 30,
                machine_id: String::new(),
                boot_id: String::new(),
                kernel_version: "hollow".into(),
                os_image: "tetsu hollow node".into(),
            },
            heartbeat: Heartbeat::default(),
            start_delay: Duration::from_millis(100),
            labels: Default::default(),
        }
    }
}

/// Hollow nodes that share one client, hence (over HTTPS) one HTTP/2 connection: each node
/// keeps a watch open, and the apiserver allows 250 streams per connection, as upstream's.
pub const NODES_PER_CLIENT: usize = 50;

/// Runs the hollow nodes until dropped: each registers its Node, keeps its Lease and
/// status fresh, and runs the pods bound to it. Node i talks through `clients[i %
/// clients.len()]` (one client per [`NODES_PER_CLIENT`] nodes, as separate kubelets would
/// have their own connections).
pub async fn run(clients: Vec<kube::Client>, config: HollowConfig) {
    assert!(!clients.is_empty(), "hollow nodes need a client");
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..config.nodes {
        let client = &clients[index % clients.len()];
        let name = format!("{}{index}", config.name_prefix);
        let runtime = Arc::new(HollowRuntime::new(index, config.start_delay));
        let [a, b, c] = runtime.subnet;
        let node_ip = format!("{a}.{b}.{c}.1");
        let node = NodeConfig {
            name: name.clone(),
            node_ip: Some(node_ip.clone()),
            labels: config.labels.clone(),
            runtime_version: format!("hollow://{}", env!("CARGO_PKG_VERSION")),
            kubelet_port: 10250,
        };
        let pods = Arc::new(PodRuntime::new(
            Cri::from_service(runtime),
            client.clone(),
            std::path::PathBuf::from("/nonexistent/hollow-logs"),
            node_ip,
        ));
        tasks.spawn(crate::node::run(
            client.clone(),
            node,
            config.machine.clone(),
            config.heartbeat.clone(),
            Arc::new(|| Ok(())),
        ));
        tasks.spawn(crate::pods::run(pods, name));
        // Spread the registrations a little, as nodes joining a cluster do.
        if index % 50 == 49 {
            tokio::task::yield_now().await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(command: &[&str], args: &[&str]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn exit_codes_from_the_command_line() {
        assert_eq!(exit_code_of(&config(&["sh", "-c"], &["exit 3"])), Some(3));
        assert_eq!(
            exit_code_of(&config(&["sh", "-c", "echo; exit 0"], &[])),
            Some(0)
        );
        assert_eq!(exit_code_of(&config(&["sleep", "3600"], &[])), None);
        assert_eq!(exit_code_of(&config(&[], &[])), None);
    }

    #[tokio::test]
    async fn containers_start_after_the_delay_and_stop() {
        let r = HollowRuntime::new(3, Duration::from_millis(50));
        let sandbox = r.run_pod_sandbox(Default::default(), "").await.unwrap();
        assert_eq!(
            r.pod_sandbox_status(&sandbox)
                .await
                .unwrap()
                .network
                .unwrap()
                .ip,
            "10.128.3.2"
        );
        let long = r
            .create_container(&sandbox, config(&["sleep", "1d"], &[]), Default::default())
            .await
            .unwrap();
        let short = r
            .create_container(
                &sandbox,
                config(&["sh", "-c", "exit 2"], &[]),
                Default::default(),
            )
            .await
            .unwrap();
        r.start_container(&long).await.unwrap();
        r.start_container(&short).await.unwrap();
        let state = |s: cri::ContainerStatus| cri::ContainerState::try_from(s.state).unwrap();
        assert_eq!(
            state(r.container_status(&long).await.unwrap()),
            cri::ContainerState::ContainerCreated
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            state(r.container_status(&long).await.unwrap()),
            cri::ContainerState::ContainerRunning
        );
        let s = r.container_status(&short).await.unwrap();
        assert_eq!(
            (state(s.clone()), s.exit_code),
            (cri::ContainerState::ContainerExited, 2)
        );
        r.stop_container(&long, Duration::ZERO).await.unwrap();
        let s = r.container_status(&long).await.unwrap();
        assert_eq!(
            (state(s.clone()), s.exit_code),
            (cri::ContainerState::ContainerExited, 143)
        );
        r.remove_pod_sandbox(&sandbox).await.unwrap();
        assert!(r.list_containers().await.unwrap().is_empty());
    }
}
