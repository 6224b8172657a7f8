//! discovery.k8s.io validation: EndpointSlice, as upstream's pkg/apis/discovery/validation.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::fields::{self, items, text};
use crate::status::Cause;

const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;
const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];

fn too_many(path: &str, n: usize, max: usize) -> Cause {
    Cause::too_many(path, n, max)
}

/// v1 defaults: ports are TCP and named "".
pub fn default_endpoint_slice(obj: &mut Value) {
    for port in obj
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        crate::meta::default_field(port, "protocol", json!("TCP"));
        crate::meta::default_field(port, "name", json!(""));
    }
}

pub fn endpoint_slice(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ty = text(obj, "addressType");
    if ty.is_empty() {
        causes.push(Cause::required("addressType"));
    } else if !ADDRESS_TYPES.contains(&ty) {
        causes.push(Cause::unsupported(
            "addressType",
            &json!(ty),
            &ADDRESS_TYPES,
        ));
    }
    let endpoints = items(&obj["endpoints"]);
    if endpoints.len() > MAX_ENDPOINTS {
        causes.push(too_many("endpoints", endpoints.len(), MAX_ENDPOINTS));
    } else {
        for (i, e) in endpoints.iter().enumerate() {
            endpoint(e, ty, &format!("endpoints[{i}]"), &mut causes);
        }
    }
    let ports = items(&obj["ports"]);
    if ports.len() > MAX_PORTS {
        causes.push(too_many("ports", ports.len(), MAX_PORTS));
    } else {
        let mut names = HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            let path = format!("ports[{i}]");
            let name = text(p, "name");
            if !name.is_empty() {
                fields::dns_label(&format!("{path}.name"), name, &mut causes);
            }
            if !names.insert(name) {
                causes.push(Cause::duplicate(format!("{path}.name"), &json!(name)));
            }
            match p["protocol"].as_str() {
                None => causes.push(Cause::required(format!("{path}.protocol"))),
                Some("TCP" | "UDP" | "SCTP") => {}
                Some(other) => causes.push(Cause::unsupported(
                    format!("{path}.protocol"),
                    &json!(other),
                    &["SCTP", "TCP", "UDP"],
                )),
            }
            if let Some(app) = p["appProtocol"].as_str() {
                fields::qualified_name(&format!("{path}.appProtocol"), app, &mut causes);
            }
        }
    }
    if let Some(old) = old
        && old["addressType"] != obj["addressType"]
    {
        causes.push(Cause::invalid(
            "addressType",
            &obj["addressType"],
            "field is immutable",
        ));
    }
    causes
}

fn endpoint(e: &Value, ty: &str, path: &str, causes: &mut Vec<Cause>) {
    let addresses_path = format!("{path}.addresses");
    let addresses = items(&e["addresses"]);
    if addresses.is_empty() {
        causes.push(Cause::required_detail(
            &addresses_path,
            "must contain at least 1 address",
        ));
    } else if addresses.len() > MAX_ADDRESSES {
        causes.push(too_many(&addresses_path, addresses.len(), MAX_ADDRESSES));
    }
    for (i, a) in addresses.iter().enumerate() {
        let p = format!("{addresses_path}[{i}]");
        let address = a.as_str().unwrap_or("");
        let parsed = fields::parse_ip(address);
        match ty {
            "IPv4" if !matches!(parsed, Some(IpAddr::V4(_))) => {
                causes.push(Cause::invalid(p, a, "must be a valid IPv4 address"));
            }
            "IPv6" if !matches!(parsed, Some(IpAddr::V6(_))) => {
                causes.push(Cause::invalid(p, a, "must be a valid IPv6 address"));
            }
            "FQDN" => fqdn(&p, address, causes),
            _ => {}
        }
    }
    if let Some(node) = e["nodeName"].as_str() {
        fields::dns_subdomain(&format!("{path}.nodeName"), node, causes);
    }
    if let Some(hostname) = e["hostname"].as_str() {
        fields::dns_label(&format!("{path}.hostname"), hostname, causes);
    }
    fields::labels(
        &e["deprecatedTopology"],
        &format!("{path}.deprecatedTopology"),
        causes,
    );
}

/// A fully qualified domain name: a subdomain with at least two labels.
fn fqdn(path: &str, value: &str, causes: &mut Vec<Cause>) {
    let name = value.strip_suffix('.').unwrap_or(value);
    if value.is_empty() {
        causes.push(Cause::required(path));
        return;
    }
    let before = causes.len();
    fields::dns_subdomain(path, name, causes);
    if causes.len() == before && name.split('.').count() < 2 {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "should be a domain with at least two segments separated by dots",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(obj: &Value) -> Vec<(String, String)> {
        endpoint_slice(obj, None)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn slices() {
        let mut ok = json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1", "hostname": "a"}],
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "protocol": "UDP", "port": 53}]});
        default_endpoint_slice(&mut ok);
        assert_eq!(pairs(&ok), []);
        let fqdn = json!({"addressType": "FQDN", "endpoints": [{"addresses": ["example.com"]}]});
        assert_eq!(pairs(&fqdn), []);
        let mut bad = json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": []}],
            "ports": [{"name": "a", "protocol": "ICMP"}, {"name": "a"}]});
        default_endpoint_slice(&mut bad);
        let want = [
            (
                "endpoints[0].addresses[0]",
                "Invalid value: \"fd00::1\": must be a valid IPv4 address",
            ),
            (
                "endpoints[1].addresses",
                "Required value: must contain at least 1 address",
            ),
            (
                "ports[0].protocol",
                "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            ("ports[1].name", "Duplicate value: \"a\""),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(pairs(&bad), want);
        assert_eq!(
            pairs(&json!({"addressType": "IPv5"})),
            [(
                "addressType".to_owned(),
                "Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
                    .to_owned()
            )]
        );
        let v6 = json!({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]});
        let moved = endpoint_slice(&v6, Some(&ok));
        assert_eq!(
            moved[0].message,
            "Invalid value: \"IPv6\": field is immutable"
        );
    }
}
