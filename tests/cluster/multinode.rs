//! Three machines (network namespaces on one bridge): `kubeadm init` on one, the printed
//! `kubeadm join` on two workers (token discovery, TLS bootstrapping). A Deployment spreads
//! over the nodes and its Service answers across them through the pod network's routes;
//! a worker whose kubelet stops turns NotReady and its pods are replaced elsewhere.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use cluster_tests::hosts::{Network, after};
use cluster_tests::until;
use serde_json::Value;

async fn kubectl_ok(admin: &Path, args: &[&str]) -> String {
    let (ok, out, err) = apiserver::testing::kubectl(admin, args, None).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    out
}

/// (pod name, node) of the running, not terminating, pods labelled app=web.
async fn placements(admin: &Path) -> Vec<(String, String)> {
    let out = kubectl_ok(admin, &["get", "pods", "-l", "app=web", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

const WEB: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}},
      "spec": {"terminationGracePeriodSeconds": 1,
        "tolerations": [
          {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
          {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
          {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app": "web"}}}}]}},
        "containers": [{"name": "httpd", "image": "busybox",
          "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"],
          "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}}]}}}}"#;

const CLIENT: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
  "spec": {"nodeName": "cp", "terminationGracePeriodSeconds": 1,
    "containers": [{"name": "client", "image": "busybox", "command": ["sleep", "3600"]}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_join_with_the_printed_command_and_serve_across_nodes() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let workers = [net.add_host("w1", 3), net.add_host("w2", 4)];
    let dir = |i: usize| net.hosts[i].data_dir.display().to_string();
    let cp_ip = net.hosts[cp].ip.clone();
    let (ok, out, err) = net.init(
        cp,
        &[
            "--component-arg",
            "kube-controller-manager=--node-monitor-grace-period=8s",
        ],
    );
    assert!(
        ok,
        "kubeadm init:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    let token = after(&out, "--token").to_owned();
    let hash = after(&out, "--discovery-token-ca-cert-hash").to_owned();
    let endpoint = format!("{cp_ip}:6443");
    let admin = net.hosts[cp].data_dir.join("admin.conf");

    // A wrong CA pin is refused before the node trusts anything.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (ok, _, err) = net.kubeadm(
        workers[0],
        &[
            "join",
            &endpoint,
            "--token",
            &token,
            "--discovery-token-ca-cert-hash",
            &wrong,
            "--data-dir",
            &dir(workers[0]),
        ],
    );
    assert!(!ok && err.contains("none of the public keys"), "{err}");
    let _ = std::fs::remove_dir_all(&net.hosts[workers[0]].data_dir);

    // w1 joins with init's token, w2 with one from `kubeadm token create`.
    let (ok, created, err) = net.kubeadm(
        cp,
        &[
            "token",
            "create",
            "--print-join-command",
            "--data-dir",
            &dir(cp),
        ],
    );
    assert!(ok, "kubeadm token create: {created}{err}");
    assert!(
        created.starts_with(&format!("kubeadm join {endpoint} --token ")),
        "{created}"
    );
    assert_eq!(after(&created, "--discovery-token-ca-cert-hash"), hash);
    let second = after(&created, "--token").to_owned();
    let (ok, listed, err) = net.kubeadm(cp, &["token", "list", "--data-dir", &dir(cp)]);
    assert!(
        ok && listed.contains(&token) && listed.contains(&second),
        "{listed}{err}"
    );
    for ((w, name), token) in workers.iter().zip(["w1", "w2"]).zip([&token, &second]) {
        let ip = net.hosts[*w].ip.clone();
        let (ok, out, err) = net.kubeadm(
            *w,
            &[
                "join",
                &endpoint,
                "--token",
                token,
                "--discovery-token-ca-cert-hash",
                &hash,
                "--data-dir",
                &dir(*w),
                "--node-name",
                name,
                "--node-ip",
                &ip,
            ],
        );
        assert!(
            ok,
            "kubeadm join {name}:\n{out}\n{err}\n{}",
            net.log(*w, "kubelet")
        );
        assert!(out.contains("This node has joined the cluster"), "{out}");
    }
    let ready = until("three Ready nodes", Duration::from_secs(60), async || {
        let out = kubectl_ok(&admin, &["get", "nodes", "--no-headers"]).await;
        let ready: BTreeSet<String> = out
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        (ready.len() == 3).then_some(ready)
    })
    .await;
    assert_eq!(
        ready,
        BTreeSet::from(["cp".into(), "w1".into(), "w2".into()])
    );
    // The workers authenticate as themselves.
    let csrs = kubectl_ok(
        &admin,
        &["get", "csr", "-o", "jsonpath={.items[*].spec.username}"],
    )
    .await;
    assert!(csrs.contains("system:bootstrap:"), "{csrs}");

    // Spread over the nodes; the Service answers from pods on other nodes.
    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(WEB)).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(CLIENT)).await;
    assert!(ok, "{out}{err}");
    kubectl_ok(
        &admin,
        &["rollout", "status", "deployment/web", "--timeout=180s"],
    )
    .await;
    let nodes: BTreeSet<String> = placements(&admin)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert!(nodes.len() >= 2, "all pods on {nodes:?}");
    kubectl_ok(&admin, &["expose", "deployment/web", "--port", "80"]).await;
    kubectl_ok(
        &admin,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=120s",
        ],
    )
    .await;
    let svc = kubectl_ok(
        &admin,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .await;
    let url = format!("http://{svc}/");
    let answered = until(
        "answers from pods on two nodes",
        Duration::from_secs(60),
        async || {
            let mut seen = BTreeSet::new();
            for _ in 0..12 {
                let (ok, out, _) = apiserver::testing::kubectl(
                    &admin,
                    &["exec", "client", "--", "timeout", "5", "wget", "-qO-", &url],
                    None,
                )
                .await;
                if ok {
                    seen.insert(out.trim().to_owned());
                }
            }
            let pods = placements(&admin).await;
            let nodes: BTreeSet<&str> = pods
                .iter()
                .filter(|(name, _)| seen.contains(name))
                .map(|(_, node)| node.as_str())
                .collect();
            (nodes.len() >= 2 && nodes.iter().any(|n| *n != "cp")).then_some(seen)
        },
    )
    .await;
    assert!(
        answered.iter().all(|a| a.starts_with("web-")),
        "{answered:?}"
    );

    // w2's kubelet stops (its supervisor first, so nothing restarts it): the node turns
    // NotReady and its pods are replaced on the other nodes.
    let w2 = workers[1];
    let pid = |name: &str| -> u32 {
        std::fs::read_to_string(net.hosts[w2].data_dir.join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let kill = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    };
    kill(pid("kubeadm.pid"));
    kill(pid("pids/kubelet"));
    until("w2 NotReady", Duration::from_secs(60), async || {
        let out = kubectl_ok(&admin, &["get", "node", "w2", "--no-headers"]).await;
        (out.split_whitespace().nth(1) != Some("Ready")).then_some(())
    })
    .await;
    let moved = until(
        "three web pods off w2",
        Duration::from_secs(120),
        async || {
            let pods = placements(&admin).await;
            (pods.len() == 3 && pods.iter().all(|(_, n)| n != "w2")).then_some(pods)
        },
    )
    .await;
    assert!(
        moved.iter().all(|(_, n)| n == "cp" || n == "w1"),
        "{moved:?}"
    );
}
