//! Issue #6's first acceptance item: two "nodes" (network namespaces on a shared bridge),
//! pods attached by the real CNI bridge plugin with the configuration the pod network
//! agent wrote, a real apiserver, and the proxier programming real nftables in each node.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use proxy::host::Host;
use proxy::nftables::Config;
use proxy::podnet::{self, PodNetwork};
use proxy::proxier::{Proxier, Timing};
use proxy::testing::{Lan, Netns, add_pod, serve_name};
use serde_json::json;

const CLUSTER_CIDR: &str = "10.244.0.0/16";

async fn add_node(client: &Client, name: &str, pod_cidr: &str, ip: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({
        "metadata": {"name": name}, "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Starts the agent and the proxier for one node, in its namespace; answers the
/// conflist the agent wrote.
async fn start_node_networking(
    client: &Client,
    dir: &Path,
    node: &Netns,
    name: &str,
) -> serde_json::Value {
    let cni_dir = dir.join(format!("cni-{name}"));
    let agent = PodNetwork::new(Host::netns(&node.name), name, CLUSTER_CIDR, &cni_dir);
    tokio::spawn(agent.run(client.clone()));
    let proxier = Proxier::new(
        Host::netns(&node.name),
        Config {
            cluster_cidr: Some(CLUSTER_CIDR.into()),
        },
        name,
    );
    tokio::spawn(proxier.run(client.clone(), Timing::default()));
    let path = cni_dir.join(podnet::CONFLIST);
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return serde_json::from_str(&text).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the agent wrote no CNI configuration for {name}");
}

/// The names that answer `n` requests to `url` from `from`.
fn answers(from: &Netns, url: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| from.get(url).unwrap_or_else(|e| panic!("{url}: {e}")))
        .collect()
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_and_services_across_two_nodes() {
    common::logging::init(0);
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let lan = Lan::new("10.251.0");
    let (node_a, ip_a) = lan.add_node(1);
    let (node_b, ip_b) = lan.add_node(2);
    add_node(&client, "node-a", "10.244.1.0/24", &ip_a).await;
    add_node(&client, "node-b", "10.244.2.0/24", &ip_b).await;
    let conf_a = start_node_networking(&client, dir.path(), &node_a, "node-a").await;
    let conf_b = start_node_networking(&client, dir.path(), &node_b, "node-b").await;
    assert_eq!(
        conf_a["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.244.1.0/24"
    );

    // Pods get addresses from their node's range.
    let (a1, ip_a1) = add_pod(&node_a, &conf_a, &dir.path().join("ipam-a"));
    let (a2, _) = add_pod(&node_a, &conf_a, &dir.path().join("ipam-a"));
    let (b1, ip_b1) = add_pod(&node_b, &conf_b, &dir.path().join("ipam-b"));
    assert!(ip_a1.starts_with("10.244.1."), "{ip_a1}");
    assert!(ip_b1.starts_with("10.244.2."), "{ip_b1}");
    let _servers = [
        serve_name(&a1, dir.path(), "a1", 8080),
        serve_name(&b1, dir.path(), "b1", 8080),
    ];

    // Pods on different nodes reach each other through the agent's routes.
    let to_b1 = format!("http://{ip_b1}:8080/");
    for _ in 0..200 {
        if a2.get(&to_b1).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let routes = node_a.sh("ip route").1;
    assert_eq!(
        a2.get(&to_b1),
        Ok("b1".to_owned()),
        "node-a's routes: {routes}"
    );
    assert_eq!(b1.get(&format!("http://{ip_a1}:8080/")).unwrap(), "a1");

    // A NodePort Service with an endpoint on each node.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let svc = services.create(&PostParams::default(), &svc).await.unwrap();
    let spec = svc.spec.unwrap();
    let cluster_ip = spec.cluster_ip.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints = |b1_ready: bool| {
        json!([
            {"addresses": [ip_a1], "nodeName": "node-a", "conditions": {"ready": true}},
            {"addresses": [ip_b1], "nodeName": "node-b", "conditions": {"ready": b1_ready}},
        ])
    };
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-x1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints(true),
    }))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();

    // The ClusterIP answers from pods on both nodes (same bridge, other node, hairpin),
    // spreading connections over both endpoints.
    let url = format!("http://{cluster_ip}/");
    until("the ClusterIP", || {
        a2.get(&url).is_ok() && b1.get(&url).is_ok()
    })
    .await;
    let both: BTreeSet<String> = ["a1".to_owned(), "b1".to_owned()].into();
    for client_pod in [&a2, &b1, &a1] {
        assert_eq!(
            answers(client_pod, &url, 24),
            both,
            "from {}",
            client_pod.name
        );
    }
    // The NodePort answers on each node's address from outside the nodes, and from the
    // node itself.
    for ip in [&ip_a, &ip_b] {
        let url = format!("http://{ip}:{node_port}/");
        assert_eq!(answers(&lan.ns, &url, 24), both, "{url}");
    }
    let url_a = format!("http://{ip_a}:{node_port}/");
    assert_eq!(answers(&node_a, &url_a, 24), both, "{url_a} from node-a");

    // The traffic policies, externalIPs and session affinity, over the same two pods.
    let both_eps = endpoints(true);
    let with_endpoints = async |name: &str, spec: serde_json::Value| -> Service {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        let svc = services.create(&PostParams::default(), &svc).await.unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-x1"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": both_eps,
        }))
        .unwrap();
        slices.create(&PostParams::default(), &slice).await.unwrap();
        svc
    };
    let local = with_endpoints(
        "local",
        json!({"type": "NodePort", "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
               "externalIPs": ["10.99.0.100"],
               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
    )
    .await
    .spec
    .unwrap();
    let sticky = with_endpoints(
        "sticky",
        json!({"sessionAffinity": "ClientIP",
               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
    )
    .await
    .spec
    .unwrap();
    let local_url = format!("http://{}/", local.cluster_ip.unwrap());
    let local_np = local.ports.unwrap()[0].node_port.unwrap();
    let sticky_url = format!("http://{}/", sticky.cluster_ip.unwrap());
    until("the new Services", || {
        a2.get(&local_url).is_ok() && a2.get(&sticky_url).is_ok()
    })
    .await;
    let only = |name: &str| BTreeSet::from([name.to_owned()]);
    // internalTrafficPolicy Local: each node's pods reach only that node's endpoint.
    assert_eq!(answers(&a2, &local_url, 12), only("a1"));
    assert_eq!(answers(&b1, &local_url, 12), only("b1"));
    // externalTrafficPolicy Local: a NodePort reaches only its node's endpoint.
    assert_eq!(
        answers(&lan.ns, &format!("http://{ip_a}:{local_np}/"), 12),
        only("a1")
    );
    assert_eq!(
        answers(&lan.ns, &format!("http://{ip_b}:{local_np}/"), 12),
        only("b1")
    );
    // An externalIP routed to node-b answers there.
    let (ok, out) = lan
        .ns
        .sh(&format!("ip route add 10.99.0.100/32 via {ip_b}"));
    assert!(ok, "{out}");
    assert_eq!(answers(&lan.ns, "http://10.99.0.100/", 12), only("b1"));
    // sessionAffinity ClientIP: a client keeps its endpoint.
    for client_pod in [&a2, &b1] {
        assert_eq!(
            answers(client_pod, &sticky_url, 12).len(),
            1,
            "from {}",
            client_pod.name
        );
    }

    // An endpoint that turns unready stops getting new connections within a second. (After
    // a quiet second: the syncs above may have used the burst --min-sync-period allows.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    slices
        .patch(
            "web-x1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"endpoints": endpoints(false)})),
        )
        .await
        .unwrap();
    let changed = Instant::now();
    let mut last_b1 = Duration::ZERO;
    while changed.elapsed() < Duration::from_secs(2) {
        let asked = changed.elapsed();
        if a2.get(&url).as_deref() == Ok("b1") {
            last_b1 = asked;
        }
    }
    assert!(
        last_b1 < Duration::from_secs(1),
        "b1 took a connection opened {last_b1:?} after it turned unready"
    );
    assert_eq!(answers(&a2, &url, 20), BTreeSet::from(["a1".to_owned()]));

    // A Service without endpoints refuses at once, on its ClusterIP and its NodePort.
    let empty: Service = serde_json::from_value(json!({
        "metadata": {"name": "empty"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}
    }))
    .unwrap();
    let empty = services
        .create(&PostParams::default(), &empty)
        .await
        .unwrap();
    let spec = empty.spec.unwrap();
    let empty_url = format!("http://{}/", spec.cluster_ip.unwrap());
    let empty_np = format!(
        "http://{ip_a}:{}/",
        spec.ports.unwrap()[0].node_port.unwrap()
    );
    until("the empty Service's reject", || {
        a2.get(&empty_url).is_err_and(|e| e.contains("refused"))
    })
    .await;
    for (from, url) in [(&b1, &empty_url), (&lan.ns, &empty_np)] {
        let asked = Instant::now();
        let err = from.get(url).unwrap_err();
        let took = asked.elapsed();
        assert!(err.contains("refused"), "{url}: {err}");
        assert!(
            took < Duration::from_secs(1),
            "{url} refused after {took:?}"
        );
    }

    // A node that goes away takes its route with it.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.delete("node-b", &Default::default()).await.unwrap();
    until("node-b's route removed", || {
        !node_a
            .sh("ip route show proto 75")
            .1
            .contains("10.244.2.0/24")
    })
    .await;
}
