//! What NetworkPolicy (networking.k8s.io/v1) means for one connection, written straight from
//! upstream's API documentation: a pod selected by any policy with a policy type is isolated
//! in that direction, and a connection passes only if the source's egress and the
//! destination's ingress both allow it (policies add up: any rule of any policy selecting the
//! pod may allow it). Peers are pods by label in the policy's namespace, pods in namespaces
//! by label, both together (AND), or address blocks with exceptions; ports are numbers,
//! ranges (endPort) or names resolved on the destination pod, per protocol (TCP by default).
//! Traffic from the destination pod's own node (kubelet probes) always passes, as upstream's
//! implementations allow it.
//!
//! [`allows`] is the reference the nftables rules are checked against, and what the policy
//! tests' expected reachability tables are computed from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::selector::LabelSelector;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One side of a connection.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint<'a> {
    /// A pod of the cluster (its labels, namespace, node and address matter).
    Pod(&'a Pod),
    /// A node's own address: the kubelet's probes come from the pod's node.
    Node { name: &'a str, ip: IpAddr },
    /// Anything else, by address.
    External(IpAddr),
}

impl Endpoint<'_> {
    fn ip(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Pod(p) => p.status.as_ref()?.pod_ip.as_deref()?.parse().ok(),
            Endpoint::Node { ip, .. } | Endpoint::External(ip) => Some(*ip),
        }
    }
}

/// A new connection (or the first packet of a UDP/SCTP flow).
#[derive(Clone, Copy, Debug)]
pub struct Connection<'a> {
    pub from: Endpoint<'a>,
    pub to: Endpoint<'a>,
    /// "TCP", "UDP" or "SCTP".
    pub protocol: &'a str,
    pub port: u16,
}

/// The namespaces' labels, for namespaceSelector.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// Which policy types a policy has: spec.policyTypes, or upstream's default when it is
/// empty (Ingress always, Egress when the policy has egress rules). (ingress, egress)
pub fn policy_types(spec: &NetworkPolicySpec) -> (bool, bool) {
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        _ => (true, spec.egress.is_some()),
    }
}

/// A pod's labels, borrowed.
pub fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    static NONE: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&NONE)
}

/// A metav1 LabelSelector as ours, to match many label sets with; None when it cannot be
/// read (it selects nothing).
pub fn label_selector(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Option<LabelSelector> {
    let json = serde_json::to_value(s).ok()?;
    LabelSelector::from_label_selector_json(&json).ok()
}

/// Whether a metav1 LabelSelector matches `labels` (one that cannot be read matches nothing).
pub fn selector_matches(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    label_selector(s).is_some_and(|s| s.matches_map(labels))
}

/// Whether `policy` applies to `pod`: same namespace, and its podSelector (empty: every
/// pod of the namespace) matches.
pub fn selects(policy: &NetworkPolicy, pod: &Pod) -> bool {
    policy.metadata.namespace == pod.metadata.namespace
        && policy.spec.as_ref().is_some_and(|s| {
            // Required by validation; absent reads as empty, every pod.
            s.pod_selector
                .as_ref()
                .is_none_or(|sel| selector_matches(sel, labels(pod)))
        })
}

/// Whether `peer` (of a policy in `namespace`) covers `other`.
fn peer_matches(
    peer: &NetworkPolicyPeer,
    namespace: &str,
    other: &Endpoint<'_>,
    namespaces: &NamespaceLabels,
) -> bool {
    if let Some(block) = &peer.ip_block {
        return other.ip().is_some_and(|ip| {
            in_cidr(ip, &block.cidr) && !block.except.iter().flatten().any(|e| in_cidr(ip, e))
        });
    }
    let Endpoint::Pod(pod) = other else {
        return false;
    };
    let pod_namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let namespace_ok = match &peer.namespace_selector {
        Some(s) => namespaces
            .get(pod_namespace)
            .is_some_and(|l| selector_matches(s, l)),
        None => pod_namespace == namespace,
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|s| selector_matches(s, labels(pod)));
    namespace_ok && pod_ok
}

/// Whether `ip` is in `cidr` ("10.0.0.0/8"); a malformed CIDR covers nothing.
pub fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((base, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(base), Ok(bits)) = (base.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, base) {
        (IpAddr::V4(ip), IpAddr::V4(base)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(base) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(base)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(base) & mask
        }
        _ => false,
    }
}

/// The number of the container port `name` for `protocol` on `pod`.
pub fn named_port(pod: &Pod, name: &str, protocol: &str) -> Option<u16> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// Whether a rule's ports (none: every port) cover `protocol`/`port` on the destination
/// `to` (named ports are looked up there; a name the destination does not have covers
/// nothing).
fn ports_match(ports: &[NetworkPolicyPort], conn: &Connection<'_>) -> bool {
    if ports.is_empty() {
        return true;
    }
    ports.iter().any(|p| {
        if p.protocol.as_deref().unwrap_or("TCP") != conn.protocol {
            return false;
        }
        match &p.port {
            None => true,
            Some(IntOrString::Int(n)) => {
                let start = i64::from(*n);
                let end = p.end_port.map_or(start, i64::from);
                (start..=end).contains(&i64::from(conn.port))
            }
            Some(IntOrString::String(name)) => match conn.to {
                Endpoint::Pod(pod) => named_port(pod, name, conn.protocol) == Some(conn.port),
                _ => false,
            },
        }
    })
}

/// One rule of a policy: its peers and its ports (an empty list: anyone, any port).
pub type Rule<'a> = (&'a [NetworkPolicyPeer], &'a [NetworkPolicyPort]);

/// A policy's ingress (`ingress` true) or egress rules.
pub fn rules_of(spec: &NetworkPolicySpec, ingress: bool) -> Vec<Rule<'_>> {
    if ingress {
        let rules = spec.ingress.iter().flatten();
        rules
            .map(|r| {
                (
                    r.from.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect()
    } else {
        let rules = spec.egress.iter().flatten();
        rules
            .map(|r| {
                (
                    r.to.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Whether the policies let `conn` out of its source pod (`ingress` false) or into its
/// destination pod (`ingress` true): allowed when no policy of that type selects the pod, or
/// when a rule of one that does covers the other side and the port.
fn direction_allows(
    policies: &[NetworkPolicy],
    conn: &Connection<'_>,
    ns: &NamespaceLabels,
    ingress: bool,
) -> bool {
    let (local, other) = if ingress {
        (conn.to, &conn.from)
    } else {
        (conn.from, &conn.to)
    };
    let Endpoint::Pod(pod) = local else {
        return true;
    };
    if let (true, Endpoint::Node { name, .. }) = (ingress, other)
        && pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(*name)
    {
        return true;
    }
    let mut isolated = false;
    for policy in policies.iter().filter(|p| selects(p, pod)) {
        let spec = policy.spec.as_ref().expect("selects checked the spec");
        let (has_ingress, has_egress) = policy_types(spec);
        if !(if ingress { has_ingress } else { has_egress }) {
            continue;
        }
        isolated = true;
        let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
        let allowed = rules_of(spec, ingress).into_iter().any(|(peers, ports)| {
            (peers.is_empty() || peers.iter().any(|p| peer_matches(p, namespace, other, ns)))
                && ports_match(ports, conn)
        });
        if allowed {
            return true;
        }
    }
    !isolated
}

/// Whether `policies` let `conn` through: the source's egress and the destination's
/// ingress must both allow it. A pod always reaches itself, also when its packets leave it
/// (through its own Service, hairpin), as it does over loopback: upstream's test model
/// expects a pod to reach itself whatever the policies.
pub fn allows(
    policies: &[NetworkPolicy],
    namespaces: &NamespaceLabels,
    conn: &Connection<'_>,
) -> bool {
    if let (Endpoint::Pod(from), Endpoint::Pod(to)) = (conn.from, conn.to)
        && from.metadata.namespace == to.metadata.namespace
        && from.metadata.name == to.metadata.name
    {
        return true;
    }
    direction_allows(policies, conn, namespaces, false)
        && direction_allows(policies, conn, namespaces, true)
}

#[cfg(test)]
mod tests {
    //! Upstream's network policy test model: namespaces x, y, z (labelled ns=<name>) with
    //! pods a, b, c (labelled pod=<name>), each serving TCP and UDP on 80 and 81 under the
    //! names serve-<port>-<protocol>.
    use super::*;
    use serde_json::json;

    const NAMESPACES: [&str; 3] = ["x", "y", "z"];
    const PODS: [&str; 3] = ["a", "b", "c"];

    struct Model {
        pods: Vec<Pod>,
        namespaces: NamespaceLabels,
    }

    fn model() -> Model {
        let mut pods = Vec::new();
        let mut namespaces = NamespaceLabels::new();
        for (i, ns) in NAMESPACES.iter().enumerate() {
            namespaces.insert(
                ns.to_string(),
                [("ns".to_owned(), ns.to_string())].into_iter().collect(),
            );
            for (j, name) in PODS.iter().enumerate() {
                let ports: Vec<_> = [80, 81]
                    .iter()
                    .flat_map(|p| {
                        ["TCP", "UDP"].map(|proto| {
                            json!({"name": format!("serve-{p}-{}", proto.to_lowercase()),
                                "containerPort": p, "protocol": proto})
                        })
                    })
                    .collect();
                pods.push(
                    serde_json::from_value(json!({
                        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
                        "spec": {"nodeName": format!("node-{j}"),
                            "containers": [{"name": "c", "ports": ports}]},
                        "status": {"podIP": format!("10.244.{i}.{}", j + 10)},
                    }))
                    .unwrap(),
                );
            }
        }
        Model { pods, namespaces }
    }

    impl Model {
        fn pod(&self, id: &str) -> &Pod {
            let (ns, name) = id.split_once('/').unwrap();
            self.pods
                .iter()
                .find(|p| {
                    p.metadata.namespace.as_deref() == Some(ns)
                        && p.metadata.name.as_deref() == Some(name)
                })
                .unwrap()
        }

        fn allows(
            &self,
            policies: &[NetworkPolicy],
            from: &str,
            to: &str,
            proto: &str,
            port: u16,
        ) -> bool {
            allows(
                policies,
                &self.namespaces,
                &Connection {
                    from: Endpoint::Pod(self.pod(from)),
                    to: Endpoint::Pod(self.pod(to)),
                    protocol: proto,
                    port,
                },
            )
        }

        /// Every pod to every other pod: the ids of the connections allowed.
        fn matrix(&self, policies: &[NetworkPolicy], proto: &str, port: u16) -> Vec<String> {
            let ids: Vec<String> = NAMESPACES
                .iter()
                .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
                .collect();
            let mut allowed = Vec::new();
            for from in &ids {
                for to in ids.iter().filter(|t| *t != from) {
                    if self.allows(policies, from, to, proto, port) {
                        allowed.push(format!("{from}->{to}"));
                    }
                }
            }
            allowed
        }
    }

    fn policy(ns: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    fn all_to(m: &Model, to: &str) -> usize {
        NAMESPACES
            .iter()
            .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
            .filter(|from| m.allows(&[], from, to, "TCP", 80))
            .count()
    }

    #[test]
    fn without_policies_everything_reaches_everything() {
        let m = model();
        assert_eq!(m.matrix(&[], "TCP", 80).len(), 72);
        assert_eq!(all_to(&m, "z/c"), 9);
    }

    #[test]
    fn default_deny_ingress_isolates_every_pod_of_the_namespace() {
        let m = model();
        let deny = [policy("x", json!({"podSelector": {}}))];
        let allowed = m.matrix(&deny, "TCP", 80);
        assert_eq!(
            allowed.len(),
            72 - 24,
            "nothing reaches x, x's own pods included"
        );
        assert!(!allowed.iter().any(|c| c.contains("->x/")));
        assert!(
            m.allows(&deny, "x/a", "y/a", "TCP", 80),
            "egress is not touched"
        );
    }

    #[test]
    fn default_deny_egress_keeps_pods_from_sending() {
        let m = model();
        let deny = [policy(
            "x",
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        )];
        let allowed = m.matrix(&deny, "TCP", 80);
        assert_eq!(allowed.len(), 72 - 24);
        assert!(!allowed.iter().any(|c| c.starts_with("x/")));
        assert!(
            m.allows(&deny, "y/a", "x/a", "TCP", 80),
            "ingress is not touched"
        );
    }

    #[test]
    fn pod_selector_peers_are_in_the_policys_namespace() {
        let m = model();
        let p = [policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )];
        assert!(m.allows(&p, "x/b", "x/a", "TCP", 80));
        assert!(!m.allows(&p, "y/b", "x/a", "TCP", 80));
        assert!(!m.allows(&p, "x/c", "x/a", "TCP", 80));
        assert!(m.allows(&p, "y/c", "x/b", "TCP", 80), "x/b is not selected");
    }

    #[test]
    fn namespace_and_pod_selectors_together_are_an_and_two_peers_an_or() {
        let m = model();
        let and = [policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                "podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )];
        let into_a: Vec<String> = m
            .matrix(&and, "TCP", 80)
            .into_iter()
            .filter(|c| c.ends_with("->x/a"))
            .collect();
        assert_eq!(into_a, ["y/b->x/a"]);
        let or = [policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}},
                {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )];
        let into_a: Vec<String> = m
            .matrix(&or, "TCP", 80)
            .into_iter()
            .filter(|c| c.ends_with("->x/a"))
            .collect();
        assert_eq!(into_a, ["x/b->x/a", "y/a->x/a", "y/b->x/a", "y/c->x/a"]);
    }

    #[test]
    fn named_ports_and_ranges_per_protocol() {
        let m = model();
        let named = [policy(
            "x",
            json!({"podSelector": {},
            "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
        )];
        assert!(m.allows(&named, "y/a", "x/a", "TCP", 81));
        assert!(!m.allows(&named, "y/a", "x/a", "TCP", 80));
        assert!(!m.allows(&named, "y/a", "x/a", "UDP", 81), "TCP by default");
        let udp = [policy(
            "x",
            json!({"podSelector": {},
            "ingress": [{"ports": [{"protocol": "UDP", "port": 80, "endPort": 81}]}]}),
        )];
        assert!(m.allows(&udp, "y/a", "x/a", "UDP", 80));
        assert!(m.allows(&udp, "y/a", "x/a", "UDP", 81));
        assert!(!m.allows(&udp, "y/a", "x/a", "TCP", 80));
        let any_port = [policy(
            "x",
            json!({"podSelector": {},
            "ingress": [{"ports": [{"protocol": "UDP"}]}]}),
        )];
        assert!(m.allows(&any_port, "y/a", "x/a", "UDP", 81));
        assert!(!m.allows(&any_port, "y/a", "x/a", "TCP", 81));
    }

    #[test]
    fn egress_named_ports_are_resolved_on_the_destination() {
        let m = model();
        let p = [policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}],
                "ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]}),
        )];
        assert!(m.allows(&p, "x/a", "y/c", "UDP", 80));
        assert!(!m.allows(&p, "x/a", "y/c", "UDP", 81));
        assert!(!m.allows(&p, "x/a", "z/c", "UDP", 80));
        assert!(!m.allows(&p, "x/a", "y/c", "TCP", 80));
    }

    #[test]
    fn ip_blocks_with_exceptions() {
        let m = model();
        let p = [policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                "except": ["10.244.1.11/32"]}}]}]}),
        )];
        assert!(m.allows(&p, "y/a", "x/a", "TCP", 80));
        assert!(!m.allows(&p, "y/b", "x/a", "TCP", 80), "y/b is 10.244.1.11");
        let outside = Connection {
            from: Endpoint::External("192.0.2.1".parse().unwrap()),
            to: Endpoint::Pod(m.pod("x/a")),
            protocol: "TCP",
            port: 80,
        };
        assert!(!allows(&p, &m.namespaces, &outside));
        assert!(in_cidr("10.1.2.3".parse().unwrap(), "10.0.0.0/8"));
        assert!(!in_cidr("10.1.2.3".parse().unwrap(), "10.0.0.0/33"));
        assert!(in_cidr("fd00::1".parse().unwrap(), "fd00::/8"));
    }

    #[test]
    fn policies_add_up_and_types_default_as_upstream() {
        let m = model();
        let from_b = policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        );
        let mut from_c = policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]}),
        );
        from_c.metadata.name = Some("q".into());
        let both = [from_b.clone(), from_c];
        assert!(m.allows(&both, "x/b", "x/a", "TCP", 80));
        assert!(m.allows(&both, "x/c", "x/a", "TCP", 80));
        assert!(!m.allows(&both, "y/b", "x/a", "TCP", 80));

        // Egress rules without policyTypes: Ingress and Egress, so ingress is denied too.
        let egress_only = [policy(
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "egress": [{}]}),
        )];
        assert_eq!(
            policy_types(egress_only[0].spec.as_ref().unwrap()),
            (true, true)
        );
        assert!(
            m.allows(&egress_only, "x/a", "z/c", "TCP", 80),
            "egress allows all"
        );
        assert!(
            !m.allows(&egress_only, "x/b", "x/a", "TCP", 80),
            "ingress isolated"
        );
    }

    #[test]
    fn the_pods_own_node_always_reaches_it() {
        let m = model();
        let deny = [policy("x", json!({"podSelector": {}}))];
        let ip = "10.251.0.1".parse().unwrap();
        let probe = |node| Connection {
            from: Endpoint::Node { name: node, ip },
            to: Endpoint::Pod(m.pod("x/a")),
            protocol: "TCP",
            port: 80,
        };
        assert!(allows(&deny, &m.namespaces, &probe("node-0")));
        assert!(!allows(&deny, &m.namespaces, &probe("node-1")));
    }

    #[test]
    fn a_pod_always_reaches_itself() {
        let m = model();
        let deny = [policy(
            "x",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        )];
        let conn = |from, to| Connection {
            from: Endpoint::Pod(m.pod(from)),
            to: Endpoint::Pod(m.pod(to)),
            protocol: "TCP",
            port: 80,
        };
        assert!(allows(&deny, &m.namespaces, &conn("x/a", "x/a")));
        assert!(!allows(&deny, &m.namespaces, &conn("x/a", "x/b")));
    }
}
