//! Pods on the pod network: containerd runs in a network namespace of the test's own with
//! a CNI bridge over a /24, so pods get addresses from it and reach each other, and nothing
//! touches the host's network.

use crate::support;

use kubelet::testing::Containerd;
use serde_json::json;
use support::{container_state, node_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_addresses_from_the_pod_network_and_serve_on_them() {
    let mut n = node_on(Containerd::start_with_pod_network("10.244.42.0/24").await).await;
    let pod_net = json!({"hostNetwork": false});
    n.create("web", json!({"name": "main", "image": "busybox",
        "command": ["sh", "-c", "mkdir -p /www; echo hello from $(hostname) > /www/index.html; httpd -f -p 80 -h /www"]}), pod_net.clone()).await;
    n.create(
        "idle",
        json!({"name": "main", "image": "busybox", "command": ["sleep", "3600"]}),
        pod_net,
    )
    .await;
    let ip = |name: &'static str| {
        let n = &n;
        async move {
            n.until(name, "a pod IP", |p| {
                container_state(p)?.state?.running?;
                p.status.as_ref()?.pod_ip.clone()
            })
            .await
        }
    };
    let (web, idle) = (ip("web").await, ip("idle").await);
    for addr in [&web, &idle] {
        assert!(addr.starts_with("10.244.42."), "{addr}");
    }
    assert_ne!(web, idle);
    // From the node's side of the bridge (the namespace), the pod answers on its address.
    // Running means the shell started, not that httpd listens yet: retry for a few seconds.
    let url = format!("http://{web}/");
    let mut out = n.containerd.in_netns(&["busybox", "wget", "-qO-", &url]);
    for _ in 0..50 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        out = n.containerd.in_netns(&["busybox", "wget", "-qO-", &url]);
    }
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        body.trim(),
        "hello from web",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Tear the pods' network namespaces down with their sandboxes.
    n.stop_kubelet();
    n.containerd.remove_all_sandboxes().await;
}
