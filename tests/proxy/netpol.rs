//! NetworkPolicy rules in real nftables (issue #19, first part): one node (a network
//! namespace) with four pods on its CNI bridge (x/a, x/b, y/a, y/b), busybox httpd on 80 and
//! 81 in each. For each policy case the table `netpol::rules::render` writes is loaded with
//! `nft -f` in the node, every pod-to-pod connection on both ports is probed, and what got
//! through is compared with `netpol::semantics::allows`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use proxy::netpol::rules::{Cluster, render};
use proxy::netpol::semantics::{Connection, Endpoint, NamespaceLabels, allows};
use proxy::podnet;
use proxy::testing::{Lan, Netns, add_pod, serve_name};
use serde_json::json;

const NODE: &str = "node-a";

struct TestPod {
    netns: Netns,
    object: Pod,
    ip: String,
}

fn id(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap(),
        p.metadata.name.as_deref().unwrap()
    )
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap()
}

/// Every connection (from, to, port) that gets through, probed all at once.
fn probe(pods: &[TestPod]) -> BTreeSet<String> {
    std::thread::scope(|scope| {
        let mut probes = Vec::new();
        for from in pods {
            for to in pods.iter().filter(|t| t.ip != from.ip) {
                for port in [80, 81] {
                    probes.push(scope.spawn(move || {
                        let url = format!("http://{}:{port}/", to.ip);
                        let (ok, _) = from
                            .netns
                            .sh(&format!("timeout 3 busybox wget -q -O /dev/null {url}"));
                        ok.then(|| format!("{}->{}:{port}", id(&from.object), id(&to.object)))
                    }));
                }
            }
        }
        probes
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect()
    })
}

/// What the semantics allow between the pods.
fn expected(
    pods: &[TestPod],
    policies: &[NetworkPolicy],
    ns: &NamespaceLabels,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for from in pods {
        for to in pods.iter().filter(|t| t.ip != from.ip) {
            for port in [80, 81] {
                let conn = Connection {
                    from: Endpoint::Pod(&from.object),
                    to: Endpoint::Pod(&to.object),
                    protocol: "TCP",
                    port,
                };
                if allows(policies, ns, &conn) {
                    out.insert(format!("{}->{}:{port}", id(&from.object), id(&to.object)));
                }
            }
        }
    }
    out
}

#[test]
fn the_rules_let_through_exactly_what_the_policies_allow() {
    let dir = tempfile::tempdir().unwrap();
    let lan = Lan::new("10.251.0");
    let (node, _) = lan.add_node(1);
    // Traffic between pods on one bridge meets the forward hook, as the agent arranges.
    let (ok, out) = node.sh(
        "modprobe br_netfilter 2>/dev/null; sysctl -qw net.bridge.bridge-nf-call-iptables=1 && sysctl -qw net.ipv4.ip_forward=1",
    );
    assert!(ok, "{out}");
    let ipam = dir.path().join("ipam");
    let conf = podnet::conflist("10.244.1.0/24", Some(&ipam));
    let mut pods = Vec::new();
    let mut servers = Vec::new();
    for (ns, name) in [("x", "a"), ("x", "b"), ("y", "a"), ("y", "b")] {
        let (netns, ip) = add_pod(&node, &conf, &ipam);
        for port in [80, 81] {
            servers.push(serve_name(
                &netns,
                dir.path(),
                &format!("{ns}/{name}"),
                port,
            ));
        }
        let ports: Vec<_> = [80, 81]
            .iter()
            .map(|p| json!({"name": format!("serve-{p}-tcp"), "containerPort": p}))
            .collect();
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "ports": ports}]},
            "status": {"podIP": ip},
        }))
        .unwrap();
        pods.push(TestPod { netns, object, ip });
    }
    let namespaces: NamespaceLabels = ["x", "y"]
        .iter()
        .map(|n| (n.to_string(), [("ns".to_owned(), n.to_string())].into()))
        .collect();
    let y_a = pods[2].ip.clone();

    let cases: Vec<(&str, Vec<NetworkPolicy>)> = vec![
        ("no policy", vec![]),
        (
            "default deny ingress in x",
            vec![policy("x", "deny", json!({"podSelector": {}}))],
        ),
        (
            "x/a from y's pod=b on the named port 81 only",
            vec![policy(
                "x",
                "named",
                json!({"podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                    "podSelector": {"matchLabels": {"pod": "b"}}}],
                    "ports": [{"port": "serve-81-tcp"}]}]}),
            )],
        ),
        (
            "y may send only to x on port 80",
            vec![policy(
                "y",
                "egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}],
                    "ports": [{"port": 80}]}]}),
            )],
        ),
        (
            "x may send to the pod range on the named port 81 only",
            vec![policy(
                "x",
                "named-egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.244.1.0/24"}}],
                    "ports": [{"port": "serve-81-tcp"}]}]}),
            )],
        ),
        (
            "x/b from the pod range except y/a, plus x's own pods on 80-81 (two policies)",
            vec![
                policy(
                    "x",
                    "block",
                    json!({"podSelector": {"matchLabels": {"pod": "b"}},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.1.0/24",
                        "except": [format!("{y_a}/32")]}}]}]}),
                ),
                policy(
                    "x",
                    "own",
                    json!({"podSelector": {},
                    "ingress": [{"from": [{"podSelector": {}}],
                        "ports": [{"port": 80, "endPort": 81}]}]}),
                ),
            ],
        ),
    ];
    let objects: Vec<&Pod> = pods.iter().map(|p| &p.object).collect();
    let rules = dir.path().join("netpol.nft");
    for (case, policies) in &cases {
        let policy_refs: Vec<&NetworkPolicy> = policies.iter().collect();
        let script = render(&Cluster {
            policies: &policy_refs,
            pods: &objects,
            namespaces: &namespaces,
            node: NODE,
        });
        std::fs::write(&rules, &script).unwrap();
        let (ok, out) = node.sh(&format!("nft -f {}", rules.display()));
        assert!(ok, "{case}: nft refused the rules: {out}\n{script}");
        let want = expected(&pods, policies, &namespaces);
        let got = probe(&pods);
        assert_eq!(
            got,
            want,
            "{case}: got through but should not: {:?}; blocked but should pass: {:?}\n{script}",
            got.difference(&want).collect::<Vec<_>>(),
            want.difference(&got).collect::<Vec<_>>(),
        );
        if case.starts_with("no policy") {
            assert_eq!(got.len(), 24, "every pair on both ports");
        } else {
            assert!(got.len() < 24, "{case}: the case blocks something");
        }
    }
    drop(servers);
}
