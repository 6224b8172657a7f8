//! Issue #6's second acceptance item on a real node: containerd with the CNI configuration
//! the pod network agent wrote, the kubelet, the deployment, replicaset and endpointslice
//! controllers, and kube-proxy in the node's network namespace, each started in this process
//! through its `run` as its binary starts it. A
//! Deployment of two busybox httpd pods behind a Service answers `wget` from a third pod
//! by ClusterIP, from both backends.

use std::time::{Duration, Instant};

use common::component::InProcess;
use common::flags::LeaderElectionFlags;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubelet::testing::Containerd;
use proxy::host::Host;
use proxy::podnet;
use serde_json::json;

const POD_CIDR: &str = "10.244.44.0/24";

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_behind_a_service_answers_a_pod_by_cluster_ip() {
    let containerd = Containerd::start_with_pod_network(POD_CIDR).await;
    containerd.import_test_images().unwrap();
    let netns = containerd.netns.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();

    // The node as registration and node ipam leave it.
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({"metadata": {"name": "node-a"},
        "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}}))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status =
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.250.44.2"}]}});
    nodes
        .patch_status("node-a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    // kube-proxy with its pod network agent, which writes containerd's CNI configuration.
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let cni_dir = containerd.dir.path().join("cni");
    let config = proxy::Config {
        kubeconfig: Some(kubeconfig.clone()),
        proxy_mode: "nftables".into(),
        cluster_cidr: "10.244.0.0/16".into(),
        hostname_override: Some("node-a".into()),
        healthz_bind_address: None,
        metrics_bind_address: None,
        sync_period: Duration::from_secs(30),
        min_sync_period: Duration::from_secs(1),
        cleanup: false,
        pod_network: true,
        network_policy: true,
        cni_conf_dir: cni_dir.clone(),
        cni_ipam_data_dir: None,
        host: Host::netns(&netns),
    };
    let _proxy = InProcess::spawn(|stop| proxy::run(config, stop));
    let conflist = cni_dir.join(podnet::CONFLIST);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&conflist).is_ok_and(|c| c.contains("\"name\": \"tetsu\"")) {
        assert!(
            Instant::now() < deadline,
            "the agent wrote no CNI configuration"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The control plane's part and the kubelet's.
    let config = controller_manager::Config {
        kubeconfig: Some(kubeconfig.clone()),
        controllers: ["deployment", "replicaset", "endpointslice"]
            .map(str::to_owned)
            .to_vec(),
        leader_election: LeaderElectionFlags {
            leader_elect: false,
            ..Default::default()
        },
        serving: Default::default(),
        bind_address: [127, 0, 0, 1].into(),
        secure_port: 0,
        options: Default::default(),
    };
    let _controllers = InProcess::spawn(|stop| controller_manager::run(config, stop));
    let port = apiserver::testing::free_port();
    let config = kubelet::Config {
        node_ip: Some("10.250.44.2".into()),
        ..kubelet::testing::config(
            "node-a",
            kubeconfig,
            containerd.endpoint(),
            dir.path(),
            port,
        )
    };
    let _kubelet = InProcess::spawn(|stop| kubelet::run(config, stop));

    // Two httpd pods answering their own name, ready once they serve.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let web = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"nodeName": "node-a", "terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "httpd", "image": "busybox", "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    .unwrap();
    let cluster_ip = services
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = deployments.get("web").await.unwrap();
        if d.status.and_then(|s| s.ready_replicas) == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Deployment never had 2 ready pods"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Both endpoints published and programmed before the client asks.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = containerd.in_netns(&["nft", "list", "table", "ip", "kube-proxy"]);
        let table = String::from_utf8_lossy(&table.stdout);
        if table.matches("dnat to 10.244.44.").count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rules never had both endpoints: {table}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A third pod fetches by ClusterIP 20 times and succeeds only if both pods answered.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let fetch = format!(
        "for i in $(seq 20); do wget -q -O - http://{cluster_ip}/ || exit 1; done | sort -u | tee /dev/stderr | grep -c web- | grep -qx 2"
    );
    let client_pod = serde_json::from_value(json!({"metadata": {"name": "client"},
        "spec": {"nodeName": "node-a", "restartPolicy": "Never", "containers": [{
            "name": "wget", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sh", "-c", fetch]}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &client_pod)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let p = pods.get("client").await.unwrap();
        if matches!(phase(&p), Some("Succeeded" | "Failed")) {
            break p;
        }
        assert!(Instant::now() < deadline, "the client pod never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let logs = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "cat {}/logs/default_client_*/wget/*.log",
                dir.path().display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        phase(&done),
        Some("Succeeded"),
        "the client's output: {}",
        String::from_utf8_lossy(&logs.stdout)
    );
    containerd.remove_all_sandboxes().await;
}
