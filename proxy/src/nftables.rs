//! kube-proxy's nftables mode: every Service becomes chains and map elements in one
//! table of our own (`ip kube-proxy`), laid out as upstream's nftables proxier lays it out.
//! A service is rendered to a [`Rendered`] value; a sync compares it with what the table
//! holds and writes only the difference, as one atomic `nft -f` transaction.
//!
//! Packet path of a ClusterIP connection: `nat-prerouting`/`nat-output` jump `services`,
//! whose `service-ips` map sends `daddr . proto . dport` to the service's chain; that picks
//! an endpoint (`numgen random`, or the client's affinity) and its endpoint chain DNATs.
//! Traffic with nowhere to go is refused in the filter hooks through `no-endpoint-*` maps.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::services::{Backend, Endpoint, ServicePortName};

/// Our table (family ip).
pub const TABLE: &str = "kube-proxy";
/// The packet mark that asks `masquerading` to SNAT (upstream's 0x4000).
const MASQ_MARK: &str = "0x4000";

/// The maps and sets elements go into.
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const CLUSTER_IPS: &str = "cluster-ips";

/// What the proxy needs to know of its cluster to render rules.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The pod network (--cluster-cidr): traffic from outside it to a ClusterIP is
    /// masqueraded. Without it, all ClusterIP traffic is (as --masquerade-all).
    pub cluster_cidr: Option<String>,
}

/// A part of a table that is rendered and diffed as one: everything one Service puts in
/// kube-proxy's table, or the whole NetworkPolicy table apart from its fixed base.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Chain name -> its rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Named sets: name -> what goes between the braces of `add set` (`type ... ;`). A
    /// name keeps its declaration for life: a set in use cannot be redeclared, so what
    /// would change it (an affinity timeout) is part of the name.
    pub sets: BTreeMap<String, String>,
    /// (map or set, key, verdict; empty for a set).
    pub elements: BTreeSet<(Cow<'static, str>, String, String)>,
    /// Named counters (they keep counting while they stay).
    pub counters: BTreeSet<String>,
}

impl Rendered {
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}

/// A short stable hash for chain names (FNV-1a, base32), as upstream prefixes its chains
/// so that names stay unique when truncated.
pub(crate) fn short_hash(s: &str) -> String {
    hash_chars(s, 8)
}

/// [`short_hash`] with all 64 bits (13 characters), for names that stand for content.
pub(crate) fn long_hash(s: &str) -> String {
    hash_chars(s, 13)
}

fn hash_chars(s: &str, chars: u32) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..chars)
        .map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// `ns/name/proto/port`, the readable part of a service port's chain names.
fn port_id(n: &ServicePortName) -> String {
    format!("{}/{}/{}/{}", n.namespace, n.name, n.protocol.nft(), n.port)
}

/// Chain names are at most 256 bytes in the kernel; the hash keeps truncated ones unique.
fn chain_name(prefix: &str, id: &str) -> String {
    let mut name = format!("{prefix}-{}-{id}", short_hash(id));
    name.truncate(200);
    name
}

pub fn service_chain(n: &ServicePortName) -> String {
    chain_name("service", &port_id(n))
}

pub fn external_chain(n: &ServicePortName) -> String {
    chain_name("external", &port_id(n))
}

pub fn endpoint_chain(n: &ServicePortName, ep: &Endpoint) -> String {
    chain_name(
        "endpoint",
        &format!("{}__{}/{}", port_id(n), ep.ip, ep.port),
    )
}

/// The timeout is part of the name's hash: a changed timeout is a new set (a set's timeout
/// cannot change while a rule uses it), and the chains using it are rewritten.
fn affinity_set(n: &ServicePortName, ep: &Endpoint, timeout: u32) -> String {
    let id = format!("{}__{}/{}", port_id(n), ep.ip, ep.port);
    let mut name = format!("affinity-{}-{id}", short_hash(&format!("{id}/{timeout}")));
    name.truncate(200);
    name
}

/// Renders the service ports of one Service.
pub fn render(config: &Config, backends: &[Backend]) -> Rendered {
    let mut r = Rendered::default();
    for b in backends {
        render_port(config, b, &mut r);
    }
    r
}

fn render_port(config: &Config, b: &Backend, r: &mut Rendered) {
    let n = &b.name;
    let proto = n.protocol.nft();
    let p = &b.port;
    let svc_chain = service_chain(n);
    let ext_chain = external_chain(n);
    r.elements
        .insert((CLUSTER_IPS.into(), p.cluster_ip.to_string(), String::new()));

    // Endpoint chains for every endpoint traffic may go to.
    let cluster_eps = b.usable(false);
    let internal_eps = if p.internal_local {
        b.usable(true)
    } else {
        cluster_eps.clone()
    };
    let external_eps = if p.external_local {
        b.usable(true)
    } else {
        cluster_eps.clone()
    };
    let mut rendered_eps: BTreeSet<String> = BTreeSet::new();
    for ep in internal_eps.iter().chain(&external_eps) {
        let name = endpoint_chain(n, ep);
        if !rendered_eps.insert(name.clone()) {
            continue;
        }
        let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip)];
        if let Some(timeout) = p.affinity_seconds {
            let set = affinity_set(n, ep, timeout);
            rules.push(format!("update @{set} {{ ip saddr }}"));
            r.sets.insert(
                set,
                format!("type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ;"),
            );
        }
        rules.push(format!(
            "meta l4proto {proto} dnat to {}:{}",
            ep.ip, ep.port
        ));
        r.chains.insert(name, rules);
    }

    // The service chain: internal (ClusterIP) traffic.
    let key = |ip: &std::net::Ipv4Addr, port: u16| format!("{ip} . {proto} . {port}");
    let cluster_key = key(&p.cluster_ip, p.port);
    if internal_eps.is_empty() {
        // No endpoints: refuse at once. Only remote ones under internalTrafficPolicy Local:
        // drop, as upstream.
        let verdict = if cluster_eps.is_empty() {
            "goto reject-chain"
        } else {
            "drop"
        };
        r.elements
            .insert((NO_ENDPOINT_SERVICES.into(), cluster_key, verdict.into()));
    } else {
        let mut rules = Vec::new();
        match &config.cluster_cidr {
            Some(cidr) => rules.push(format!(
                "ip daddr {} {proto} dport {} ip saddr != {cidr} jump mark-for-masquerade",
                p.cluster_ip, p.port
            )),
            None => rules.push("jump mark-for-masquerade".into()),
        }
        pick_endpoint(n, p.affinity_seconds, &internal_eps, &mut rules);
        r.chains.insert(svc_chain.clone(), rules);
        r.elements
            .insert((SERVICE_IPS.into(), cluster_key, format!("goto {svc_chain}")));
    }

    // The external chain: NodePort and externalIPs traffic.
    if p.node_port.is_none() && p.external_ips.is_empty() {
        return;
    }
    let external_ok = !external_eps.is_empty();
    if external_ok {
        let mut rules = Vec::new();
        if p.external_local {
            // Pods and the node itself may still use every endpoint; others keep their
            // source address and reach only this node's endpoints.
            if let Some(cidr) = &config.cluster_cidr
                && !internal_eps.is_empty()
            {
                rules.push(format!("ip saddr {cidr} goto {svc_chain}"));
            }
            if !internal_eps.is_empty() {
                rules.push("fib saddr type local jump mark-for-masquerade".into());
                rules.push(format!("fib saddr type local goto {svc_chain}"));
            }
            pick_endpoint(n, p.affinity_seconds, &external_eps, &mut rules);
        } else {
            rules.push("jump mark-for-masquerade".into());
            if internal_eps.is_empty() {
                pick_endpoint(n, p.affinity_seconds, &external_eps, &mut rules);
            } else {
                rules.push(format!("goto {svc_chain}"));
            }
        }
        r.chains.insert(ext_chain.clone(), rules);
    }
    let verdict_none = if cluster_eps.is_empty() {
        "goto reject-chain"
    } else {
        "drop"
    };
    for ip in &p.external_ips {
        let k = key(ip, p.port);
        if external_ok {
            r.elements
                .insert((SERVICE_IPS.into(), k, format!("goto {ext_chain}")));
        } else {
            r.elements
                .insert((NO_ENDPOINT_SERVICES.into(), k, verdict_none.into()));
        }
    }
    if let Some(np) = p.node_port {
        let k = format!("{proto} . {np}");
        if external_ok {
            r.elements
                .insert((SERVICE_NODEPORTS.into(), k, format!("goto {ext_chain}")));
        } else {
            r.elements
                .insert((NO_ENDPOINT_NODEPORTS.into(), k, verdict_none.into()));
        }
    }
}

/// Rules that send a new connection to one of `eps`: the client's affinity first, then a
/// random pick. The pick is a chain of rules, the i-th taken with probability 1/(n-i), as
/// upstream's iptables mode does, rather than upstream nftables mode's `numgen vmap`: each
/// vmap is an anonymous set, and the kernel checks every goto against every set of the
/// table, so a full sync with one set per Service grew quadratically (4,000 Services x 10
/// endpoints: 15.5 s with vmaps, 3.7 s without).
fn pick_endpoint(
    n: &ServicePortName,
    affinity: Option<u32>,
    eps: &[&Endpoint],
    rules: &mut Vec<String>,
) {
    if let Some(timeout) = affinity {
        for ep in eps {
            rules.push(format!(
                "ip saddr @{} goto {}",
                affinity_set(n, ep, timeout),
                endpoint_chain(n, ep)
            ));
        }
    }
    let count = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let chain = endpoint_chain(n, ep);
        if i + 1 == count {
            rules.push(format!("goto {chain}"));
        } else {
            rules.push(format!("numgen random mod {} 0 goto {chain}", count - i));
        }
    }
}

/// The table's fixed part: hooks, the dispatch maps and the masquerade and reject chains.
pub fn base(config: &Config) -> String {
    let _ = config; // The fixed part does not depend on it yet (no --nodeport-addresses).
    let mut s = String::new();
    let t = TABLE;
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line(&format!(
        "add table ip {t} {{ comment \"rules for kube-proxy\" ; }}"
    ));
    for (name, kind, hook, prio) in [
        ("nat-prerouting", "nat", "prerouting", "-100"),
        ("nat-output", "nat", "output", "-100"),
        ("nat-postrouting", "nat", "postrouting", "100"),
        ("filter-input", "filter", "input", "-110"),
        ("filter-forward", "filter", "forward", "-110"),
        ("filter-output", "filter", "output", "-110"),
        ("filter-output-post-dnat", "filter", "output", "-90"),
    ] {
        line(&format!(
            "add chain ip {t} {name} {{ type {kind} hook {hook} priority {prio} ; }}"
        ));
    }
    for name in [
        "mark-for-masquerade",
        "masquerading",
        "services",
        "reject-chain",
        "service-endpoints-check",
        "nodeport-endpoints-check",
        "cluster-ips-check",
    ] {
        line(&format!("add chain ip {t} {name}"));
    }
    for (name, key) in [
        (SERVICE_IPS, "ipv4_addr . inet_proto . inet_service"),
        (SERVICE_NODEPORTS, "inet_proto . inet_service"),
        (
            NO_ENDPOINT_SERVICES,
            "ipv4_addr . inet_proto . inet_service",
        ),
        (NO_ENDPOINT_NODEPORTS, "inet_proto . inet_service"),
    ] {
        line(&format!(
            "add map ip {t} {name} {{ type {key} : verdict ; }}"
        ));
    }
    line(&format!(
        "add set ip {t} {CLUSTER_IPS} {{ type ipv4_addr ; }}"
    ));
    let rules: &[(&str, String)] = &[
        ("nat-prerouting", "jump services".into()),
        ("nat-output", "jump services".into()),
        ("nat-postrouting", "jump masquerading".into()),
        (
            "mark-for-masquerade",
            format!("mark set mark or {MASQ_MARK}"),
        ),
        ("masquerading", format!("mark and {MASQ_MARK} == 0 return")),
        ("masquerading", format!("mark set mark xor {MASQ_MARK}")),
        ("masquerading", "masquerade fully-random".into()),
        (
            "services",
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
        ),
        (
            "services",
            format!(
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"
            ),
        ),
        // A TCP reset refuses a connection at once; the ICMP port-unreachable upstream
        // sends was measured here to reach the client only for its retransmitted SYN
        // (1 s later). Other protocols get the ICMP error.
        (
            "reject-chain",
            "meta l4proto tcp reject with tcp reset".into(),
        ),
        ("reject-chain", "reject".into()),
        (
            "service-endpoints-check",
            format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
        ),
        (
            "nodeport-endpoints-check",
            format!(
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
            ),
        ),
        (
            "cluster-ips-check",
            format!(
                "ip daddr @{CLUSTER_IPS} reject comment \"reject traffic to invalid ports of ClusterIPs\""
            ),
        ),
        (
            "filter-input",
            "ct state new jump nodeport-endpoints-check".into(),
        ),
        (
            "filter-input",
            "ct state new jump service-endpoints-check".into(),
        ),
        (
            "filter-forward",
            "ct state new jump service-endpoints-check".into(),
        ),
        (
            "filter-forward",
            "ct state new jump cluster-ips-check".into(),
        ),
        (
            "filter-output",
            "ct state new jump service-endpoints-check".into(),
        ),
        (
            "filter-output-post-dnat",
            "ct state new jump cluster-ips-check".into(),
        ),
    ];
    for (chain, rule) in rules {
        line(&format!("add rule ip {t} {chain} {rule}"));
    }
    s
}

/// Rules in the fixed part of the table (for the rule-count metric).
pub fn base_rule_count(config: &Config) -> usize {
    base(config).matches("add rule").count()
}

/// `add element` or `delete element` statements for `elements` (sorted by map), one
/// statement per map: nft parses one long statement much faster than many short ones.
/// Returns how many statements.
fn elements_statements(
    out: &mut String,
    verb: &str,
    table: &str,
    elements: Vec<(&str, String)>,
) -> usize {
    let mut statements = 0;
    let mut current: Option<&str> = None;
    for (map, item) in elements {
        if current == Some(map) {
            let _ = write!(out, ", {item}");
            continue;
        }
        if current.is_some() {
            out.push_str(" }\n");
        }
        let _ = write!(out, "{verb} element {table} {map} {{ {item}");
        current = Some(map);
        statements += 1;
    }
    if current.is_some() {
        out.push_str(" }\n");
    }
    statements
}

/// A transaction on one table in four phases, so that nothing is referenced before it
/// exists or removed while still referenced.
pub struct Transaction {
    /// `family name`, as nft addresses the table.
    table: String,
    /// New chains and sets.
    create: String,
    /// Chain contents (flush + rules).
    fill: String,
    /// Map and set elements.
    elements: String,
    /// Chains and sets no longer used.
    remove: String,
    /// How many statements (for the log).
    pub ops: usize,
}

impl Transaction {
    /// An empty transaction on the table `name` of `family`.
    pub fn new(family: &str, name: &str) -> Transaction {
        Transaction {
            table: format!("{family} {name}"),
            create: String::new(),
            fill: String::new(),
            elements: String::new(),
            remove: String::new(),
            ops: 0,
        }
    }

    /// A transaction that replaces the whole table with `base` (its fixed part, `add`
    /// statements) and what is then diffed in against nothing.
    pub fn replacing(family: &str, name: &str, base: &str) -> Transaction {
        let mut tx = Transaction::new(family, name);
        // Adding the table first makes the delete succeed when it does not exist yet.
        let t = &tx.table;
        let _ = writeln!(tx.create, "add table {t}\ndelete table {t}");
        tx.create.push_str(base);
        tx.ops += base.lines().count();
        tx
    }

    /// A transaction that replaces kube-proxy's whole table: the base and every rendered
    /// service.
    pub fn full<'a>(config: &Config, all: impl Iterator<Item = &'a Rendered>) -> Transaction {
        let mut tx = Transaction::replacing("ip", TABLE, &base(config));
        let empty = Rendered::default();
        for r in all {
            tx.diff(&empty, r);
        }
        tx
    }

    /// Adds what turns `old` into `new` (one part of the table).
    pub fn diff(&mut self, old: &Rendered, new: &Rendered) {
        let t = &self.table;
        for (name, declaration) in &new.sets {
            match old.sets.get(name) {
                Some(old) => debug_assert_eq!(old, declaration, "set {name} redeclared"),
                None => {
                    let _ = writeln!(self.create, "add set {t} {name} {{ {declaration} }}");
                    self.ops += 1;
                }
            }
        }
        for name in new.counters.difference(&old.counters) {
            let _ = writeln!(self.create, "add counter {t} {name}");
            self.ops += 1;
        }
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                Some(old_rules) if old_rules == rules => continue,
                Some(_) => {
                    let _ = writeln!(self.fill, "flush chain {t} {name}");
                }
                None => {
                    let _ = writeln!(self.create, "add chain {t} {name}");
                }
            }
            for rule in rules {
                let _ = writeln!(self.fill, "add rule {t} {name} {rule}");
            }
            self.ops += 1 + rules.len();
        }
        // Elements: removed or changed ones go first, then the new ones (both sets are
        // sorted, so each difference is one walk). The elements of a set that goes go
        // with it.
        let set_goes = |set: &str| old.sets.contains_key(set) && !new.sets.contains_key(set);
        let gone = old
            .elements
            .difference(&new.elements)
            .filter(|(map, _, _)| !set_goes(map))
            .map(|(map, k, _)| (&**map, k.clone()))
            .collect();
        self.ops += elements_statements(&mut self.elements, "delete", t, gone);
        let added = new
            .elements
            .difference(&old.elements)
            .map(|(map, k, v)| match v.is_empty() {
                true => (&**map, k.clone()),
                false => (&**map, format!("{k} : {v}")),
            })
            .collect();
        self.ops += elements_statements(&mut self.elements, "add", t, added);
        for name in old.chains.keys() {
            if !new.chains.contains_key(name) {
                // Flushed first: a rule of it may jump to another chain removed here.
                let _ = writeln!(self.fill, "flush chain {t} {name}");
                let _ = writeln!(self.remove, "delete chain {t} {name}");
                self.ops += 1;
            }
        }
        for name in old.sets.keys() {
            if !new.sets.contains_key(name) {
                let _ = writeln!(self.remove, "delete set {t} {name}");
                self.ops += 1;
            }
        }
        for name in old.counters.difference(&new.counters) {
            let _ = writeln!(self.remove, "delete counter {t} {name}");
            self.ops += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.fill.is_empty()
            && self.elements.is_empty()
            && self.remove.is_empty()
    }

    /// The `nft -f` script.
    pub fn script(&self) -> String {
        let mut s = String::with_capacity(
            self.create.len() + self.fill.len() + self.elements.len() + self.remove.len(),
        );
        s.push_str(&self.create);
        s.push_str(&self.fill);
        s.push_str(&self.elements);
        s.push_str(&self.remove);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{Protocol, ServicePort};

    fn backend(eps: &[(&str, bool)]) -> Backend {
        Backend {
            name: ServicePortName {
                namespace: "ns".into(),
                name: "web".into(),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            port: ServicePort {
                cluster_ip: "10.96.0.10".parse().unwrap(),
                port: 80,
                node_port: Some(30080),
                external_ips: vec![],
                affinity_seconds: None,
                internal_local: false,
                external_local: false,
            },
            endpoints: eps
                .iter()
                .map(|(ip, ready)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 8080,
                    ready: *ready,
                    serving: *ready,
                    terminating: false,
                    local: false,
                })
                .collect(),
        }
    }

    fn config() -> Config {
        Config {
            cluster_cidr: Some("10.244.0.0/16".into()),
        }
    }

    #[test]
    fn a_service_dispatches_to_its_ready_endpoints() {
        let r = render(
            &config(),
            &[backend(&[
                ("10.244.1.2", true),
                ("10.244.2.2", true),
                ("10.244.2.3", false),
            ])],
        );
        let svc = &r.chains[&service_chain(&backend(&[]).name)];
        assert!(svc[0].contains("ip saddr != 10.244.0.0/16 jump mark-for-masquerade"));
        assert!(
            svc[1].starts_with("numgen random mod 2 0 goto endpoint-"),
            "{}",
            svc[1]
        );
        assert!(svc[2].starts_with("goto endpoint-"), "{}", svc[2]);
        // Two endpoint chains, a service chain and an external chain.
        assert_eq!(r.chains.len(), 4);
        assert!(r.elements.iter().any(|(m, k, v)| *m == SERVICE_IPS
            && k == "10.96.0.10 . tcp . 80"
            && v.starts_with("goto service-")));
        assert!(
            r.elements
                .iter()
                .any(|(m, k, _)| *m == SERVICE_NODEPORTS && k == "tcp . 30080")
        );
    }

    #[test]
    fn a_service_without_endpoints_is_rejected() {
        let r = render(&config(), &[backend(&[("10.244.1.2", false)])]);
        assert!(r.chains.is_empty());
        assert!(r.elements.contains(&(
            NO_ENDPOINT_SERVICES.into(),
            "10.96.0.10 . tcp . 80".into(),
            "goto reject-chain".into()
        )));
        assert!(r.elements.contains(&(
            NO_ENDPOINT_NODEPORTS.into(),
            "tcp . 30080".into(),
            "goto reject-chain".into()
        )));
    }

    #[test]
    fn one_endpoint_changing_rewrites_only_its_chains() {
        let before = render(
            &config(),
            &[backend(&[("10.244.1.2", true), ("10.244.2.2", true)])],
        );
        let after = render(
            &config(),
            &[backend(&[("10.244.1.2", true), ("10.244.2.2", false)])],
        );
        let mut tx = Transaction::new("ip", TABLE);
        tx.diff(&before, &after);
        let script = tx.script();
        // The service chain is rewritten, the gone endpoint's chain deleted; the map
        // elements and the other endpoint's chain are untouched.
        assert!(
            script.contains("flush chain ip kube-proxy service-"),
            "{script}"
        );
        assert!(
            script.contains("delete chain ip kube-proxy endpoint-"),
            "{script}"
        );
        assert!(!script.contains("element"), "{script}");
        assert_eq!(script.matches("add rule").count(), 2, "{script}");
        let mut none = Transaction::new("ip", TABLE);
        none.diff(&after, &after);
        assert!(none.is_empty());
    }

    #[test]
    fn a_changed_affinity_timeout_makes_a_new_set_before_the_old_one_goes() {
        let with_timeout = |t| {
            let mut b = backend(&[("10.244.1.2", true)]);
            b.port.affinity_seconds = Some(t);
            render(&config(), &[b])
        };
        let mut tx = Transaction::new("ip", TABLE);
        tx.diff(&with_timeout(10800), &with_timeout(60));
        let script = tx.script();
        let add = script.find("add set").expect("a new set");
        let refill = script.find("update @affinity-").expect("chains rewritten");
        let delete = script.find("delete set").expect("the old set removed");
        assert!(add < refill && refill < delete, "{script}");
        assert!(script.contains("timeout 60s"), "{script}");
    }
}
