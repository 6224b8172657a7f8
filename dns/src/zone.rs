//! The cluster zone in memory: what Services, EndpointSlices and Namespaces mean as DNS
//! records, by Kubernetes' DNS-based service discovery specification (schema 1.1.0) and,
//! where it is silent, as CoreDNS's kubernetes plugin answers (kubeadm's `pods insecure`,
//! endpoint names for every Service, NODATA for names that exist with other types).
//!
//! Names under the zone (relative to `cluster.local.`):
//! - `svc`, `pod`: exist, no records (NODATA); `<ns>.svc`, `<ns>.pod`: exist while the
//!   namespace does.
//! - `<svc>.<ns>.svc`: a ClusterIP Service's addresses, a headless Service's ready endpoint
//!   addresses (none ready: NXDOMAIN, as the specification says), an ExternalName's CNAME.
//! - `<endpoint>.<svc>.<ns>.svc`: a ready endpoint by its hostname or dashed address.
//! - `_<port>._<proto>.<svc>.<ns>.svc`: SRV for a named port (to the Service, or to each
//!   ready endpoint of a headless one).
//! - `<a-b-c-d>.<ns>.pod`: the address written in the name.
//! - `dns-version`: TXT "1.1.0".
//!
//! Reverse names (`in-addr.arpa.`, `ip6.arpa.`) of ClusterIPs and endpoint addresses answer
//! PTR; other reverse names and names outside the zone are not the zone's ([`Lookup::NotOurs`]).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The specification's schema version, served as `dns-version.<zone>` TXT.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of `dns-version` (the specification's example, and CoreDNS's).
const VERSION_TTL: u32 = 28800;

/// A name the zone's maps share (a namespace's is shared with every key in it).
pub type Str = Arc<str>;
/// A Service or a slice: (namespace, name).
pub type Key = (Str, Str);

// The zone keeps what the objects mean in as few bytes as it can (boxed slices, shared
// names, no DNS names): records and names are built when a question asks for them.

/// A named port: its name, its protocol (lowercase, as SRV names it) and number.
#[derive(Clone, Debug, PartialEq)]
struct Port {
    name: Box<str>,
    protocol: &'static str,
    port: u16,
}

impl Port {
    fn new(name: Option<&str>, protocol: Option<&str>, port: i32) -> Option<Port> {
        let protocol = match protocol.unwrap_or("TCP") {
            "TCP" => "tcp",
            "UDP" => "udp",
            "SCTP" => "sctp",
            _ => return None,
        };
        Some(Port {
            name: name.filter(|n| !n.is_empty())?.into(),
            protocol,
            port: u16::try_from(port).ok()?,
        })
    }

    /// Whether the port answers `_<port>._<proto>` (empty: any).
    fn matches(&self, port: &str, proto: &str) -> bool {
        (port.is_empty() || self.name.eq_ignore_ascii_case(port))
            && (proto.is_empty() || self.protocol.eq_ignore_ascii_case(proto))
    }
}

/// What a Service contributes.
#[derive(Clone, Debug, Default, PartialEq)]
struct ServiceEntry {
    cluster_ips: Box<[IpAddr]>,
    headless: bool,
    external_name: Option<Box<Name>>,
    ports: Box<[Port]>,
}

/// A ready endpoint of a Service.
#[derive(Clone, Debug, PartialEq)]
struct EndpointEntry {
    addresses: Box<[IpAddr]>,
    /// The slice's hostname for it, else the dashed address (as CoreDNS).
    hostname: Option<Box<str>>,
}

/// One EndpointSlice's part: its ready endpoints and named ports.
#[derive(Clone, Debug, PartialEq)]
struct SliceEntry {
    name: Str,
    endpoints: Box<[EndpointEntry]>,
    ports: Box<[Port]>,
}

/// The Services with names for an address (nearly always one).
#[derive(Debug)]
enum Owners {
    One(Key),
    Many(Vec<Key>),
}

impl Owners {
    fn iter(&self) -> impl Iterator<Item = &Key> {
        match self {
            Owners::One(k) => std::slice::from_ref(k).iter(),
            Owners::Many(ks) => ks.iter(),
        }
    }
}

/// The answer to one question.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Records (answers, and additional records such as SRV targets' addresses).
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists but has no records of the type asked.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// Not a name of the zone: the question goes to the upstream resolvers.
    NotOurs,
}

/// The zone.
pub struct Zone {
    origin: Name,
    ttl: u32,
    namespaces: HashSet<Str>,
    services: HashMap<Key, ServiceEntry>,
    /// Each Service's slices, sorted by name.
    slices: HashMap<Key, Vec<SliceEntry>>,
    /// The Service each slice belongs to, by (namespace, slice name): where a slice that
    /// changes its Service or goes was filed.
    slice_owner: HashMap<Key, Str>,
    /// Reverse names: the Services (ClusterIPs, or their ready endpoints) with a name for
    /// an address; the names are made when asked.
    ptr: HashMap<IpAddr, Owners>,
    /// When the zone last changed (seconds since the epoch), the SOA's serial.
    serial: u32,
}

/// An address as one DNS label, as CoreDNS writes it: dots (or colons) as dashes.
fn dashed(ip: &IpAddr) -> String {
    let mut s = ip.to_string().replace(['.', ':'], "-");
    if s.ends_with('-') {
        s.push('0');
    }
    if s.starts_with('-') {
        s.insert(0, '0');
    }
    s
}

/// The address a dashed label stands for (`10-244-1-5`, or an IPv6 address with dashes).
fn undashed(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 && !label.contains("--") {
        return label.replace('-', ".").parse().ok();
    }
    label.replace('-', ":").parse().ok()
}

/// The key of a Service a question names.
fn asked(ns: &str, name: &str) -> Key {
    (ns.into(), name.into())
}

fn lower(label: &[u8]) -> String {
    String::from_utf8_lossy(label).to_ascii_lowercase()
}

impl Zone {
    /// An empty zone for `domain` (`cluster.local`) answering with `ttl`.
    pub fn new(domain: &str, ttl: u32) -> crate::Result<Zone> {
        let mut origin = Name::from_ascii(domain)
            .map_err(|e| crate::Error::Invalid(format!("cluster domain {domain:?}: {e}")))?;
        origin.set_fqdn(true);
        Ok(Zone {
            origin: origin.to_lowercase(),
            ttl,
            namespaces: HashSet::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            slice_owner: HashMap::new(),
            ptr: HashMap::new(),
            serial: 0,
        })
    }

    /// The zone's name.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Marks a change at `now` (seconds since the epoch): the SOA's serial.
    pub fn touch(&mut self, now: u32) {
        self.serial = now;
    }

    /// The zone's SOA, as CoreDNS writes it (negative answers carry it).
    pub fn soa(&self) -> Record {
        let name = |prefix: &str| {
            Name::from_ascii(prefix)
                .and_then(|p| p.append_domain(&self.origin))
                .expect("a valid name under the zone")
        };
        let soa = SOA::new(
            name("ns.dns"),
            name("hostmaster"),
            self.serial,
            7200,
            1800,
            86400,
            self.ttl,
        );
        Record::from_rdata(self.origin.clone(), self.ttl.min(300), RData::SOA(soa))
    }

    pub fn namespace_changed(&mut self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name
            && !self.namespaces.contains(name.as_str())
        {
            self.namespaces.insert(name.as_str().into());
        }
    }

    pub fn namespace_deleted(&mut self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            self.remove_namespace(name);
        }
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// The namespaces, Services and slices the zone holds: what a relist is compared with.
    pub fn namespace_names(&self) -> Vec<Str> {
        self.namespaces.iter().cloned().collect()
    }

    pub fn service_keys(&self) -> Vec<Key> {
        self.services.keys().cloned().collect()
    }

    pub fn slice_keys(&self) -> Vec<Key> {
        self.slice_owner.keys().cloned().collect()
    }

    /// The key of `name` in `namespace`, sharing the namespace's name when it is known.
    fn key(&self, namespace: &Option<String>, name: &str) -> Key {
        self.key_in(namespace.as_deref().unwrap_or_default(), name)
    }

    fn key_in(&self, ns: &str, name: &str) -> Key {
        let ns = match self.namespaces.get(ns) {
            Some(shared) => shared.clone(),
            None => ns.into(),
        };
        (ns, name.into())
    }

    pub fn service_changed(&mut self, svc: &Service) {
        let key = self.key(
            &svc.metadata.namespace,
            svc.metadata.name.as_deref().unwrap_or_default(),
        );
        let none = Default::default();
        let spec = svc.spec.as_ref().unwrap_or(&none);
        let external_name = match spec.type_.as_deref() {
            Some("ExternalName") => spec
                .external_name
                .as_deref()
                .and_then(|n| Name::from_ascii(n).ok())
                .filter(|n| n.num_labels() > 0 && n.to_string().parse::<IpAddr>().is_err())
                .map(|mut n| {
                    n.set_fqdn(true);
                    Box::new(n)
                }),
            _ => None,
        };
        let ips: &[String] = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.as_slice(),
        };
        let headless = external_name.is_none() && ips.iter().any(|ip| ip == "None");
        let entry = ServiceEntry {
            cluster_ips: ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            headless,
            external_name,
            ports: spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), p.port))
                .collect(),
        };
        self.change(&key, |z| {
            z.services.insert(key.clone(), entry);
        });
    }

    pub fn service_deleted(&mut self, svc: &Service) {
        self.remove_service(
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default(),
        );
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        let key = self.key_in(namespace, name);
        self.change(&key, |z| {
            z.services.remove(&key);
        });
    }

    pub fn slice_changed(&mut self, slice: &EndpointSlice) {
        let slice_key = self.key(
            &slice.metadata.namespace,
            slice.metadata.name.as_deref().unwrap_or_default(),
        );
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map_or("", String::as_str);
        let endpoints = slice
            .endpoints
            .iter()
            // Ready unless said otherwise; the slice controller already counts
            // publishNotReadyAddresses as ready.
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .map(|e| EndpointEntry {
                addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                hostname: e
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(Into::into),
            })
            .collect();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), p.port?))
            .collect();
        if let Some(old) = self
            .slice_owner
            .get(&slice_key)
            .filter(|o| &***o != service)
        {
            let old = old.clone();
            self.unfile_slice(&slice_key, old);
        }
        let owner: Key = (slice_key.0.clone(), service.into());
        self.slice_owner.insert(slice_key.clone(), owner.1.clone());
        let entry = SliceEntry {
            name: slice_key.1,
            endpoints,
            ports,
        };
        self.change(&owner, |z| {
            let slices = z.slices.entry(owner.clone()).or_default();
            match slices.binary_search_by(|s| s.name.cmp(&entry.name)) {
                Ok(i) => slices[i] = entry,
                Err(i) => slices.insert(i, entry),
            }
        });
    }

    pub fn slice_deleted(&mut self, slice: &EndpointSlice) {
        self.remove_slice(
            slice.metadata.namespace.as_deref().unwrap_or_default(),
            slice.metadata.name.as_deref().unwrap_or_default(),
        );
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) {
        let slice_key = self.key_in(namespace, name);
        if let Some(service) = self.slice_owner.remove(&slice_key) {
            self.unfile_slice(&slice_key, service);
        }
    }

    /// Takes a slice out of `service`'s.
    fn unfile_slice(&mut self, slice_key: &Key, service: Str) {
        let owner = (slice_key.0.clone(), service);
        self.change(&owner, |z| {
            if let Some(slices) = z.slices.get_mut(&owner) {
                slices.retain(|s| s.name != slice_key.1);
                if slices.is_empty() {
                    z.slices.remove(&owner);
                }
            }
        });
    }

    /// Applies a change to Service `key` (or its slices), keeping the reverse index in step.
    fn change(&mut self, key: &Key, apply: impl FnOnce(&mut Zone)) {
        let before = self.reverse_addresses(key);
        apply(self);
        let after = self.reverse_addresses(key);
        // Both sorted: a Service of thousands of endpoints costs n log n, not n squared.
        let kept = |ips: &[IpAddr], ip: &IpAddr| ips.binary_search(ip).is_ok();
        for ip in before.iter().filter(|ip| !kept(&after, ip)) {
            let now_empty = match self.ptr.get_mut(ip) {
                Some(Owners::One(k)) => k == key,
                Some(Owners::Many(ks)) => {
                    ks.retain(|k| k != key);
                    if let [only] = ks.as_slice() {
                        let only = only.clone();
                        self.ptr.insert(*ip, Owners::One(only));
                    }
                    false
                }
                None => false,
            };
            if now_empty {
                self.ptr.remove(ip);
            }
        }
        for ip in after.iter().filter(|ip| !kept(&before, ip)) {
            match self.ptr.get_mut(ip) {
                None => {
                    self.ptr.insert(*ip, Owners::One(key.clone()));
                }
                Some(Owners::One(k)) if k != key => {
                    let first = k.clone();
                    self.ptr.insert(*ip, Owners::Many(vec![first, key.clone()]));
                }
                Some(Owners::Many(ks)) if !ks.contains(key) => ks.push(key.clone()),
                Some(_) => {}
            }
        }
    }

    /// The addresses Service `key` has reverse names for, sorted, each once: its ClusterIPs
    /// and, unless it is an ExternalName, its ready endpoints' addresses.
    fn reverse_addresses(&self, key: &Key) -> Vec<IpAddr> {
        let Some(service) = self.services.get(key) else {
            return Vec::new();
        };
        let mut ips = service.cluster_ips.to_vec();
        if service.external_name.is_none() {
            for (e, _) in self.endpoints(key) {
                ips.extend_from_slice(&e.addresses);
            }
        }
        ips.sort_unstable();
        ips.dedup();
        ips
    }

    /// The ready endpoints of a Service, across its slices.
    fn endpoints(&self, key: &Key) -> impl Iterator<Item = (&EndpointEntry, &SliceEntry)> {
        self.slices
            .get(key)
            .into_iter()
            .flatten()
            .flat_map(|slice| slice.endpoints.iter().map(move |e| (e, slice)))
    }

    /// `<svc>.<ns>.svc.<zone>`.
    fn service_name(&self, key: &Key) -> Option<Name> {
        Name::from_ascii(format!("{}.{}.svc", key.1, key.0))
            .and_then(|n| n.append_domain(&self.origin))
            .ok()
    }

    /// `<endpoint>.<svc>.<ns>.svc.<zone>` for each address of `endpoint`.
    fn endpoint_names<'a>(
        &'a self,
        key: &'a Key,
        endpoint: &'a EndpointEntry,
    ) -> impl Iterator<Item = (IpAddr, Name)> + 'a {
        let service = self.service_name(key);
        endpoint.addresses.iter().filter_map(move |ip| {
            let name = match &endpoint.hostname {
                Some(h) => Name::from_ascii(h),
                None => Name::from_ascii(dashed(ip)),
            };
            Some((*ip, name.ok()?.append_domain(service.as_ref()?).ok()?))
        })
    }

    fn record(&self, name: &Name, data: RData) -> Record {
        Record::from_rdata(name.clone(), self.ttl, data)
    }

    fn address(&self, name: &Name, ip: IpAddr) -> Record {
        match ip {
            IpAddr::V4(v4) => self.record(name, RData::A(A(v4))),
            IpAddr::V6(v6) => self.record(name, RData::AAAA(AAAA(v6))),
        }
    }

    /// The addresses among `ips` of the type asked, as records of `name`.
    fn addresses(&self, name: &Name, qtype: RecordType, ips: &[IpAddr]) -> Vec<Record> {
        ips.iter()
            .filter(|ip| match qtype {
                RecordType::A => ip.is_ipv4(),
                RecordType::AAAA => ip.is_ipv6(),
                _ => false,
            })
            .map(|ip| self.address(name, *ip))
            .collect()
    }

    /// Answers `qname` (as asked, any case) for `qtype`.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        // zone_of compares labels without regard to case.
        if !self.origin.zone_of(qname) {
            return self.reverse(qname, qtype);
        }
        // The labels below the zone, leftmost first, lowercased.
        let depth = qname.num_labels() - self.origin.num_labels();
        let labels: Vec<String> = qname.iter().take(depth as usize).map(lower).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        match labels.as_slice() {
            [] => match qtype {
                RecordType::SOA => self.records(vec![self.soa()], vec![]),
                _ => Lookup::NoData,
            },
            ["dns-version"] => match qtype {
                RecordType::TXT => {
                    let txt = TXT::new(vec![SCHEMA_VERSION.to_owned()]);
                    let record = Record::from_rdata(qname.clone(), VERSION_TTL, RData::TXT(txt));
                    self.records(vec![record], vec![])
                }
                _ => Lookup::NoData,
            },
            ["svc"] | ["pod"] => Lookup::NoData,
            [ns, "svc"] | [ns, "pod"] => self.exists(self.namespaces.contains(*ns)),
            [pod, ns, "pod"] => match undashed(pod) {
                Some(ip) if self.namespaces.contains(*ns) => {
                    self.records_or_nodata(self.addresses(qname, qtype, &[ip]), vec![])
                }
                _ => Lookup::NxDomain,
            },
            [svc, ns, "svc"] => self.service(qname, qtype, &asked(ns, svc)),
            [endpoint, svc, ns, "svc"] => self.endpoint(qname, qtype, &asked(ns, svc), endpoint),
            [port, proto, svc, ns, "svc"] => {
                match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                    (Some(port), Some(proto)) => {
                        self.srv(qname, qtype, &asked(ns, svc), port, proto)
                    }
                    _ => Lookup::NxDomain,
                }
            }
            _ => Lookup::NxDomain,
        }
    }

    fn exists(&self, exists: bool) -> Lookup {
        if exists {
            Lookup::NoData
        } else {
            Lookup::NxDomain
        }
    }

    fn records(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Lookup {
        Lookup::Records {
            answers,
            additionals,
        }
    }

    fn records_or_nodata(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Lookup {
        if answers.is_empty() {
            Lookup::NoData
        } else {
            self.records(answers, additionals)
        }
    }

    /// `<svc>.<ns>.svc.<zone>`.
    fn service(&self, qname: &Name, qtype: RecordType, key: &Key) -> Lookup {
        let Some(service) = self.services.get(key) else {
            return Lookup::NxDomain;
        };
        if let Some(target) = &service.external_name {
            let cname = self.record(qname, RData::CNAME(CNAME((**target).clone())));
            return self.records(vec![cname], vec![]);
        }
        if qtype == RecordType::SRV {
            return self.srv(qname, qtype, key, "", "");
        }
        if !service.headless {
            return self
                .records_or_nodata(self.addresses(qname, qtype, &service.cluster_ips), vec![]);
        }
        let ips: Vec<IpAddr> = self
            .endpoints(key)
            .flat_map(|(e, _)| e.addresses.iter().copied())
            .collect();
        if ips.is_empty() {
            // A headless Service without ready endpoints does not exist (the specification).
            return Lookup::NxDomain;
        }
        self.records_or_nodata(self.addresses(qname, qtype, &ips), vec![])
    }

    /// `<endpoint>.<svc>.<ns>.svc.<zone>`: the ready endpoint of that hostname (or dashed
    /// address), for any Service but an ExternalName.
    fn endpoint(&self, qname: &Name, qtype: RecordType, key: &Key, label: &str) -> Lookup {
        let Some(service) = self.services.get(key) else {
            return Lookup::NxDomain;
        };
        if service.external_name.is_some() {
            return Lookup::NxDomain;
        }
        let ips: Vec<IpAddr> = self
            .endpoints(key)
            .flat_map(|(e, _)| {
                e.addresses
                    .iter()
                    .copied()
                    .filter(move |ip| match &e.hostname {
                        Some(h) => h.eq_ignore_ascii_case(label),
                        None => dashed(ip) == label,
                    })
            })
            .collect();
        if ips.is_empty() {
            return Lookup::NxDomain;
        }
        self.records_or_nodata(self.addresses(qname, qtype, &ips), vec![])
    }

    /// SRV records of a Service's named ports matching `port` and `proto` (empty: any): to
    /// the Service, or to each ready endpoint of a headless one; their addresses as
    /// additional records.
    fn srv(&self, qname: &Name, qtype: RecordType, key: &Key, port: &str, proto: &str) -> Lookup {
        let Some(service) = self.services.get(key) else {
            return Lookup::NxDomain;
        };
        if service.external_name.is_some() {
            return Lookup::NxDomain;
        }
        // (port, target, target's addresses)
        let mut targets: Vec<(u16, Name, Vec<IpAddr>)> = Vec::new();
        if service.headless {
            for (endpoint, slice) in self.endpoints(key) {
                for p in slice.ports.iter().filter(|p| p.matches(port, proto)) {
                    for (ip, name) in self.endpoint_names(key, endpoint) {
                        targets.push((p.port, name, vec![ip]));
                    }
                }
            }
        } else if let Some(name) = self.service_name(key) {
            for p in service.ports.iter().filter(|p| p.matches(port, proto)) {
                targets.push((p.port, name.clone(), service.cluster_ips.to_vec()));
            }
        }
        if targets.is_empty() {
            return if port.is_empty() {
                // The Service exists, without named ports (or ready endpoints).
                if service.headless {
                    Lookup::NxDomain
                } else {
                    Lookup::NoData
                }
            } else {
                Lookup::NxDomain
            };
        }
        if qtype != RecordType::SRV {
            return Lookup::NoData;
        }
        let weight = (100 / targets.len()).max(1) as u16;
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        for (number, target, ips) in targets {
            answers.push(self.record(
                qname,
                RData::SRV(SRV::new(0, weight, number, target.clone())),
            ));
            for ip in ips {
                additionals.push(self.address(&target, ip));
            }
        }
        self.records(answers, additionals)
    }

    /// PTR for the reverse name of a ClusterIP or an endpoint address.
    fn reverse(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let Ok(net) = qname.to_lowercase().parse_arpa_name() else {
            return Lookup::NotOurs;
        };
        let full = match net.addr() {
            IpAddr::V4(_) => net.prefix_len() == 32,
            IpAddr::V6(_) => net.prefix_len() == 128,
        };
        let ip = net.addr();
        let Some(owners) = self.ptr.get(&ip).filter(|_| full) else {
            return Lookup::NotOurs;
        };
        if qtype != RecordType::PTR {
            return Lookup::NoData;
        }
        let mut names = Vec::new();
        for key in owners.iter() {
            let Some(service) = self.services.get(key) else {
                continue;
            };
            if service.cluster_ips.contains(&ip) {
                names.extend(self.service_name(key));
            }
            if service.external_name.is_none() {
                for (e, _) in self
                    .endpoints(key)
                    .filter(|(e, _)| e.addresses.contains(&ip))
                {
                    names.extend(
                        self.endpoint_names(key, e)
                            .filter(|(a, _)| *a == ip)
                            .map(|(_, n)| n),
                    );
                }
            }
        }
        let answers = names
            .into_iter()
            .map(|name| self.record(qname, RData::PTR(PTR(name))))
            .collect();
        self.records(answers, vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zone() -> Zone {
        let mut z = Zone::new("cluster.local", 30).unwrap();
        for ns in ["default", "app"] {
            z.namespace_changed(
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            );
        }
        let service = |name: &str, spec: serde_json::Value| -> Service {
            serde_json::from_value(
                json!({"metadata": {"namespace": "app", "name": name}, "spec": spec}),
            )
            .unwrap()
        };
        let slice = |name: &str,
                     service: &str,
                     endpoints: serde_json::Value,
                     ports: serde_json::Value|
         -> EndpointSlice {
            serde_json::from_value(json!({
                "metadata": {"namespace": "app", "name": name,
                    "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "endpoints": endpoints, "ports": ports}))
            .unwrap()
        };
        z.service_changed(&service("web", json!({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]})));
        z.slice_changed(&slice(
            "web-1",
            "web",
            json!([{"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                   {"addresses": ["10.244.1.6"], "conditions": {"ready": false}}]),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        ));
        z.service_changed(&service(
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        ));
        z.slice_changed(&slice(
            "db-1",
            "db",
            json!([{"addresses": ["10.244.2.7"], "hostname": "db-0"},
                   {"addresses": ["10.244.2.8"], "hostname": "db-1"}]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        ));
        z.service_changed(&service("empty", json!({"clusterIP": "None"})));
        z.service_changed(&service(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ));
        z.service_changed(&service(
            "six",
            json!({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"]}),
        ));
        z
    }

    /// A lookup as text: NXDOMAIN, NODATA, NOT OURS, or "TYPE data" of each answer, then
    /// "+ TYPE data" of each additional record.
    fn ask(z: &Zone, name: &str, qtype: RecordType) -> String {
        let name = Name::from_ascii(name).unwrap();
        match z.lookup(&name, qtype) {
            Lookup::NxDomain => "NXDOMAIN".into(),
            Lookup::NoData => "NODATA".into(),
            Lookup::NotOurs => "NOT OURS".into(),
            Lookup::Records {
                answers,
                additionals,
            } => {
                let mut out: Vec<String> = answers
                    .iter()
                    .map(|r| {
                        assert_eq!(r.name, name, "answers are owned by the name as asked");
                        format!("{} {}", r.record_type(), r.data)
                    })
                    .collect();
                out.extend(
                    additionals
                        .iter()
                        .map(|r| format!("+ {} {} {}", r.name, r.record_type(), r.data)),
                );
                out.join("; ")
            }
        }
    }

    #[test]
    fn the_specification_and_coredns_answers() {
        use RecordType::*;
        let z = zone();
        let table: &[(&str, RecordType, &str)] = &[
            // ClusterIP Services: the address, NODATA for other types.
            ("web.app.svc.cluster.local.", A, "A 10.96.0.20"),
            ("WEB.App.svc.Cluster.Local.", A, "A 10.96.0.20"),
            ("web.app.svc.cluster.local.", AAAA, "NODATA"),
            ("web.app.svc.cluster.local.", TXT, "NODATA"),
            ("six.app.svc.cluster.local.", AAAA, "AAAA fd00::10"),
            ("six.app.svc.cluster.local.", A, "NODATA"),
            // SRV for named ports, to the Service, its address as additional.
            (
                "_http._tcp.web.app.svc.cluster.local.",
                SRV,
                "SRV 0 100 80 web.app.svc.cluster.local.; + web.app.svc.cluster.local. A 10.96.0.20",
            ),
            (
                "_dns._udp.web.app.svc.cluster.local.",
                SRV,
                "SRV 0 100 53 web.app.svc.cluster.local.; + web.app.svc.cluster.local. A 10.96.0.20",
            ),
            ("_http._udp.web.app.svc.cluster.local.", SRV, "NXDOMAIN"),
            ("_http._tcp.web.app.svc.cluster.local.", A, "NODATA"),
            ("http.tcp.web.app.svc.cluster.local.", SRV, "NXDOMAIN"),
            (
                "web.app.svc.cluster.local.",
                SRV,
                "SRV 0 50 80 web.app.svc.cluster.local.; SRV 0 50 53 web.app.svc.cluster.local.; + web.app.svc.cluster.local. A 10.96.0.20; + web.app.svc.cluster.local. A 10.96.0.20",
            ),
            // Endpoints by dashed address, ready ones only, for a ClusterIP Service too.
            ("10-244-1-5.web.app.svc.cluster.local.", A, "A 10.244.1.5"),
            ("10-244-1-6.web.app.svc.cluster.local.", A, "NXDOMAIN"),
            // Headless: every ready endpoint; endpoints by hostname; SRV per endpoint.
            ("db.app.svc.cluster.local.", A, "A 10.244.2.7; A 10.244.2.8"),
            ("db-0.db.app.svc.cluster.local.", A, "A 10.244.2.7"),
            ("db-0.db.app.svc.cluster.local.", AAAA, "NODATA"),
            ("db-2.db.app.svc.cluster.local.", A, "NXDOMAIN"),
            (
                "_pg._tcp.db.app.svc.cluster.local.",
                SRV,
                "SRV 0 50 5432 db-0.db.app.svc.cluster.local.; SRV 0 50 5432 db-1.db.app.svc.cluster.local.; + db-0.db.app.svc.cluster.local. A 10.244.2.7; + db-1.db.app.svc.cluster.local. A 10.244.2.8",
            ),
            ("empty.app.svc.cluster.local.", A, "NXDOMAIN"),
            // ExternalName: a CNAME whatever the type.
            ("ext.app.svc.cluster.local.", A, "CNAME example.com."),
            ("ext.app.svc.cluster.local.", AAAA, "CNAME example.com."),
            ("_x._tcp.ext.app.svc.cluster.local.", SRV, "NXDOMAIN"),
            // Names that exist without records, and names that do not.
            ("nope.app.svc.cluster.local.", A, "NXDOMAIN"),
            ("app.svc.cluster.local.", A, "NODATA"),
            ("missing.svc.cluster.local.", A, "NXDOMAIN"),
            ("svc.cluster.local.", A, "NODATA"),
            ("pod.cluster.local.", A, "NODATA"),
            ("cluster.local.", A, "NODATA"),
            ("other.cluster.local.", A, "NXDOMAIN"),
            ("a.b.c.d.web.app.svc.cluster.local.", A, "NXDOMAIN"),
            (
                "cluster.local.",
                SOA,
                "SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 30",
            ),
            ("dns-version.cluster.local.", TXT, "TXT 1.1.0"),
            ("dns-version.cluster.local.", A, "NODATA"),
            // Pods by the address in their name (kubeadm's `pods insecure`).
            ("10-244-3-4.app.pod.cluster.local.", A, "A 10.244.3.4"),
            ("10-244-3-4.app.pod.cluster.local.", AAAA, "NODATA"),
            ("10-244-3-4.missing.pod.cluster.local.", A, "NXDOMAIN"),
            ("not-an-ip.app.pod.cluster.local.", A, "NXDOMAIN"),
            ("app.pod.cluster.local.", A, "NODATA"),
            // Reverse names of ClusterIPs and endpoints; others are not ours.
            (
                "20.0.96.10.in-addr.arpa.",
                PTR,
                "PTR web.app.svc.cluster.local.",
            ),
            (
                "7.2.244.10.in-addr.arpa.",
                PTR,
                "PTR db-0.db.app.svc.cluster.local.",
            ),
            (
                "5.1.244.10.in-addr.arpa.",
                PTR,
                "PTR 10-244-1-5.web.app.svc.cluster.local.",
            ),
            ("6.1.244.10.in-addr.arpa.", PTR, "NOT OURS"),
            ("9.9.9.9.in-addr.arpa.", PTR, "NOT OURS"),
            ("example.com.", A, "NOT OURS"),
        ];
        let mut wrong = Vec::new();
        for (name, qtype, want) in table {
            let got = ask(&z, name, *qtype);
            if got != *want {
                wrong.push(format!("{name} {qtype}: got {got}, want {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_service_of_thousands_of_endpoints_keeps_its_reverse_names_in_step() {
        use RecordType::*;
        let mut z = zone();
        let slice = |n: usize| -> EndpointSlice {
            let endpoints: Vec<_> = (0..1000)
                .map(|i| json!({"addresses": [format!("10.9.{n}.{}", i % 250)], "hostname": format!("p{n}-{i}")}))
                .collect();
            serde_json::from_value(json!({
                "metadata": {"namespace": "app", "name": format!("big-{n}"),
                    "labels": {"kubernetes.io/service-name": "big"}},
                "addressType": "IPv4", "endpoints": endpoints}))
            .unwrap()
        };
        z.service_changed(
            &serde_json::from_value(json!({"metadata": {"namespace": "app", "name": "big"},
                "spec": {"clusterIP": "None"}}))
            .unwrap(),
        );
        for n in 0..5 {
            z.slice_changed(&slice(n));
        }
        // Four endpoints share each address: four names, in slice order.
        assert_eq!(
            ask(&z, "7.0.9.10.in-addr.arpa.", PTR),
            "PTR p0-7.big.app.svc.cluster.local.; PTR p0-257.big.app.svc.cluster.local.; PTR p0-507.big.app.svc.cluster.local.; PTR p0-757.big.app.svc.cluster.local."
        );
        z.slice_deleted(&slice(0));
        assert_eq!(ask(&z, "7.0.9.10.in-addr.arpa.", PTR), "NOT OURS");
        assert_eq!(
            ask(&z, "7.4.9.10.in-addr.arpa.", PTR).split("; ").count(),
            4,
            "the other slices keep theirs"
        );
    }

    #[test]
    fn changes_and_deletions_take_their_names_and_reverse_names_along() {
        use RecordType::*;
        let mut z = zone();
        let web: Service =
            serde_json::from_value(json!({"metadata": {"namespace": "app", "name": "web"}}))
                .unwrap();
        z.service_deleted(&web);
        assert_eq!(ask(&z, "web.app.svc.cluster.local.", A), "NXDOMAIN");
        assert_eq!(ask(&z, "20.0.96.10.in-addr.arpa.", PTR), "NOT OURS");
        assert_eq!(ask(&z, "5.1.244.10.in-addr.arpa.", PTR), "NOT OURS");
        // A slice that goes takes its endpoints: the headless Service no longer exists.
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "app", "name": "db-1"}, "addressType": "IPv4", "endpoints": []}))
        .unwrap();
        z.slice_deleted(&slice);
        assert_eq!(ask(&z, "db.app.svc.cluster.local.", A), "NXDOMAIN");
        assert_eq!(ask(&z, "7.2.244.10.in-addr.arpa.", PTR), "NOT OURS");
        // A namespace that goes takes its pod names.
        let app: Namespace = serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap();
        z.namespace_deleted(&app);
        assert_eq!(ask(&z, "10-244-3-4.app.pod.cluster.local.", A), "NXDOMAIN");
        assert_eq!(ask(&z, "app.svc.cluster.local.", A), "NXDOMAIN");
    }
}
