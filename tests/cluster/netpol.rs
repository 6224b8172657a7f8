//! NetworkPolicy in a kubeadm cluster of two nodes (issue #19): upstream's test model
//! (tests/src/netpol_model.rs), every case, with each namespace's pods spread over both
//! nodes, so every
//! case is enforced on pod-to-pod traffic within a node and across nodes, in both
//! directions. The pods run `netprobe` (this crate's agnhost), from an image built with
//! `kubeadm images import`; policies and labels change through kubectl while the pods run,
//! and each case's whole reachability matrix (and every pod's connection to a Service in
//! front of x/a, judged after kube-proxy's DNAT, x/a's own through the hairpin) must match
//! the model within seconds.
//! kube-proxy's policy metrics and `kubectl describe networkpolicy` are checked on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cluster_tests::hosts::Network;
use cluster_tests::netpol_model::{self, Case, Probe};
use cluster_tests::{kubectl, until};
use k8s_openapi::api::core::v1::Pod;

const IMAGE: &str = "tetsu.test/netprobe:1";
/// Where `kubeadm images import --program` puts netprobe in its image.
const NETPROBE: &str = "/usr/local/bin/netprobe";
const NODES: [&str; 2] = ["cp", "w1"];

async fn kubectl_ok(admin: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(admin, args).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    out
}

async fn kubectl_apply(admin: &Path, docs: &[serde_json::Value]) {
    let yaml: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    let (ok, out, err) =
        apiserver::testing::kubectl(admin, &["apply", "-f", "-"], Some(&yaml.join("\n---\n")))
            .await;
    assert!(ok, "kubectl apply: {out}{err}");
}

/// The model's pods, namespaces and a Service x/web in front of x/a.
fn manifests() -> Vec<serde_json::Value> {
    let mut docs: Vec<serde_json::Value> = netpol_model::NAMESPACES
        .iter()
        .map(|ns| {
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"ns": ns}}})
        })
        .collect();
    for (i, id) in netpol_model::pod_ids().iter().enumerate() {
        let (ns, name) = id.split_once('/').unwrap();
        let ports: Vec<String> = netpol_model::PORTS.iter().map(u16::to_string).collect();
        let mut command = vec![NETPROBE.to_owned(), "serve".into(), id.clone()];
        command.extend(ports);
        docs.push(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
            "spec": {"nodeName": NODES[i % 2], "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                    "command": command, "ports": netpol_model::container_ports()}]}}));
    }
    docs.push(serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "x"},
        "spec": {"selector": {"pod": "a"}, "ports": [{"port": 8080, "targetPort": 80}]}}));
    docs
}

/// UDP source ports are never reused across probe rounds (see netprobe).
static ROUND: AtomicU32 = AtomicU32::new(0);

/// One round: every pod probes every other pod on every port and protocol, and the
/// Service; answers the probes that reached the right pod, and the pods that reached x/a
/// through the Service.
async fn probe_round(
    admin: &Path,
    ips: &BTreeMap<String, String>,
    service: &str,
) -> (BTreeSet<Probe>, BTreeSet<String>) {
    let round = ROUND.fetch_add(1, Ordering::Relaxed);
    let first_port = (20_000 + round * 64).to_string();
    let by_ip: BTreeMap<&str, &str> = ips
        .iter()
        .map(|(id, ip)| (ip.as_str(), id.as_str()))
        .collect();
    let all = netpol_model::probes();
    let rounds = netpol_model::pod_ids().into_iter().map(|from| {
        let mut targets: Vec<String> = all
            .iter()
            .filter(|p| p.from == from)
            .map(|p| format!("{}:{}/{}", ips[&p.to], p.port, p.protocol))
            .collect();
        targets.push(format!("{service}/TCP"));
        let first_port = first_port.clone();
        async move {
            let (ns, name) = from.split_once('/').unwrap();
            let mut args = vec!["exec", "-n", ns, name, "--", NETPROBE, "probe", "1500"];
            args.push(&first_port);
            args.extend(targets.iter().map(String::as_str));
            let (_, out, _) = kubectl(admin, &args).await;
            (from, out)
        }
    });
    let mut got = BTreeSet::new();
    let mut through_service = BTreeSet::new();
    for (from, out) in futures::future::join_all(rounds).await {
        for line in out.lines() {
            let Some((target, answer)) = line.split_once(' ') else {
                continue;
            };
            let (addr, protocol) = target.split_once('/').unwrap();
            if addr == service {
                if answer == "x/a" {
                    through_service.insert(from.clone());
                }
                continue;
            }
            let (ip, port) = addr.split_once(':').unwrap();
            let to = by_ip[ip];
            if answer == to {
                got.insert(Probe {
                    from: from.clone(),
                    to: to.to_owned(),
                    port: port.parse().unwrap(),
                    protocol: if protocol == "TCP" { "TCP" } else { "UDP" },
                });
            }
        }
    }
    (got, through_service)
}

/// Replaces the last case's policies and labels with `case`'s: the new ones first, so that
/// no moment between the cases has no policies at all (a probe round then could pass a case
/// whose policies allow everything before they are enforced).
async fn enter_case(admin: &Path, case: &Case, last: Option<&Case>) {
    if !case.policies.is_empty() {
        let docs: Vec<serde_json::Value> = case
            .policies
            .iter()
            .map(|p| {
                let mut doc = serde_json::to_value(p).unwrap();
                doc["apiVersion"] = "networking.k8s.io/v1".into();
                doc["kind"] = "NetworkPolicy".into();
                doc
            })
            .collect();
        kubectl_apply(admin, &docs).await;
    }
    let label = async |object: &str, change: &str| {
        match object.split_once('/') {
            Some((ns, pod)) => kubectl_ok(admin, &["label", "pod", "-n", ns, pod, change]).await,
            None => kubectl_ok(admin, &["label", "namespace", object, change]).await,
        };
    };
    for (object, key, value) in &case.labels {
        label(object, &format!("{key}={value}")).await;
    }
    let Some(last) = last else { return };
    for p in &last.policies {
        if !case.policies.iter().any(|q| q.metadata == p.metadata) {
            let name = p.metadata.name.as_deref().unwrap();
            let ns = p.metadata.namespace.as_deref().unwrap();
            kubectl_ok(admin, &["delete", "networkpolicy", "-n", ns, name]).await;
        }
    }
    for (object, key, _) in &last.labels {
        if !case.labels.iter().any(|(o, k, _)| o == object && k == key) {
            label(object, &format!("{key}-")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_policy_model_across_two_nodes() {
    let mut net = Network::create();
    let cp = net.add_host(NODES[0], 2);
    let (ok, out, err) = net.init(cp, &[]);
    assert!(
        ok,
        "kubeadm init:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    let admin = net.hosts[cp].data_dir.join("admin.conf");
    let w = net.add_host(NODES[1], 3);
    let (ok, out, err) = net.join(w, cp, &out);
    assert!(ok, "kubeadm join:\n{out}\n{err}\n{}", net.log(w, "kubelet"));
    let netprobe = cluster_tests::bin("netprobe").display().to_string();
    for host in [cp, w] {
        let data_dir = net.hosts[host].data_dir.display().to_string();
        let (ok, out, err) = net.kubeadm(
            host,
            &[
                "images",
                "import",
                IMAGE,
                "--program",
                &netprobe,
                "--data-dir",
                &data_dir,
            ],
        );
        assert!(ok, "kubeadm images import: {out}{err}");
    }
    kubectl_apply(&admin, &manifests()).await;
    let ips: BTreeMap<String, String> = until("the model's pods to run", Duration::from_secs(120), async || {
        let out = kubectl_ok(
            &admin,
            &["get", "pods", "-A", "-l", "pod", "-o",
              r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase} {.status.podIP}{"\n"}{end}"#],
        )
        .await;
        let running: BTreeMap<String, String> = out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let (id, phase, ip) = (words.next()?, words.next()?, words.next()?);
                (phase == "Running").then(|| (id.to_owned(), ip.to_owned()))
            })
            .collect();
        (running.len() == 9).then_some(running)
    })
    .await;
    let cluster_ip = kubectl_ok(
        &admin,
        &[
            "get",
            "svc",
            "-n",
            "x",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
    .await;
    let service = format!("{cluster_ip}:8080");
    let base_pods: Vec<Pod> = ips
        .iter()
        .enumerate()
        .map(|(i, (id, ip))| netpol_model::pod(id, NODES[i % 2], ip))
        .collect();

    let cases = netpol_model::cases(|id| ips[id].clone(), "10.244.0.0/16");
    let mut last: Option<&Case> = None;
    let mut last_want = BTreeSet::new();
    for case in &cases {
        let mut objects = base_pods.clone();
        let mut namespaces = netpol_model::namespace_labels();
        netpol_model::apply_labels(case, &mut objects, &mut namespaces);
        let want = netpol_model::expected(&objects, &namespaces, &case.policies);
        netpol_model::check_cells(case, &want);
        // Each case changes what gets through, so the round that matches it shows the
        // case's own policies at work, not the last one's.
        assert!(
            want != last_want,
            "{}: the same as the case before",
            case.name
        );
        let want_service = netpol_model::through_service_to_x_a(&want);
        let began = std::time::Instant::now();
        enter_case(&admin, case, last).await;
        let mut seen = (BTreeSet::new(), BTreeSet::new());
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        while std::time::Instant::now() < deadline {
            seen = probe_round(&admin, &ips, &service).await;
            if seen.0 == want && seen.1 == want_service {
                eprintln!(
                    "{}: enforced {:?} after the first change",
                    case.name,
                    began.elapsed()
                );
                break;
            }
        }
        assert!(
            seen.0 == want && seen.1 == want_service,
            "{}:\n{}through the Service: got {:?}, want {:?}\n{}",
            case.name,
            netpol_model::differences(&seen.0, &want),
            seen.1,
            want_service,
            String::from_utf8_lossy(
                &net.on_host(cp, &["nft", "list", "table", "inet", "tetsu-netpol"])
                    .stdout
            )
        );

        if case.name.starts_with("podSelector and namespaceSelector") {
            // What an operator sees: kube-proxy's policy metrics and kubectl's description.
            let metrics = net.on_host(
                cp,
                &["busybox", "wget", "-qO-", "http://127.0.0.1:10249/metrics"],
            );
            let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
            assert!(
                metrics.contains("tetsu_network_policy_isolated_pods{direction=\"ingress\"} 1\n")
                    && metrics.contains("tetsu_network_policies 1\n")
                    && metrics.contains("tetsu_network_policy_sync_duration_seconds_count"),
                "{metrics}"
            );
            let described =
                kubectl_ok(&admin, &["describe", "networkpolicy", "-n", "x", "and"]).await;
            for line in [
                "Name:         and",
                "PodSelector:     pod=a",
                "Allowing ingress traffic:",
            ] {
                assert!(described.contains(line), "{line} not in:\n{described}");
            }
        }
        last = Some(case);
        last_want = want;
    }
}
