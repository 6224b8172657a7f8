//! ClusterIP and NodePort allocation for Services, from --service-cluster-ip-range and
//! --service-node-port-range. The allocated values live in the Service objects themselves, so
//! the allocator is rebuilt from the stored Services at start: a restart never hands out an
//! address or port that a stored Service holds.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};

use crate::state::ApiState;
use crate::status::{ApiError, ApiResult, Cause};

/// An IPv4 CIDR such as 10.96.0.0/12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {s:?}"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR address {ip:?}"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| *p <= 30)
            .ok_or_else(|| format!("invalid CIDR prefix {len:?}"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip >= self.base && ip - self.base < self.size()
    }
    /// The n-th address of the range (1 is the first usable).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }
}

/// A port range such as 30000-32767.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRange, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("invalid port range {s:?}"))?;
        let (first, last): (u16, u16) = (
            a.trim()
                .parse()
                .map_err(|_| format!("invalid port {a:?}"))?,
            b.trim()
                .parse()
                .map_err(|_| format!("invalid port {b:?}"))?,
        );
        if first > last {
            return Err(format!("invalid port range {s:?}"));
        }
        Ok(PortRange { first, last })
    }
}

#[derive(Default)]
struct Used {
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
}

/// The allocator shared by every service write.
pub struct Allocator {
    pub cidr: Cidr,
    pub ports: PortRange,
    used: Mutex<Used>,
}

/// Values allocated by one write; released again unless the write is committed.
pub struct Allocation {
    allocator: Arc<Allocator>,
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
    /// Values the old object held and the new one does not, released on commit.
    freed_ips: Vec<Ipv4Addr>,
    freed_ports: Vec<u16>,
}

impl Allocation {
    /// The write succeeded: keep the new values and release the ones it dropped.
    pub fn commit(mut self) {
        let mut used = self.allocator.used.lock();
        for ip in self.freed_ips.drain(..) {
            used.ips.remove(&ip);
        }
        for port in self.freed_ports.drain(..) {
            used.ports.remove(&port);
        }
        self.ips.clear();
        self.ports.clear();
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let mut used = self.allocator.used.lock();
        for ip in &self.ips {
            used.ips.remove(ip);
        }
        for port in &self.ports {
            used.ports.remove(port);
        }
    }
}

fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    svc["spec"]["clusterIP"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .into_iter()
        .collect()
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

impl Allocator {
    pub fn new(cidr: Cidr, ports: PortRange) -> Allocator {
        Allocator {
            cidr,
            ports,
            used: Mutex::new(Used::default()),
        }
    }

    /// Marks what a stored Service holds as used (at start).
    pub fn observe(&self, svc: &Value) {
        let mut used = self.used.lock();
        used.ips.extend(cluster_ips(svc));
        used.ports.extend(node_ports(svc));
    }

    /// Releases what a deleted Service held.
    pub fn release(&self, svc: &Value) {
        let mut used = self.used.lock();
        for ip in cluster_ips(svc) {
            used.ips.remove(&ip);
        }
        for port in node_ports(svc) {
            used.ports.remove(&port);
        }
    }

    fn random_ip(&self, used: &Used) -> Option<Ipv4Addr> {
        // Skip the network and broadcast addresses.
        let usable = self.cidr.size() - 2;
        let start = rand::rng().random_range(0..usable);
        (0..usable)
            .map(|i| self.cidr.nth(1 + (start + i) % usable))
            .find(|ip| !used.ips.contains(ip))
    }

    fn random_port(&self, used: &Used) -> Option<u16> {
        let span = u32::from(self.ports.last - self.ports.first) + 1;
        let start = rand::rng().random_range(0..span);
        (0..span)
            .map(|i| self.ports.first + ((start + i) % span) as u16)
            .find(|p| !used.ports.contains(p))
    }
}

/// Fills in and reserves a Service's clusterIP and nodePorts. On update, values the new object
/// leaves unset are carried over from the old one, as upstream's patchAllocatedValues does.
pub fn allocate(state: &ApiState, svc: &mut Value, old: Option<&Value>) -> ApiResult<Allocation> {
    let allocator = state.services.clone();
    let mut allocation = Allocation {
        allocator: allocator.clone(),
        ips: Vec::new(),
        ports: Vec::new(),
        freed_ips: Vec::new(),
        freed_ports: Vec::new(),
    };
    let name = crate::meta::name(svc).to_owned();
    let invalid = |cause: Cause| ApiError::invalid("", "Service", &name, vec![cause]);
    let ty = svc["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_owned();
    if let Some(old) = old {
        carry_over(svc, old);
    }
    let old_ips = old.map(cluster_ips).unwrap_or_default();
    let old_ports = old.map(node_ports).unwrap_or_default();
    let mut used = allocator.used.lock();

    if ty == "ExternalName" {
        if let Some(spec) = svc["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    } else {
        match svc["spec"]["clusterIP"].as_str().unwrap_or("") {
            "" => {
                let ip = allocator.random_ip(&used).ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?;
                used.ips.insert(ip);
                allocation.ips.push(ip);
                svc["spec"]["clusterIP"] = json!(ip.to_string());
            }
            "None" => {}
            given => {
                let field = "spec.clusterIPs";
                let ip: Ipv4Addr = given.parse().map_err(|_| {
                    invalid(Cause::invalid(
                        field,
                        &json!([given]),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ))
                })?;
                if !old_ips.contains(&ip) {
                    if !allocator.cidr.contains(ip) {
                        return Err(invalid(Cause::invalid(
                            field,
                            &json!([given]),
                            format!(
                                "failed to allocate IP {given}: the provided IP ({given}) is not in the valid range. The range of valid IPs is {}/{}",
                                allocator.cidr.nth(0),
                                allocator.cidr.prefix
                            ),
                        )));
                    }
                    if used.ips.contains(&ip) {
                        return Err(invalid(Cause::invalid(
                            field,
                            &json!([given]),
                            format!(
                                "failed to allocate IP {given}: provided IP is already allocated"
                            ),
                        )));
                    }
                    used.ips.insert(ip);
                    allocation.ips.push(ip);
                }
            }
        }
        let ip = svc["spec"]["clusterIP"].clone();
        svc["spec"]["clusterIPs"] = json!([ip]);
    }

    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
        for (i, port) in ports.iter_mut().enumerate() {
            if !wants_node_ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
                continue;
            }
            match port["nodePort"].as_u64() {
                None | Some(0) => {
                    let p = allocator.random_port(&used).ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                    used.ports.insert(p);
                    allocation.ports.push(p);
                    port["nodePort"] = json!(p);
                }
                Some(p) => {
                    let field = format!("spec.ports[{i}].nodePort");
                    let in_range = u16::try_from(p)
                        .ok()
                        .filter(|p| (allocator.ports.first..=allocator.ports.last).contains(p));
                    let Some(p) = in_range else {
                        return Err(invalid(Cause::invalid(
                            field,
                            &json!(p),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                allocator.ports.first, allocator.ports.last
                            ),
                        )));
                    };
                    if !old_ports.contains(&p) {
                        if used.ports.contains(&p) || allocation.ports.contains(&p) {
                            return Err(invalid(Cause::invalid(
                                field,
                                &json!(p),
                                "provided port is already allocated",
                            )));
                        }
                        used.ports.insert(p);
                        allocation.ports.push(p);
                    }
                }
            }
        }
    }
    let new_ips = cluster_ips(svc);
    let new_ports = node_ports(svc);
    allocation.freed_ips = old_ips
        .into_iter()
        .filter(|ip| !new_ips.contains(ip))
        .collect();
    allocation.freed_ports = old_ports
        .into_iter()
        .filter(|p| !new_ports.contains(p))
        .collect();
    drop(used);
    Ok(allocation)
}

/// Copies allocated values the new object leaves unset from the old one.
fn carry_over(svc: &mut Value, old: &Value) {
    let same_kind = |t: &Value| t.as_str().unwrap_or("ClusterIP") != "ExternalName";
    if same_kind(&svc["spec"]["type"]) && same_kind(&old["spec"]["type"]) {
        for field in ["clusterIP", "clusterIPs"] {
            if (svc["spec"][field].is_null() || svc["spec"][field] == "")
                && let Some(v) = old["spec"].get(field)
            {
                svc["spec"][field] = v.clone();
            }
        }
    }
    let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
        for port in ports.iter_mut() {
            if port["nodePort"].as_u64().unwrap_or(0) != 0 {
                continue;
            }
            let matching = old_ports
                .iter()
                .find(|o| o["port"] == port["port"] && o["protocol"] == port["protocol"]);
            if let Some(np) = matching.and_then(|o| o.get("nodePort")) {
                port["nodePort"] = np.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_ranges() {
        let c: Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 96, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 111, 255, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 1)));
        assert!("10.96.0.0".parse::<Cidr>().is_err());
        let r: PortRange = "30000-32767".parse().unwrap();
        assert_eq!((r.first, r.last), (30000, 32767));
    }

    #[test]
    fn never_hands_out_a_used_address() {
        let a = Allocator::new(
            "10.0.0.0/29".parse().unwrap(),
            "30000-30001".parse().unwrap(),
        );
        let mut seen = HashSet::new();
        let mut used = a.used.lock();
        for _ in 0..6 {
            let ip = a.random_ip(&used).unwrap();
            assert!(seen.insert(ip));
            used.ips.insert(ip);
        }
        assert!(
            a.random_ip(&used).is_none(),
            "a /29 has six usable addresses"
        );
    }
}
