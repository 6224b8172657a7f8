//! The kube-proxy binary in a network namespace of its own (its apiserver reached through a
//! relay on the namespace's loopback): it writes the CNI configuration, routes to the other
//! node's pods and the Service rules, serves /healthz and /metrics, stops on SIGTERM
//! leaving the rules in place, and `--cleanup` removes all it created.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use proxy::testing::Netns;
use serde_json::json;

async fn node(client: &Client, name: &str, pod_cidr: &str, ip: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"podCIDR": pod_cidr}}))
            .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    cluster_tests::until(what, Duration::from_secs(15), async || {
        check().then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_programs_its_node_serves_health_and_cleans_up() {
    let bin = cluster_tests::bin("kube-proxy");
    let bin = bin.to_str().expect("a UTF-8 path");
    let out = Command::new(bin)
        .args(["--proxy-mode", "ipvs", "--cleanup"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("use --proxy-mode nftables"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let ns = Netns::new("tkp");
    let (ok, out) = ns.sh("ip link add eth0 type veth peer name eth1 && ip addr add 10.251.0.20/24 dev eth0 && ip link set eth1 up && ip link set eth0 up");
    assert!(ok, "{out}");
    let port = ns.relay_to(server.addr);
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &format!("http://127.0.0.1:{port}"));
    node(&client, "node-x", "10.244.7.0/24", "10.251.0.20").await;
    node(&client, "node-y", "10.244.8.0/24", "10.251.0.21").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
    .unwrap();
    let cluster_ip = services
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.8.5"], "nodeName": "node-y"}]}))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();

    let cni = dir.path().join("cni");
    let mut proxy = Command::new("ip")
        .args(["netns", "exec", &ns.name, bin, "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--hostname-override", "node-x", "--cni-conf-dir"])
        .arg(&cni)
        .args([
            "--healthz-bind-address",
            "127.0.0.1:10256",
            "--metrics-bind-address",
            "127.0.0.1:10249",
        ])
        .spawn()
        .unwrap();
    until("the CNI configuration", || {
        cni.join(proxy::podnet::CONFLIST).exists()
    })
    .await;
    let conf = std::fs::read_to_string(cni.join(proxy::podnet::CONFLIST)).unwrap();
    assert!(conf.contains("10.244.7.0/24"), "{conf}");
    until("the route to node-y's pods", || {
        ns.sh("ip route show proto 75")
            .1
            .contains("10.244.8.0/24 via 10.251.0.21")
    })
    .await;
    until("the Service's rules", || {
        ns.sh("nft list map ip kube-proxy service-ips")
            .1
            .contains(&format!("{cluster_ip} . tcp . 80 : goto service-"))
    })
    .await;
    until("/healthz", || {
        ns.get("http://127.0.0.1:10256/healthz").as_deref() == Ok("ok")
    })
    .await;
    let metrics = ns.get("http://127.0.0.1:10249/metrics").unwrap();
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds_count 1")
            || metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds_count 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kubeproxy_pod_network_routes 1"),
        "{metrics}"
    );

    // SIGTERM stops it; the rules stay so Services keep working across a restart.
    let status = Command::new("kill")
        .args(["-TERM", &proxy.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(proxy.wait().unwrap().success());
    assert!(ns.sh("nft list table ip kube-proxy").0);

    let (ok, out) = ns.sh(&format!("{bin} --cleanup --cni-conf-dir {}", cni.display()));
    assert!(ok, "{out}");
    assert!(!ns.sh("nft list table ip kube-proxy").0);
    assert!(!ns.sh("nft list table ip tetsu-podnet").0);
    assert!(ns.sh("ip route show proto 75").1.trim().is_empty());
    assert!(!cni.join(proxy::podnet::CONFLIST).exists());
}
