//! netpol-sync: what NetworkPolicy enforcement costs a node (issue #19), beside proxy-sync.
//! A synthetic cluster of P policies over N pods in 100 namespaces (ten policies a
//! namespace, each selecting one app's pods and admitting frontends of its namespace and
//! one app of a team's namespaces, on a named port and a port range; every fourth also
//! limits egress) is synced by the agent into a network namespace standing for one of the
//! N/`local` nodes. Timed: the first (full) sync, a sync after one pod's label changes
//! (median), and one after a policy is added; each covers rendering, the diff and `nft -f`.
//! Then the first packet: two real pods on the node's bridge (a client and a server the
//! policies select and allow), the TCP handshake's time with no policies and with all of
//! them loaded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use proxy::host::Host;
use proxy::netpol::enforcer::{NetworkPolicies, SyncReport};
use proxy::netpol::rules::Cluster;
use proxy::netpol::semantics::NamespaceLabels;
use proxy::podnet;
use proxy::testing::{Netns, add_pod, reach};
use serde_json::json;

const NAMESPACES: usize = 100;
const NODE: &str = "node-0";

#[derive(Debug, serde::Serialize)]
pub struct Result {
    pub policies: usize,
    pub pods: usize,
    pub local_pods: usize,
    /// Rules in the node's table (apart from its base).
    pub rules: usize,
    pub full_sync_ms: f64,
    pub full_sync_ops: usize,
    /// Median over the runs of one pod's label changing.
    pub one_label_ms: f64,
    /// Of which rendering and diffing (the rest is nft).
    pub one_label_render_ms: f64,
    pub one_label_ops: usize,
    pub one_policy_added_ms: f64,
    pub one_policy_added_ops: usize,
    /// Median and 99th percentile of a new TCP connection's handshake between two pods of
    /// the node, in microseconds.
    pub handshake_without_policies_us: [f64; 2],
    pub handshake_with_policies_us: [f64; 2],
}

fn namespaces() -> NamespaceLabels {
    (0..NAMESPACES)
        .map(|n| {
            let name = format!("ns-{n}");
            let labels = [
                ("team".to_owned(), format!("team-{}", n % 10)),
                ("kubernetes.io/metadata.name".to_owned(), name.clone()),
            ];
            (name, labels.into())
        })
        .collect()
}

/// Pod `i`: namespace ns-(i mod 100), app-(i/100 mod 10), every third a frontend; on
/// node-(i mod nodes).
fn pod(i: usize, nodes: usize, tier: &str, ip: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % NAMESPACES), "name": format!("pod-{i}"),
            "labels": {"app": format!("app-{}", (i / NAMESPACES) % 10), "tier": tier}},
        "spec": {"nodeName": format!("node-{}", i % nodes),
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": ip},
    }))
    .unwrap()
}

fn synthetic_pod(i: usize, nodes: usize, frontend: bool) -> Pod {
    let tier = if frontend { "frontend" } else { "backend" };
    pod(
        i,
        nodes,
        tier,
        &format!("10.200.{}.{}", i / 250, i % 250 + 1),
    )
}

/// Policy `j`: in ns-(j mod 100), selecting app-(j/100 mod 10).
fn policy(j: usize) -> NetworkPolicy {
    let app = |k: usize| json!({"matchLabels": {"app": format!("app-{}", k % 10)}});
    let mut spec = json!({
        "podSelector": app(j / NAMESPACES),
        "ingress": [{"from": [
                {"podSelector": {"matchLabels": {"tier": "frontend"}}},
                {"namespaceSelector": {"matchLabels": {"team": format!("team-{}", j % 10)}},
                 "podSelector": app(j / NAMESPACES + 1)}],
            "ports": [{"port": "http"}, {"port": 9000, "endPort": 9100}]}],
    });
    if j.is_multiple_of(4) {
        spec["policyTypes"] = json!(["Ingress", "Egress"]);
        spec["egress"] = json!([
            {"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]},
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.200.0.0/16"]}}]}]);
    }
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", j % NAMESPACES), "name": format!("pol-{j}")},
        "spec": spec,
    }))
    .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn sync(
    agent: &NetworkPolicies,
    policies: &[NetworkPolicy],
    pods: &[Pod],
    namespaces: &NamespaceLabels,
) -> anyhow::Result<SyncReport> {
    let policies: Vec<&NetworkPolicy> = policies.iter().collect();
    let pods: Vec<&Pod> = pods.iter().collect();
    Ok(agent
        .sync(&Cluster {
            policies: &policies,
            pods: &pods,
            namespaces,
            node: NODE,
        })
        .await?)
}

/// The median and 99th percentile of `runs` handshakes from `client` to `server`, in µs.
fn handshakes(client: &Netns, server: SocketAddr, runs: usize) -> anyhow::Result<[f64; 2]> {
    let mut times: Vec<Duration> = client
        .enter(|| {
            (0..runs)
                .map(|_| {
                    let began = Instant::now();
                    let conn =
                        std::net::TcpStream::connect_timeout(&server, Duration::from_secs(3));
                    conn.ok().map(|_| began.elapsed())
                })
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| anyhow::anyhow!("a connection from the client to the server failed"))?;
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Ok([at(0.5), at(0.99)])
}

pub async fn netpol_sync(
    policies: usize,
    pods: usize,
    local: usize,
    runs: usize,
) -> anyhow::Result<Result> {
    let nodes = (pods / local.max(1)).max(1);
    let node = Netns::new("tnpbench");
    let (ok, out) = node.sh(
        "modprobe br_netfilter 2>/dev/null; sysctl -qw net.bridge.bridge-nf-call-iptables=1 && sysctl -qw net.ipv4.ip_forward=1",
    );
    anyhow::ensure!(ok, "{out}");
    // Two real pods of ns-0 on the node: a frontend client and a server of app-0, which
    // policy 0 selects and admits frontends to.
    let dir = tempfile::tempdir()?;
    let ipam = dir.path().join("ipam");
    let conf = podnet::conflist("10.244.0.0/24", Some(&ipam));
    let (client, client_ip) = add_pod(&node, &conf, &ipam);
    let (server, server_ip) = add_pod(&node, &conf, &ipam);
    server.serve_tcp_udp("server", 8080);
    let server_addr: SocketAddr = format!("{server_ip}:8080").parse()?;
    let mut objects: Vec<Pod> = (0..pods)
        .map(|i| synthetic_pod(i, nodes, i.is_multiple_of(3)))
        .collect();
    objects.push(pod(0, nodes, "frontend", &client_ip));
    objects.push(pod(0, nodes, "backend", &server_ip));
    let n = objects.len();
    objects[n - 2].metadata.name = Some("client".into());
    objects[n - 1].metadata.name = Some("server".into());
    let namespaces = namespaces();
    let agent = NetworkPolicies::new(Host::netns(&node.name), NODE);

    // The first packet without policies.
    sync(&agent, &[], &objects, &namespaces).await?;
    let without = handshakes(&client, server_addr, 500)?;

    let mut all: Vec<NetworkPolicy> = (0..policies).map(policy).collect();
    // The first sync with policies is made full by a new agent (the other wrote the table).
    let agent = NetworkPolicies::new(Host::netns(&node.name), NODE);
    let full = sync(&agent, &all, &objects, &namespaces).await?;
    anyhow::ensure!(full.full, "the first sync rewrites the table");
    anyhow::ensure!(
        client
            .enter(|| reach(server_addr, "TCP", Duration::from_secs(3)))
            .as_deref()
            == Some("server"),
        "policy 0 admits the client"
    );
    let with = handshakes(&client, server_addr, 500)?;

    // One pod of ns-0 (whose policies select pods of the node) turns frontend and back:
    // an element in and out of its namespace's frontend sets.
    let mut one: Vec<SyncReport> = Vec::new();
    for r in 0..runs {
        let i = (NAMESPACES * (r + 1)) % pods;
        let was = i.is_multiple_of(3);
        objects[i] = synthetic_pod(i, nodes, !was);
        one.push(sync(&agent, &all, &objects, &namespaces).await?);
        objects[i] = synthetic_pod(i, nodes, was);
        sync(&agent, &all, &objects, &namespaces).await?;
    }
    one.sort_by_key(|r| r.took);
    let median = one[one.len() / 2];
    all.push(policy(policies));
    let added = sync(&agent, &all, &objects, &namespaces).await?;
    Ok(Result {
        policies,
        pods,
        local_pods: objects
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(NODE))
            .count(),
        rules: added.rules,
        full_sync_ms: ms(full.took),
        full_sync_ops: full.ops,
        one_label_ms: ms(median.took),
        one_label_render_ms: ms(median.rendered_in),
        one_label_ops: median.ops,
        one_policy_added_ms: ms(added.took),
        one_policy_added_ops: added.ops,
        handshake_without_policies_us: without,
        handshake_with_policies_us: with,
    })
}
