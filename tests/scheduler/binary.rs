//! The kube-scheduler binary: --kubeconfig, --config with two profiles, leader election on
//! a Lease, /healthz and /metrics, and a clean exit on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use scheduler::testing::{make_node, make_pod};

struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET over HTTPS without credentials (the server's certificate is self-signed).
async fn https_get(port: u16, path: &str) -> Option<(u16, String)> {
    common::health::https_get(port, path, common::tls::insecure_client(), None)
        .await
        .ok()
}

async fn wait_bound(pods: &Api<Pod>, name: &str) -> String {
    for _ in 0..100 {
        let p = pods.get(name).await.unwrap();
        if let Some(n) = p.spec.and_then(|s| s.node_name) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} was not scheduled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_profiles_elects_a_leader_serves_health_and_stops_on_sigterm() {
    let cluster_tests::LocalApiServer {
        server,
        dir,
        client,
        ..
    } = cluster_tests::LocalApiServer::start().await;
    let kubeconfig = dir.path().join("scheduler.conf");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n- schedulerName: bin-packer\n  pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: MostAllocated\n",
    )
    .unwrap();

    let nodes: Api<Node> = Api::all(client.clone());
    // A busy small node and an empty big one: the bin-packer prefers the busy one.
    nodes
        .create(&PostParams::default(), &make_node("small").cpu("2").obj())
        .await
        .unwrap();
    nodes
        .create(&PostParams::default(), &make_node("big").cpu("16").obj())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut filler = make_pod("filler").cpu("1").obj();
    filler.metadata.uid = None;
    filler.spec.as_mut().unwrap().node_name = Some("small".into());
    pods.create(&PostParams::default(), &filler).await.unwrap();
    // The scheduler starts once the nodes exist, so its first list has both (separate node
    // and pod watches give no order between a node's and a pod's arrival).
    let port = apiserver::testing::free_port();
    let child = Command::new(cluster_tests::bin("kube-scheduler"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--config")
        .arg(&config)
        .arg("--cert-dir")
        .arg(dir.path().join("serving-certs"))
        .args([
            "--secure-port",
            &port.to_string(),
            "--bind-address",
            "127.0.0.1",
        ])
        .args(["--leader-elect-retry-period", "200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sched = Scheduler(child);

    let mut spread = make_pod("spread").cpu("500m").obj();
    spread.metadata.uid = None;
    pods.create(&PostParams::default(), &spread).await.unwrap();
    let mut packed = make_pod("packed")
        .cpu("500m")
        .scheduler_name("bin-packer")
        .obj();
    packed.metadata.uid = None;
    pods.create(&PostParams::default(), &packed).await.unwrap();
    assert_eq!(
        wait_bound(&pods, "spread").await,
        "big",
        "LeastAllocated spreads"
    );
    assert_eq!(
        wait_bound(&pods, "packed").await,
        "small",
        "MostAllocated packs"
    );

    let lease = Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get("kube-scheduler")
        .await
        .unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    assert!(!holder.is_empty());

    let (code, body) = https_get(port, "/healthz").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, metrics) = https_get(port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"bin-packer\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("scheduler_pod_scheduling_sli_duration_seconds_count"),
        "{metrics}"
    );

    // SIGTERM: a clean exit.
    let pid = sched.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..50 {
        if let Some(s) = sched.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(status.expect("exited after SIGTERM").success());
}

#[test]
fn a_bad_config_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- plugins:\n    score:\n      enabled:\n      - name: NoSuchPlugin\n",
    )
    .unwrap();
    let out = Command::new(cluster_tests::bin("kube-scheduler"))
        .arg("--config")
        .arg(&config)
        .args(["--kubeconfig", "/dev/null", "--secure-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NoSuchPlugin"), "{err}");
}
