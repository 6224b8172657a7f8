//! controller-perf: how fast kube-controller-manager's controllers converge, against a real
//! kube-apiserver (embedded store) in this process, the controllers running as in the
//! binary. Two measurements, as issue #4 asks:
//! - DeploymentConvergence: one Deployment of N replicas; time until all N pods exist and
//!   until the Deployment's status counts them.
//! - PodChurn: G ReplicaSets of N/G pods behind G Services; then every pod turns ready at
//!   once (the harness plays the kubelet); time until every ReplicaSet's status and every
//!   EndpointSlice shows them all ready, i.e. how fast the controllers keep up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

/// Status writes in flight while playing the kubelet.
const CONCURRENCY: usize = 64;

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    pub name: String,
    pub pods: usize,
    /// Seconds until the pods existed (convergence) or the updates were written (churn).
    pub first_phase_s: f64,
    /// Seconds until the controllers' outputs (statuses, slices) caught up.
    pub converged_s: f64,
    /// pods / converged_s.
    pub pods_per_second: f64,
    pub peak_rss_mib: f64,
}

struct Env {
    _dir: tempfile::TempDir,
    _server: apiserver::server::InProcess,
    client: Client,
    _controllers: controller_manager::Running,
}

async fn env(controllers: &[&str]) -> anyhow::Result<Env> {
    let dir = tempfile::tempdir()?;
    let server = apiserver::server::spawn_in_process(apiserver::server::Config {
        data_dir: dir.path().to_owned(),
        secure_port: 0,
        ..Default::default()
    })
    .await?;
    let url = format!("http://{}", server.addr).parse()?;
    let client = Client::try_from(kube::Config::new(url))?;
    let names: Vec<String> = controllers.iter().map(|s| s.to_string()).collect();
    let enabled = controller_manager::controllers::enabled(&names)?;
    let running = controller_manager::start(
        client.clone(),
        controller_manager::runtime::Options::default(),
        &enabled,
    )
    .await?;
    Ok(Env {
        _dir: dir,
        _server: server,
        client,
        _controllers: running,
    })
}

fn template(app: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

/// Counts distinct pods seen by a watch, until `n` have appeared.
async fn wait_for_pods(client: &Client, n: usize, progress: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut seen = HashSet::new();
    let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
    let mut last_print = Instant::now();
    while let Some(ev) = stream.next().await {
        if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
            seen.insert(p.name_any());
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            eprintln!("  {progress}: {}/{n} pods", seen.len());
            last_print = Instant::now();
        }
        if seen.len() >= n {
            return Ok(());
        }
    }
    anyhow::bail!("pod watch ended")
}

async fn poll_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// One Deployment of `replicas` pods: seconds until they exist and until status says so.
pub async fn deployment_convergence(replicas: usize) -> anyhow::Result<Measured> {
    let e = env(&["deployment", "replicaset"]).await?;
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "big"}}, "template": template("big")},
    }))?;
    let api: Api<Deployment> = Api::namespaced(e.client.clone(), "default");
    let start = Instant::now();
    api.create(&PostParams::default(), &d).await?;
    wait_for_pods(&e.client, replicas, "DeploymentConvergence").await?;
    let created = start.elapsed();
    poll_until("Deployment status", Duration::from_secs(600), || async {
        let s = api.get("big").await?.status.unwrap_or_default();
        Ok(s.replicas == Some(replicas as i32) && s.updated_replicas == Some(replicas as i32))
    })
    .await?;
    let converged = start.elapsed();
    Ok(Measured {
        name: "DeploymentConvergence".into(),
        pods: replicas,
        first_phase_s: created.as_secs_f64(),
        converged_s: converged.as_secs_f64(),
        pods_per_second: replicas as f64 / created.as_secs_f64(),
        peak_rss_mib: crate::peak_rss_mib(),
    })
}

/// `pods` pods in `groups` ReplicaSets behind as many Services all turn ready; seconds
/// until every ReplicaSet status and EndpointSlice shows it.
pub async fn pod_churn(pods: usize, groups: usize) -> anyhow::Result<Measured> {
    let e = env(&["replicaset", "endpointslice"]).await?;
    let per = pods / groups;
    let rss: Api<ReplicaSet> = Api::namespaced(e.client.clone(), "default");
    for g in 0..groups {
        let app = format!("g{g}");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": app, "namespace": "default"},
            "spec": {"replicas": per, "selector": {"matchLabels": {"app": app}}, "template": template(&app)},
        }))?;
        rss.create(&PostParams::default(), &rs).await?;
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
            "metadata": {"name": app, "namespace": "default"},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80}]},
        }))?;
        Api::namespaced(e.client.clone(), "default")
            .create(&PostParams::default(), &svc)
            .await?;
    }
    wait_for_pods(&e.client, per * groups, "PodChurn setup").await?;
    let pod_api: Api<Pod> = Api::namespaced(e.client.clone(), "default");
    let names: Vec<String> = pod_api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    eprintln!(
        "  PodChurn: {} pods exist; turning them all ready",
        names.len()
    );
    // Let the controllers settle on the unready state before the churn starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let start = Instant::now();
    let written = Arc::new(Mutex::new(0usize));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(CONCURRENCY, |(i, name)| {
            let (api, written, now) = (pod_api.clone(), written.clone(), now.clone());
            async move {
                let ip = format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256);
                let patch = json!({"status": {"phase": "Running", "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                if api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .is_ok()
                {
                    *written.lock() += 1;
                }
            }
        })
        .await;
    let wrote = start.elapsed();
    let slices: Api<EndpointSlice> = Api::namespaced(e.client.clone(), "default");
    let want = per * groups;
    let last_print = Mutex::new(Instant::now());
    poll_until("statuses and slices", Duration::from_secs(600), || async {
        let ready: i32 = rss
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
            .sum();
        // Only the controller's slices (not the apiserver's own "kubernetes" one).
        let managed = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io";
        let ready_endpoints = slices
            .list(&ListParams::default().labels(managed))
            .await?
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        let mut last = last_print.lock();
        if last.elapsed() > Duration::from_secs(2) {
            eprintln!("  PodChurn: {ready}/{want} ready in ReplicaSet status, {ready_endpoints}/{want} ready endpoints");
            *last = Instant::now();
        }
        Ok(ready as usize == want && ready_endpoints == want)
    })
    .await?;
    let converged = start.elapsed();
    Ok(Measured {
        name: "PodChurn".into(),
        pods: want,
        first_phase_s: wrote.as_secs_f64(),
        converged_s: converged.as_secs_f64(),
        pods_per_second: want as f64 / converged.as_secs_f64(),
        peak_rss_mib: crate::peak_rss_mib(),
    })
}
