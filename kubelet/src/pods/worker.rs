//! One pod's sync, level-based like upstream's SyncPod: make sure its sandbox runs, start
//! or restart each container as the restart policy says (CrashLoopBackOff 10 s doubling to
//! 5 minutes), report why a container cannot run (ErrImagePull, ErrImageNeverPull), and post
//! the pod's status. A pod being deleted is stopped within its grace period, its sandbox
//! removed, and its API object deleted for good.

use common::api_errors::{is_conflict, is_not_found};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use parking_lot::Mutex;
use serde_json::json;

use super::spec::{self, CONTAINER_NAME, POD_UID};
use super::status::{ContainerView, SandboxView, pod_status, terminal_status};
use super::volumes::{self, Volume};
use crate::cri::Cri;

const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting is no longer crash-looping.
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// What a sync knows that each container's step needs.
struct SyncCtx<'a> {
    uid: &'a str,
    volumes: &'a HashMap<String, Volume>,
    pod_ip: &'a str,
    sandbox_id: &'a str,
    sandbox_config: &'a cri::PodSandboxConfig,
}

/// How long a pod's set-up volumes are trusted before ConfigMaps and Secrets are read again
/// (upstream's kubelet resyncs volumes about every minute).
pub const VOLUME_RESYNC: Duration = Duration::from_secs(60);

/// How soon a pod is looked at again when it waits on something the runtime's relist
/// does not show: a probe coming due, an image, a ConfigMap or Secret of its environment.
pub const RESYNC: Duration = Duration::from_secs(1);

/// How often a pod is synced when nothing wakes its worker (upstream's --sync-frequency).
pub const SYNC_FREQUENCY: Duration = Duration::from_secs(60);

/// The delay before restarting a container that has exited `restarts` times already: the
/// first restart is immediate, then 10 s doubling to 5 minutes.
pub fn crash_backoff(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    BACKOFF_BASE
        .saturating_mul(1 << (restarts - 1).min(10))
        .min(BACKOFF_MAX)
}

/// The delay before restarting a container whose run `attempt` ended after `ran`; a run
/// of [`BACKOFF_RESET`] or more starts the back-off over (`reset` remembers where).
fn backoff_after(attempt: u32, ran: Duration, reset: &mut u32) -> Duration {
    if ran >= BACKOFF_RESET {
        *reset = attempt;
    }
    crash_backoff(attempt - (*reset).min(attempt))
}

/// A pod's volumes by name, as set up on the node.
type Volumes = Arc<HashMap<String, Volume>>;

/// Runs pods on this node through the runtime.
pub struct PodRuntime {
    pub cri: Cri,
    pub client: kube::Client,
    pub log_root: PathBuf,
    /// The kubelet's state directory: pod volumes live under `<root_dir>/pods/<uid>`.
    pub root_dir: PathBuf,
    pub host_ip: String,
    /// The pods bound to this node as last seen, by "namespace/name" (the kubelet API's view).
    pub pods: parking_lot::RwLock<HashMap<String, Arc<Pod>>>,
    /// Image pull failures per (pod uid, container), for ImagePullBackOff.
    pull_failures: Mutex<HashMap<(String, String), u32>>,
    /// Bounds the sandbox and container starts in flight: the runtime's work (runc, shims,
    /// namespaces, cgroups) is CPU-bound, and a burst of pods started all at once finishes
    /// all at once, late; a few at a time, the first pods run early.
    starts: tokio::sync::Semaphore,
    prober: super::probes::Prober,
    /// Per (pod uid, container): the attempt at which the back-off last started over.
    backoff_resets: Mutex<HashMap<(String, String), u32>>,
    /// How long set-up volumes are trusted ([`VOLUME_RESYNC`] by default).
    volume_resync: Duration,
    /// Each pod's volumes as last set up, and when.
    volumes: Mutex<HashMap<String, (Instant, Volumes)>>,
    /// The last FailedMount message per pod, so a failure is reported once, not per sync.
    mount_failures: Mutex<HashMap<String, String>>,
    /// Service-account tokens of projected volumes.
    tokens: super::tokens::TokenManager,
    /// Pods being deleted whose final status is written, awaiting the confirming delete
    /// (a retry must not rebuild it from containers already removed).
    reported_final: Mutex<std::collections::HashSet<String>>,
    /// Events (made on first use: hollow nodes rarely need one).
    recorder: std::sync::OnceLock<Arc<common::events::Recorder>>,
    /// How pods resolve names (--cluster-dns, --cluster-domain, --resolv-conf).
    dns: super::dns::Settings,
    /// Wakes a pod's worker when the runtime's relist shows its containers changed.
    pub pleg: super::pleg::Pleg,
}

impl PodRuntime {
    pub fn new(cri: Cri, client: kube::Client, log_root: PathBuf, host_ip: String) -> PodRuntime {
        PodRuntime {
            cri,
            client,
            root_dir: log_root.with_file_name("kubelet"),
            log_root,
            host_ip,
            pods: Default::default(),
            pull_failures: Mutex::new(HashMap::new()),
            starts: tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            prober: Default::default(),
            volume_resync: VOLUME_RESYNC,
            backoff_resets: Mutex::new(HashMap::new()),
            volumes: Mutex::new(HashMap::new()),
            mount_failures: Mutex::new(HashMap::new()),
            tokens: Default::default(),
            reported_final: Default::default(),
            recorder: std::sync::OnceLock::new(),
            dns: Default::default(),
            pleg: Default::default(),
        }
    }

    /// The pod's sandboxes (any state), newest attempt last.
    async fn sandboxes(&self, uid: &str) -> crate::Result<Vec<cri::PodSandbox>> {
        let mut out: Vec<cri::PodSandbox> = self
            .cri
            .list_pod_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.labels.get(POD_UID).map(String::as_str) == Some(uid))
            .collect();
        out.sort_by_key(|s| s.metadata.as_ref().map_or(0, |m| m.attempt));
        Ok(out)
    }

    /// Sets the state directory (volumes); the default is next to the log directory.
    pub fn with_root_dir(mut self, root_dir: PathBuf) -> PodRuntime {
        self.root_dir = root_dir;
        self
    }

    /// Sets how pods resolve names.
    pub fn with_dns(mut self, dns: super::dns::Settings) -> PodRuntime {
        self.dns = dns;
        self
    }

    /// Sets how often ConfigMaps and Secrets behind volumes are read again.
    pub fn with_volume_resync(mut self, every: Duration) -> PodRuntime {
        self.volume_resync = every;
        self
    }

    /// Forgets a pod that is gone: its volumes' files and what was remembered of it.
    pub fn release(&self, uid: &str) {
        volumes::teardown(&self.root_dir, uid);
        self.volumes.lock().remove(uid);
        self.mount_failures.lock().remove(uid);
        self.tokens.forget_pod(uid);
        self.backoff_resets.lock().retain(|(u, _), _| u != uid);
        self.pleg.forget(uid);
    }

    /// Forgets the final status written for a pod that is gone from the API.
    pub fn forget_final_status(&self, uid: &str) {
        self.reported_final.lock().remove(uid);
    }

    /// The pod's volumes, set up again when older than the resync period.
    async fn pod_volumes(&self, pod: &Pod) -> Result<Volumes, String> {
        let uid = spec::uid(pod);
        if self.cri.simulated() {
            return Ok(Arc::default());
        }
        if let Some((at, v)) = self.volumes.lock().get(uid)
            && at.elapsed() < self.volume_resync
        {
            return Ok(v.clone());
        }
        let sources = volumes::Sources {
            client: &self.client,
            tokens: &self.tokens,
        };
        let v = Arc::new(volumes::setup(&sources, &self.root_dir, pod, &self.host_ip).await?);
        self.volumes
            .lock()
            .insert(uid.to_owned(), (Instant::now(), v.clone()));
        self.mount_failures.lock().remove(uid);
        Ok(v)
    }

    /// A FailedMount warning event, once per distinct message.
    fn report_mount_failure(&self, pod: &Pod, message: &str) {
        let mut last = self.mount_failures.lock();
        if last.get(spec::uid(pod)).map(String::as_str) == Some(message) {
            return;
        }
        last.insert(spec::uid(pod).to_owned(), message.to_owned());
        self.warn(pod, "FailedMount", message.to_owned());
    }

    /// The CRI runtime handler of the pod's RuntimeClass ("" for the runtime's default), as
    /// upstream's runtime class manager looks it up.
    async fn runtime_handler(&self, pod: &Pod) -> crate::Result<String> {
        let Some(name) = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
            .filter(|n| !n.is_empty())
        else {
            return Ok(String::new());
        };
        let classes: Api<RuntimeClass> = Api::all(self.client.clone());
        match classes.get_opt(name).await? {
            Some(class) => Ok(class.handler),
            // Upstream's lister names the resource so.
            None => Err(crate::Error::Invalid(format!(
                "runtimeclass.node.k8s.io {name:?} not found"
            ))),
        }
    }

    /// A Warning event about the pod, logged too.
    fn warn(&self, pod: &Pod, reason: &str, message: String) {
        tracing::warn!(pod = ?pod.metadata.name, reason, "{message}");
        let recorder = self
            .recorder
            .get_or_init(|| common::events::Recorder::new(self.client.clone(), "kubelet"));
        recorder.warning(&common::events::Involved::of(pod), reason, message);
    }

    /// The pod bound here as `namespace/name`, if any.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods
            .read()
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// The pod's newest sandbox that is ready.
    pub async fn ready_sandbox(&self, uid: &str) -> crate::Result<Option<cri::PodSandbox>> {
        Ok(self
            .sandboxes(uid)
            .await?
            .into_iter()
            .rev()
            .find(|s| s.state == cri::PodSandboxState::SandboxReady as i32))
    }

    /// The runs of one of the pod's containers in its newest sandbox, newest first.
    pub async fn container_runs(
        &self,
        uid: &str,
        name: &str,
    ) -> crate::Result<Vec<cri::ContainerStatus>> {
        let Some(sandbox) = self.sandboxes(uid).await?.pop() else {
            return Ok(Vec::new());
        };
        let mut runs = Vec::new();
        for c in self.cri.list_sandbox_containers(&sandbox.id).await? {
            if c.labels.get(CONTAINER_NAME).map(String::as_str) == Some(name) {
                runs.push(self.cri.container_status(&c.id).await?);
            }
        }
        runs.sort_by_key(|s| std::cmp::Reverse(s.metadata.as_ref().map_or(0, |m| m.attempt)));
        Ok(runs)
    }

    /// Stops a pod being deleted as upstream does: the preStop hooks of its running
    /// containers first (together, bounded by the grace period), then SIGTERM and, after
    /// what is left of the grace period, SIGKILL; then removes its containers and sandboxes.
    pub async fn stop_pod(&self, pod: &Pod, grace: Duration) -> crate::Result<()> {
        self.stop_containers(pod, grace).await?;
        self.kill_pod(spec::uid(pod), Duration::ZERO).await
    }

    /// The preStop hooks, SIGTERM and SIGKILL of [`Self::stop_pod`], keeping the exited
    /// containers (their exit codes make the pod's final status).
    async fn stop_containers(&self, pod: &Pod, grace: Duration) -> crate::Result<()> {
        let started = Instant::now();
        let uid = spec::uid(pod);
        if let Some(sandbox) = self.ready_sandbox(uid).await? {
            let pod_ip = if spec::host_network(pod) {
                self.host_ip.clone()
            } else {
                let status = self.cri.pod_sandbox_status(&sandbox.id).await?;
                status.network.map(|n| n.ip).unwrap_or_default()
            };
            let running = self.cri.list_sandbox_containers(&sandbox.id).await?;
            let hooks = pod.spec.iter().flat_map(|s| &s.containers).filter_map(|c| {
                let hook = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
                let id = running.iter().find(|r| {
                    r.state == cri::ContainerState::ContainerRunning as i32
                        && r.labels.get(CONTAINER_NAME) == Some(&c.name)
                })?;
                Some(self.pre_stop(pod, c, hook, &id.id, &pod_ip, grace))
            });
            futures::future::join_all(hooks).await;
        }
        let grace = grace.saturating_sub(started.elapsed());
        for sandbox in self.sandboxes(uid).await? {
            let containers = self.cri.list_sandbox_containers(&sandbox.id).await?;
            self.stop_running(&containers, grace).await?;
        }
        Ok(())
    }

    /// Stops the running ones of `containers` at once, each with `grace` after SIGTERM.
    async fn stop_running(
        &self,
        containers: &[cri::Container],
        grace: Duration,
    ) -> crate::Result<()> {
        let stops = containers
            .iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .map(|c| self.cri.stop_container(&c.id, grace));
        for r in futures::future::join_all(stops).await {
            r?;
        }
        Ok(())
    }

    /// The final status of a pod whose containers are stopped: each container's last run
    /// in the newest sandbox, every one terminated, the phase terminal.
    async fn final_status(&self, pod: &Pod) -> crate::Result<PodStatus> {
        let mut runs: HashMap<String, Vec<cri::ContainerStatus>> = HashMap::new();
        if let Some(sandbox) = self.sandboxes(spec::uid(pod)).await?.pop() {
            for c in self.cri.list_sandbox_containers(&sandbox.id).await? {
                let name = c.labels.get(CONTAINER_NAME).cloned().unwrap_or_default();
                runs.entry(name)
                    .or_default()
                    .push(self.cri.container_status(&c.id).await?);
            }
        }
        let mut view = |name: &str| {
            let mut r = runs.remove(name).unwrap_or_default();
            r.sort_by_key(|s| s.metadata.as_ref().map_or(0, |m| m.attempt));
            let current = r.pop();
            ContainerView {
                restart_count: current
                    .as_ref()
                    .and_then(|s| s.metadata.as_ref())
                    .map_or(0, |m| m.attempt as i32),
                previous: r.pop(),
                current,
                ..Default::default()
            }
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let init: BTreeMap<String, ContainerView> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), view(&c.name)))
            .filter(|(_, v)| v.current.is_some())
            .collect();
        let views: BTreeMap<String, ContainerView> = spec
            .containers
            .iter()
            .map(|c| (c.name.clone(), view(&c.name)))
            .collect();
        // The sandbox is about to go; the pod keeps the address it had.
        let sandbox = SandboxView {
            ready: false,
            ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .filter(|_| !spec::host_network(pod))
                .unwrap_or_default(),
        };
        Ok(terminal_status(pod, &sandbox, &init, &views, &self.host_ip))
    }

    /// One container's preStop hook; a failure is an event, not a reason to keep running.
    async fn pre_stop(
        &self,
        pod: &Pod,
        c: &Container,
        hook: &k8s_openapi::api::core::v1::LifecycleHandler,
        id: &str,
        pod_ip: &str,
        grace: Duration,
    ) {
        let ok = if let Some(sleep) = &hook.sleep {
            let _ = tokio::time::timeout(
                grace,
                tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)),
            )
            .await;
            true
        } else {
            // The handler is a probe's action, with the grace period for its timeout.
            let action = k8s_openapi::api::core::v1::Probe {
                exec: hook.exec.clone(),
                http_get: hook.http_get.clone(),
                tcp_socket: hook.tcp_socket.clone(),
                timeout_seconds: Some(grace.as_secs().max(1) as i32),
                ..Default::default()
            };
            let run = super::probes::run_probe(&self.cri, id, c, &action, pod_ip);
            tokio::time::timeout(grace, run).await.unwrap_or(false)
        };
        if !ok {
            let message = format!("PreStopHook failed for container {:?}", c.name);
            self.warn(pod, "FailedPreStopHook", message);
        }
    }

    /// Stops what still runs of a finished pod and its sandboxes, keeping them: `kubectl
    /// logs` of a completed pod reads the exited containers' logs.
    async fn finish_pod(&self, uid: &str) -> crate::Result<()> {
        for sandbox in self.sandboxes(uid).await? {
            if sandbox.state != cri::PodSandboxState::SandboxReady as i32 {
                continue;
            }
            for c in self.cri.list_sandbox_containers(&sandbox.id).await? {
                if c.state == cri::ContainerState::ContainerRunning as i32 {
                    self.cri.stop_container(&c.id, Duration::ZERO).await?;
                }
            }
            self.cri.stop_pod_sandbox(&sandbox.id).await?;
        }
        Ok(())
    }

    /// Stops every container of the pod (SIGTERM, then SIGKILL after `grace`) and removes
    /// its sandboxes.
    pub async fn kill_pod(&self, uid: &str, grace: Duration) -> crate::Result<()> {
        for sandbox in self.sandboxes(uid).await? {
            let containers = self.cri.list_sandbox_containers(&sandbox.id).await?;
            self.stop_running(&containers, grace).await?;
            for c in &containers {
                self.cri.remove_container(&c.id).await?;
            }
            self.cri.stop_pod_sandbox(&sandbox.id).await?;
            self.cri.remove_pod_sandbox(&sandbox.id).await?;
        }
        Ok(())
    }

    /// Makes sure the image is there; the waiting reason and message when it is not.
    async fn ensure_image(&self, pod: &Pod, c: &Container) -> Result<(), (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        match self.cri.image_status(&image).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => {
                return Err((
                    "ErrImageInspect".into(),
                    format!("Failed to inspect image {image:?}: {e}"),
                ));
            }
        }
        if c.image_pull_policy.as_deref() == Some("Never") {
            return Err((
                "ErrImageNeverPull".into(),
                format!("Container image {image:?} is not present with pull policy of Never"),
            ));
        }
        let key = (spec::uid(pod).to_owned(), c.name.clone());
        let failures = self.pull_failures.lock().get(&key).copied().unwrap_or(0);
        match self.cri.pull_image(&image).await {
            Ok(_) => {
                self.pull_failures.lock().remove(&key);
                Ok(())
            }
            Err(e) => {
                self.pull_failures.lock().insert(key, failures + 1);
                if failures == 0 {
                    Err((
                        "ErrImagePull".into(),
                        format!("failed to pull image {image:?}: {e}"),
                    ))
                } else {
                    Err((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image {image:?}"),
                    ))
                }
            }
        }
    }

    /// Syncs the pod; answers when to look again (`None`: the pod is gone).
    pub async fn sync(&self, pod: &Pod) -> crate::Result<Option<Duration>> {
        let uid = spec::uid(pod).to_owned();
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            tracing::info!(pod = %pod.name_any(), grace, "killing the pod's containers with a grace period");
            self.stop_containers(pod, Duration::from_secs(grace))
                .await?;
            // As upstream's status manager: the final status first (a watcher sees every
            // container terminated and the phase terminal), the delete only once the API
            // holds a terminal phase and nothing of the pod is left on the node.
            if !terminal_phase(pod) && !self.reported_final.lock().contains(&uid) {
                let status = self.final_status(pod).await?;
                self.post_status(pod, status).await?;
                self.reported_final.lock().insert(uid.clone());
            }
            self.kill_pod(&uid, Duration::ZERO).await?;
            self.release(&uid);
            self.confirm_deletion(pod).await?;
            self.reported_final.lock().remove(&uid);
            tracing::info!(pod = %pod.name_any(), "pod stopped; deletion confirmed");
            return Ok(None);
        }
        if terminal_phase(pod) {
            // Finished for good: nothing runs any more and the sandbox's network is freed,
            // but the exited containers stay (with their logs) until the pod is deleted.
            self.finish_pod(&uid).await?;
            return Ok(Some(Duration::from_secs(60)));
        }
        let volumes = match self.pod_volumes(pod).await {
            Ok(v) => v,
            Err(message) => {
                // As upstream: no sandbox until the volumes are ready; the pod waits in
                // ContainerCreating and the event says why.
                self.report_mount_failure(pod, &message);
                let waiting = ContainerView {
                    waiting: Some(("ContainerCreating".into(), String::new())),
                    ..Default::default()
                };
                let views = pod
                    .spec
                    .iter()
                    .flat_map(|s| &s.containers)
                    .map(|c| (c.name.clone(), waiting.clone()))
                    .collect();
                let status = pod_status(
                    pod,
                    &SandboxView::default(),
                    &BTreeMap::new(),
                    &views,
                    &self.host_ip,
                );
                self.post_status(pod, status).await?;
                return Ok(Some(Duration::from_secs(2)));
            }
        };
        let sandboxes = self.sandboxes(&uid).await?;
        let ready = sandboxes
            .iter()
            .rev()
            .find(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .cloned();
        let sandbox_config =
            spec::sandbox_config(pod, &self.log_root, sandboxes.len() as u32, &self.dns);
        let sandbox_id = match ready {
            Some(s) => s.id,
            None => {
                // A sandbox that died takes its containers with it: start over in a new one.
                for old in &sandboxes {
                    let _ = self.cri.stop_pod_sandbox(&old.id).await;
                }
                if !self.cri.simulated() {
                    std::fs::create_dir_all(&sandbox_config.log_directory).map_err(
                        crate::error::io(format!("creating {}", sandbox_config.log_directory)),
                    )?;
                }
                // Never closed, so a turn always comes.
                let _turn = self.starts.acquire().await.ok();
                let created = match self.runtime_handler(pod).await {
                    Ok(handler) => self
                        .cri
                        .run_pod_sandbox(sandbox_config.clone(), &handler)
                        .await
                        .map_err(crate::Error::from),
                    Err(e) => Err(e),
                };
                match created {
                    Ok(id) => id,
                    Err(e) => {
                        self.warn(
                            pod,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        return Err(e);
                    }
                }
            }
        };
        let sandbox_ip = self
            .cri
            .pod_sandbox_status(&sandbox_id)
            .await?
            .network
            .map(|n| n.ip)
            .unwrap_or_default();
        let pod_ip = if spec::host_network(pod) {
            self.host_ip.clone()
        } else {
            sandbox_ip.clone()
        };

        // Each container's attempts in this sandbox, by name.
        let mut attempts: HashMap<String, Vec<cri::ContainerStatus>> = HashMap::new();
        for c in self.cri.list_sandbox_containers(&sandbox_id).await? {
            let name = c.labels.get(CONTAINER_NAME).cloned().unwrap_or_default();
            if let Ok(s) = self.cri.container_status(&c.id).await {
                attempts.entry(name).or_default().push(s);
            }
        }
        let restart_policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        // The relist wakes the worker when a container exits or a sandbox dies; the steps
        // below shorten this for what it cannot see.
        let mut requeue = SYNC_FREQUENCY.min(self.volume_resync);
        let spec = pod.spec.clone().unwrap_or_default();
        let x = SyncCtx {
            uid: &uid,
            volumes: &volumes,
            pod_ip: &pod_ip,
            sandbox_id: &sandbox_id,
            sandbox_config: &sandbox_config,
        };
        // Init containers run one at a time, each to success, before any app container;
        // they are restarted on failure unless the pod's policy is Never.
        let init_policy = if restart_policy == "Never" {
            "Never"
        } else {
            "OnFailure"
        };
        let mut init_views: BTreeMap<String, ContainerView> = BTreeMap::new();
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            let runs = attempts.remove(&c.name).unwrap_or_default();
            let view = self
                .step_container(pod, &x, c, runs, init_policy, &mut requeue)
                .await?;
            look_again_soon(c, &view, &mut requeue);
            let done = view.current.as_ref().is_some_and(|s| {
                s.state == cri::ContainerState::ContainerExited as i32 && s.exit_code == 0
            });
            init_views.insert(c.name.clone(), view);
            if !done {
                initialized = false;
                break;
            }
        }
        let mut views: BTreeMap<String, ContainerView> = BTreeMap::new();
        for c in &spec.containers {
            if !initialized {
                let waiting = Some(("PodInitializing".into(), String::new()));
                views.insert(
                    c.name.clone(),
                    ContainerView {
                        waiting,
                        ..Default::default()
                    },
                );
                continue;
            }
            let runs = attempts.remove(&c.name).unwrap_or_default();
            let view = self
                .step_container(pod, &x, c, runs, &restart_policy, &mut requeue)
                .await?;
            look_again_soon(c, &view, &mut requeue);
            views.insert(c.name.clone(), view);
        }
        let sandbox_view = SandboxView {
            ready: true,
            ip: sandbox_ip,
        };
        let status = pod_status(pod, &sandbox_view, &init_views, &views, &self.host_ip);
        self.post_status(pod, status).await?;
        Ok(Some(requeue))
    }

    /// One container's step: start its first run, restart it as `restart_policy` says
    /// (with CrashLoopBackOff), probe it while it runs; answers what the status shows.
    async fn step_container(
        &self,
        pod: &Pod,
        x: &SyncCtx<'_>,
        c: &Container,
        mut runs: Vec<cri::ContainerStatus>,
        restart_policy: &str,
        requeue: &mut Duration,
    ) -> crate::Result<ContainerView> {
        runs.sort_by_key(|s| s.metadata.as_ref().map_or(0, |m| m.attempt));
        // Keep the latest run and the one before it (for `kubectl logs --previous`).
        while runs.len() > 2 {
            let old = runs.remove(0);
            let _ = self.cri.remove_container(&old.id).await;
        }
        let latest = runs.last().cloned();
        let previous = (runs.len() == 2).then(|| runs[0].clone());
        let attempt = latest
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map_or(0, |m| m.attempt);
        let mut view = ContainerView {
            current: latest.clone(),
            previous,
            restart_count: attempt as i32,
            ..Default::default()
        };
        let start_attempt = match &latest {
            None => Some(0),
            Some(s) if s.state == cri::ContainerState::ContainerExited as i32 => {
                let restart = match restart_policy {
                    "Never" => false,
                    "OnFailure" => s.exit_code != 0,
                    _ => true,
                };
                if restart {
                    // A run of 10 minutes or more ends the crash loop: the back-off starts over.
                    // A run that never started (StartError) ran for nothing.
                    let ran = if s.started_at > 0 {
                        Duration::from_nanos((s.finished_at - s.started_at).max(0) as u64)
                    } else {
                        Duration::ZERO
                    };
                    let delay = {
                        let mut resets = self.backoff_resets.lock();
                        let reset = resets
                            .entry((x.uid.to_owned(), c.name.clone()))
                            .or_insert(0);
                        backoff_after(attempt, ran, reset)
                    };
                    let finished =
                        SystemTime::UNIX_EPOCH + Duration::from_nanos(s.finished_at.max(0) as u64);
                    let elapsed = SystemTime::now()
                        .duration_since(finished)
                        .unwrap_or_default();
                    if elapsed < delay {
                        let pod_name = format!(
                            "{}_{}({})",
                            pod.name_any(),
                            pod.namespace().unwrap_or_default(),
                            x.uid
                        );
                        view.waiting = Some((
                            "CrashLoopBackOff".into(),
                            format!(
                                "back-off {}s restarting failed container={} pod={pod_name}",
                                delay.as_secs(),
                                c.name
                            ),
                        ));
                        view.previous = latest.clone();
                        view.current = None;
                        *requeue = (*requeue).min(delay - elapsed);
                        None
                    } else {
                        Some(attempt + 1)
                    }
                } else {
                    None
                }
            }
            Some(s) if s.state == cri::ContainerState::ContainerRunning as i32 => {
                let started =
                    SystemTime::UNIX_EPOCH + Duration::from_nanos(s.started_at.max(0) as u64);
                let running_for = SystemTime::now()
                    .duration_since(started)
                    .unwrap_or_default();
                let verdict = self
                    .prober
                    .check(&self.cri, &s.id, c, running_for, x.pod_ip)
                    .await;
                view.ready = Some(verdict.ready);
                view.started = Some(verdict.started);
                if verdict.kill {
                    tracing::info!(pod = %pod.name_any(), container = %c.name, "container failed its liveness probe, will be restarted");
                    self.cri
                        .stop_container(&s.id, spec::termination_grace(pod))
                        .await?;
                    self.prober.forget(&s.id);
                    *requeue = Duration::ZERO;
                }
                None
            }
            Some(s) if s.state == cri::ContainerState::ContainerCreated as i32 => {
                // Created but never started (a crash between the two): start it now.
                self.cri.start_container(&s.id).await?;
                None
            }
            Some(_) => None,
        };
        if let Some(n) = start_attempt {
            match self.ensure_image(pod, c).await {
                Err(waiting) => view.waiting = Some(waiting),
                Ok(()) => {
                    let ns = pod.namespace().unwrap_or_default();
                    let mut sources = super::env::fetch(&self.client, &ns, c).await?;
                    if !self.cri.simulated() {
                        let services = super::env::fetch_services(&self.client, pod).await?;
                        sources.services = super::env::service_env(&services);
                    }
                    let envs = match super::env::resolve(pod, c, x.pod_ip, &self.host_ip, &sources)
                    {
                        Ok(e) => e,
                        Err(message) => {
                            view.waiting = Some(("CreateContainerConfigError".into(), message));
                            return Ok(view);
                        }
                    };
                    if let Err(message) = spec::verify_non_root(pod, c) {
                        view.waiting = Some(("CreateContainerConfigError".into(), message));
                        return Ok(view);
                    }
                    let mut config = spec::container_config(pod, c, n, envs);
                    config.mounts = volumes::mounts(c, x.volumes);
                    if !x.pod_ip.is_empty() {
                        // Written as each container is created (rarely), not on every sync.
                        let hosts = super::hosts::write(
                            &self.root_dir,
                            pod,
                            &[x.pod_ip],
                            &self.dns.cluster_domain,
                        )
                        .map_err(crate::error::io("writing the pod's /etc/hosts"))?;
                        config.mounts.extend(super::hosts::mount(c, &hosts));
                    }
                    // The waiting reason if it fails: creating, or starting, the container.
                    let mut failed_as = "CreateContainerError";
                    let result = async {
                        // The semaphore is never closed, so this always holds a permit.
                        let _turn = self.starts.acquire().await.ok();
                        let id = self
                            .cri
                            .create_container(x.sandbox_id, config, x.sandbox_config.clone())
                            .await?;
                        failed_as = "RunContainerError";
                        self.cri.start_container(&id).await?;
                        self.cri.container_status(&id).await
                    }
                    .await;
                    match result {
                        Ok(s) => {
                            if n > 0 {
                                view.previous = latest.clone();
                            }
                            view.current = Some(s);
                            view.restart_count = n as i32;
                            // Not ready or started until the probes say so.
                            view.ready = c.readiness_probe.as_ref().map(|_| false);
                            view.started = c.startup_probe.as_ref().map(|_| false);
                        }
                        Err(e) => {
                            // The failed run (StartError, 128) counts for the back-off.
                            view.waiting = Some((failed_as.into(), format!("{e:#}")));
                            if let Some(prev) = latest.clone() {
                                view.previous = Some(prev);
                            }
                        }
                    }
                }
            }
        }
        Ok(view)
    }

    async fn post_status(
        &self,
        pod: &Pod,
        status: k8s_openapi::api::core::v1::PodStatus,
    ) -> crate::Result<()> {
        if same_status(pod.status.as_ref(), &status) {
            return Ok(());
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": status});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The kubelet's final word on a pod it has stopped: delete it with grace 0.
    async fn confirm_deletion(&self, pod: &Pod) -> crate::Result<()> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Shortens `requeue` to [`RESYNC`] for a container the relist would not wake its worker
/// for: one with probes (they come due on their own), or one waiting on something outside
/// the runtime (an image, its environment's ConfigMaps and Secrets). A crash loop's
/// back-off has set its own requeue.
fn look_again_soon(c: &Container, view: &ContainerView, requeue: &mut Duration) {
    let probed =
        c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some();
    let waiting = view
        .waiting
        .as_ref()
        .is_some_and(|(reason, _)| reason != "CrashLoopBackOff");
    if probed || waiting {
        *requeue = (*requeue).min(RESYNC);
    }
}

/// Whether the pod's phase in the API is Succeeded or Failed (never left again).
fn terminal_phase(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Equal apart from the times that only move forward (conditions keep theirs already).
fn same_status(
    old: Option<&k8s_openapi::api::core::v1::PodStatus>,
    new: &k8s_openapi::api::core::v1::PodStatus,
) -> bool {
    let Some(old) = old else { return false };
    let strip = |s: &k8s_openapi::api::core::v1::PodStatus| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("startTime");
            m.remove("nominatedNodeName");
        }
        v
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_starts_the_backoff_over() {
        let mut reset = 0;
        let short = Duration::from_secs(1);
        assert_eq!(backoff_after(3, short, &mut reset), Duration::from_secs(40));
        assert_eq!(
            backoff_after(4, Duration::from_secs(700), &mut reset),
            Duration::ZERO
        );
        assert_eq!(backoff_after(5, short, &mut reset), Duration::from_secs(10));
        assert_eq!(backoff_after(6, short, &mut reset), Duration::from_secs(20));
    }

    #[test]
    fn crash_loop_backoff_doubles_to_five_minutes() {
        assert_eq!(crash_backoff(0), Duration::ZERO);
        assert_eq!(crash_backoff(1), Duration::from_secs(10));
        assert_eq!(crash_backoff(2), Duration::from_secs(20));
        assert_eq!(crash_backoff(6), Duration::from_secs(300));
        assert_eq!(crash_backoff(30), Duration::from_secs(300));
    }
}
