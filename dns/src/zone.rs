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

mod packed;
mod slab;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use packed::{Endpoint, Port, ServiceEntry, Slice, SliceEntry, Slices};
use slab::Slab;

/// The specification's schema version, served as `dns-version.<zone>` TXT.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of `dns-version` (the specification's example, and CoreDNS's).
const VERSION_TTL: u32 = 28800;

/// A name the zone shares (a namespace's is shared by every Service in it).
pub type Str = Arc<str>;
/// The kinds of object the zone is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Namespace,
    Service,
    Slice,
}

// The zone keeps what the objects mean in as few bytes as it can: each Service name has a
// slot in a slab, the indexes hold slot numbers (4 bytes) rather than keys, a Service's or
// slice's data is one allocation of bytes (`packed`), and records and DNS names are built
// when a question asks for them.

/// A slot's number in the slab.
type Id = u32;

/// A Service's or slice's name: up to 22 bytes (most names) inline, longer ones on the heap
/// (a heap allocation costs 32 bytes however short the name).
#[derive(Clone, Debug, PartialEq)]
enum ObjectName {
    Inline(u8, [u8; 22]),
    Heap(Box<str>),
}

impl From<&str> for ObjectName {
    fn from(name: &str) -> ObjectName {
        let mut bytes = [0u8; 22];
        match bytes.get_mut(..name.len()) {
            Some(prefix) => {
                prefix.copy_from_slice(name.as_bytes());
                ObjectName::Inline(name.len() as u8, bytes)
            }
            None => ObjectName::Heap(name.into()),
        }
    }
}

impl std::ops::Deref for ObjectName {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // Copied whole from a str, so on a character boundary.
            ObjectName::Inline(len, bytes) => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            ObjectName::Heap(name) => name,
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// What one Service name holds: its Service, once seen, and the slices labelled with it
/// (which may come first). Freed when both are gone.
#[derive(Debug)]
struct Slot {
    namespace: Str,
    name: ObjectName,
    service: Option<ServiceEntry>,
    slices: Slices,
}

impl Slot {
    /// The ready endpoints, across the slices.
    fn endpoints(&self) -> impl Iterator<Item = (Endpoint<'_>, Slice<'_>)> {
        self.slices
            .iter()
            .flat_map(|slice| slice.endpoints().map(move |e| (e, slice)))
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

/// Reverse names: the slots with a name for each address. Nearly every address has one
/// owner, held in 4 bytes beside an IPv4 address; an address several Services name lists
/// them aside.
#[derive(Default)]
struct Reverse {
    v4: HashMap<Ipv4Addr, Id>,
    v6: HashMap<Ipv6Addr, Id>,
    shared: HashMap<IpAddr, Vec<Id>>,
}

/// In `v4`/`v6`: the address's owners are in `shared`.
const SHARED: Id = Id::MAX;

impl Reverse {
    fn get(&self, ip: IpAddr) -> Option<Id> {
        match ip {
            IpAddr::V4(a) => self.v4.get(&a).copied(),
            IpAddr::V6(a) => self.v6.get(&a).copied(),
        }
    }

    fn set(&mut self, ip: IpAddr, id: Option<Id>) {
        match (ip, id) {
            (IpAddr::V4(a), Some(id)) => drop(self.v4.insert(a, id)),
            (IpAddr::V6(a), Some(id)) => drop(self.v6.insert(a, id)),
            (IpAddr::V4(a), None) => drop(self.v4.remove(&a)),
            (IpAddr::V6(a), None) => drop(self.v6.remove(&a)),
        }
    }

    /// The slots with a name for `ip`, borrowed from the index (a query allocates nothing).
    fn owners(&self, ip: IpAddr) -> &[Id] {
        let one = match ip {
            IpAddr::V4(a) => self.v4.get(&a),
            IpAddr::V6(a) => self.v6.get(&a),
        };
        match one {
            None => &[],
            Some(&SHARED) => self.shared.get(&ip).map_or(&[], Vec::as_slice),
            Some(id) => std::slice::from_ref(id),
        }
    }

    fn add(&mut self, ip: IpAddr, id: Id) {
        match self.get(ip) {
            None => self.set(ip, Some(id)),
            Some(SHARED) => {
                let owners = self.shared.entry(ip).or_default();
                if !owners.contains(&id) {
                    owners.push(id);
                }
            }
            Some(other) if other != id => {
                self.set(ip, Some(SHARED));
                self.shared.insert(ip, vec![other, id]);
            }
            Some(_) => {}
        }
    }

    fn remove(&mut self, ip: IpAddr, id: Id) {
        match self.get(ip) {
            Some(SHARED) => {
                let Some(owners) = self.shared.get_mut(&ip) else {
                    return;
                };
                owners.retain(|o| *o != id);
                if let [only] = owners[..] {
                    self.shared.remove(&ip);
                    self.set(ip, Some(only));
                }
            }
            Some(owner) if owner == id => self.set(ip, None),
            _ => {}
        }
    }
}

/// The zone.
pub struct Zone {
    origin: Name,
    ttl: u32,
    /// The namespaces, each marked when (re)listed.
    namespaces: HashMap<Str, bool>,
    slots: Slab<Slot>,
    /// Slots by (namespace, Service name).
    by_name: HashTable<Id>,
    /// The slot holding each slice, by (namespace, slice name), with 32 bits of that hash
    /// (see `slice_hash`): a slot holds several slices, so its number alone cannot be
    /// rehashed.
    by_slice: HashTable<(u32, Id)>,
    hasher: RandomState,
    ptr: Reverse,
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

/// A 32-bit hash as the 64 bits a hash table reads.
fn spread(short: u32) -> u64 {
    (u64::from(short) << 32) | u64::from(short)
}

fn lower(label: &[u8]) -> String {
    String::from_utf8_lossy(label).to_ascii_lowercase()
}

/// A slot of the slab (every number an index hands out is one).
fn slot(slots: &Slab<Slot>, id: Id) -> &Slot {
    slots.get(id).expect("indexes name live slots")
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
            namespaces: HashMap::new(),
            slots: Slab::default(),
            by_name: HashTable::new(),
            by_slice: HashTable::new(),
            hasher: RandomState::new(),
            ptr: Reverse::default(),
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
        let Some(name) = &ns.metadata.name else {
            return;
        };
        match self.namespaces.get_mut(name.as_str()) {
            Some(listed) => *listed = true,
            None => drop(self.namespaces.insert(name.as_str().into(), true)),
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

    /// How many objects of `kind` the zone holds.
    pub fn count(&self, kind: Kind) -> usize {
        let slots = self.slots.iter().map(|(_, s)| s);
        match kind {
            Kind::Namespace => self.namespaces.len(),
            Kind::Service => slots.filter(|s| s.service.is_some()).count(),
            Kind::Slice => slots.map(|s| s.slices.len()).sum(),
        }
    }

    /// A relist of `kind` begins: its objects are unmarked until applied again. Marks are
    /// a flag in each entry, so a relist of many thousands allocates nothing.
    pub fn relist_started(&mut self, kind: Kind) {
        match kind {
            Kind::Namespace => self.namespaces.values_mut().for_each(|l| *l = false),
            Kind::Service => {
                for s in self.slots.values_mut() {
                    if let Some(service) = &mut s.service {
                        service.set_listed(false);
                    }
                }
            }
            Kind::Slice => {
                for s in self.slots.values_mut() {
                    s.slices.set_listed(false);
                }
            }
        }
    }

    /// The relist of `kind` is complete: what it did not apply is gone. Answers how many
    /// objects went.
    pub fn relisted(&mut self, kind: Kind) -> usize {
        match kind {
            Kind::Namespace => {
                let before = self.namespaces.len();
                self.namespaces.retain(|_, listed| *listed);
                before - self.namespaces.len()
            }
            Kind::Service => {
                let gone: Vec<Id> = self
                    .live()
                    .filter(|(_, s)| s.service.as_ref().is_some_and(|e| !e.listed()))
                    .map(|(id, _)| id)
                    .collect();
                for &id in &gone {
                    self.change(id, |s| s.service = None);
                }
                gone.len()
            }
            Kind::Slice => {
                let gone: Vec<(Id, String)> = self
                    .live()
                    .flat_map(|(id, s)| {
                        s.slices
                            .iter()
                            .filter(|slice| !slice.listed())
                            .map(move |slice| (id, slice.name().to_owned()))
                    })
                    .collect();
                for (id, name) in &gone {
                    let hash = self.slice_hash(&self.slot(*id).namespace, name);
                    self.unfile_slice(hash, *id, name);
                }
                gone.len()
            }
        }
    }

    /// The slots in use, with their numbers.
    fn live(&self) -> impl Iterator<Item = (Id, &Slot)> {
        self.slots.iter()
    }

    fn slot(&self, id: Id) -> &Slot {
        slot(&self.slots, id)
    }

    fn slot_mut(&mut self, id: Id) -> &mut Slot {
        self.slots.get_mut(id).expect("indexes name live slots")
    }

    fn hash(&self, namespace: &str, name: &str) -> u64 {
        self.hasher.hash_one((namespace, name))
    }

    /// The hash of a slice's (namespace, name) as `by_slice` keeps it: 32 bits, spread over
    /// the 64 the table reads (the low ones choose the bucket, the high ones are the tag),
    /// so that an entry is 8 bytes and the table can still rehash from it.
    fn slice_hash(&self, namespace: &str, name: &str) -> u64 {
        spread(self.hash(namespace, name) as u32)
    }

    /// The slot of Service `name` in `namespace`.
    fn find(&self, namespace: &str, name: &str) -> Option<Id> {
        let hash = self.hash(namespace, name);
        self.by_name
            .find(hash, |&id| {
                let s = self.slot(id);
                &*s.name == name && &*s.namespace == namespace
            })
            .copied()
    }

    /// The slot of Service `name` in `namespace`, made empty if there is none.
    fn find_or_add(&mut self, namespace: &str, name: &str) -> Id {
        if let Some(id) = self.find(namespace, name) {
            return id;
        }
        // Share the namespace's name when it is known.
        let namespace = match self.namespaces.get_key_value(namespace) {
            Some((shared, _)) => shared.clone(),
            None => namespace.into(),
        };
        let new = Slot {
            namespace,
            name: name.into(),
            service: None,
            slices: Slices::default(),
        };
        let id = self.slots.insert(new);
        let hash = self.hash(&self.slot(id).namespace, name);
        let Zone {
            slots,
            by_name,
            hasher,
            ..
        } = self;
        by_name.insert_unique(hash, id, |&id| {
            let s = slot(slots, id);
            hasher.hash_one((&*s.namespace, &*s.name))
        });
        id
    }

    /// Frees slot `id` if it holds nothing any more.
    fn free_if_empty(&mut self, id: Id) {
        let s = self.slot(id);
        if s.service.is_some() || !s.slices.is_empty() {
            return;
        }
        let hash = self.hash(&s.namespace, &s.name);
        if let Ok(entry) = self.by_name.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
        self.slots.remove(id);
    }

    pub fn service_changed(&mut self, svc: &Service) {
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
                    n
                }),
            _ => None,
        };
        let entry = match external_name {
            Some(target) => ServiceEntry::external(&target),
            None => {
                let ips: &[String] = match &spec.cluster_ips {
                    Some(ips) if !ips.is_empty() => ips,
                    _ => spec.cluster_ip.as_slice(),
                };
                let headless = ips.iter().any(|ip| ip == "None");
                let cluster_ips: Vec<IpAddr> =
                    ips.iter().filter_map(|ip| ip.parse().ok()).collect();
                let ports =
                    spec.ports.iter().flatten().filter_map(|p| {
                        Port::new(p.name.as_deref(), p.protocol.as_deref(), p.port)
                    });
                ServiceEntry::new(headless, &cluster_ips, ports)
            }
        };
        let id = self.find_or_add(
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default(),
        );
        // A new entry is marked listed.
        self.change(id, |s| s.service = Some(entry));
    }

    pub fn service_deleted(&mut self, svc: &Service) {
        self.remove_service(
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default(),
        );
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        if let Some(id) = self.find(namespace, name) {
            self.change(id, |s| s.service = None);
        }
    }

    pub fn slice_changed(&mut self, slice: &EndpointSlice) {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        let name = slice.metadata.name.as_deref().unwrap_or_default();
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map_or("", String::as_str);
        // Ready unless said otherwise; the slice controller already counts
        // publishNotReadyAddresses as ready.
        let endpoints = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| {
                let hostname = e.hostname.as_deref();
                e.addresses
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .map(move |address| Endpoint { address, hostname })
            });
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), p.port?));
        // Object names are at most 253 bytes: an entry is refused only for a name no
        // apiserver accepts.
        let Some(entry) = SliceEntry::new(name, ports, endpoints) else {
            return;
        };
        let hash = self.slice_hash(namespace, name);
        let holder = self.slice_holder(hash, namespace, name);
        if let Some(old) = holder.filter(|&id| &*self.slot(id).name != service) {
            self.unfile_slice(hash, old, name);
        }
        let id = self.find_or_add(namespace, service);
        if holder != Some(id) {
            self.by_slice
                .insert_unique(hash, (hash as u32, id), |&(h, _)| spread(h));
        }
        self.change(id, |s| s.slices.insert(entry));
    }

    pub fn slice_deleted(&mut self, slice: &EndpointSlice) {
        self.remove_slice(
            slice.metadata.namespace.as_deref().unwrap_or_default(),
            slice.metadata.name.as_deref().unwrap_or_default(),
        );
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) {
        let hash = self.slice_hash(namespace, name);
        if let Some(id) = self.slice_holder(hash, namespace, name) {
            self.unfile_slice(hash, id, name);
        }
    }

    /// The slot holding slice `name` of `namespace` (`hash`: their `slice_hash`).
    fn slice_holder(&self, hash: u64, namespace: &str, name: &str) -> Option<Id> {
        self.by_slice
            .find(hash, |&(h, id)| {
                let s = self.slot(id);
                h == hash as u32 && &*s.namespace == namespace && s.slices.contains(name)
            })
            .map(|&(_, id)| id)
    }

    /// Takes slice `name` out of slot `id` and the index.
    fn unfile_slice(&mut self, hash: u64, id: Id, name: &str) {
        if let Ok(entry) = self
            .by_slice
            .find_entry(hash, |&(h, other)| h == hash as u32 && other == id)
        {
            entry.remove();
        }
        self.change(id, |s| {
            s.slices.remove(name);
        });
    }

    /// Applies a change to slot `id`, keeping the reverse index in step, and frees the slot
    /// if it is left empty.
    fn change(&mut self, id: Id, apply: impl FnOnce(&mut Slot)) {
        let before = self.reverse_addresses(id);
        apply(self.slot_mut(id));
        let after = self.reverse_addresses(id);
        // Both sorted: a Service of thousands of endpoints costs n log n, not n squared.
        let kept = |ips: &[IpAddr], ip: &IpAddr| ips.binary_search(ip).is_ok();
        for ip in before.iter().filter(|ip| !kept(&after, ip)) {
            self.ptr.remove(*ip, id);
        }
        for ip in after.iter().filter(|ip| !kept(&before, ip)) {
            self.ptr.add(*ip, id);
        }
        self.free_if_empty(id);
    }

    /// The addresses slot `id` has reverse names for, sorted, each once: its Service's
    /// ClusterIPs and, unless it is an ExternalName, its ready endpoints' addresses.
    fn reverse_addresses(&self, id: Id) -> Vec<IpAddr> {
        let s = self.slot(id);
        let Some(service) = &s.service else {
            return Vec::new();
        };
        let mut ips: Vec<IpAddr> = service.cluster_ips().collect();
        if !service.is_external() {
            ips.extend(s.endpoints().map(|(e, _)| e.address));
        }
        ips.sort_unstable();
        ips.dedup();
        ips
    }

    /// `<svc>.<ns>.svc.<zone>`.
    fn service_name(&self, s: &Slot) -> Option<Name> {
        Name::from_ascii(format!("{}.{}.svc", s.name, s.namespace))
            .and_then(|n| n.append_domain(&self.origin))
            .ok()
    }

    /// `<endpoint>.<svc>.<ns>.svc.<zone>`.
    fn endpoint_name(&self, s: &Slot, endpoint: &Endpoint) -> Option<Name> {
        let label = match endpoint.hostname {
            Some(h) => Name::from_ascii(h),
            None => Name::from_ascii(dashed(&endpoint.address)),
        };
        label.ok()?.append_domain(&self.service_name(s)?).ok()
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
    fn addresses(
        &self,
        name: &Name,
        qtype: RecordType,
        ips: impl IntoIterator<Item = IpAddr>,
    ) -> Vec<Record> {
        ips.into_iter()
            .filter(|ip| match qtype {
                RecordType::A => ip.is_ipv4(),
                RecordType::AAAA => ip.is_ipv6(),
                _ => false,
            })
            .map(|ip| self.address(name, ip))
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
            [ns, "svc"] | [ns, "pod"] => self.exists(self.namespaces.contains_key(*ns)),
            [pod, ns, "pod"] => match undashed(pod) {
                Some(ip) if self.namespaces.contains_key(*ns) => {
                    self.records_or_nodata(self.addresses(qname, qtype, [ip]), vec![])
                }
                _ => Lookup::NxDomain,
            },
            [svc, ns, "svc"] => self.service(qname, qtype, self.service_slot(ns, svc)),
            [endpoint, svc, ns, "svc"] => {
                self.endpoint(qname, qtype, self.service_slot(ns, svc), endpoint)
            }
            [port, proto, svc, ns, "svc"] => {
                match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                    (Some(port), Some(proto)) => {
                        self.srv(qname, qtype, self.service_slot(ns, svc), port, proto)
                    }
                    _ => Lookup::NxDomain,
                }
            }
            _ => Lookup::NxDomain,
        }
    }

    /// The slot of a Service that exists, with its entry.
    fn service_slot(&self, ns: &str, name: &str) -> Option<(&Slot, &ServiceEntry)> {
        let s = self.slot(self.find(ns, name)?);
        Some((s, s.service.as_ref()?))
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
    fn service(
        &self,
        qname: &Name,
        qtype: RecordType,
        found: Option<(&Slot, &ServiceEntry)>,
    ) -> Lookup {
        let Some((slot, service)) = found else {
            return Lookup::NxDomain;
        };
        if let Some(target) = service.external_name() {
            let cname = self.record(qname, RData::CNAME(CNAME(target)));
            return self.records(vec![cname], vec![]);
        }
        if qtype == RecordType::SRV {
            return self.srv(qname, qtype, found, "", "");
        }
        if !service.headless() {
            return self
                .records_or_nodata(self.addresses(qname, qtype, service.cluster_ips()), vec![]);
        }
        if slot.endpoints().next().is_none() {
            // A headless Service without ready endpoints does not exist (the specification).
            return Lookup::NxDomain;
        }
        let ips = slot.endpoints().map(|(e, _)| e.address);
        self.records_or_nodata(self.addresses(qname, qtype, ips), vec![])
    }

    /// `<endpoint>.<svc>.<ns>.svc.<zone>`: the ready endpoint of that hostname (or dashed
    /// address), for any Service but an ExternalName.
    fn endpoint(
        &self,
        qname: &Name,
        qtype: RecordType,
        found: Option<(&Slot, &ServiceEntry)>,
        label: &str,
    ) -> Lookup {
        // An ExternalName has neither endpoints nor ports of its own.
        let Some((slot, _)) = found.filter(|(_, s)| !s.is_external()) else {
            return Lookup::NxDomain;
        };
        let ips: Vec<IpAddr> = slot
            .endpoints()
            .filter(|(e, _)| match e.hostname {
                Some(h) => h.eq_ignore_ascii_case(label),
                None => dashed(&e.address) == label,
            })
            .map(|(e, _)| e.address)
            .collect();
        if ips.is_empty() {
            return Lookup::NxDomain;
        }
        self.records_or_nodata(self.addresses(qname, qtype, ips), vec![])
    }

    /// SRV records of a Service's named ports matching `port` and `proto` (empty: any): to
    /// the Service, or to each ready endpoint of a headless one; their addresses as
    /// additional records.
    fn srv(
        &self,
        qname: &Name,
        qtype: RecordType,
        found: Option<(&Slot, &ServiceEntry)>,
        port: &str,
        proto: &str,
    ) -> Lookup {
        // An ExternalName has neither endpoints nor ports of its own.
        let Some((slot, service)) = found.filter(|(_, s)| !s.is_external()) else {
            return Lookup::NxDomain;
        };
        // (port, target, target's addresses)
        let mut targets: Vec<(u16, Name, Vec<IpAddr>)> = Vec::new();
        if service.headless() {
            for (endpoint, slice) in slot.endpoints() {
                for p in slice.ports().filter(|p| p.matches(port, proto)) {
                    if let Some(name) = self.endpoint_name(slot, &endpoint) {
                        targets.push((p.port, name, vec![endpoint.address]));
                    }
                }
            }
        } else if let Some(name) = self.service_name(slot) {
            for p in service.ports().filter(|p| p.matches(port, proto)) {
                targets.push((p.port, name.clone(), service.cluster_ips().collect()));
            }
        }
        if targets.is_empty() {
            return if port.is_empty() {
                // The Service exists, without named ports (or ready endpoints).
                if service.headless() {
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
        let owners = self.ptr.owners(ip);
        if owners.is_empty() || !full {
            return Lookup::NotOurs;
        }
        if qtype != RecordType::PTR {
            return Lookup::NoData;
        }
        let mut names = Vec::new();
        for &id in owners {
            let slot = self.slot(id);
            let Some(service) = &slot.service else {
                continue;
            };
            if service.cluster_ips().any(|c| c == ip) {
                names.extend(self.service_name(slot));
            }
            if !service.is_external() {
                names.extend(
                    slot.endpoints()
                        .filter(|(e, _)| e.address == ip)
                        .filter_map(|(e, _)| self.endpoint_name(slot, &e)),
                );
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

    #[test]
    fn slices_may_come_first_move_between_services_and_free_their_slots() {
        use RecordType::*;
        let mut z = zone();
        let slice = |service: &str, ip: &str| -> EndpointSlice {
            serde_json::from_value(json!({
                "metadata": {"namespace": "app", "name": "moving",
                    "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [ip], "hostname": "m-0"}]}))
            .unwrap()
        };
        let headless = |name: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"namespace": "app", "name": name},
                "spec": {"clusterIP": "None"}}))
            .unwrap()
        };
        // The slice before its Service: no name until the Service comes.
        z.slice_changed(&slice("late", "10.244.5.1"));
        assert_eq!(ask(&z, "late.app.svc.cluster.local.", A), "NXDOMAIN");
        assert_eq!(ask(&z, "1.5.244.10.in-addr.arpa.", PTR), "NOT OURS");
        z.service_changed(&headless("late"));
        z.service_changed(&headless("other"));
        assert_eq!(
            ask(&z, "m-0.late.app.svc.cluster.local.", A),
            "A 10.244.5.1"
        );
        assert_eq!(
            ask(&z, "1.5.244.10.in-addr.arpa.", PTR),
            "PTR m-0.late.app.svc.cluster.local."
        );
        // Relabelled: the slice leaves `late` for `other`, its reverse name with it.
        z.slice_changed(&slice("other", "10.244.5.2"));
        assert_eq!(ask(&z, "late.app.svc.cluster.local.", A), "NXDOMAIN");
        assert_eq!(
            ask(&z, "m-0.other.app.svc.cluster.local.", A),
            "A 10.244.5.2"
        );
        assert_eq!(ask(&z, "1.5.244.10.in-addr.arpa.", PTR), "NOT OURS");
        assert_eq!(z.count(Kind::Slice), 3, "web-1, db-1 and the one moved");
        // Emptied slots are reused, and every index still finds what it should.
        let slots = z.slots.capacity_used();
        z.service_deleted(&headless("late"));
        z.service_changed(&headless("again"));
        assert_eq!(z.slots.capacity_used(), slots);
        assert_eq!(ask(&z, "again.app.svc.cluster.local.", A), "NXDOMAIN");
        assert_eq!(ask(&z, "db-0.db.app.svc.cluster.local.", A), "A 10.244.2.7");
        z.slice_deleted(&slice("other", "10.244.5.2"));
        assert_eq!(ask(&z, "other.app.svc.cluster.local.", A), "NXDOMAIN");
        assert_eq!(ask(&z, "2.5.244.10.in-addr.arpa.", PTR), "NOT OURS");
        assert_eq!(z.count(Kind::Slice), 2);
    }

    #[test]
    fn ipv6_endpoints_answer_aaaa_and_their_reverse_names() {
        use RecordType::*;
        let mut z = zone();
        z.service_changed(
            &serde_json::from_value(json!({"metadata": {"namespace": "app", "name": "v6"},
                "spec": {"clusterIP": "None"}}))
            .unwrap(),
        );
        z.slice_changed(
            &serde_json::from_value(json!({
                "metadata": {"namespace": "app", "name": "v6-1",
                    "labels": {"kubernetes.io/service-name": "v6"}},
                "addressType": "IPv6",
                "endpoints": [{"addresses": ["fd00::5"], "hostname": "h-0"}, {"addresses": ["fd00::6"]}]}))
            .unwrap(),
        );
        assert_eq!(
            ask(&z, "v6.app.svc.cluster.local.", AAAA),
            "AAAA fd00::5; AAAA fd00::6"
        );
        assert_eq!(ask(&z, "v6.app.svc.cluster.local.", A), "NODATA");
        assert_eq!(
            ask(&z, "h-0.v6.app.svc.cluster.local.", AAAA),
            "AAAA fd00::5"
        );
        assert_eq!(
            ask(&z, "fd00--6.v6.app.svc.cluster.local.", AAAA),
            "AAAA fd00::6"
        );
        assert_eq!(
            ask(
                &z,
                "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
                PTR
            ),
            "PTR h-0.v6.app.svc.cluster.local."
        );
    }

    #[test]
    fn ports_follow_their_services_changes() {
        let mut z = Zone::new("cluster.local", 30).unwrap();
        let service = |name: &str, ports: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"namespace": "app", "name": name},
                "spec": {"clusterIP": "10.96.0.9", "ports": ports}}))
            .unwrap()
        };
        let a = service("a", json!([{"name": "http", "port": 80}]));
        let b = service(
            "b",
            json!([{"name": "http", "port": 80}, {"name": "grpc", "port": 90, "protocol": "UDP"}]),
        );
        z.service_changed(&a);
        z.service_changed(&b);
        z.service_changed(&b);
        assert_eq!(
            ask(&z, "_grpc._udp.b.app.svc.cluster.local.", RecordType::SRV),
            "SRV 0 100 90 b.app.svc.cluster.local.; + b.app.svc.cluster.local. A 10.96.0.9"
        );
        z.service_deleted(&b);
        assert_eq!(
            ask(&z, "_grpc._udp.b.app.svc.cluster.local.", RecordType::SRV),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&z, "_http._tcp.a.app.svc.cluster.local.", RecordType::SRV),
            "SRV 0 100 80 a.app.svc.cluster.local.; + a.app.svc.cluster.local. A 10.96.0.9"
        );
        z.service_changed(&service("a", json!([{"name": "web", "port": 8080}])));
        assert_eq!(
            ask(&z, "_http._tcp.a.app.svc.cluster.local.", RecordType::SRV),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&z, "_web._tcp.a.app.svc.cluster.local.", RecordType::SRV),
            "SRV 0 100 8080 a.app.svc.cluster.local.; + a.app.svc.cluster.local. A 10.96.0.9"
        );
    }

    #[test]
    fn a_slot_takes_80_bytes_in_the_slab() {
        // docs/dns.md counts on it: the slab holds one per Service name.
        assert_eq!(std::mem::size_of::<Option<Slot>>(), 80);
    }

    #[test]
    fn object_names_up_to_22_bytes_are_inline_and_longer_ones_whole() {
        for name in [
            "",
            "web",
            "a-name-of-22-bytes-abc",
            "a-name-of-23-bytes-abcd",
        ] {
            let kept = ObjectName::from(name);
            assert_eq!(&*kept, name);
            assert_eq!(
                matches!(kept, ObjectName::Inline(..)),
                name.len() <= 22,
                "{name}"
            );
        }
        let long = "x".repeat(63);
        assert_eq!(&*ObjectName::from(long.as_str()), long);
    }
}
