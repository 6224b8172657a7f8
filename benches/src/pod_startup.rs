//! pod-startup: BENCHMARKS.md section 3 on one real node. A real containerd (pod network:
//! CNI bridge + host-local IPAM in a private network namespace), a kube-apiserver and the
//! kubelet (`kubelet::run`) in this process; N busybox pods (image present) are created one
//! after another as `kubectl create -f` does, and each pod's startup latency is the time
//! from its creation to the watch showing it Running with its container started (upstream's
//! pod startup SLI). Upstream's SLO: p99 <= 5 s. Pods come one after another as fast as
//! the API answers (a burst) or at a steady rate. The runtime's floor is the same pods run
//! straight through the CRI with no kubelet or apiserver: the best a kubelet could do here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kubelet::pods::spec;
use kubelet::testing::Containerd;
use serde_json::json;

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Startup {
    pub pods: usize,
    /// Pods created per second; `None`: one after another as fast as the API answers.
    pub rate: Option<f64>,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    /// From the first create to the last pod Running.
    pub all_running_s: f64,
    /// The whole machine's CPU per pod over that time (runtime, kubelet, apiserver, harness).
    pub machine_cpu_ms_per_pod: f64,
    /// This process's part of it (kubelet, apiserver and harness).
    pub process_cpu_ms_per_pod: f64,
    /// With every pod running, the machine's CPU over the next [`STEADY`], in percent of
    /// one core (the kubelet looking after its pods, the runtime answering it).
    pub steady_machine_cpu_percent: f64,
}

/// How long the machine is watched once every pod runs.
const STEADY: Duration = Duration::from_secs(5);

/// The same pods run straight through the CRI, nothing else on the machine's CPU.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Floor {
    pub pods: usize,
    /// Pods started at once (the fastest of the concurrencies tried).
    pub concurrency: usize,
    /// From the first sandbox asked for to the last container started.
    pub all_running_s: f64,
    /// The runtime's CPU per pod (containerd, shims, runc, the kernel's part), the whole
    /// machine's CPU less this process's.
    pub runtime_cpu_ms_per_pod: f64,
}

/// CPU seconds of the machine and of this process, to take differences of.
fn cpu_now() -> (f64, f64) {
    (crate::machine_cpu_seconds(), crate::cpu_seconds())
}

/// Pod `i` of a run: busybox sleeping, bound to node-a, image present.
fn startup_pod(i: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("startup-{i}"), "namespace": "default"},
        "spec": {"nodeName": "node-a", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                                 "command": ["sleep", "3600"]}]}
    }))?)
}

fn started(p: &Pod) -> bool {
    let Some(s) = &p.status else { return false };
    s.phase.as_deref() == Some("Running")
        && s.container_statuses
            .iter()
            .flatten()
            .all(|c| c.started == Some(true))
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `pods` pods created through the API for the kubelet, at `rate` per second or in a row.
pub async fn pod_startup(pods: usize, rate: Option<f64>) -> anyhow::Result<Startup> {
    let containerd = Containerd::start_with_pod_network("10.244.77.0/24").await;
    containerd.import_test_images()?;
    let dir = tempfile::tempdir()?;
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = Client::try_from(kube::Config::new(server.url().parse()?))?;
    let kubeconfig = dir.path().join("kubelet.kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let port = apiserver::testing::free_port();
    let config = kubelet::testing::config(
        "node-a",
        kubeconfig,
        containerd.endpoint(),
        dir.path(),
        port,
    );
    let kubelet = common::component::InProcess::spawn(|stop| kubelet::run(config, stop));

    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running: Arc<parking_lot::Mutex<HashMap<String, Instant>>> = Default::default();
    let seen = running.clone();
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let watch = tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = event
                && started(&p)
            {
                seen.lock().entry(p.name_any()).or_insert_with(Instant::now);
            }
        }
    });

    let mut created = HashMap::new();
    let (machine0, process0) = cpu_now();
    let first = Instant::now();
    for i in 0..pods {
        if let Some(rate) = rate {
            tokio::time::sleep_until((first + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
        }
        let pod = startup_pod(i)?;
        created.insert(pod.name_any(), Instant::now());
        api.create(&PostParams::default(), &pod).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.lock().len() < pods {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {pods} pods Running after 120 s",
            running.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (machine1, process1) = cpu_now();
    let running = running.lock().clone();
    let mut latencies: Vec<f64> = created
        .iter()
        .map(|(name, at)| running[name].duration_since(*at).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last = running.values().max().copied().unwrap_or(first);
    // Let the last status writes and wake-ups settle, then watch the machine.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady0 = crate::machine_cpu_seconds();
    tokio::time::sleep(STEADY).await;
    let steady = crate::machine_cpu_seconds() - steady0;
    let per_pod = |seconds: f64| seconds * 1000.0 / pods as f64;
    let result = Startup {
        pods,
        rate,
        p50_s: quantile(&latencies, 0.5),
        p99_s: quantile(&latencies, 0.99),
        max_s: latencies.last().copied().unwrap_or_default(),
        all_running_s: last.duration_since(first).as_secs_f64(),
        machine_cpu_ms_per_pod: per_pod(machine1 - machine0),
        process_cpu_ms_per_pod: per_pod(process1 - process0),
        steady_machine_cpu_percent: steady * 100.0 / STEADY.as_secs_f64(),
    };

    // Leave nothing behind: the kubelet stops and removes every pod it ran.
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api.list(&ListParams::default()).await?.items.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.abort();
    kubelet.stop().await?;
    containerd.remove_all_sandboxes().await;
    Ok(result)
}

/// The runtime's floor: `pods` pods (sandbox, then container) run straight through the
/// CRI of a fresh containerd, `concurrency` at a time, each concurrency in turn; the
/// fastest.
pub async fn runtime_floor(pods: usize, concurrencies: &[usize]) -> anyhow::Result<Floor> {
    let containerd = Containerd::start_with_pod_network("10.244.78.0/24").await;
    containerd.import_test_images()?;
    let cri = kubelet::cri::Cri::connect(&containerd.endpoint()).await?;
    let dir = tempfile::tempdir()?;
    let dns = kubelet::pods::dns::Settings::default();
    let mut best: Option<Floor> = None;
    for (round, &concurrency) in concurrencies.iter().enumerate() {
        let limit = tokio::sync::Semaphore::new(concurrency.max(1));
        let (machine0, process0) = cpu_now();
        let first = Instant::now();
        let runs = (0..pods).map(|i| {
            let (cri, dns, limit, dir) = (&cri, &dns, &limit, dir.path());
            async move {
                let mut pod = startup_pod(i)?;
                pod.metadata.uid = Some(format!("floor-{round}-{i}"));
                let sandbox = spec::sandbox_config(&pod, dir, 0, dns);
                std::fs::create_dir_all(&sandbox.log_directory)?;
                let container = &pod
                    .spec
                    .as_ref()
                    .context("startup pod has a spec")?
                    .containers[0];
                let config = spec::container_config(&pod, container, 0, Vec::new());
                let _turn = limit.acquire().await?;
                let id = cri.run_pod_sandbox(sandbox.clone(), "").await?;
                let c = cri.create_container(&id, config, sandbox).await?;
                cri.start_container(&c).await?;
                anyhow::Ok(())
            }
        });
        futures::future::try_join_all(runs).await?;
        let all_running_s = first.elapsed().as_secs_f64();
        let (machine1, process1) = cpu_now();
        let runtime = (machine1 - machine0) - (process1 - process0);
        eprintln!("runtime floor: {pods} pods {concurrency} at a time in {all_running_s:.2} s");
        if best
            .as_ref()
            .is_none_or(|b| all_running_s < b.all_running_s)
        {
            best = Some(Floor {
                pods,
                concurrency,
                all_running_s,
                runtime_cpu_ms_per_pod: runtime * 1000.0 / pods as f64,
            });
        }
        containerd.remove_all_sandboxes().await;
    }
    best.ok_or_else(|| anyhow::anyhow!("no concurrency to try"))
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), 25.0);
        assert_eq!(quantile(&s, 0.99), 50.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
    }
}
