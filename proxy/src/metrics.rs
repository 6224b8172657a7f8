//! kube-proxy's metrics on /metrics (port 10249), named as upstream's where upstream has
//! the same measure.

use common::metrics::{Counter, Gauge, Histogram};

const SECONDS: &[f64] = &[
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384,
];

pub static SYNC_DURATION: Histogram = Histogram::new(
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds",
    &[],
    SECONDS,
);
pub static SYNC_DURATION_BY_KIND: Histogram = Histogram::new(
    "kubeproxy_sync_proxy_rules_by_kind_duration_seconds",
    "SyncProxyRules latency in seconds, by kind (full: the whole table rewritten; partial: only what changed)",
    &["kind"],
    SECONDS,
);
pub static LAST_SYNC: Gauge = Gauge::new(
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "The last time proxy rules were successfully synced",
    &[],
);
pub static RULES: Gauge = Gauge::new(
    "kubeproxy_sync_proxy_rules_nftables_rules",
    "Rules in kube-proxy's nftables table after the last sync",
    &[],
);
pub static SYNC_FAILURES: Counter = Counter::new(
    "kubeproxy_sync_proxy_rules_failures_total",
    "Syncs whose nftables transaction failed (the next one rewrites the table)",
    &[],
);
pub static ROUTES: Gauge = Gauge::new(
    "kubeproxy_pod_network_routes",
    "Routes to other nodes' pod CIDRs the pod network agent keeps",
    &[],
);

pub static NETWORK_POLICY_SYNC_DURATION: Histogram = Histogram::new(
    "tetsu_network_policy_sync_duration_seconds",
    "Time to render and load the node's NetworkPolicy table",
    &[],
    SECONDS,
);
pub static NETWORK_POLICY_SYNC_FAILURES: Counter = Counter::new(
    "tetsu_network_policy_sync_failures_total",
    "NetworkPolicy table loads that nft refused (retried after a second, rewriting the whole table)",
    &[],
);
pub static NETWORK_POLICIES: Gauge = Gauge::new(
    "tetsu_network_policies",
    "NetworkPolicies in the cluster at the last sync",
    &[],
);
pub static NETWORK_POLICY_PODS: Gauge = Gauge::new(
    "tetsu_network_policy_isolated_pods",
    "This node's pods isolated by a NetworkPolicy, by direction (ingress, egress)",
    &["direction"],
);
pub static NETWORK_POLICY_DROPS: Counter = Counter::new(
    "tetsu_network_policy_dropped_packets_total",
    "Packets dropped at this node's pods that a NetworkPolicy isolates, by policy and direction (a packet no policy of a pod allowed counts for each of them; counts restart when the table is rewritten)",
    &["namespace", "policy", "direction"],
);

/// The text of /metrics.
pub fn render() -> String {
    let mut out = String::new();
    SYNC_DURATION.render(&mut out);
    SYNC_DURATION_BY_KIND.render(&mut out);
    LAST_SYNC.render(&mut out);
    RULES.render(&mut out);
    SYNC_FAILURES.render(&mut out);
    ROUTES.render(&mut out);
    NETWORK_POLICY_SYNC_DURATION.render(&mut out);
    NETWORK_POLICY_SYNC_FAILURES.render(&mut out);
    NETWORK_POLICIES.render(&mut out);
    NETWORK_POLICY_PODS.render(&mut out);
    NETWORK_POLICY_DROPS.render(&mut out);
    out
}
