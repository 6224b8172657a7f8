//! NetworkPolicy as nftables rules for the pods of one node (IPv4), in the layout
//! `netpol/mod.rs` describes: base chains `egress` and `ingress` on the forward hook (and
//! `egress` again on input, for traffic to the node itself) send a local pod's new
//! connections, through the verdict maps `egress-pods` and `ingress-pods`, to the pod's
//! chain; it jumps to the chain of each policy selecting it, whose rules accept what the
//! policy allows, and drops the rest. Peer pods are named sets of addresses; named ports
//! are sets of `address . protocol . port`, resolved on the destination pod.
//!
//! [`render`] makes everything but the fixed [`base`] as a [`Rendered`] value, so that a
//! sync can write only the difference with what the table holds (kube-proxy's
//! [`Transaction`]); [`full_script`] is the whole table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use common::selector::LabelSelector;

use super::semantics::{
    NamespaceLabels, label_selector, labels, named_port, policy_types, rules_of,
};
use crate::nftables::{Rendered, Transaction, long_hash, short_hash};

/// Our table (family inet).
pub const TABLE: &str = "tetsu-netpol";

/// A pod's IPv4 address, if it has one.
fn pod_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// `cidr` re-written from its parsed parts when it is an IPv4 CIDR: what goes into a rule
/// is never the object's own text.
fn ipv4_cidr(cidr: &str) -> Option<String> {
    let (base, bits) = cidr.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    let bits: u8 = bits.parse().ok().filter(|b| *b <= 32)?;
    Some(format!("{base}/{bits}"))
}

/// The counter of packets dropped at pods `policy` isolates in one direction.
pub fn drop_counter(policy: &NetworkPolicy, ingress: bool) -> String {
    let direction = if ingress {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    format!("drops-{}-{}", direction.tag(), short_hash(&id(policy)))
}

fn id(policy: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        policy.metadata.namespace.as_deref().unwrap_or_default(),
        policy.metadata.name.as_deref().unwrap_or_default()
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn tag(self) -> &'static str {
        match self {
            Direction::Ingress => "in",
            Direction::Egress => "out",
        }
    }

    /// The field holding the peer's address.
    fn peer_field(self) -> &'static str {
        match self {
            Direction::Ingress => "ip saddr",
            Direction::Egress => "ip daddr",
        }
    }
}

/// The verdict maps from a local pod's address to its chain.
const INGRESS_PODS: &str = "ingress-pods";
const EGRESS_PODS: &str = "egress-pods";

/// Everything the rules are made from.
pub struct Cluster<'a> {
    pub policies: &'a [&'a NetworkPolicy],
    /// Every pod of the cluster (peers may be anywhere).
    pub pods: &'a [&'a Pod],
    pub namespaces: &'a NamespaceLabels,
    /// This node's name: only its pods get chains.
    pub node: &'a str,
}

/// A policy with its podSelector read once for all the pods it is matched against.
struct Selecting<'a> {
    policy: &'a NetworkPolicy,
    /// None: the selector cannot be read and selects nothing.
    selector: Option<LabelSelector>,
}

impl<'a> Selecting<'a> {
    fn new(policy: &'a NetworkPolicy) -> Selecting<'a> {
        let selector = match policy.spec.as_ref() {
            // Required by validation; absent reads as empty, every pod.
            Some(spec) => match &spec.pod_selector {
                Some(s) => label_selector(s),
                None => Some(LabelSelector::everything()),
            },
            None => None,
        };
        Selecting { policy, selector }
    }

    /// As `semantics::selects`: same namespace, and the podSelector matches.
    fn selects(&self, pod: &Pod) -> bool {
        self.policy.metadata.namespace == pod.metadata.namespace
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches_map(labels(pod)))
    }
}

/// The port's protocol as nft names it (TCP by default); None for anything else.
fn nft_protocol(port: &NetworkPolicyPort) -> Option<&'static str> {
    match port.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

/// A port number as the API allows it (1-65535).
fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|n| *n > 0)
}

/// One render: the cluster, its pods by namespace, and the sets made so far.
struct Renderer<'a> {
    cluster: &'a Cluster<'a>,
    by_namespace: BTreeMap<&'a str, Vec<&'a Pod>>,
    /// What a set holds (its key) -> the set's name.
    set_names: HashMap<String, String>,
    names: HashSet<String>,
    table: Rendered,
}

/// A selector (or its absence) as text, for the key of a set.
fn selector_text(s: &Option<MetaLabelSelector>) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl<'a> Renderer<'a> {
    fn new(cluster: &'a Cluster<'a>) -> Renderer<'a> {
        let mut by_namespace: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for pod in cluster.pods {
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            by_namespace.entry(ns).or_default().push(pod);
        }
        Renderer {
            cluster,
            by_namespace,
            set_names: HashMap::new(),
            names: HashSet::new(),
            table: Rendered::default(),
        }
    }

    /// The pods `peer` (of a policy in `namespace`) selects; its selectors are read once,
    /// and only the pods of the namespaces it names are looked at.
    fn peer_pods(&self, peer: &NetworkPolicyPeer, namespace: &str) -> Vec<&'a Pod> {
        let namespaces: Vec<&str> = match &peer.namespace_selector {
            Some(s) => match label_selector(s) {
                Some(s) => self
                    .cluster
                    .namespaces
                    .iter()
                    .filter(|(_, l)| s.matches_map(l))
                    .map(|(n, _)| n.as_str())
                    .collect(),
                None => Vec::new(),
            },
            None => vec![namespace],
        };
        let pods = peer.pod_selector.as_ref().map(label_selector);
        namespaces
            .iter()
            .flat_map(|ns| self.by_namespace.get(ns).into_iter().flatten().copied())
            .filter(|pod| match &pods {
                Some(s) => s.as_ref().is_some_and(|s| s.matches_map(labels(pod))),
                None => true,
            })
            .collect()
    }

    /// The name of the set holding what `key` describes, made with `elements` the first
    /// time a policy needs it: policies naming the same peers or ports share one set, and
    /// its name stays while what it describes does.
    fn set(
        &mut self,
        key: String,
        kind: &str,
        elements: impl FnOnce(&Self) -> Vec<String>,
    ) -> String {
        if let Some(name) = self.set_names.get(&key) {
            return name.clone();
        }
        let mut name = format!("set-{}", long_hash(&key));
        // 64 bits make a clash unlikely; one must still never merge two sets.
        while self.names.contains(&name) {
            name = format!("set-{}", long_hash(&format!("{name}{key}")));
        }
        let items = elements(self);
        self.table
            .sets
            .insert(name.clone(), format!("type {kind} ;"));
        for e in items {
            self.table
                .elements
                .insert((name.clone().into(), e, String::new()));
        }
        self.names.insert(name.clone());
        self.set_names.insert(key, name.clone());
        name
    }

    /// The rules matching the peers of one rule (an empty rule: anyone).
    fn peer_matches(
        &mut self,
        peers: &[NetworkPolicyPeer],
        namespace: &str,
        direction: Direction,
    ) -> Vec<String> {
        let peer_field = direction.peer_field();
        let mut matches = Vec::new();
        if peers.is_empty() {
            matches.push(String::new());
        }
        for peer in peers {
            if let Some(block) = &peer.ip_block {
                // Only IPv4 blocks can match this table's traffic; anything else (IPv6, or
                // text nft would refuse) allows nothing here rather than failing the table.
                let Some(cidr) = ipv4_cidr(&block.cidr) else {
                    continue;
                };
                let mut m = format!("{peer_field} {cidr}");
                let except: Vec<String> = block
                    .except
                    .iter()
                    .flatten()
                    .filter_map(|e| ipv4_cidr(e))
                    .collect();
                if !except.is_empty() {
                    let _ = write!(m, " {peer_field} != {{ {} }}", except.join(", "));
                }
                matches.push(m);
                continue;
            }
            let key = match &peer.namespace_selector {
                Some(_) => format!(
                    "peers {} {}",
                    selector_text(&peer.namespace_selector),
                    selector_text(&peer.pod_selector)
                ),
                None => format!("peers in {namespace} {}", selector_text(&peer.pod_selector)),
            };
            let set = self.set(key, "ipv4_addr", |r| {
                r.peer_pods(peer, namespace)
                    .into_iter()
                    .filter_map(pod_ip)
                    .map(|ip| ip.to_string())
                    .collect()
            });
            matches.push(format!("{peer_field} @{set}"));
        }
        matches
    }

    /// The rules matching the ports of one rule (none: any port).
    fn port_matches(
        &mut self,
        ports: &[NetworkPolicyPort],
        selecting: &Selecting<'_>,
        direction: Direction,
    ) -> Vec<String> {
        let mut matches = Vec::new();
        if ports.is_empty() {
            matches.push(String::new());
        }
        for port in ports {
            // What nft could not take (validation refuses it anyway) allows nothing; the
            // rule text is made of parsed numbers and known words, never the object's text.
            let Some(proto) = nft_protocol(port) else {
                continue;
            };
            match &port.port {
                None => matches.push(format!("meta l4proto {proto}")),
                Some(IntOrString::Int(n)) => {
                    let Some(start) = port_number(*n) else {
                        continue;
                    };
                    let end = port.end_port.and_then(port_number).filter(|e| *e > start);
                    matches.push(match end {
                        Some(end) => format!("meta l4proto {proto} th dport {start}-{end}"),
                        None => format!("meta l4proto {proto} th dport {start}"),
                    });
                }
                Some(IntOrString::String(name)) => {
                    let api_protocol = port.protocol.as_deref().unwrap_or("TCP");
                    // Named ports become address . protocol . port elements of the pods
                    // that resolve the name: for ingress the selected pods, for egress
                    // every pod. The rule's peer match (and, for ingress, the pod chain)
                    // already narrows the addresses, so listing every pod with the name is
                    // right, and covers pods an ipBlock matches.
                    let key = match direction {
                        Direction::Ingress => format!(
                            "ports of {} {} {name} {api_protocol}",
                            selecting
                                .policy
                                .metadata
                                .namespace
                                .as_deref()
                                .unwrap_or_default(),
                            selector_text(
                                &selecting
                                    .policy
                                    .spec
                                    .as_ref()
                                    .and_then(|s| s.pod_selector.clone())
                            )
                        ),
                        Direction::Egress => format!("ports of all {name} {api_protocol}"),
                    };
                    let kind = "ipv4_addr . inet_proto . inet_service";
                    let set = self.set(key, kind, |r| {
                        r.cluster
                            .pods
                            .iter()
                            .filter(|p| direction == Direction::Egress || selecting.selects(p))
                            .filter_map(|pod| {
                                let number = named_port(pod, name, api_protocol)?;
                                Some(format!("{} . {proto} . {number}", pod_ip(pod)?))
                            })
                            .collect()
                    });
                    matches.push(format!("ip daddr . meta l4proto . th dport @{set}"));
                }
            }
        }
        matches
    }

    /// Renders one direction of one policy: its chain's rules; answers the chain's name.
    fn policy(&mut self, selecting: &Selecting<'_>, direction: Direction) -> String {
        let policy = selecting.policy;
        let spec = policy.spec.as_ref().expect("a selecting policy has a spec");
        let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
        let chain = format!("policy-{}-{}", direction.tag(), short_hash(&id(policy)));
        let mut rules = Vec::new();
        for (peers, ports) in rules_of(spec, direction == Direction::Ingress) {
            let who = self.peer_matches(peers, namespace, direction);
            let what = self.port_matches(ports, selecting, direction);
            for w in &who {
                for p in &what {
                    let rule = [w.as_str(), p.as_str(), "accept"]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" ");
                    rules.push(rule);
                }
            }
        }
        self.table.chains.insert(chain.clone(), rules);
        chain
    }
}

/// The table's fixed part, as `add` statements: the verdict maps and the base chains.
pub fn base() -> String {
    let t = format!("inet {TABLE}");
    let mut s = format!("add table {t}\n");
    for map in [INGRESS_PODS, EGRESS_PODS] {
        let _ = writeln!(s, "add map {t} {map} {{ type ipv4_addr : verdict ; }}");
    }
    for (name, hook, priority, field, map) in [
        ("egress", "forward", -10, "ip saddr", EGRESS_PODS),
        ("egress-to-node", "input", -10, "ip saddr", EGRESS_PODS),
        ("ingress", "forward", 10, "ip daddr", INGRESS_PODS),
    ] {
        let _ = writeln!(
            s,
            "add chain {t} {name} {{ type filter hook {hook} priority {priority} ; policy accept ; }}\n\
             add rule {t} {name} ct state established,related accept\n\
             add rule {t} {name} {field} vmap @{map}"
        );
    }
    s
}

/// The whole table for a rendering, as an `nft -f` script that replaces any older one.
pub fn full_script(rendered: &Rendered) -> String {
    let mut tx = Transaction::replacing("inet", TABLE, &base());
    tx.diff(&Rendered::default(), rendered);
    tx.script()
}

/// The table for `cluster`'s node, apart from its [`base`].
pub fn render(cluster: &Cluster<'_>) -> Rendered {
    render_counted(cluster).0
}

/// [`render`], and how many of the node's pods are isolated: [ingress, egress].
pub fn render_counted(cluster: &Cluster<'_>) -> (Rendered, [usize; 2]) {
    let mut renderer = Renderer::new(cluster);
    let mut isolated = [0, 0];
    let mut policy_chains: BTreeMap<(String, &str), String> = BTreeMap::new();
    let selecting: Vec<Selecting<'_>> =
        cluster.policies.iter().map(|p| Selecting::new(p)).collect();
    let local = cluster
        .pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(cluster.node));
    for pod in local {
        let Some(ip) = pod_ip(pod) else { continue };
        for (i, direction) in [Direction::Ingress, Direction::Egress]
            .into_iter()
            .enumerate()
        {
            let mut jumps = Vec::new();
            let mut counters = Vec::new();
            for selected in selecting.iter().filter(|p| p.selects(pod)) {
                let policy = selected.policy;
                let (ingress, egress) = policy_types(policy.spec.as_ref().expect("selected"));
                let applies = match direction {
                    Direction::Ingress => ingress,
                    Direction::Egress => egress,
                };
                if !applies {
                    continue;
                }
                let key = (id(policy), direction.tag());
                let chain = match policy_chains.get(&key) {
                    Some(c) => c.clone(),
                    None => {
                        let c = renderer.policy(selected, direction);
                        policy_chains.insert(key, c.clone());
                        c
                    }
                };
                jumps.push(format!("jump {chain}"));
                let counter = drop_counter(policy, direction == Direction::Ingress);
                counters.push(format!("counter name \"{counter}\""));
                renderer.table.counters.insert(counter);
            }
            if jumps.is_empty() {
                continue;
            }
            // The pod reaching itself through its Service (hairpin) is its own business.
            let me = match direction {
                Direction::Ingress => format!("ip saddr {ip} accept"),
                Direction::Egress => format!("ip daddr {ip} accept"),
            };
            jumps.insert(0, me);
            // What no policy allowed is counted for each of them, then dropped.
            counters.push("drop".into());
            jumps.push(counters.join(" "));
            let chain = format!("pod-{}-{ip}", direction.tag()).replace('.', "-");
            renderer.table.chains.insert(chain.clone(), jumps);
            let map = match direction {
                Direction::Ingress => INGRESS_PODS,
                Direction::Egress => EGRESS_PODS,
            };
            renderer
                .table
                .elements
                .insert((map.into(), ip.to_string(), format!("jump {chain}")));
            isolated[i] += 1;
        }
    }
    (renderer.table, isolated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The sets `chain`'s rules use, in the order they first appear.
    fn sets_used(rendered: &Rendered, chain: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rule in &rendered.chains[chain] {
            for word in rule.split_whitespace() {
                if let Some(set) = word.strip_prefix('@')
                    && !out.iter().any(|s| s == set)
                {
                    out.push(set.to_owned());
                }
            }
        }
        out
    }

    fn pod(ns: &str, name: &str, node: &str, ip: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "ports": [{"name": "web", "containerPort": 8080}]}]},
            "status": {"podIP": ip},
        }))
        .unwrap()
    }

    #[test]
    fn a_policy_becomes_a_chain_its_peers_a_set_and_its_pods_map_elements() {
        let pods = [
            pod("x", "a", "n1", "10.244.1.10"),
            pod("x", "b", "n2", "10.244.2.10"),
            pod("y", "b", "n2", "10.244.2.11"),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let policy: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "b"}}},
                    {"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.7/32"]}}],
                    "ports": [{"port": "web"}, {"protocol": "UDP", "port": 53, "endPort": 54}]}]}}))
        .unwrap();
        let namespaces: NamespaceLabels = [
            ("x".to_owned(), Default::default()),
            ("y".to_owned(), Default::default()),
        ]
        .into();
        let rendered = render(&Cluster {
            policies: &[&policy],
            pods: &refs,
            namespaces: &namespaces,
            node: "n1",
        });
        let script = full_script(&rendered);
        let chain = format!("policy-in-{}", short_hash("x/web"));
        let used = sets_used(&rendered, &chain);
        let counter = format!("drops-in-{}", short_hash("x/web"));
        assert_eq!(drop_counter(&policy, true), counter);
        let (peers, ports) = (&used[0], &used[1]);
        let t = "inet tetsu-netpol";
        assert!(
            script.contains(&format!("add counter {t} {counter}\n")),
            "{script}"
        );
        for line in [
            format!("add element {t} ingress-pods {{ 10.244.1.10 : jump pod-in-10-244-1-10 }}"),
            format!("add set {t} {peers} {{ type ipv4_addr ; }}"),
            format!("add element {t} {peers} {{ 10.244.2.10, 10.244.2.11 }}"),
            format!("add set {t} {ports} {{ type ipv4_addr . inet_proto . inet_service ; }}"),
            format!("add element {t} {ports} {{ 10.244.1.10 . tcp . 8080 }}"),
            format!(
                "add rule {t} pod-in-10-244-1-10 ip saddr 10.244.1.10 accept\nadd rule {t} pod-in-10-244-1-10 jump {chain}\nadd rule {t} pod-in-10-244-1-10 counter name \"{counter}\" drop"
            ),
            format!(
                "add rule {t} {chain} ip saddr @{peers} ip daddr . meta l4proto . th dport @{ports} accept"
            ),
            format!(
                "add rule {t} {chain} ip saddr @{peers} meta l4proto udp th dport 53-54 accept"
            ),
            format!(
                "add rule {t} {chain} ip saddr 192.0.2.0/24 ip saddr != {{ 192.0.2.7/32 }} meta l4proto udp th dport 53-54 accept"
            ),
            format!(
                "add rule {t} ingress ct state established,related accept\nadd rule {t} ingress ip daddr vmap @ingress-pods"
            ),
        ] {
            assert!(script.contains(&line), "{line}\nnot in:\n{script}");
        }
        // A second policy naming the same peers and selecting the same pods shares the
        // sets: one more chain, no more sets.
        let mut twin = policy.clone();
        twin.metadata.name = Some("web-too".into());
        let both = render(&Cluster {
            policies: &[&policy, &twin],
            pods: &refs,
            namespaces: &namespaces,
            node: "n1",
        });
        assert_eq!(both.sets, rendered.sets);
        assert_eq!(both.chains.len(), rendered.chains.len() + 1);

        // IPv6 and malformed blocks allow nothing over IPv4 and never reach the script.
        let mut odd = policy.clone();
        odd.spec.as_mut().unwrap().ingress =
            Some(vec![serde_json::from_value(json!(
            {"from": [{"ipBlock": {"cidr": "fd00::/8"}},
                {"ipBlock": {"cidr": "10.0.0.0/8; flush ruleset", "except": ["x"]}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::1/128", "10.1.0.0/16"]}}]}
        ))
        .unwrap(), serde_json::from_value(json!(
            {"ports": [{"protocol": "ICMP; flush ruleset", "port": 1}, {"port": 70000}]}
        ))
        .unwrap()]);
        let odd_script = full_script(&render(&Cluster {
            policies: &[&odd],
            pods: &refs,
            namespaces: &namespaces,
            node: "n1",
        }));
        assert!(
            !odd_script.contains("fd00") && !odd_script.contains("flush"),
            "{odd_script}"
        );
        assert!(
            odd_script.contains(" ip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 } accept\n"),
            "{odd_script}"
        );
        assert!(
            !odd_script.contains("70000") && !odd_script.contains("icmp"),
            "{odd_script}"
        );
        // Pods of other nodes get no chain; no egress policy, no egress element.
        assert!(!script.contains("pod-in-10-244-2"), "{script}");
        assert!(!script.contains("pod-out-"), "{script}");
    }

    #[test]
    fn a_peer_relabelled_is_one_element_and_a_new_policy_only_adds() {
        let mut pods = vec![
            pod("x", "a", "n1", "10.244.1.10"),
            pod("x", "b", "n1", "10.244.1.11"),
            pod("x", "c", "n2", "10.244.2.10"),
        ];
        let namespaces: NamespaceLabels = [("x".to_owned(), Default::default())].into();
        let from_b: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "from-b", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "b"}}}]}]}}))
        .unwrap();
        let rendered = |pods: &[Pod], policies: &[&NetworkPolicy]| {
            let refs: Vec<&Pod> = pods.iter().collect();
            render(&Cluster {
                policies,
                pods: &refs,
                namespaces: &namespaces,
                node: "n1",
            })
        };
        let before = rendered(&pods, &[&from_b]);
        pods[2]
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("role".into(), "b".into());
        let after = rendered(&pods, &[&from_b]);
        let mut tx = Transaction::new("inet", TABLE);
        tx.diff(&before, &after);
        let chain = format!("policy-in-{}", short_hash("x/from-b"));
        let set = sets_used(&before, &chain).remove(0);
        assert_eq!(
            tx.script(),
            format!("add element inet tetsu-netpol {set} {{ 10.244.2.10 }}\n")
        );
        assert_eq!(tx.ops, 1);

        // A second policy selecting x/b: its chain and set, x/b's chain and map element;
        // nothing of the first policy is touched.
        let deny: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "deny-b", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "b"}}}}))
        .unwrap();
        let more = rendered(&pods, &[&from_b, &deny]);
        let mut tx = Transaction::new("inet", TABLE);
        tx.diff(&after, &more);
        let script = tx.script();
        assert!(
            !script.contains("from-b") && !script.contains(&set),
            "{script}"
        );
        assert!(
            !script.contains("flush") && !script.contains("delete"),
            "{script}"
        );
        assert!(
            script.contains("add element inet tetsu-netpol ingress-pods { 10.244.1.11 : jump pod-in-10-244-1-11 }"),
            "{script}"
        );
        // And back: what was added goes, chains flushed before they are deleted.
        let mut tx = Transaction::new("inet", TABLE);
        tx.diff(&more, &after);
        let script = tx.script();
        let flush = script
            .find("flush chain inet tetsu-netpol pod-in-10-244-1-11")
            .unwrap();
        let delete = script
            .find("delete chain inet tetsu-netpol pod-in-10-244-1-11")
            .unwrap();
        let element = script
            .find("delete element inet tetsu-netpol ingress-pods { 10.244.1.11 }")
            .unwrap();
        assert!(flush < delete && element < delete, "{script}");
    }
}
