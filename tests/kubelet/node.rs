//! Node registration, Lease renewal and status against a real in-process apiserver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::Api;
use kubelet::node::{Heartbeat, Machine, NodeConfig, run};

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    cluster_tests::until(what, Duration::from_secs(15), check).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_the_node_renews_its_lease_and_reports_readiness() {
    // The apiserver serves until `_server` is dropped at the end.
    let cluster_tests::LocalApiServer {
        server: _server,
        dir,
        client,
        ..
    } = cluster_tests::LocalApiServer::start().await;
    let cfg = NodeConfig {
        name: "worker-1".into(),
        node_ip: Some("10.0.0.7".into()),
        labels: [("node-role.example/edge".to_owned(), "true".to_owned())].into(),
        runtime_version: "containerd://1.6.20".into(),
        kubelet_port: 10250,
    };
    let healthy = Arc::new(AtomicBool::new(true));
    let h = healthy.clone();
    let health = Arc::new(move || {
        if h.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("container runtime is down".to_owned())
        }
    });
    let heartbeat = Heartbeat {
        lease_renew: Duration::from_millis(200),
        lease_duration_seconds: 40,
        status_check: Duration::from_millis(100),
        status_report: Duration::from_secs(300),
    };
    let agent = tokio::spawn(run(
        client.clone(),
        cfg,
        Machine::read(dir.path()),
        heartbeat,
        health,
    ));

    let nodes: Api<Node> = Api::all(client.clone());
    let node = eventually("the Node with status", || async {
        let n = nodes.get_opt("worker-1").await.unwrap()?;
        n.status.as_ref()?.conditions.as_ref()?;
        Some(n)
    })
    .await;
    let labels = node.labels();
    assert_eq!(labels["kubernetes.io/hostname"], "worker-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["node-role.example/edge"], "true");
    let status = node.status.clone().unwrap();
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, cpus);
    assert_eq!(status.allocatable.as_ref().unwrap()["pods"].0, "110");
    let info = status.node_info.unwrap();
    assert_eq!(info.container_runtime_version, "containerd://1.6.20");
    assert!(!info.kernel_version.is_empty());
    let addresses: Vec<(String, String)> = status
        .addresses
        .unwrap()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert!(addresses.contains(&("InternalIP".into(), "10.0.0.7".into())));
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("KubeletReady"))
    );

    // The Lease is renewed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = eventually("the Lease", || async {
        leases.get_opt("worker-1").await.unwrap()
    })
    .await;
    let spec = first.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("worker-1"));
    assert_eq!(first.owner_references()[0].kind, "Node");
    let renewed = spec.renew_time.unwrap();
    eventually("a later renewTime", || async {
        let l = leases.get("worker-1").await.unwrap();
        (l.spec?.renew_time?.0 > renewed.0).then_some(())
    })
    .await;

    // The runtime going down turns Ready false at once.
    healthy.store(false, Ordering::Relaxed);
    eventually("Ready=False", || async {
        let n = nodes.get("worker-1").await.unwrap();
        let c = n
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "False" && c.message.as_deref() == Some("container runtime is down"))
            .then_some(())
    })
    .await;
    agent.abort();
}
