//! The cluster DNS kubeadm installs, seen from pods as a user's application sees it: a
//! two-node cluster whose hosts' upstream resolver is a test server on the machine's side
//! of the test network (authoritative for example.test), so forwarding is checked without
//! the outside world. Pods reach the API by name, Services by short name and FQDN, a
//! StatefulSet pod by its stable name (which its /etc/hosts holds too), an ExternalName
//! Service and an outside name; the DNS replicas run on both nodes, list as endpoints and
//! log through kubectl; when one node drops off the network, names keep resolving
//! through the other replica.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cluster_tests::hosts::Network;
use cluster_tests::until;
use serde_json::Value;

/// Where the test's upstream resolver answers from, and what.
const OUTSIDE_NAME: &str = "www.app.svc.example.test";
const OUTSIDE_IP: &str = "192.0.2.80";

async fn kubectl(admin: &Path, args: &[&str]) -> (bool, String) {
    let (ok, out, err) = apiserver::testing::kubectl(admin, args, None).await;
    (ok, format!("{out}{err}"))
}

async fn kubectl_ok(admin: &Path, args: &[&str]) -> String {
    let (ok, out) = kubectl(admin, args).await;
    assert!(ok, "kubectl {}: {out}", args.join(" "));
    out
}

/// Runs `command` in the client pod: (success, output).
async fn in_client(admin: &Path, command: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", "-n", "app", "client", "--"];
    args.extend_from_slice(command);
    kubectl(admin, &args).await
}

/// The addresses busybox's nslookup printed for the name (those after the "Name:" line,
/// not the server's own).
fn looked_up(out: &str) -> BTreeSet<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_owned())
        .collect()
}

/// The ready endpoints of the kube-dns Service: (address, node).
async fn dns_endpoints(admin: &Path) -> BTreeSet<(String, String)> {
    let out = kubectl_ok(
        admin,
        &[
            "get",
            "endpointslices",
            "-n",
            "kube-system",
            "-l",
            "kubernetes.io/service-name=kube-dns",
            "-o",
            "json",
        ],
    )
    .await;
    let list: Value = serde_json::from_str(&out).unwrap();
    let mut ready = BTreeSet::new();
    for slice in list["items"].as_array().unwrap() {
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            if e["conditions"]["ready"] == true {
                ready.insert((
                    e["addresses"][0].as_str().unwrap().to_owned(),
                    e["nodeName"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    ready
}

const APP: &str = r#"
{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}},
 {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "app"},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
   "template": {"metadata": {"labels": {"app": "web"}},
    "spec": {"terminationGracePeriodSeconds": 1, "nodeName": "cp",
     "containers": [{"name": "httpd", "image": "busybox",
      "command": ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"],
      "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}}]}}}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"},
  "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "app"},
  "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "db", "port": 5432}]}},
 {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "app"},
  "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
   "template": {"metadata": {"labels": {"app": "db"}},
    "spec": {"terminationGracePeriodSeconds": 1, "nodeName": "cp",
     "containers": [{"name": "db", "image": "busybox", "command": ["sleep", "3600"]}]}}}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "app"},
  "spec": {"type": "ExternalName", "externalName": "www.app.svc.example.test"}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "app"},
  "spec": {"nodeName": "cp", "terminationGracePeriodSeconds": 1,
   "containers": [{"name": "client", "image": "busybox", "command": ["sleep", "3600"]}]}}
]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_resolve_the_cluster_and_outside_names_and_dns_outlives_a_node() {
    let mut net = Network::create();
    let gateway = format!("10.251.{}.1", net.subnet);
    let _upstream = dns::testing::outside_resolver(
        format!("{gateway}:53").parse().unwrap(),
        "example.test",
        OUTSIDE_IP,
    )
    .await
    .expect("the hosts' upstream resolver");
    let resolv_conf = net.dir.path().join("resolv.conf");
    std::fs::write(
        &resolv_conf,
        format!("nameserver {gateway}\nsearch example.test\n"),
    )
    .unwrap();
    let kubelet_arg = format!("kubelet=--resolv-conf={}", resolv_conf.display());
    let cp = net.add_host("cp", 2);
    let (ok, init_out, err) = net.init(
        cp,
        &[
            "--component-arg",
            &kubelet_arg,
            "--component-arg",
            "kube-controller-manager=--node-monitor-grace-period=8s",
        ],
    );
    assert!(
        ok,
        "kubeadm init:\n{init_out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    assert!(
        init_out.contains("[addons] Applied essential addon: cluster DNS"),
        "{init_out}"
    );
    let admin = net.hosts[cp].data_dir.join("admin.conf");
    let w = net.add_host("w1", 3);
    let (ok, out, err) = net.join_with(w, cp, &init_out, &["--component-arg", &kubelet_arg]);
    assert!(ok, "kubeadm join:\n{out}\n{err}\n{}", net.log(w, "kubelet"));

    // The kube-dns Service as upstream's, and its two replicas ready on different nodes.
    let svc: Value = serde_json::from_str(
        &kubectl_ok(
            &admin,
            &[
                "get",
                "service",
                "-n",
                "kube-system",
                "kube-dns",
                "-o",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
    let started = Instant::now();
    let replicas = until(
        "DNS endpoints ready on both nodes",
        Duration::from_secs(180),
        async || {
            let ready = dns_endpoints(&admin).await;
            let nodes: BTreeSet<&str> = ready.iter().map(|(_, n)| n.as_str()).collect();
            (nodes == BTreeSet::from(["cp", "w1"])).then_some(ready)
        },
    )
    .await;
    eprintln!(
        "DNS ready on both nodes {:?} after the join: {replicas:?}",
        started.elapsed()
    );
    let logs = kubectl_ok(
        &admin,
        &[
            "logs",
            "-n",
            "kube-system",
            "-l",
            "k8s-app=kube-dns",
            "--tail=-1",
        ],
    )
    .await;
    assert!(logs.contains("serving DNS"), "{logs}");

    // One document per object: kubectl's validation of a List needs /openapi/v2 (#21).
    let app: Value = serde_json::from_str(APP).unwrap();
    let docs: Vec<String> = app["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(&docs.join("\n---\n")))
            .await;
    assert!(ok, "kubectl apply: {out}{err}");
    let (web_ip, db_ip) = until("web, db-0 and client running", Duration::from_secs(120), async || {
        let out = kubectl_ok(
            &admin,
            &["get", "pods", "-n", "app", "-o",
              r#"jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#],
        )
        .await;
        let ready = |prefix: &str| {
            out.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|w| w.len() == 4 && w[0].starts_with(prefix) && w[1] == "Running" && w[3] == "True")
                .map(|w| w[2].to_owned())
        };
        Some((ready("web-")?, ready("db-0")?)).filter(|_| ready("client").is_some())
    })
    .await;

    // The pod's resolver configuration, as the kubelet writes it for ClusterFirst.
    let (ok, resolv) = in_client(&admin, &["cat", "/etc/resolv.conf"]).await;
    assert!(ok, "{resolv}");
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv
            .contains("search app.svc.cluster.local svc.cluster.local cluster.local example.test"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    // Names asked of the server as they are (busybox 1.35's nslookup sends the name as
    // given, without the search path, as upstream's DNS debugging guide warns).
    let lookup = async |name: &str| {
        let (ok, out) = in_client(&admin, &["nslookup", name]).await;
        (ok, out.clone(), looked_up(&out))
    };
    let (ok, out, addrs) = lookup("kubernetes.default.svc.cluster.local").await;
    assert!(ok && addrs.contains("10.96.0.1"), "{out}");
    let (ok, out, addrs) = lookup("db-0.db.app.svc.cluster.local").await;
    assert!(ok && addrs.contains(&db_ip), "db-0 is {db_ip}: {out}");
    let (ok, out, addrs) = lookup("db.app.svc.cluster.local").await;
    assert!(
        ok && addrs.contains(&db_ip),
        "headless db lists {db_ip}: {out}"
    );
    let (ok, out, addrs) = lookup("ext.app.svc.cluster.local").await;
    assert!(
        ok && out.contains(OUTSIDE_NAME) && addrs.contains(OUTSIDE_IP),
        "ext is a CNAME to {OUTSIDE_NAME} ({OUTSIDE_IP}): {out}"
    );
    let (ok, out, addrs) = lookup(OUTSIDE_NAME).await;
    assert!(ok && addrs.contains(OUTSIDE_IP), "forwarded: {out}");
    let (ok, out, _) = lookup("nothing-here.app.svc.cluster.local").await;
    assert!(!ok && out.contains("NXDOMAIN"), "an unknown Service: {out}");
    let pod_name = format!("{}.app.pod.cluster.local", web_ip.replace('.', "-"));
    let (ok, out, addrs) = lookup(&pod_name).await;
    assert!(ok && addrs.contains(&web_ip), "{pod_name}: {out}");

    // Names as applications resolve them: the pod's libc resolver walks the search path
    // (ping prints the address it resolved, whether or not anything answers it).
    let resolve = async |name: &str| {
        let (_, out) = in_client(&admin, &["ping", "-c", "1", "-W", "1", name]).await;
        out.split(['(', ')']).nth(1).unwrap_or_default().to_owned()
    };
    for (name, want) in [
        ("kubernetes.default", "10.96.0.1"),
        ("db-0.db", db_ip.as_str()),
        ("ext", OUTSIDE_IP),
        // The host's search domain, after the cluster's.
        ("www.app.svc", OUTSIDE_IP),
    ] {
        assert_eq!(resolve(name).await, want, "{name}");
    }

    // The StatefulSet pod knows its own FQDN.
    let (ok, hosts) = kubectl(
        &admin,
        &["exec", "-n", "app", "db-0", "--", "cat", "/etc/hosts"],
    )
    .await;
    assert!(
        ok && hosts.contains(&format!("{db_ip}\tdb-0.db.app.svc.cluster.local\tdb-0\n")),
        "{hosts}"
    );

    // An application reaching its dependency by short name and by FQDN.
    for url in ["http://web", "http://web.app.svc.cluster.local"] {
        let (ok, out) = in_client(&admin, &["timeout", "10", "wget", "-qO-", url]).await;
        assert!(ok && out.contains("hello-from-web"), "{url}: {out}");
    }

    // One node drops off the network (its DNS replica with it): once the cluster sees it
    // gone (its endpoint not ready, and out of the control-plane node's kube-proxy rules),
    // every lookup is answered by the other replica.
    let lost: Vec<String> = replicas
        .iter()
        .filter(|(_, node)| node == "w1")
        .map(|(ip, _)| ip.clone())
        .collect();
    let out = net.on_host(w, &["ip", "link", "set", "eth0", "down"]);
    assert!(out.status.success(), "{out:?}");
    let cut = Instant::now();
    let mut failed = 0;
    until(
        "the lost replica out of the Service on cp",
        Duration::from_secs(90),
        async || {
            let (ok, _, addrs) = lookup("web.app.svc.cluster.local").await;
            if !(ok && addrs.len() == 1) {
                failed += 1;
            }
            let ready = dns_endpoints(&admin).await;
            let only_cp = !ready.is_empty() && ready.iter().all(|(_, n)| n == "cp");
            let rules = net.on_host(cp, &["nft", "list", "ruleset"]);
            let rules = String::from_utf8_lossy(&rules.stdout);
            let mentioned = rules
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .any(|word| lost.iter().any(|ip| ip == word));
            (only_cp && !mentioned).then_some(())
        },
    )
    .await;
    eprintln!(
        "w1 cut off: {failed} lookups failed before its replica left the Service after {:?}",
        cut.elapsed()
    );
    for i in 0..10 {
        let (ok, out, addrs) = lookup("web.app.svc.cluster.local").await;
        assert!(
            ok && addrs.len() == 1,
            "lookup {i} after the node loss: {out}"
        );
    }
}
