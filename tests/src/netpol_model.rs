//! Upstream's NetworkPolicy test model (the e2e suite's network/netpol): namespaces x, y and z
//! with pods a, b and c each, every pod serving TCP and UDP on ports 80 and 81 under the
//! named ports `serve-<port>-<protocol>`; the policy cases of upstream's suite; and for each
//! case the expected reachability of every probe (each pod to each other pod on each port
//! and protocol), computed with proxy's reference semantics and spot-checked against cells
//! of upstream's truth tables written here by hand. The node tests (network namespaces) and
//! the whole-cluster test (kubeadm, two nodes) probe the same model.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use proxy::netpol::semantics::{Connection, Endpoint, NamespaceLabels, allows};
use serde_json::{Value, json};

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const PODS: [&str; 3] = ["a", "b", "c"];
pub const PORTS: [u16; 2] = [80, 81];
/// SCTP is in upstream's model where the kernel has it; ours (and CI's) do not.
pub const PROTOCOLS: [&str; 2] = ["TCP", "UDP"];

/// Every pod of the model as `ns/name`, x/a first.
pub fn pod_ids() -> Vec<String> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
        .collect()
}

/// The container ports every pod of the model declares.
pub fn container_ports() -> Value {
    let ports: Vec<Value> = PORTS
        .iter()
        .flat_map(|port| {
            PROTOCOLS.iter().map(move |proto| {
                json!({"name": format!("serve-{port}-{}", proto.to_lowercase()),
                       "containerPort": port, "protocol": proto})
            })
        })
        .collect();
    Value::Array(ports)
}

/// The pod `id` ("x/a") of the model on `node` at `ip`, labelled `pod=<name>`.
pub fn pod(id: &str, node: &str, ip: &str) -> Pod {
    let (ns, name) = id.split_once('/').unwrap();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": container_ports()}]},
        "status": {"podIP": ip},
    }))
    .unwrap()
}

/// The namespaces' labels in the model: `ns=<name>` and the apiserver's
/// `kubernetes.io/metadata.name`.
pub fn namespace_labels() -> NamespaceLabels {
    NAMESPACES
        .iter()
        .map(|ns| {
            let labels = [
                ("ns".to_owned(), ns.to_string()),
                ("kubernetes.io/metadata.name".to_owned(), ns.to_string()),
            ];
            (ns.to_string(), labels.into())
        })
        .collect()
}

/// One connection attempt of the model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: &'static str,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {}/{}",
            self.from, self.to, self.port, self.protocol
        )
    }
}

/// Every probe between two different pods of the model.
pub fn probes() -> Vec<Probe> {
    let ids = pod_ids();
    let mut out = Vec::new();
    for from in &ids {
        for to in ids.iter().filter(|t| *t != from) {
            for port in PORTS {
                for protocol in PROTOCOLS {
                    out.push(Probe {
                        from: from.clone(),
                        to: to.clone(),
                        port,
                        protocol,
                    });
                }
            }
        }
    }
    out
}

/// A label change a case makes: (object, key, value); the object is a pod ("x/a") or a
/// namespace ("y").
pub type Label = (&'static str, &'static str, &'static str);

/// One case of upstream's suite: the policies that exist, the labels changed from the
/// model's, and cells of upstream's truth table (a probe as [`Probe`] displays it, and
/// whether it gets through).
pub struct Case {
    pub name: &'static str,
    pub policies: Vec<NetworkPolicy>,
    pub labels: Vec<Label>,
    pub checks: Vec<(&'static str, bool)>,
}

/// The pods and namespaces of the model with `case`'s labels applied to `pods`.
pub fn apply_labels(case: &Case, pods: &mut [Pod], namespaces: &mut NamespaceLabels) {
    for (object, key, value) in &case.labels {
        match object.split_once('/') {
            Some((ns, name)) => {
                let pod = pods
                    .iter_mut()
                    .find(|p| {
                        p.metadata.namespace.as_deref() == Some(ns)
                            && p.metadata.name.as_deref() == Some(name)
                    })
                    .expect("a pod of the model");
                pod.metadata
                    .labels
                    .get_or_insert_default()
                    .insert(key.to_string(), value.to_string());
            }
            None => {
                namespaces
                    .get_mut(*object)
                    .expect("a namespace of the model")
                    .insert(key.to_string(), value.to_string());
            }
        }
    }
}

/// What gets through under `policies`, by the reference semantics; `pods` are the
/// model's, with their addresses.
pub fn expected(
    pods: &[Pod],
    namespaces: &NamespaceLabels,
    policies: &[NetworkPolicy],
) -> BTreeSet<Probe> {
    let by_id: BTreeMap<String, &Pod> = pods
        .iter()
        .map(|p| {
            let id = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap(),
                p.metadata.name.as_deref().unwrap()
            );
            (id, p)
        })
        .collect();
    probes()
        .into_iter()
        .filter(|probe| {
            allows(
                policies,
                namespaces,
                &Connection {
                    from: Endpoint::Pod(by_id[&probe.from]),
                    to: Endpoint::Pod(by_id[&probe.to]),
                    protocol: probe.protocol,
                    port: probe.port,
                },
            )
        })
        .collect()
}

/// Checks `case`'s hand-written cells against `expected` (the reference semantics).
pub fn check_cells(case: &Case, expected: &BTreeSet<Probe>) {
    let allowed: BTreeSet<String> = expected.iter().map(ToString::to_string).collect();
    for (cell, want) in &case.checks {
        assert!(
            allowed.contains(*cell) == *want,
            "{}: upstream's table says {cell} is {}",
            case.name,
            if *want { "allowed" } else { "blocked" }
        );
    }
}

/// The pods that reach x/a through a Service in front of its TCP port 80: those the
/// policies let reach x/a there (they judge the pod after the DNAT), and x/a itself through
/// the hairpin, whatever the policies.
pub fn through_service_to_x_a(want: &BTreeSet<Probe>) -> BTreeSet<String> {
    want.iter()
        .filter(|p| p.to == "x/a" && p.port == 80 && p.protocol == "TCP")
        .map(|p| p.from.clone())
        .chain(["x/a".to_owned()])
        .collect()
}

/// What differs between what got through and what should have, readably.
pub fn differences(got: &BTreeSet<Probe>, want: &BTreeSet<Probe>) -> String {
    let mut s = String::new();
    for p in got.difference(want) {
        s.push_str(&format!("  got through, should not: {p}\n"));
    }
    for p in want.difference(got) {
        s.push_str(&format!("  blocked, should pass: {p}\n"));
    }
    s
}

fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap()
}

/// The policies' podSelector for pod `name` of the model.
fn select(name: &str) -> Value {
    json!({"matchLabels": {"pod": name}})
}

/// The cases, in the order they run: policies come and go between them, so each case also
/// shows that the last one's policies were removed. `ip` gives a pod's address ("y/b"),
/// `pod_cidr` the range every pod is in.
pub fn cases(ip: impl Fn(&str) -> String, pod_cidr: &str) -> Vec<Case> {
    let ns_in = |values: &[&str]| json!({"matchExpressions": [{"key": "ns", "operator": "In", "values": values}]});
    let ns_not_in = |values: &[&str]| json!({"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": values}]});
    let yb = format!("{}/32", ip("y/b"));
    vec![
        Case {
            name: "no policies: every pod reaches every pod",
            policies: vec![],
            labels: vec![],
            checks: vec![("x/a -> y/b 80/TCP", true), ("z/c -> x/a 81/UDP", true)],
        },
        Case {
            name: "default-deny-ingress in x",
            policies: vec![policy(
                "x",
                "deny-ingress",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/TCP", false),
                ("x/b -> x/a 80/UDP", false),
                ("x/a -> y/a 80/TCP", true),
            ],
        },
        Case {
            name: "default-deny-all in x (ingress and egress)",
            policies: vec![policy(
                "x",
                "deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/a -> y/a 80/TCP", false),
                ("y/a -> x/a 80/TCP", false),
                ("y/a -> z/a 81/UDP", true),
            ],
        },
        Case {
            name: "allow x/a from pods of its namespace by podSelector",
            policies: vec![policy(
                "x",
                "allow-from-b",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"podSelector": select("b")}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/b -> x/a 80/TCP", true),
                ("x/c -> x/a 80/TCP", false),
                ("y/b -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "allow x/a from a namespace by namespaceSelector",
            policies: vec![policy(
                "x",
                "allow-from-y",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/c -> x/a 81/UDP", true),
                ("z/a -> x/a 80/TCP", false),
                ("x/b -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "podSelector with matchExpressions",
            policies: vec![policy(
                "x",
                "expressions",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"podSelector": {"matchExpressions":
                        [{"key": "pod", "operator": "In", "values": ["b"]}]}}]}]}),
            )],
            labels: vec![],
            checks: vec![("x/b -> x/a 80/TCP", true), ("x/c -> x/a 80/TCP", false)],
        },
        Case {
            name: "namespaceSelector with matchExpressions (NotIn)",
            policies: vec![policy(
                "x",
                "not-x",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_not_in(&["x"])}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/TCP", true),
                ("z/c -> x/a 81/TCP", true),
                ("x/b -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "podSelector or namespaceSelector (two peers)",
            policies: vec![policy(
                "x",
                "or",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_not_in(&["x"])},
                        {"podSelector": select("b")}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/c -> x/a 80/TCP", true),
                ("x/b -> x/a 80/TCP", true),
                ("x/c -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "podSelector and namespaceSelector (one peer)",
            policies: vec![policy(
                "x",
                "and",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_not_in(&["x"]),
                        "podSelector": select("b")}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/b -> x/a 80/TCP", true),
                ("z/b -> x/a 81/UDP", true),
                ("x/b -> x/a 80/TCP", false),
                ("y/a -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "multiple podSelectors and namespaceSelectors",
            policies: vec![policy(
                "x",
                "multiple",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_in(&["y", "z"]),
                        "podSelector": {"matchExpressions":
                            [{"key": "pod", "operator": "In", "values": ["a", "b"]}]}}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/TCP", true),
                ("z/b -> x/a 80/TCP", true),
                ("y/c -> x/a 80/TCP", false),
                ("x/b -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "only a different namespace, by its default kubernetes.io/metadata.name label",
            policies: vec![policy(
                "x",
                "from-y",
                json!({"podSelector": {},
                    "ingress": [{"from": [{"namespaceSelector":
                        {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/c 80/TCP", true),
                ("x/a -> x/c 80/TCP", false),
                ("z/a -> x/b 80/TCP", false),
            ],
        },
        Case {
            name: "ports: from y on port 81 only",
            policies: vec![policy(
                "x",
                "port-81",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}],
                        "ports": [{"port": 81, "protocol": "TCP"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 81/TCP", true),
                ("y/a -> x/a 80/TCP", false),
                ("y/a -> x/a 81/UDP", false),
            ],
        },
        Case {
            name: "multiple stacked policies with overlapping podSelectors add up",
            policies: vec![
                policy(
                    "x",
                    "port-80",
                    json!({"podSelector": select("a"),
                        "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}],
                            "ports": [{"port": 80}]}]}),
                ),
                policy(
                    "x",
                    "port-81",
                    json!({"podSelector": {},
                        "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}],
                            "ports": [{"port": 81}]}]}),
                ),
            ],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/TCP", true),
                ("y/a -> x/a 81/TCP", true),
                ("y/a -> x/b 80/TCP", false),
                ("y/a -> x/b 81/TCP", true),
                ("z/a -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "allow-all ingress in x",
            policies: vec![policy(
                "x",
                "allow-all",
                json!({"podSelector": {}, "ingress": [{}]}),
            )],
            labels: vec![],
            checks: vec![("z/c -> x/a 80/UDP", true), ("x/b -> x/a 81/TCP", true)],
        },
        Case {
            name: "ingress on one named port",
            policies: vec![policy(
                "x",
                "named-80-tcp",
                json!({"podSelector": select("a"),
                    "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("z/c -> x/a 80/TCP", true),
                ("z/c -> x/a 81/TCP", false),
                ("z/c -> x/a 80/UDP", false),
            ],
        },
        Case {
            name: "ingress from a namespace on one named UDP port",
            policies: vec![policy(
                "x",
                "named-80-udp",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}],
                        "ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/b -> x/a 80/UDP", true),
                ("y/b -> x/a 80/TCP", false),
                ("z/b -> x/a 80/UDP", false),
            ],
        },
        Case {
            name: "egress on one named port",
            policies: vec![policy(
                "x",
                "egress-named",
                json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/a -> y/b 81/TCP", true),
                ("x/a -> y/b 80/TCP", false),
                ("x/a -> y/b 81/UDP", false),
                ("y/b -> x/a 80/TCP", true),
            ],
        },
        Case {
            name: "deny ingress from pods of other namespaces",
            policies: vec![policy(
                "x",
                "same-namespace",
                json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
            )],
            labels: vec![],
            checks: vec![("x/b -> x/a 80/TCP", true), ("y/b -> x/a 80/TCP", false)],
        },
        Case {
            name: "deny egress from a pod by podSelector",
            policies: vec![policy(
                "x",
                "deny-egress-a",
                json!({"podSelector": select("a"), "policyTypes": ["Egress"]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/a -> x/b 80/TCP", false),
                ("x/a -> z/c 81/UDP", false),
                ("x/b -> x/a 80/TCP", true),
            ],
        },
        Case {
            name: "ingress and egress specified together",
            policies: vec![policy(
                "x",
                "both",
                json!({"podSelector": select("a"), "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}]}],
                    "egress": [{"to": [{"namespaceSelector": ns_in(&["z"])}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/TCP", true),
                ("z/a -> x/a 80/TCP", false),
                ("x/a -> z/b 81/UDP", true),
                ("x/a -> y/b 80/TCP", false),
            ],
        },
        Case {
            name: "client-side egress denial wins over a server allowing everything",
            policies: vec![
                policy(
                    "z",
                    "deny-egress-b",
                    json!({"podSelector": select("b"), "policyTypes": ["Egress"]}),
                ),
                policy(
                    "x",
                    "allow-all",
                    json!({"podSelector": select("a"), "ingress": [{}]}),
                ),
            ],
            labels: vec![],
            checks: vec![("z/b -> x/a 80/TCP", false), ("z/a -> x/a 80/TCP", true)],
        },
        Case {
            name: "egress to a pod of another namespace by namespaceSelector and podSelector",
            policies: vec![policy(
                "x",
                "to-y-b",
                json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                    "egress": [{"to": [{"namespaceSelector": ns_in(&["y"]),
                        "podSelector": select("b")}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/a -> y/b 80/TCP", true),
                ("x/a -> y/a 80/TCP", false),
                ("x/a -> x/b 80/TCP", false),
            ],
        },
        Case {
            name: "egress to a Service's pods (judged on the pod after the Service's DNAT)",
            policies: vec![policy(
                "y",
                "to-x-a",
                json!({"podSelector": {}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"namespaceSelector": ns_in(&["x"]),
                        "podSelector": select("a")}], "ports": [{"port": 80}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/b -> x/a 80/TCP", true),
                ("y/b -> x/b 80/TCP", false),
                ("y/b -> z/a 80/TCP", false),
                ("z/b -> y/a 80/TCP", true),
            ],
        },
        Case {
            name: "any port of one protocol",
            policies: vec![policy(
                "x",
                "udp-only",
                json!({"podSelector": select("a"),
                    "ingress": [{"ports": [{"protocol": "UDP"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/UDP", true),
                ("y/a -> x/a 81/UDP", true),
                ("y/a -> x/a 80/TCP", false),
            ],
        },
        Case {
            name: "multiple ingress policies, allow-all among them",
            policies: vec![
                policy(
                    "x",
                    "from-y-80",
                    json!({"podSelector": select("a"),
                        "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}],
                            "ports": [{"port": 80}]}]}),
                ),
                policy(
                    "x",
                    "allow-all",
                    json!({"podSelector": select("a"), "ingress": [{}]}),
                ),
            ],
            labels: vec![],
            checks: vec![("z/a -> x/a 81/TCP", true), ("y/a -> x/a 81/UDP", true)],
        },
        Case {
            name: "egress to a server's address (ipBlock)",
            policies: vec![policy(
                "x",
                "to-cidr",
                json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": yb}}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/a -> y/b 80/TCP", true),
                ("x/a -> y/b 81/UDP", true),
                ("x/a -> y/a 80/TCP", false),
            ],
        },
        Case {
            name: "multiple egress policies, allow-all among them",
            policies: vec![
                policy(
                    "x",
                    "to-y-80",
                    json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                        "egress": [{"to": [{"namespaceSelector": ns_in(&["y"])}],
                            "ports": [{"port": 80}]}]}),
                ),
                policy(
                    "x",
                    "egress-all",
                    json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                        "egress": [{}]}),
                ),
            ],
            labels: vec![],
            checks: vec![("x/a -> z/a 81/TCP", true), ("x/a -> y/a 81/UDP", true)],
        },
        Case {
            name: "egress to a block except the server's address",
            policies: vec![policy(
                "x",
                "except",
                json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": pod_cidr, "except": [yb]}}]}]}),
            )],
            labels: vec![],
            checks: vec![("x/a -> y/b 80/TCP", false), ("x/a -> y/a 80/TCP", true)],
        },
        Case {
            name: "an address in one policy's block and except is allowed by another",
            policies: vec![
                policy(
                    "x",
                    "except",
                    json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                        "egress": [{"to": [{"ipBlock": {"cidr": pod_cidr, "except": [yb]}}]}]}),
                ),
                policy(
                    "x",
                    "just-y-b",
                    json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                        "egress": [{"to": [{"ipBlock": {"cidr": yb}}]}]}),
                ),
            ],
            labels: vec![],
            checks: vec![("x/a -> y/b 80/TCP", true), ("x/a -> z/c 81/UDP", true)],
        },
        Case {
            name: "ingress and egress of pods controlled independently",
            policies: vec![
                policy(
                    "x",
                    "a-to-b",
                    json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                        "egress": [{"to": [{"podSelector": select("b")}]}]}),
                ),
                policy(
                    "x",
                    "deny-b",
                    json!({"podSelector": select("b"), "policyTypes": ["Ingress"]}),
                ),
            ],
            labels: vec![],
            checks: vec![
                ("x/a -> x/b 80/TCP", false),
                ("x/a -> x/c 80/TCP", false),
                ("y/a -> x/a 80/TCP", true),
                ("x/c -> x/b 80/TCP", false),
            ],
        },
        Case {
            name: "a UDP-only policy does not allow TCP",
            policies: vec![policy(
                "x",
                "udp-81",
                json!({"podSelector": select("a"),
                    "ingress": [{"ports": [{"port": 81, "protocol": "UDP"}]}]}),
            )],
            labels: vec![],
            checks: vec![("y/a -> x/a 81/UDP", true), ("y/a -> x/a 81/TCP", false)],
        },
        Case {
            name: "a policy allowing SCTP isolates the pod and allows no TCP or UDP",
            policies: vec![policy(
                "x",
                "sctp",
                json!({"podSelector": select("a"),
                    "ingress": [{"ports": [{"port": 80, "protocol": "SCTP"}]}]}),
            )],
            labels: vec![],
            checks: vec![("y/a -> x/a 80/TCP", false), ("y/a -> x/a 80/UDP", false)],
        },
        Case {
            name: "a port range (endPort) from y",
            policies: vec![policy(
                "x",
                "range",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector": ns_in(&["y"])}],
                        "ports": [{"port": 80, "endPort": 81, "protocol": "TCP"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("y/a -> x/a 80/TCP", true),
                ("y/a -> x/a 81/TCP", true),
                ("z/a -> x/a 81/TCP", false),
            ],
        },
        Case {
            name: "an egress port range (endPort) that starts above a port",
            policies: vec![policy(
                "x",
                "egress-range",
                json!({"podSelector": select("a"), "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"port": 81, "endPort": 90, "protocol": "UDP"}]}]}),
            )],
            labels: vec![],
            checks: vec![
                ("x/a -> y/a 81/UDP", true),
                ("x/a -> y/a 80/UDP", false),
                ("x/a -> y/a 81/TCP", false),
            ],
        },
        Case {
            name: "ingress from a namespace once it is labelled",
            policies: vec![policy(
                "x",
                "from-updated-namespace",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"namespaceSelector":
                        {"matchLabels": {"ns2": "updated"}}}]}]}),
            )],
            labels: vec![("y", "ns2", "updated")],
            checks: vec![("y/c -> x/a 80/TCP", true), ("z/c -> x/a 80/TCP", false)],
        },
        Case {
            name: "ingress from a pod once it is labelled",
            policies: vec![policy(
                "x",
                "from-updated-pod",
                json!({"podSelector": select("a"),
                    "ingress": [{"from": [{"podSelector":
                        {"matchLabels": {"pod2": "updated"}}}]}]}),
            )],
            labels: vec![("x/b", "pod2", "updated")],
            checks: vec![("x/b -> x/a 80/TCP", true), ("x/c -> x/a 80/TCP", false)],
        },
        Case {
            name: "a pod denied ingress once it is labelled",
            policies: vec![policy(
                "x",
                "deny-updated",
                json!({"podSelector": {"matchLabels": {"target": "true"}},
                    "policyTypes": ["Ingress"]}),
            )],
            labels: vec![("x/c", "target", "true")],
            checks: vec![("x/a -> x/c 80/TCP", false), ("x/a -> x/b 80/TCP", true)],
        },
        Case {
            name: "policies deleted are no longer enforced",
            policies: vec![],
            labels: vec![],
            checks: vec![("y/a -> x/a 80/TCP", true), ("x/a -> y/b 81/UDP", true)],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's pods at made-up addresses of one range.
    fn pods() -> (Vec<Pod>, impl Fn(&str) -> String) {
        let ip = |id: &str| {
            let i = pod_ids().iter().position(|p| p == id).unwrap();
            format!("10.244.1.{}", 10 + i)
        };
        let pods = pod_ids().iter().map(|id| pod(id, "n", &ip(id))).collect();
        (pods, ip)
    }

    #[test]
    fn upstreams_cells_hold_and_every_case_changes_what_gets_through() {
        let (base, ip) = pods();
        let mut last = BTreeSet::new();
        for case in cases(ip, "10.244.0.0/16") {
            let mut objects = base.clone();
            let mut namespaces = namespace_labels();
            apply_labels(&case, &mut objects, &mut namespaces);
            let want = expected(&objects, &namespaces, &case.policies);
            check_cells(&case, &want);
            assert!(
                !case.checks.is_empty(),
                "{}: no hand-written cells",
                case.name
            );
            assert!(want != last, "{}: the same as the case before", case.name);
            last = want;
        }
    }
}
