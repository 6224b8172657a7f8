//! scheduler-perf: upstream scheduler_perf's workloads and metric, run against tetsu's
//! scheduler in three modes. In-process feeds the framework, queue and cache directly (the
//! algorithm's ceiling); end-to-end runs a real kube-apiserver (embedded store or etcd)
//! and the scheduler as an API client in this process, creating nodes and pods through
//! the API as upstream's harness does; processes runs both as their binaries over TLS, as
//! a cluster does, this process being only their client.
//!
//! The metric is upstream's SchedulingThroughput: pods bound per second, sampled at a
//! fixed interval while the measured pods are scheduled, the first sample skipped, then
//! Average and Perc50/90/95/99 of the samples.

pub mod e2e;
pub mod inprocess;
pub mod placements;
pub mod processes;
pub mod report;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use scheduler::config::KubeSchedulerConfiguration;

use crate::Latencies;
use workload::{ChurnObject, Op, Workload};

/// Where the scheduler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    InProcess,
    /// A real apiserver over this store, the scheduler beside it in this process.
    EndToEnd(Store),
    /// kube-apiserver over this store and kube-scheduler as child processes.
    Processes(Store),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Etcd,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::InProcess => write!(f, "in-process"),
            Mode::EndToEnd(Store::Sqlite) => write!(f, "end-to-end (embedded store)"),
            Mode::EndToEnd(Store::Etcd) => write!(f, "end-to-end (etcd)"),
            Mode::Processes(Store::Sqlite) => write!(f, "processes (embedded store)"),
            Mode::Processes(Store::Etcd) => write!(f, "processes (etcd)"),
        }
    }
}

/// What a mode must do for the runner.
#[async_trait]
pub trait Driver: Send {
    async fn create_namespace(&mut self, name: &str) -> anyhow::Result<()>;
    async fn create_nodes(&mut self, nodes: Vec<Node>) -> anyhow::Result<()>;
    /// Creates the pods as fast as the mode allows.
    async fn create_pods(&mut self, pods: Vec<Pod>) -> anyhow::Result<()>;
    /// Creates `object` (named uniquely by `seq`) and deletes the one of `seq - 1`.
    async fn churn(&mut self, object: &ChurnObject, seq: usize) -> anyhow::Result<()>;
    /// Pods bound so far (only ever grows).
    fn bound(&self) -> Arc<AtomicUsize>;
    /// Creation-to-binding latencies of the pods bound since the last call.
    fn take_latencies(&mut self) -> Latencies;
    /// CPU seconds used by this process and any servers the mode started.
    fn cpu_seconds(&self) -> f64 {
        crate::cpu_seconds()
    }
    /// The servers' own counters, when they run apart (processes mode).
    async fn server_counters(&mut self) -> anyhow::Result<Option<processes::ServerCounters>> {
        Ok(None)
    }
    async fn stop(self: Box<Self>);
}

/// One workload's result in one mode.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Result {
    pub workload: String,
    pub mode: String,
    pub nodes: usize,
    pub measured_pods: usize,
    /// Pods per second, one per sample interval (first skipped).
    pub samples: Vec<f64>,
    pub sample_interval_s: f64,
    pub average: f64,
    pub perc50: f64,
    pub perc90: f64,
    pub perc95: f64,
    pub perc99: f64,
    /// Measured pods divided by the time they took.
    pub overall: f64,
    pub duration_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub peak_rss_mib: f64,
    /// CPU time of the whole process (in e2e: apiserver, scheduler and harness; with
    /// processes, theirs added) per measured pod, in ms: on a saturated machine, what
    /// throughput is the inverse of.
    #[serde(default)]
    pub cpu_ms_per_pod: f64,
    /// upstream's floor for the Average (0: none).
    pub threshold: f64,
    /// What the servers did while the measured pods were scheduled (processes mode).
    #[serde(default)]
    pub server: Option<ServerLoad>,
}

/// The apiserver's and scheduler's work over the measured pods, read from outside them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ServerLoad {
    /// Successful writes per second, every kind (pod creates, bindings, events, ...).
    pub writes_per_s: f64,
    /// The writes by "VERB resource[/subresource]".
    pub writes: std::collections::BTreeMap<String, u64>,
    /// Events sent to watchers per second, every kind.
    pub watch_events_per_s: f64,
    /// The apiserver's CPU (all of it: writes, watches, reads) per write.
    pub apiserver_cpu_us_per_write: f64,
    /// Watch events sent per write.
    pub watch_events_per_write: f64,
    pub apiserver_cpu_ms_per_pod: f64,
    pub scheduler_cpu_ms_per_pod: f64,
}

impl ServerLoad {
    fn new(d: &processes::ServerCounters, pods: usize, seconds: f64) -> ServerLoad {
        let writes: u64 = d.writes.values().sum();
        let per_write = |x: f64| x / writes.max(1) as f64;
        ServerLoad {
            writes_per_s: writes as f64 / seconds,
            writes: d.writes.clone(),
            watch_events_per_s: d.watch_events as f64 / seconds,
            apiserver_cpu_us_per_write: per_write(d.apiserver_cpu_s * 1e6),
            watch_events_per_write: per_write(d.watch_events as f64),
            apiserver_cpu_ms_per_pod: d.apiserver_cpu_s * 1000.0 / pods as f64,
            scheduler_cpu_ms_per_pod: d.scheduler_cpu_s * 1000.0 / pods as f64,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Samples the bound counter until `target` pods are bound (or `timeout`), returning the
/// per-interval rates (the first dropped) and the time it took.
async fn sample(
    bound: Arc<AtomicUsize>,
    start: usize,
    target: usize,
    interval: Duration,
    timeout: Duration,
    label: &str,
) -> (Vec<f64>, Duration) {
    let began = Instant::now();
    let mut samples = Vec::new();
    let mut last = start;
    let mut last_t = began;
    let mut last_print = began;
    loop {
        tokio::time::sleep(interval).await;
        let now = Instant::now();
        let n = bound.load(Ordering::Relaxed);
        samples.push((n - last) as f64 / now.duration_since(last_t).as_secs_f64());
        last = n;
        last_t = now;
        if now.duration_since(last_print) >= Duration::from_secs(2) {
            last_print = now;
            eprintln!(
                "  {label}: {}/{} measured pods bound, {:.0} pods/s",
                n - start,
                target - start,
                samples.last().unwrap()
            );
        }
        if n >= target || now.duration_since(began) > timeout {
            if n < target {
                eprintln!(
                    "  {label}: timed out with {}/{} bound",
                    n - start,
                    target - start
                );
            }
            // The sample in which the last pod was bound is partial; keep it only if it
            // is all there is.
            let elapsed = now.duration_since(began);
            let finished = if samples.len() > 2 {
                samples[1..samples.len() - 1].to_vec()
            } else {
                samples.clone()
            };
            return (finished, elapsed);
        }
    }
}

/// Runs one workload with a driver. `scale` multiplies every count (tiny runs in CI);
/// `config` is the scheduler's (the default profile unless a test says otherwise).
/// `config_path` is where `config` came from: the processes mode hands it to kube-scheduler.
pub async fn run(
    workload: &Workload,
    mode: Mode,
    scale: f64,
    config: &KubeSchedulerConfiguration,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<Result> {
    let label = format!("{} [{mode}]", workload.name);
    eprintln!("{label}: starting (scale {scale})");
    let mut driver: Box<dyn Driver> = match mode {
        Mode::InProcess => Box::new(inprocess::InProcess::start(config)?),
        Mode::EndToEnd(store) => Box::new(e2e::EndToEnd::start(store, config).await?),
        Mode::Processes(store) => {
            Box::new(e2e::EndToEnd::start_processes(store, config_path).await?)
        }
    };
    let interval = match mode {
        Mode::InProcess => Duration::from_millis(100),
        Mode::EndToEnd(_) | Mode::Processes(_) => Duration::from_secs(1),
    };
    let bound = driver.bound();
    let mut nodes_total = 0;
    let mut pods_total = 0;
    let mut expected_bound = 0;
    let mut measured = None;
    let mut churn: Option<tokio::task::JoinHandle<()>> = None;
    let mut churn_stop = None;
    for op in &workload.ops {
        match op {
            Op::CreateNodes {
                count_param,
                node_template_path,
                label_node_prepare_strategy,
            } => {
                let nodes = workload.nodes(
                    count_param,
                    node_template_path,
                    label_node_prepare_strategy.as_ref(),
                    scale,
                    nodes_total,
                )?;
                let n = nodes.len();
                nodes_total += n;
                let t = Instant::now();
                driver.create_nodes(nodes).await?;
                eprintln!(
                    "{label}: created {n} nodes in {:.1}s",
                    t.elapsed().as_secs_f64()
                );
            }
            Op::CreateNamespaces { prefix, count } => {
                for i in 0..*count {
                    driver.create_namespace(&format!("{prefix}-{i}")).await?;
                }
            }
            Op::CreatePods {
                count_param,
                pod_template_path,
                namespace,
                collect_metrics,
                skip_wait_to_completion,
            } => {
                let n = workload.count(count_param, scale)?;
                let ns = namespace.as_deref().unwrap_or("default");
                let pods = workload::pods(pod_template_path, n, pods_total, ns)?;
                pods_total += n;
                let before = bound.load(Ordering::Relaxed);
                if *collect_metrics {
                    driver.take_latencies();
                    let target = expected_bound + n;
                    let timeout = Duration::from_secs(600);
                    let sampler = sample(bound.clone(), before, target, interval, timeout, &label);
                    let cpu = driver.cpu_seconds();
                    let counters = driver.server_counters().await?;
                    let (created, (samples, took)) =
                        tokio::join!(driver.create_pods(pods), sampler);
                    created?;
                    let cpu_ms_per_pod = (driver.cpu_seconds() - cpu) * 1000.0 / n as f64;
                    let server = match (counters, driver.server_counters().await?) {
                        (Some(before), Some(after)) => Some(ServerLoad::new(
                            &before.since(&after),
                            n,
                            took.as_secs_f64(),
                        )),
                        _ => None,
                    };
                    expected_bound = target;
                    measured = Some((n, samples, took, cpu_ms_per_pod, server));
                } else {
                    let t = Instant::now();
                    driver.create_pods(pods).await?;
                    if !*skip_wait_to_completion {
                        expected_bound += n;
                        let deadline = Instant::now() + Duration::from_secs(600);
                        while bound.load(Ordering::Relaxed) < expected_bound
                            && Instant::now() < deadline
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    eprintln!(
                        "{label}: {n} init pods in {:.1}s",
                        t.elapsed().as_secs_f64()
                    );
                }
            }
            Op::Churn {
                interval_milliseconds,
                template_paths,
            } => {
                let objects: Vec<ChurnObject> = template_paths
                    .iter()
                    .map(|t| workload::churn_object(t))
                    .collect::<anyhow::Result<_>>()?;
                let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
                churn_stop = Some(tx);
                let every = Duration::from_millis(*interval_milliseconds);
                // The churn runs beside the measured pods; it needs its own handle on the
                // driver, so it is given the objects and a channel to the driver's owner.
                let (ctx, crx) = tokio::sync::mpsc::channel::<usize>(4);
                churn = Some(tokio::spawn(async move {
                    let mut seq = 0;
                    loop {
                        tokio::select! {
                            _ = &mut rx => return,
                            _ = tokio::time::sleep(every) => {
                                seq += 1;
                                if ctx.send(seq).await.is_err() { return; }
                            }
                        }
                    }
                }));
                driver = Box::new(ChurningDriver {
                    inner: driver,
                    objects,
                    ticks: crx,
                });
            }
        }
    }
    if let Some(stop) = churn_stop {
        let _ = stop.send(());
    }
    if let Some(c) = churn {
        let _ = c.await;
    }
    let mut latencies = driver.take_latencies();
    driver.stop().await;
    let (n, samples, took, cpu_ms_per_pod, server) =
        measured.ok_or_else(|| anyhow::anyhow!("{}: no op collects metrics", workload.name))?;
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let average = if samples.is_empty() {
        0.0
    } else {
        samples.iter().sum::<f64>() / samples.len() as f64
    };
    let result = Result {
        workload: workload.name.clone(),
        mode: mode.to_string(),
        nodes: nodes_total,
        measured_pods: n,
        sample_interval_s: interval.as_secs_f64(),
        average,
        perc50: percentile(&sorted, 50.0),
        perc90: percentile(&sorted, 90.0),
        perc95: percentile(&sorted, 95.0),
        perc99: percentile(&sorted, 99.0),
        overall: n as f64 / took.as_secs_f64(),
        duration_s: took.as_secs_f64(),
        latency_p50_ms: latencies.quantile_ms(0.5),
        latency_p99_ms: latencies.quantile_ms(0.99),
        peak_rss_mib: crate::peak_rss_mib(),
        cpu_ms_per_pod,
        threshold: workload.threshold,
        samples,
        server,
    };
    eprintln!(
        "{label}: average {:.0} pods/s (overall {:.0}) over {} pods in {:.1}s, {:.3} ms of CPU per pod",
        result.average, result.overall, n, result.duration_s, result.cpu_ms_per_pod
    );
    if let Some(s) = &result.server {
        eprintln!(
            "{label}: apiserver {:.0} writes/s ({:?}), {:.0} watch events/s, {:.0} us CPU per write; CPU per pod: apiserver {:.3} ms, scheduler {:.3} ms",
            s.writes_per_s,
            s.writes,
            s.watch_events_per_s,
            s.apiserver_cpu_us_per_write,
            s.apiserver_cpu_ms_per_pod,
            s.scheduler_cpu_ms_per_pod
        );
    }
    Ok(result)
}

/// A driver that also recreates the churn objects whenever the churn timer ticks; the
/// ticks are served between the wrapped driver's own calls.
struct ChurningDriver {
    inner: Box<dyn Driver>,
    objects: Vec<ChurnObject>,
    ticks: tokio::sync::mpsc::Receiver<usize>,
}

impl ChurningDriver {
    async fn drain(&mut self) -> anyhow::Result<()> {
        while let Ok(seq) = self.ticks.try_recv() {
            for o in &self.objects {
                self.inner.churn(o, seq).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Driver for ChurningDriver {
    async fn create_namespace(&mut self, name: &str) -> anyhow::Result<()> {
        self.drain().await?;
        self.inner.create_namespace(name).await
    }
    async fn create_nodes(&mut self, nodes: Vec<Node>) -> anyhow::Result<()> {
        self.drain().await?;
        self.inner.create_nodes(nodes).await
    }
    /// Creates the pods in slices, recreating churn objects between slices.
    async fn create_pods(&mut self, pods: Vec<Pod>) -> anyhow::Result<()> {
        let mut rest = pods;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(100));
            self.inner.create_pods(rest).await?;
            self.drain().await?;
            rest = tail;
        }
        Ok(())
    }
    async fn churn(&mut self, object: &ChurnObject, seq: usize) -> anyhow::Result<()> {
        self.inner.churn(object, seq).await
    }
    fn bound(&self) -> Arc<AtomicUsize> {
        self.inner.bound()
    }
    fn take_latencies(&mut self) -> Latencies {
        self.inner.take_latencies()
    }
    fn cpu_seconds(&self) -> f64 {
        self.inner.cpu_seconds()
    }
    async fn server_counters(&mut self) -> anyhow::Result<Option<processes::ServerCounters>> {
        self.inner.server_counters().await
    }
    async fn stop(self: Box<Self>) {
        self.inner.stop().await
    }
}
