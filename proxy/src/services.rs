//! What kube-proxy knows of the cluster's Services: every service port with its
//! endpoints, built from Services and EndpointSlices as they change. Changes mark the
//! service dirty so a sync renders only what changed (upstream's change trackers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// namespace/name of a Service.
pub type ServiceName = (String, String);

/// One port of one Service, as upstream names it: `ns/name:port-name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub protocol: Protocol,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nft's name for it.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// How a service port is reached and balanced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    /// sessionAffinity ClientIP: the timeout in seconds.
    pub affinity_seconds: Option<u32>,
    pub internal_local: bool,
    pub external_local: bool,
}

/// One backend of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node (for the Local traffic policies).
    pub local: bool,
}

/// A service port with its endpoints: what one sync renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub name: ServicePortName,
    pub port: ServicePort,
    pub endpoints: Vec<Endpoint>,
}

/// Services and EndpointSlices as last seen, and which services changed since the last
/// sync took them.
#[derive(Default)]
pub struct Tracker {
    services: HashMap<ServiceName, Arc<Service>>,
    /// Slices by service, then by slice name.
    slices: HashMap<ServiceName, BTreeMap<String, Arc<EndpointSlice>>>,
    dirty: BTreeSet<ServiceName>,
    node: String,
}

impl Tracker {
    /// A tracker for the proxy on `node` (endpoints there are local).
    pub fn new(node: &str) -> Tracker {
        Tracker {
            node: node.to_owned(),
            ..Default::default()
        }
    }

    pub fn service_changed(&mut self, svc: impl Into<Arc<Service>>) {
        let svc = svc.into();
        let key = key_of(&svc.metadata.namespace, &svc.metadata.name);
        self.dirty.insert(key.clone());
        self.services.insert(key, svc);
    }

    pub fn service_deleted(&mut self, svc: &Service) {
        let key = key_of(&svc.metadata.namespace, &svc.metadata.name);
        self.services.remove(&key);
        self.dirty.insert(key);
    }

    pub fn slice_changed(&mut self, slice: impl Into<Arc<EndpointSlice>>) {
        let slice = slice.into();
        let Some(key) = slice_service(&slice) else {
            return;
        };
        let name = slice.metadata.name.clone().unwrap_or_default();
        self.dirty.insert(key.clone());
        self.slices.entry(key).or_default().insert(name, slice);
    }

    pub fn slice_deleted(&mut self, slice: &EndpointSlice) {
        let Some(key) = slice_service(slice) else {
            return;
        };
        let name = slice.metadata.name.clone().unwrap_or_default();
        if let Some(m) = self.slices.get_mut(&key) {
            m.remove(&name);
            if m.is_empty() {
                self.slices.remove(&key);
            }
        }
        self.dirty.insert(key);
    }

    /// Everything the tracker knows is to be rendered again (a full sync).
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.services.keys().cloned());
    }

    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The services changed since the last call, each with its service ports now (none
    /// for a service that is gone or not proxied).
    pub fn take_changes(&mut self) -> Vec<(ServiceName, Vec<Backend>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|key| {
                let backends = self.backends(&key);
                (key, backends)
            })
            .collect()
    }

    fn backends(&self, key: &ServiceName) -> Vec<Backend> {
        let Some(svc) = self.services.get(key) else {
            return Vec::new();
        };
        let empty = BTreeMap::new();
        let slices = self.slices.get(key).unwrap_or(&empty);
        backends_of(svc, slices.values().map(|s| &**s), &self.node)
    }
}

fn key_of(ns: &Option<String>, name: &Option<String>) -> ServiceName {
    (
        ns.clone().unwrap_or_default(),
        name.clone().unwrap_or_default(),
    )
}

fn slice_service(slice: &EndpointSlice) -> Option<ServiceName> {
    let name = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?;
    Some((
        slice.metadata.namespace.clone().unwrap_or_default(),
        name.clone(),
    ))
}

/// The service ports of `svc` with their endpoints from `slices`. Headless services,
/// ExternalName services and non-IPv4 addresses are not proxied (as upstream).
pub fn backends_of<'a>(
    svc: &Service,
    slices: impl Iterator<Item = &'a EndpointSlice>,
    node: &str,
) -> Vec<Backend> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Vec::new();
    };
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10800)
            .max(1) as u32
    });
    let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    // Endpoints by port name, deduplicated by address across slices.
    let mut by_port: HashMap<(String, Protocol), BTreeMap<(Ipv4Addr, u16), Endpoint>> =
        HashMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        for p in slice.ports.iter().flatten() {
            let (Some(port), Some(proto)) = (p.port, Protocol::parse(p.protocol.as_deref())) else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            let entry = by_port
                .entry((p.name.clone().unwrap_or_default(), proto))
                .or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                let c = ep.conditions.as_ref();
                // Unset ready means ready; unset serving means as ready (upstream).
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                let serving = c.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                entry.insert(
                    (ip, port),
                    Endpoint {
                        ip,
                        port,
                        ready,
                        serving,
                        terminating,
                        local: ep.node_name.as_deref() == Some(node),
                    },
                );
            }
        }
    }
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = Protocol::parse(p.protocol.as_deref())?;
            let port_name = p.name.clone().unwrap_or_default();
            let endpoints = by_port
                .get(&(port_name.clone(), protocol))
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            Some(Backend {
                name: ServicePortName {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    port: port_name,
                    protocol,
                },
                port: ServicePort {
                    cluster_ip,
                    port: u16::try_from(p.port).ok()?,
                    node_port: p
                        .node_port
                        .filter(|_| node_ports)
                        .and_then(|n| u16::try_from(n).ok()),
                    external_ips: external_ips.clone(),
                    affinity_seconds,
                    internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                    external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                },
                endpoints,
            })
        })
        .collect()
}

impl Backend {
    /// The endpoints cluster traffic goes to: the ready ones, or if none is ready the
    /// serving-and-terminating ones (upstream's fallback), on this node only if `local`.
    pub fn usable(&self, local: bool) -> Vec<&Endpoint> {
        let candidates = || self.endpoints.iter().filter(move |e| !local || e.local);
        let ready: Vec<&Endpoint> = candidates().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        candidates()
            .filter(|e| e.serving && e.terminating)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]}
        }))
        .unwrap()
    }

    fn slice(name: &str, eps: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name,
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps
        }))
        .unwrap()
    }

    #[test]
    fn endpoints_merge_across_slices_and_fall_back_to_terminating() {
        let a = slice(
            "web-a",
            json!([{"addresses": ["10.244.1.2"], "nodeName": "a", "conditions": {"ready": true}}]),
        );
        let b = slice(
            "web-b",
            json!([{"addresses": ["10.244.2.2"], "nodeName": "b",
                    "conditions": {"ready": false, "serving": true, "terminating": true}}]),
        );
        let backends = backends_of(&svc(), [&a, &b].into_iter(), "a");
        assert_eq!(backends.len(), 1);
        let web = &backends[0];
        assert_eq!(web.name.to_string(), "ns/web:http");
        assert_eq!(web.port.node_port, Some(30080));
        assert_eq!(web.port.affinity_seconds, Some(10800));
        let ips = |v: Vec<&Endpoint>| v.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>();
        assert_eq!(ips(web.usable(false)), ["10.244.1.2"]);
        assert_eq!(ips(web.usable(true)), ["10.244.1.2"]);
        // Without ready endpoints, serving-terminating ones still take traffic.
        let only_b = backends_of(&svc(), [&b].into_iter(), "a");
        assert_eq!(ips(only_b[0].usable(false)), ["10.244.2.2"]);
        assert!(only_b[0].usable(true).is_empty());
    }

    #[test]
    fn changes_mark_their_service_dirty() {
        let mut t = Tracker::new("a");
        t.service_changed(svc());
        t.slice_changed(slice("web-a", json!([{"addresses": ["10.244.1.2"]}])));
        let changes = t.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1[0].endpoints.len(), 1);
        assert!(!t.has_changes());
        t.service_deleted(&svc());
        let changes = t.take_changes();
        assert!(changes[0].1.is_empty());
    }
}
