//! NetworkPolicy in a kubeadm cluster of two nodes (issue #19, first part): kube-proxy
//! enforces policies out of the box. A server pod on the control-plane node is reached by
//! two clients on the worker, directly and through its Service's ClusterIP (judged after
//! kube-proxy's DNAT, on the real pod); a policy admitting only clients labelled role=ok
//! shuts the other out within seconds, a relabelled client is let in, and deleting the
//! policy opens the server again.

use std::path::Path;
use std::time::Duration;

use cluster_tests::hosts::Network;
use cluster_tests::{kubectl, until};

async fn kubectl_ok(admin: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(admin, args).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    out
}

const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: np}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: np, labels: {app: server}}
spec:
  nodeName: cp
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: [{name: http, containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: np}
spec:
  selector: {app: server}
  ports: [{port: 8080, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: friend, namespace: np, labels: {role: ok}}
spec:
  nodeName: w1
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: stranger, namespace: np, labels: {role: other}}
spec:
  nodeName: w1
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
"#;

const POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-friends, namespace: np}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: ok}}}]
    ports: [{port: http}]
"#;

/// Whether `client` gets the server's page from `url` (3 s at most; busybox's own wget
/// timeout crashes it).
async fn reaches(admin: &Path, client: &str, url: &str) -> bool {
    let (ok, out, _) = kubectl(
        admin,
        &[
            "exec", "-n", "np", client, "--", "timeout", "3", "wget", "-qO-", url,
        ],
    )
    .await;
    ok && out.contains("served")
}

/// Waits until both clients see what `want` says on both addresses.
async fn until_reach(admin: &Path, urls: &[String; 2], want: [(&str, bool); 2], what: &str) {
    until(what, Duration::from_secs(60), async || {
        for (client, expected) in want {
            for url in urls {
                if reaches(admin, client, url).await != expected {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_admits_only_the_pods_it_names_across_nodes_and_through_a_service() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let (ok, out, err) = net.init(cp, &[]);
    assert!(
        ok,
        "kubeadm init:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    let admin = net.hosts[cp].data_dir.join("admin.conf");
    let w = net.add_host("w1", 3);
    let (ok, out, err) = net.join(w, cp, &out);
    assert!(ok, "kubeadm join:\n{out}\n{err}\n{}", net.log(w, "kubelet"));
    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(PODS)).await;
    assert!(ok, "{out}{err}");
    until("the pods to run", Duration::from_secs(90), async || {
        let out = kubectl_ok(
            &admin,
            &[
                "get",
                "pods",
                "-n",
                "np",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        )
        .await;
        (out == "Running Running Running").then_some(())
    })
    .await;
    let pod_ip = kubectl_ok(
        &admin,
        &[
            "get",
            "pod",
            "-n",
            "np",
            "server",
            "-o",
            "jsonpath={.status.podIP}",
        ],
    )
    .await;
    let cluster_ip = kubectl_ok(
        &admin,
        &[
            "get",
            "svc",
            "-n",
            "np",
            "server",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
    .await;
    let urls = [
        format!("http://{pod_ip}/"),
        format!("http://{cluster_ip}:8080/"),
    ];

    until_reach(
        &admin,
        &urls,
        [("friend", true), ("stranger", true)],
        "both clients to reach the server",
    )
    .await;

    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(POLICY)).await;
    assert!(ok, "{out}{err}");
    until_reach(
        &admin,
        &urls,
        [("friend", true), ("stranger", false)],
        "the policy to shut the stranger out",
    )
    .await;
    let table = net.on_host(cp, &["nft", "list", "table", "inet", "tetsu-netpol"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("ip daddr vmap @ingress-pods"), "{table}");
    let metrics = net.on_host(
        cp,
        &["busybox", "wget", "-qO-", "http://127.0.0.1:10249/metrics"],
    );
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    assert!(
        metrics.contains("tetsu_network_policy_isolated_pods{direction=\"ingress\"} 1\n")
            && metrics.contains("tetsu_network_policy_sync_duration_seconds_count"),
        "{metrics}"
    );

    // Labels are read live: the stranger relabelled is a friend, then a stranger again;
    // without the policy the server is open to both.
    let steps: [(&[&str], bool, &str); 3] = [
        (
            &[
                "label",
                "pod",
                "-n",
                "np",
                "stranger",
                "role=ok",
                "--overwrite",
            ],
            true,
            "the relabelled client to be let in",
        ),
        (
            &[
                "label",
                "pod",
                "-n",
                "np",
                "stranger",
                "role=other",
                "--overwrite",
            ],
            false,
            "the client to be shut out again",
        ),
        (
            &["delete", "networkpolicy", "-n", "np", "only-friends"],
            true,
            "the server open again",
        ),
    ];
    for (change, stranger, what) in steps {
        kubectl_ok(&admin, change).await;
        until_reach(
            &admin,
            &urls,
            [("friend", true), ("stranger", stranger)],
            what,
        )
        .await;
    }
}
