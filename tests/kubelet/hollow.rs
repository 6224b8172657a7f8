//! Hollow nodes against a real apiserver: many in one process register, keep their Leases
//! fresh, and run pods through the kubelet's own pod workers over the simulated runtime;
//! the `kubelet hollow` binary does the same.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kubelet::hollow::{HollowConfig, run};
use serde_json::json;

async fn server() -> (apiserver::server::InProcess, tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    (server, dir, client)
}

async fn until<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    cluster_tests::until(what, Duration::from_secs(15), check).await
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hollow_nodes_register_renew_leases_and_run_pods() {
    let (_server, _dir, client) = server().await;
    let mut config = HollowConfig::new(20);
    config.heartbeat.lease_renew = Duration::from_millis(500);
    config.start_delay = Duration::from_millis(200);
    tokio::spawn(run(vec![client.clone()], config));

    let nodes: Api<Node> = Api::all(client.clone());
    let list = until("20 Ready nodes", || async {
        let l = nodes.list(&ListParams::default()).await.unwrap();
        (l.items.len() == 20 && l.items.iter().all(ready)).then_some(l)
    })
    .await;
    let n7 = list
        .items
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some("hollow-node-7"))
        .unwrap();
    let cpu = &n7.status.as_ref().unwrap().capacity.as_ref().unwrap()["cpu"];
    assert_eq!(cpu.0, "4");

    // Leases exist and are renewed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renewed = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.renew_time.clone())
            .unwrap()
            .0
    };
    let first = until("20 leases", || async {
        let l = leases.list(&ListParams::default()).await.unwrap();
        (l.items.len() == 20).then_some(l)
    })
    .await;
    let lease = first
        .items
        .iter()
        .find(|l| l.metadata.name.as_deref() == Some("hollow-node-3"))
        .unwrap();
    let before = renewed(lease);
    until("a renewed lease", || async {
        let l = leases.get("hollow-node-3").await.unwrap();
        (renewed(&l) > before).then_some(())
    })
    .await;

    // Pods bound to a hollow node run, finish, and go away as on a real node.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, command: &str, policy: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
            "nodeName": "hollow-node-7", "restartPolicy": policy,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", command]}]}}))
        .unwrap()
    };
    pods.create(
        &PostParams::default(),
        &pod("sleeper", "sleep 3600", "Always"),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("job", "echo done; exit 0", "Never"),
    )
    .await
    .unwrap();
    let running = until("sleeper Running", || async {
        let p = pods.get("sleeper").await.unwrap();
        let s = p.status.clone()?;
        (s.phase.as_deref() == Some("Running")).then_some(s)
    })
    .await;
    assert!(running.pod_ip.unwrap().starts_with("10.128.7."));
    assert_eq!(running.host_ip.as_deref(), Some("10.128.7.1"));
    until("job Succeeded", || async {
        let p = pods.get("job").await.unwrap();
        (p.status?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    until("sleeper gone", || async {
        pods.get_opt("sleeper")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_hollow_command_runs_nodes_until_sigterm() {
    let (server, dir, client) = server().await;
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let mut child = std::process::Command::new(cluster_tests::bin("kubelet"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["hollow", "--nodes", "5", "--name-prefix", "h-"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let nodes: Api<Node> = Api::all(client);
    until("5 Ready nodes", || async {
        let l = nodes.list(&ListParams::default()).await.unwrap();
        (l.items.len() == 5 && l.items.iter().all(ready)).then_some(())
    })
    .await;
    assert!(nodes.get_opt("h-4").await.unwrap().is_some());
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
