//! The kube-controller-manager binary: leader election on a Lease, /healthz and /metrics
//! with the work queue metrics, a clean exit on SIGTERM, a clear error for a bad
//! --controllers, and after kill -9 a restart that resyncs from the API and converges.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{apiserver, eventually};

const T: Duration = Duration::from_secs(30);

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(kubeconfig: &std::path::Path, port: u16, extra: &[&str]) -> Process {
    let child = Command::new(cluster_tests::bin("kube-controller-manager"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cert-dir")
        .arg(kubeconfig.with_file_name("serving-certs"))
        .args([
            "--secure-port",
            &port.to_string(),
            "--bind-address",
            "127.0.0.1",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kube-controller-manager");
    Process(child)
}

/// GET over HTTPS without credentials (the server's certificate is self-signed).
async fn https_get(port: u16, path: &str) -> Option<(u16, String)> {
    common::health::https_get(port, path, common::tls::insecure_client(), None)
        .await
        .ok()
}

fn deployment(replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_a_leader_serves_health_and_metrics_and_stops_on_sigterm() {
    let c = apiserver().await;
    let port = apiserver::testing::free_port();
    let mut p = spawn(&c.kubeconfig(), port, &[]);
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    let lease = eventually("the leader Lease", T, || async {
        leases.get_opt("kube-controller-manager").await.unwrap()
    })
    .await;
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    assert!(!holder.is_empty());
    c.create(deployment(2)).await;
    eventually("2 pods from the binary's controllers", T, || async {
        (c.live_pods("default", "app=web").await.len() == 2).then_some(())
    })
    .await;
    let (code, body) = https_get(port, "/healthz").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));
    let families = [
        "workqueue_adds_total{name=\"deployment\"}",
        "workqueue_adds_total{name=\"replicaset\"}",
        "workqueue_depth{name=\"replicaset\"}",
        "workqueue_work_duration_seconds_count{name=\"replicaset\"}",
        "# TYPE workqueue_retries_total counter",
        "leader_election_master_status{name=\"kube-controller-manager\"} 1",
    ];
    // A sync's duration is recorded when it returns, which may be after its pods appear.
    let mut metrics = String::new();
    let complete = tokio::time::timeout(T, async {
        loop {
            metrics = https_get(port, "/metrics").await.unwrap().1;
            if families.iter().all(|f| metrics.contains(f)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    for family in families {
        assert!(
            complete.is_ok() && metrics.contains(family),
            "missing {family} in:\n{metrics}"
        );
    }
    // SIGTERM: a clean exit.
    let pid = p.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = p.0.wait().unwrap();
        std::mem::forget(p);
        s
    })
    .await
    .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn an_unknown_controller_is_a_clear_error() {
    let out = Command::new(cluster_tests::bin("kube-controller-manager"))
        .args(["--controllers", "*,bogus", "--kubeconfig", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"bogus\" is not in the list of known controllers"),
        "{err}"
    );
    let help = Command::new(cluster_tests::bin("kube-controller-manager"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--controllers",
        "--leader-elect",
        "--cluster-cidr",
        "--node-monitor-grace-period",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restart_resyncs_and_converges() {
    let c = apiserver().await;
    let kubeconfig = c.kubeconfig();
    let args = ["--leader-elect=false"];
    let mut p = spawn(&kubeconfig, 0, &args);
    c.create(deployment(3)).await;
    eventually("3 pods", T, || async {
        (c.live_pods("default", "app=web").await.len() == 3).then_some(())
    })
    .await;
    p.0.kill().unwrap(); // SIGKILL
    p.0.wait().unwrap();

    // While it is down: scale, change the template, delete a pod, add a Service.
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let patch = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let first = c.live_pods("default", "app=web").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    c.pods("default")
        .delete(&first, &Default::default())
        .await
        .unwrap();
    c.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
    .await;

    let _p = spawn(&kubeconfig, 0, &args);
    // Converges: 5 nginx:2 pods once the kubelet (this test) reports them ready.
    eventually(
        "5 updated pods, rollout complete",
        Duration::from_secs(60),
        || async {
            c.make_all_ready("default", "app=web").await;
            let pods = c.live_pods("default", "app=web").await;
            let images: Vec<_> = pods
                .iter()
                .map(|p| {
                    p.spec.as_ref().unwrap().containers[0]
                        .image
                        .clone()
                        .unwrap()
                })
                .collect();
            let d = deployments.get("web").await.unwrap();
            let s = d.status.clone()?;
            (images == ["nginx:2"; 5]
                && s.updated_replicas == Some(5)
                && s.available_replicas == Some(5)
                && s.observed_generation == d.metadata.generation)
                .then_some(())
        },
    )
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    eventually("the Service's slice lists 5 endpoints", T, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .unwrap()
            .items;
        (list.iter().map(|s| s.endpoints.len()).sum::<usize>() == 5).then_some(())
    })
    .await;
}
