//! A Service's and an EndpointSlice's DNS data in one allocation each: written end to end
//! in bytes when the object changes, read back when a question asks. Typed fields would
//! cost an allocation per list (ClusterIPs, ports, endpoints, hostnames), each 32 bytes or
//! more however short; here a Service of one ClusterIP and one port takes 17 bytes and a
//! slice of three named endpoints about 50.
//!
//! Layouts (integers little-endian):
//! - an address: its family's tag byte (4 or 6), then its 4 or 16 bytes;
//! - ports: a u16 count, then each: protocol byte, u16 number, name length byte, name;
//! - a Service: a flags byte (headless, ExternalName, listed); an ExternalName's target as
//!   text;
//!   any other Service: a count byte, that many addresses (its ClusterIPs), its ports;
//! - a slice: a flags byte (listed), name length byte, name, its ports, then its ready
//!   endpoints to the end: a byte holding the hostname's length (low 6 bits) and the
//!   family (top bit set: IPv6), the address, the hostname;
//! - the slices of one Service: each in its own allocation, sorted by name.
//!
//! Only this module writes these bytes, so a short read is a bug; readers stop there
//! rather than panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// A port's protocol, as SRV names it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The protocol an object names (absent: TCP, as the API defaults it).
    pub fn parse(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    fn byte(self) -> u8 {
        self as u8
    }

    fn from_byte(b: u8) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .find(|p| p.byte() == b)
    }
}

/// A named port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Port<'a> {
    pub name: &'a str,
    pub protocol: Protocol,
    pub port: u16,
}

impl<'a> Port<'a> {
    /// The port `name`/`protocol`/`port` of an object, if it is a named port DNS can serve
    /// (port names are DNS labels, at most 63 bytes).
    pub fn new(name: Option<&'a str>, protocol: Option<&str>, port: i32) -> Option<Port<'a>> {
        Some(Port {
            name: name.filter(|n| !n.is_empty() && n.len() <= MAX_LABEL)?,
            protocol: Protocol::parse(protocol)?,
            port: u16::try_from(port).ok()?,
        })
    }

    /// Whether the port answers `_<port>._<proto>` (empty: any).
    pub fn matches(&self, port: &str, proto: &str) -> bool {
        (port.is_empty() || self.name.eq_ignore_ascii_case(port))
            && (proto.is_empty() || self.protocol.label().eq_ignore_ascii_case(proto))
    }
}

/// One ready address of an endpoint (an endpoint of several addresses has one each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Endpoint<'a> {
    pub address: IpAddr,
    /// Its hostname (StatefulSet pods have one); without, it is named by its dashed
    /// address, as CoreDNS names endpoints.
    pub hostname: Option<&'a str>,
}

/// The longest DNS label, and so the longest hostname or port name kept.
const MAX_LABEL: usize = 63;
const V4: u8 = 4;
const V6: u8 = 6;
const HEADLESS: u8 = 1;
const EXTERNAL: u8 = 2;
/// In a Service's or a slice's flags: applied since the last relist of its kind started.
const LISTED: u8 = 4;
/// In an endpoint's first byte: the address is IPv6.
const ENDPOINT_V6: u8 = 0x80;

/// Sets or clears the listed mark in a flags byte.
fn mark(flags: &mut u8, listed: bool) {
    *flags = if listed {
        *flags | LISTED
    } else {
        *flags & !LISTED
    };
}

fn put_address(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            buf.push(V4);
            buf.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            buf.push(V6);
            buf.extend_from_slice(&a.octets());
        }
    }
}

fn put_ports<'a>(buf: &mut Vec<u8>, ports: impl IntoIterator<Item = Port<'a>>) {
    let count_at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    let mut count: u16 = 0;
    for p in ports.into_iter().take(u16::MAX as usize) {
        buf.push(p.protocol.byte());
        buf.extend_from_slice(&p.port.to_le_bytes());
        // Port::new keeps names of at most 63 bytes.
        buf.push(p.name.len() as u8);
        buf.extend_from_slice(p.name.as_bytes());
        count += 1;
    }
    buf[count_at..count_at + 2].copy_from_slice(&count.to_le_bytes());
}

/// Reads bytes this module wrote.
#[derive(Clone)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn str(&mut self, len: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn address_of(&mut self, v6: bool) -> Option<IpAddr> {
        Some(if v6 {
            let octets: [u8; 16] = self.take(16)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            let octets: [u8; 4] = self.take(4)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(octets))
        })
    }

    fn address(&mut self) -> Option<IpAddr> {
        let v6 = self.byte()? == V6;
        self.address_of(v6)
    }

    /// Skips a ports section, answering it apart.
    fn ports(&mut self) -> Option<Ports<'a>> {
        let start = self.0;
        let count = self.u16()?;
        for _ in 0..count {
            self.take(3)?;
            let len = self.byte()? as usize;
            self.take(len)?;
        }
        let len = start.len() - self.0.len();
        Some(Ports(Reader(&start[2..len])))
    }
}

/// A ports section's ports, in order.
#[derive(Clone)]
pub struct Ports<'a>(Reader<'a>);

impl<'a> Iterator for Ports<'a> {
    type Item = Port<'a>;

    fn next(&mut self) -> Option<Port<'a>> {
        let r = &mut self.0;
        let protocol = Protocol::from_byte(r.byte()?)?;
        let port = r.u16()?;
        let len = r.byte()? as usize;
        let name = r.str(len)?;
        Some(Port {
            name,
            protocol,
            port,
        })
    }
}

/// What a Service contributes to the zone.
#[derive(Debug, PartialEq)]
pub struct ServiceEntry(Box<[u8]>);

impl ServiceEntry {
    /// An ExternalName Service: a CNAME to `target`.
    pub fn external(target: &Name) -> ServiceEntry {
        let mut buf = vec![EXTERNAL | LISTED];
        buf.extend_from_slice(target.to_ascii().as_bytes());
        ServiceEntry(buf.into())
    }

    /// A Service with a ClusterIP (or `headless`), and its named ports.
    pub fn new<'a>(
        headless: bool,
        cluster_ips: &[IpAddr],
        ports: impl IntoIterator<Item = Port<'a>>,
    ) -> ServiceEntry {
        let mut buf = vec![if headless { HEADLESS | LISTED } else { LISTED }];
        // The API allows two (one of each family).
        let ips = &cluster_ips[..cluster_ips.len().min(u8::MAX as usize)];
        buf.push(ips.len() as u8);
        for ip in ips {
            put_address(&mut buf, *ip);
        }
        put_ports(&mut buf, ports);
        ServiceEntry(buf.into())
    }

    fn flags(&self) -> u8 {
        self.0.first().copied().unwrap_or_default()
    }

    /// Applied since the last relist of Services started.
    pub fn listed(&self) -> bool {
        self.flags() & LISTED != 0
    }

    pub fn set_listed(&mut self, listed: bool) {
        if let Some(flags) = self.0.first_mut() {
            mark(flags, listed);
        }
    }

    pub fn is_external(&self) -> bool {
        self.flags() & EXTERNAL != 0
    }

    pub fn headless(&self) -> bool {
        self.flags() & HEADLESS != 0
    }

    /// An ExternalName Service's target.
    pub fn external_name(&self) -> Option<Name> {
        if !self.is_external() {
            return None;
        }
        let text = std::str::from_utf8(&self.0[1..]).ok()?;
        let mut name = Name::from_ascii(text).ok()?;
        name.set_fqdn(true);
        Some(name)
    }

    fn body(&self) -> Reader<'_> {
        match self.is_external() {
            false => Reader(self.0.get(1..).unwrap_or_default()),
            true => Reader(&[]),
        }
    }

    /// Its ClusterIPs (none for headless and ExternalName Services).
    pub fn cluster_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let mut r = self.body();
        let count = r.byte().unwrap_or_default();
        (0..count).map_while(move |_| r.address())
    }

    pub fn ports(&self) -> Ports<'_> {
        let mut r = self.body();
        let count = r.byte().unwrap_or_default();
        for _ in 0..count {
            r.address();
        }
        r.ports().unwrap_or(Ports(Reader(&[])))
    }
}

/// One EndpointSlice's part, as written: its name, ready endpoints and named ports.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceEntry(Vec<u8>);

impl SliceEntry {
    /// Slice `name` (at most 255 bytes: names of objects are at most 253) with `ports` and
    /// ready `endpoints`; hostnames longer than a DNS label are left out.
    pub fn new<'a>(
        name: &str,
        ports: impl IntoIterator<Item = Port<'a>>,
        endpoints: impl IntoIterator<Item = Endpoint<'a>>,
    ) -> Option<SliceEntry> {
        let name_len = u8::try_from(name.len()).ok()?;
        let mut buf = vec![LISTED, name_len];
        buf.extend_from_slice(name.as_bytes());
        put_ports(&mut buf, ports);
        for e in endpoints {
            let hostname = e.hostname.filter(|h| h.len() <= MAX_LABEL).unwrap_or("");
            let family = if e.address.is_ipv6() { ENDPOINT_V6 } else { 0 };
            buf.push(family | hostname.len() as u8);
            match e.address {
                IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
            }
            buf.extend_from_slice(hostname.as_bytes());
        }
        Some(SliceEntry(buf))
    }

    pub fn view(&self) -> Slice<'_> {
        Slice(&self.0)
    }
}

/// A slice's part, read in place.
#[derive(Clone, Copy, Debug)]
pub struct Slice<'a>(&'a [u8]);

impl<'a> Slice<'a> {
    pub fn name(self) -> &'a str {
        let mut r = Reader(self.0.get(1..).unwrap_or_default());
        let len = r.byte().unwrap_or_default() as usize;
        r.str(len).unwrap_or_default()
    }

    /// Applied since the last relist of slices started.
    pub fn listed(self) -> bool {
        self.0.first().is_some_and(|f| f & LISTED != 0)
    }

    /// Its ports, and a reader at its first endpoint.
    fn sections(self) -> (Ports<'a>, Reader<'a>) {
        let mut r = Reader(self.0.get(1..).unwrap_or_default());
        let len = r.byte().unwrap_or_default() as usize;
        let ports = r.take(len).and_then(|_| r.ports());
        match ports {
            Some(ports) => (ports, r),
            None => (Ports(Reader(&[])), Reader(&[])),
        }
    }

    pub fn ports(self) -> Ports<'a> {
        self.sections().0
    }

    /// Its ready endpoints' addresses, in order.
    pub fn endpoints(self) -> Endpoints<'a> {
        Endpoints(self.sections().1)
    }
}

/// The slices of one Service, sorted by name: nearly always one, held in the slot itself;
/// several are a list of them, so changing one never copies the others' bytes (a Service
/// of many large slices would otherwise cost a copy of all of them at every change).
#[derive(Debug, PartialEq)]
pub enum Slices {
    One(Box<[u8]>),
    Many(Box<[Box<[u8]>]>),
}

impl Default for Slices {
    fn default() -> Self {
        Slices::Many(Box::new([]))
    }
}

impl Slices {
    fn all(&self) -> &[Box<[u8]>] {
        match self {
            Slices::One(slice) => std::slice::from_ref(slice),
            Slices::Many(slices) => slices,
        }
    }

    fn all_mut(&mut self) -> &mut [Box<[u8]>] {
        match self {
            Slices::One(slice) => std::slice::from_mut(slice),
            Slices::Many(slices) => slices,
        }
    }

    /// The slices, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = Slice<'_>> {
        self.all().iter().map(|s| Slice(s))
    }

    pub fn len(&self) -> usize {
        self.all().len()
    }

    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.all().binary_search_by(|s| Slice(s).name().cmp(name))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Puts `entry` in place of the slice of its name, or among the others by name.
    pub fn insert(&mut self, entry: SliceEntry) {
        let at = self.find(entry.view().name());
        let blob = entry.0.into_boxed_slice();
        match (at, &mut *self) {
            (Ok(i), _) => self.all_mut()[i] = blob,
            (Err(_), Slices::Many(slices)) if slices.is_empty() => *self = Slices::One(blob),
            (Err(i), _) => {
                let mut all = self.take();
                all.insert(i, blob);
                *self = Slices::from(all);
            }
        }
    }

    /// Takes out slice `name`; answers whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Ok(i) = self.find(name) else {
            return false;
        };
        let mut all = self.take();
        all.remove(i);
        *self = Slices::from(all);
        true
    }

    fn take(&mut self) -> Vec<Box<[u8]>> {
        match std::mem::take(self) {
            Slices::One(slice) => vec![slice],
            Slices::Many(slices) => slices.into_vec(),
        }
    }

    /// Marks every slice listed, or none.
    pub fn set_listed(&mut self, listed: bool) {
        for flags in self.all_mut().iter_mut().filter_map(|s| s.first_mut()) {
            mark(flags, listed);
        }
    }
}

impl From<Vec<Box<[u8]>>> for Slices {
    fn from(mut all: Vec<Box<[u8]>>) -> Slices {
        match all.len() {
            1 => Slices::One(all.pop().expect("one slice")),
            // Exactly as long as it is: no room kept for slices that may never come.
            _ => Slices::Many(all.into_boxed_slice()),
        }
    }
}

/// A slice's endpoints, in order.
pub struct Endpoints<'a>(Reader<'a>);

impl<'a> Iterator for Endpoints<'a> {
    type Item = Endpoint<'a>;

    fn next(&mut self) -> Option<Endpoint<'a>> {
        let r = &mut self.0;
        let first = r.byte()?;
        let address = r.address_of(first & ENDPOINT_V6 != 0)?;
        let hostname = r.str((first & !ENDPOINT_V6) as usize)?;
        Some(Endpoint {
            address,
            hostname: Some(hostname).filter(|h| !h.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn port<'a>(name: &'a str, protocol: Protocol, port: u16) -> Port<'a> {
        Port {
            name,
            protocol,
            port,
        }
    }

    #[test]
    fn a_service_reads_back_as_written() {
        let ips = [ip("10.96.0.10"), ip("fd00::a")];
        let ports = [
            port("dns", Protocol::Udp, 53),
            port("dns-tcp", Protocol::Tcp, 53),
            port("sctp", Protocol::Sctp, 9),
        ];
        let s = ServiceEntry::new(false, &ips, ports);
        assert!(!s.headless());
        assert_eq!(s.external_name(), None);
        assert_eq!(s.cluster_ips().collect::<Vec<_>>(), ips);
        assert_eq!(s.ports().collect::<Vec<_>>(), ports);
        // One ClusterIP and one port: 17 bytes, a glibc chunk of 32 with its header.
        let small = ServiceEntry::new(false, &ips[..1], [port("http", Protocol::Tcp, 80)]);
        assert_eq!(small.0.len(), 17);

        let headless = ServiceEntry::new(true, &[], []);
        assert!(headless.headless());
        assert_eq!(headless.cluster_ips().count(), 0);
        assert_eq!(headless.ports().count(), 0);

        let target = Name::from_ascii("example.com.").unwrap();
        let external = ServiceEntry::external(&target);
        assert_eq!(external.external_name(), Some(target));
        assert!(!external.headless());
        assert_eq!(external.cluster_ips().count(), 0);
        assert_eq!(external.ports().count(), 0);
    }

    #[test]
    fn a_slice_reads_back_as_written_and_keeps_its_mark() {
        let ports = [port("http", Protocol::Tcp, 8080)];
        let endpoints = [
            Endpoint {
                address: ip("10.244.1.5"),
                hostname: Some("web-0"),
            },
            Endpoint {
                address: ip("fd00::5"),
                hostname: None,
            },
            Endpoint {
                address: ip("10.244.1.6"),
                hostname: Some(&"h".repeat(63)),
            },
        ];
        let entry = SliceEntry::new("web-abcde", ports, endpoints).unwrap();
        let s = entry.view();
        assert_eq!(s.name(), "web-abcde");
        assert!(s.listed());
        assert_eq!(s.ports().collect::<Vec<_>>(), ports);
        assert_eq!(s.endpoints().collect::<Vec<_>>(), endpoints);

        // Among others, by name; the mark leaves the rest alone.
        let mut slices = Slices::default();
        assert!(slices.is_empty());
        let other = |name: &str| SliceEntry::new(name, [], []).unwrap();
        slices.insert(other("web-zzzzz"));
        slices.insert(entry.clone());
        slices.insert(other("web-00000"));
        slices.insert(other("web-zzzzz"));
        fn names(slices: &Slices) -> Vec<&str> {
            slices.iter().map(|s| s.name()).collect()
        }
        assert_eq!(names(&slices), ["web-00000", "web-abcde", "web-zzzzz"]);
        slices.set_listed(false);
        assert!(slices.iter().all(|s| !s.listed()));
        let s = slices.iter().nth(1).unwrap();
        assert_eq!(s.name(), "web-abcde");
        assert_eq!(s.endpoints().collect::<Vec<_>>(), endpoints);
        slices.insert(entry.clone());
        let listed: Vec<bool> = slices.iter().map(|s| s.listed()).collect();
        assert_eq!(
            listed,
            [false, true, false],
            "a slice applied again is listed"
        );
        assert!(slices.remove("web-00000"));
        assert!(!slices.remove("web-00000"));
        assert!(slices.contains("web-zzzzz"));
        assert_eq!(names(&slices), ["web-abcde", "web-zzzzz"]);
        assert_eq!(slices.len(), 2);
        slices.remove("web-abcde");
        slices.remove("web-zzzzz");
        assert!(slices.is_empty());

        // Hostnames that are no DNS label are left out: the endpoint keeps its address.
        let long = "h".repeat(64);
        let odd = SliceEntry::new(
            "odd",
            [],
            [Endpoint {
                address: ip("10.0.0.1"),
                hostname: Some(&long),
            }],
        )
        .unwrap();
        assert_eq!(
            odd.view().endpoints().collect::<Vec<_>>(),
            [Endpoint {
                address: ip("10.0.0.1"),
                hostname: None
            }]
        );
        assert!(SliceEntry::new(&"n".repeat(256), [], []).is_none());
        assert_eq!(
            SliceEntry::new(&"n".repeat(255), [], [])
                .unwrap()
                .view()
                .name()
                .len(),
            255
        );
    }

    #[test]
    fn ports_dns_cannot_serve_are_left_out() {
        assert!(Port::new(None, None, 80).is_none());
        assert!(Port::new(Some(""), None, 80).is_none());
        assert!(Port::new(Some("http"), Some("HTTP"), 80).is_none());
        assert!(Port::new(Some("http"), None, 70000).is_none());
        assert!(Port::new(Some(&"p".repeat(64)), None, 80).is_none());
        assert_eq!(
            Port::new(Some("http"), None, 80),
            Some(port("http", Protocol::Tcp, 80))
        );
    }
}
