//! NetworkPolicy enforcement on the node (issue #19), being built. `semantics` is what a
//! policy means for one connection: the reference the nftables rules are checked against
//! and the expected reachability tables of the policy tests are computed from.
//!
//! The rules, next (measured facts in ../shared/PLATFORM.md): one table `inet tetsu-netpol`
//! beside kube-proxy's. The pod network agent turns bridge-nf-call-iptables on, so traffic
//! between pods on one bridge, like traffic routed from other nodes, passes the `forward`
//! hook, after kube-proxy's DNAT in prerouting (policies judge the real pod and port, as
//! upstream requires). Two base chains there: `egress` (priority -10) and `ingress`
//! (priority 10), each starting with `ct state established,related accept` and a verdict
//! map from a local pod's address to its chain (`ip saddr vmap @egress-pods`,
//! `ip daddr vmap @ingress-pods`); an `input` chain applies the egress map to traffic for
//! the node itself. A pod's chain jumps to the chain of each policy selecting it, whose
//! rules `accept` what the policy allows (peer address sets `ip saddr @<policy>-<rule>`,
//! named ports as `ip daddr . meta l4proto . th dport` concatenations resolved per pod) and
//! ends with `drop`; an accept ends only that base chain, so a packet between two local
//! pods meets the sender's egress and the receiver's ingress. Locally generated packets
//! (kubelet probes) never pass `forward`, which is upstream implementations' node
//! exception. Pods, namespaces and policies go through `common::informer`; a sync renders
//! each policy and each local pod apart and writes the difference in one `nft -f`, as
//! kube-proxy's `Transaction` does, so a pod joining a selected set is one element.

pub mod enforcer;
pub mod rules;
pub mod semantics;
