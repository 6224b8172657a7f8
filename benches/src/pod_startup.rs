//! pod-startup: BENCHMARKS.md section 3 on one real node. A real containerd (pod network:
//! CNI bridge + host-local IPAM in a private network namespace), a kube-apiserver and the
//! kubelet (`kubelet::run`) in this process; N busybox pods (image present) are created one
//! after another as `kubectl create -f` does, and each pod's startup latency is the time
//! from its creation to the watch showing it Running with its container started (upstream's
//! pod startup SLI). Upstream's SLO: p99 <= 5 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kubelet::testing::Containerd;
use serde_json::json;

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Startup {
    pub pods: usize,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    /// From the first create to the last pod Running.
    pub all_running_s: f64,
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

pub async fn pod_startup(pods: usize) -> anyhow::Result<Startup> {
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
    let first = Instant::now();
    for i in 0..pods {
        let name = format!("startup-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": "node-a", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                                     "command": ["sleep", "3600"]}]}
        }))?;
        created.insert(name, Instant::now());
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
    let running = running.lock().clone();
    let mut latencies: Vec<f64> = created
        .iter()
        .map(|(name, at)| running[name].duration_since(*at).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last = running.values().max().copied().unwrap_or(first);
    let result = Startup {
        pods,
        p50_s: quantile(&latencies, 0.5),
        p99_s: quantile(&latencies, 0.99),
        max_s: latencies.last().copied().unwrap_or_default(),
        all_running_s: last.duration_since(first).as_secs_f64(),
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
