//! networking.k8s.io validation: NetworkPolicy and Ingress, as upstream's
//! pkg/apis/networking/validation.

use serde_json::{Value, json};

use super::fields::{self, items, text};
use crate::meta::{default_field, object_at};
use crate::status::Cause;

/// v1 defaults: ports are TCP; policyTypes is Ingress, plus Egress when egress rules exist.
pub fn default_network_policy(obj: &mut Value) {
    let spec = object_at(obj, &["spec"]);
    for rules in ["ingress", "egress"] {
        for rule in spec
            .get_mut(rules)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for port in rule
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                default_field(port, "protocol", json!("TCP"));
            }
        }
    }
    if items(&spec.get("policyTypes").cloned().unwrap_or_default()).is_empty() {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

pub fn network_policy(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    // An update may keep label values an older server let into the pod selector.
    let values = old.is_none_or(|o| fields::selector_is_valid(&o["spec"]["podSelector"]));
    fields::label_selector(
        &spec["podSelector"],
        "spec.podSelector",
        values,
        &mut causes,
    );
    for (i, rule) in items(&spec["ingress"]).iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        for (j, port) in items(&rule["ports"]).iter().enumerate() {
            policy_port(port, &format!("{path}.ports[{j}]"), &mut causes);
        }
        for (j, peer) in items(&rule["from"]).iter().enumerate() {
            policy_peer(peer, &format!("{path}.from[{j}]"), values, &mut causes);
        }
    }
    for (i, rule) in items(&spec["egress"]).iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        for (j, port) in items(&rule["ports"]).iter().enumerate() {
            policy_port(port, &format!("{path}.ports[{j}]"), &mut causes);
        }
        for (j, peer) in items(&rule["to"]).iter().enumerate() {
            policy_peer(peer, &format!("{path}.to[{j}]"), values, &mut causes);
        }
    }
    let types = items(&spec["policyTypes"]);
    if types.len() > 2 {
        causes.push(Cause::invalid(
            "spec.policyTypes",
            &spec["policyTypes"],
            "may not specify more than two policyTypes",
        ));
        return causes;
    }
    for (i, t) in types.iter().enumerate() {
        if t != "Ingress" && t != "Egress" {
            causes.push(Cause::unsupported(
                format!("spec.policyTypes[{i}]"),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
    causes
}

fn policy_port(port: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(protocol) = port.get("protocol").filter(|p| !p.is_null())
        && !matches!(protocol.as_str(), Some("TCP" | "UDP" | "SCTP"))
    {
        causes.push(Cause::unsupported(
            format!("{path}.protocol"),
            protocol,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = port.get("endPort").filter(|e| !e.is_null());
    let end_path = format!("{path}.endPort");
    match port.get("port").filter(|p| !p.is_null()) {
        Some(Value::String(name)) => {
            if let Some(end) = end {
                causes.push(Cause::invalid(
                    &end_path,
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in fields::port_name_errors(name) {
                causes.push(Cause::invalid(format!("{path}.port"), &json!(name), msg));
            }
        }
        Some(number) => {
            fields::port_number(&format!("{path}.port"), number, causes);
            if let Some(end) = end {
                if end.as_i64() < number.as_i64() {
                    causes.push(Cause::invalid(
                        &end_path,
                        end,
                        "must be greater than or equal to `port`",
                    ));
                }
                fields::port_number(&end_path, end, causes);
            }
        }
        None => {
            if let Some(end) = end {
                causes.push(Cause::invalid(
                    &end_path,
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn policy_peer(peer: &Value, path: &str, values: bool, causes: &mut Vec<Cause>) {
    let mut count = 0;
    for selector in ["podSelector", "namespaceSelector"] {
        if !peer[selector].is_null() {
            count += 1;
            fields::label_selector(
                &peer[selector],
                &format!("{path}.{selector}"),
                values,
                causes,
            );
        }
    }
    let ip_block = &peer["ipBlock"];
    if !ip_block.is_null() {
        count += 1;
        validate_ip_block(ip_block, &format!("{path}.ipBlock"), causes);
    }
    if count == 0 {
        causes.push(Cause::required_detail(path, "must specify a peer"));
    } else if count > 1 && !ip_block.is_null() {
        causes.push(Cause::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn validate_ip_block(block: &Value, path: &str, causes: &mut Vec<Cause>) {
    let cidr = text(block, "cidr");
    if cidr.is_empty() {
        causes.push(Cause::required(format!("{path}.cidr")));
        return;
    }
    let Some(outer) = fields::cidr(&format!("{path}.cidr"), cidr, causes) else {
        return;
    };
    for (i, except) in items(&block["except"]).iter().enumerate() {
        let except_path = format!("{path}.except[{i}]");
        let value = except.as_str().unwrap_or("");
        let Some(inner) = fields::cidr(&except_path, value, causes) else {
            continue;
        };
        // Each exception must carve a strictly smaller range out of the block.
        if !outer.contains(inner.network) || outer.prefix >= inner.prefix {
            causes.push(Cause::invalid(
                except_path,
                except,
                "must be a strict subset of `cidr`",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ingress

const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `*.` followed by a subdomain.
fn wildcard_host(path: &str, host: &str, causes: &mut Vec<Cause>) {
    let ok = host.strip_prefix("*.").is_some_and(|rest| {
        crate::meta::validate_name(crate::meta::NameRule::Subdomain, rest).is_empty()
    });
    if !ok {
        causes.push(Cause::invalid(path, &json!(host), WILDCARD_MSG));
    }
}

fn host(path: &str, host: &str, causes: &mut Vec<Cause>) {
    if host.contains('*') {
        wildcard_host(path, host, causes);
    } else {
        fields::dns_subdomain(path, host, causes);
    }
}

pub fn ingress(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let rules = items(&spec["rules"]);
    let default_backend = &spec["defaultBackend"];
    if rules.is_empty() && default_backend.is_null() {
        causes.push(Cause::invalid_shown(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if !default_backend.is_null() {
        backend(default_backend, "spec.defaultBackend", &mut causes);
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let name = text(rule, "host");
        if !name.is_empty() {
            if fields::parse_ip(name).is_some() {
                causes.push(Cause::invalid(
                    format!("{path}.host"),
                    &json!(name),
                    "must be a DNS name, not an IP address",
                ));
            }
            host(&format!("{path}.host"), name, &mut causes);
        }
        let http = &rule["http"];
        if http.is_null() {
            continue;
        }
        let paths = items(&http["paths"]);
        if paths.is_empty() {
            causes.push(Cause::required(format!("{path}.http.paths")));
        }
        for (j, p) in paths.iter().enumerate() {
            http_path(p, &format!("{path}.http.paths[{j}]"), &mut causes);
        }
    }
    // Secret names an older server let in stay allowed on update.
    let secret_names = old.is_none_or(|o| {
        items(&o["spec"]["tls"]).iter().all(|t| {
            let n = text(t, "secretName");
            n.is_empty()
                || crate::meta::validate_name(crate::meta::NameRule::Subdomain, n).is_empty()
        })
    });
    for (i, tls) in items(&spec["tls"]).iter().enumerate() {
        for (j, h) in items(&tls["hosts"]).iter().enumerate() {
            host(
                &format!("spec.tls[{i}].hosts[{j}]"),
                h.as_str().unwrap_or(""),
                &mut causes,
            );
        }
        let secret = text(tls, "secretName");
        if secret_names && !secret.is_empty() {
            fields::dns_subdomain(&format!("spec.tls[{i}].secretName"), secret, &mut causes);
        }
    }
    if let Some(class) = spec["ingressClassName"].as_str() {
        fields::dns_subdomain("spec.ingressClassName", class, &mut causes);
    }
    if old.is_none()
        && let (Some(annotation), Some(class)) = (
            obj["metadata"]["annotations"]["kubernetes.io/ingress.class"].as_str(),
            spec["ingressClassName"].as_str(),
        )
        && annotation != class
    {
        causes.push(Cause::invalid(
            "annotations.kubernetes.io/ingress.class",
            &json!(annotation),
            "must match `ingressClassName` when both are specified",
        ));
    }
    for (i, lb) in items(&obj["status"]["loadBalancer"]["ingress"])
        .iter()
        .enumerate()
    {
        let path = format!("status.loadBalancer.ingress[{i}]");
        let ip = text(lb, "ip");
        if !ip.is_empty() {
            fields::ip(&format!("{path}.ip"), ip, &mut causes);
        }
        let hostname = text(lb, "hostname");
        if !hostname.is_empty() {
            fields::dns_subdomain(&format!("{path}.hostname"), hostname, &mut causes);
            if fields::parse_ip(hostname).is_some() {
                causes.push(Cause::invalid(
                    format!("{path}.hostname"),
                    &json!(hostname),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    causes
}

fn http_path(p: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(kind) = p["pathType"].as_str() else {
        causes.push(Cause::required_detail(
            format!("{path}.pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = text(p, "path");
    let field = format!("{path}.path");
    let invalid = |detail: String| Cause::invalid(&field, &json!(value), detail);
    match kind {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                causes.push(invalid("must be an absolute path".into()));
            }
            for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                if value.contains(seq) {
                    causes.push(invalid(format!("must not contain '{seq}'")));
                }
            }
            for suffix in ["/..", "/."] {
                if value.ends_with(suffix) {
                    causes.push(invalid(format!("cannot end with '{suffix}'")));
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                causes.push(invalid("must be an absolute path".into()));
            }
        }
        other => causes.push(Cause::unsupported(
            format!("{path}.pathType"),
            &json!(other),
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    backend(&p["backend"], &format!("{path}.backend"), causes);
}

fn backend(b: &Value, path: &str, causes: &mut Vec<Cause>) {
    let (resource, service) = (&b["resource"], &b["service"]);
    match (resource.is_null(), service.is_null()) {
        (false, false) => causes.push(Cause::invalid(
            path,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (false, true) => {
            let rp = format!("{path}.resource");
            if let Some(group) = resource["apiGroup"].as_str() {
                fields::dns_subdomain(&format!("{rp}.apiGroup"), group, causes);
            }
            for f in ["kind", "name"] {
                let v = text(resource, f);
                if v.is_empty() {
                    causes.push(Cause::required(format!("{rp}.{f}")));
                }
                for msg in crate::meta::validate_name(crate::meta::NameRule::PathSegment, v) {
                    causes.push(Cause::invalid(format!("{rp}.{f}"), &json!(v), msg));
                }
            }
        }
        (true, false) => {
            let name = text(service, "name");
            if name.is_empty() {
                causes.push(Cause::required(format!("{path}.service.name")));
            } else {
                for msg in crate::meta::validate_name(crate::meta::NameRule::Dns1035, name) {
                    causes.push(Cause::invalid(
                        format!("{path}.service.name"),
                        &json!(name),
                        msg,
                    ));
                }
            }
            let port = &service["port"];
            let port_name = text(port, "name");
            let number = port["number"].as_i64().unwrap_or(0);
            if !port_name.is_empty() && number != 0 {
                causes.push(Cause::invalid(
                    path,
                    &json!(""),
                    "cannot set both port name & port number",
                ));
            } else if !port_name.is_empty() {
                for msg in fields::port_name_errors(port_name) {
                    causes.push(Cause::invalid(
                        format!("{path}.service.port.name"),
                        &json!(port_name),
                        msg,
                    ));
                }
            } else if number != 0 {
                fields::port_number(
                    &format!("{path}.service.port.number"),
                    &port["number"],
                    causes,
                );
            } else {
                causes.push(Cause::required_detail(
                    path,
                    "port name or number is required",
                ));
            }
        }
        (true, true) => causes.push(Cause::invalid(
            path,
            &json!(""),
            "resource or service backend is required",
        )),
    }
}

/// IngressClass, as upstream's ValidateIngressClass and ValidateIngressClassUpdate.
pub fn ingress_class(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let controller = text(spec, "controller");
    if controller.is_empty() {
        causes.push(Cause::required("spec.controller"));
    } else if controller.len() > 250 {
        causes.push(Cause::too_long("spec.controller", 250));
    } else if !controller.contains('/') {
        causes.push(Cause::invalid(
            "spec.controller",
            &spec["controller"],
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
    }
    if let Some(old) = old
        && old["spec"]["controller"] != spec["controller"]
    {
        causes.push(Cause::invalid(
            "spec.controller",
            &spec["controller"],
            "field is immutable",
        ));
    }
    let params = &spec["parameters"];
    if params.is_object() {
        for field in ["kind", "name"] {
            if text(params, field).is_empty() {
                causes.push(Cause::required(format!("spec.parameters.{field}")));
            }
        }
        let group = text(params, "apiGroup");
        if !group.is_empty() {
            fields::dns_subdomain("spec.parameters.apiGroup", group, &mut causes);
        }
        let namespace = text(params, "namespace");
        match text(params, "scope") {
            "Namespace" if namespace.is_empty() => causes.push(Cause::required_detail(
                "spec.parameters.namespace",
                "`parameters.scope` is set to 'Namespace'",
            )),
            "Namespace" => fields::dns_label("spec.parameters.namespace", namespace, &mut causes),
            "Cluster" | "" if !namespace.is_empty() => causes.push(Cause::forbidden(
                "spec.parameters.namespace",
                "`parameters.scope` is set to 'Cluster'",
            )),
            "Cluster" | "" => {}
            _ => causes.push(Cause::unsupported(
                "spec.parameters.scope",
                &params["scope"],
                &["Cluster", "Namespace"],
            )),
        }
    }
    causes
}

/// IngressClass parameters are cluster-scoped unless they say otherwise.
pub fn default_ingress_class(obj: &mut Value) {
    if let Some(params) = obj["spec"]["parameters"].as_object_mut() {
        params.entry("scope").or_insert_with(|| json!("Cluster"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: Value) -> Value {
        let mut np = json!({"metadata": {"name": "np", "namespace": "default"}, "spec": spec});
        default_network_policy(&mut np);
        np
    }

    /// (field, message) of each cause.
    fn causes(obj: &Value) -> Vec<(String, String)> {
        network_policy(obj, None)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn valid_policy_is_accepted_and_defaulted() {
        let np = policy(json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{
                "from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    {"podSelector": {}, "namespaceSelector": {"matchExpressions": [
                        {"key": "team", "operator": "In", "values": ["a"]}]}},
                ],
                "ports": [{"port": 80}, {"port": "http", "protocol": "UDP"},
                          {"port": 8000, "endPort": 9000, "protocol": "SCTP"}],
            }],
            "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}],
        }));
        assert_eq!(causes(&np), []);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn invalid_policies_get_upstream_causes() {
        let cases: &[(Value, &[(&str, &str)])] = &[
            (
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
                &[(
                    "spec.ingress[0].from[0].ipBlock.cidr",
                    "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )],
            ),
            (
                json!({"ingress": [{"ports": [{"port": 99999}]}]}),
                &[(
                    "spec.ingress[0].ports[0].port",
                    "Invalid value: 99999: must be between 1 and 65535, inclusive",
                )],
            ),
            (
                json!({"policyTypes": ["Sideways"]}),
                &[(
                    "spec.policyTypes[0]",
                    "Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
                )],
            ),
            (
                json!({"policyTypes": ["Ingress", "Egress", "Ingress"]}),
                &[(
                    "spec.policyTypes",
                    "Invalid value: [\"Ingress\",\"Egress\",\"Ingress\"]: may not specify more than two policyTypes",
                )],
            ),
            (
                json!({"egress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]}),
                &[(
                    "spec.egress[0].ports[0].protocol",
                    "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                )],
            ),
            (
                json!({"egress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
                &[(
                    "spec.egress[0].ports[0].endPort",
                    "Invalid value: 80: must be greater than or equal to `port`",
                )],
            ),
            (
                json!({"egress": [{"ports": [{"port": "http", "endPort": 80}]}]}),
                &[(
                    "spec.egress[0].ports[0].endPort",
                    "Invalid value: 80: may not be specified when `port` is non-numeric",
                )],
            ),
            (
                json!({"egress": [{"ports": [{"endPort": 80}]}]}),
                &[(
                    "spec.egress[0].ports[0].endPort",
                    "Invalid value: 80: may not be specified when `port` is not specified",
                )],
            ),
            (
                json!({"egress": [{"ports": [{"port": 80, "endPort": 70000}]}]}),
                &[(
                    "spec.egress[0].ports[0].endPort",
                    "Invalid value: 70000: must be between 1 and 65535, inclusive",
                )],
            ),
            (
                json!({"ingress": [{"ports": [{"port": "8080"}]}]}),
                &[(
                    "spec.ingress[0].ports[0].port",
                    "Invalid value: \"8080\": must contain at least one letter (a-z)",
                )],
            ),
            (
                json!({"ingress": [{"from": [{}]}]}),
                &[(
                    "spec.ingress[0].from[0]",
                    "Required value: must specify a peer",
                )],
            ),
            (
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}),
                &[(
                    "spec.ingress[0].from[0]",
                    "Forbidden: may not specify both ipBlock and another peer",
                )],
            ),
            (
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": ""}}]}]}),
                &[("spec.ingress[0].from[0].ipBlock.cidr", "Required value")],
            ),
            (
                json!({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16",
                    "except": ["10.0.0.0/16", "10.1.0.0/24", "10.0.1.0/24", "bad"]}}]}]}),
                &[
                    (
                        "spec.egress[0].to[0].ipBlock.except[0]",
                        "Invalid value: \"10.0.0.0/16\": must be a strict subset of `cidr`",
                    ),
                    (
                        "spec.egress[0].to[0].ipBlock.except[1]",
                        "Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`",
                    ),
                    (
                        "spec.egress[0].to[0].ipBlock.except[3]",
                        "Invalid value: \"bad\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    ),
                ],
            ),
            (
                json!({"podSelector": {"matchLabels": {"bad key": "v"}}}),
                &[(
                    "spec.podSelector.matchLabels",
                    "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                )],
            ),
            (
                json!({"ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                    {"key": "a", "operator": "Exists", "values": ["x"]}]}}]}]}),
                &[(
                    "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )],
            ),
        ];
        for (spec, expected) in cases {
            let got = causes(&policy(spec.clone()));
            let want: Vec<_> = expected
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect();
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn update_tolerates_stored_invalid_selector_values() {
        let np = policy(json!({"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "In", "values": ["bad value"]}]}}));
        assert_eq!(network_policy(&np, None).len(), 1);
        assert_eq!(network_policy(&np, Some(&np)), []);
    }

    #[test]
    fn ingresses() {
        let ok = json!({"spec": {"ingressClassName": "nginx", "rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"pathType": "ImplementationSpecific", "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}],
            "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]}});
        assert_eq!(ingress(&ok, None), []);
        let only_default = json!({"spec": {"defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}}}});
        assert_eq!(ingress(&only_default, None), []);
        let cases: &[(Value, &[(&str, &str)])] = &[
            (
                json!({"spec": {}}),
                &[(
                    "spec",
                    "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
                )],
            ),
            (
                json!({"spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": []}}]}}),
                &[
                    (
                        "spec.rules[0].host",
                        "Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
                    ),
                    ("spec.rules[0].http.paths", "Required value"),
                ],
            ),
            (
                json!({"spec": {"rules": [{"http": {"paths": [
                    {"path": "a//b", "pathType": "Exact", "backend": {"service": {"name": "Web", "port": {}}}},
                    {"path": "/", "backend": {}},
                    {"path": "/", "pathType": "Regex", "backend": {}}]}}]}}),
                &[
                    (
                        "spec.rules[0].http.paths[0].path",
                        "Invalid value: \"a//b\": must be an absolute path",
                    ),
                    (
                        "spec.rules[0].http.paths[0].path",
                        "Invalid value: \"a//b\": must not contain '//'",
                    ),
                    (
                        "spec.rules[0].http.paths[0].backend.service.name",
                        "Invalid value: \"Web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                    ),
                    (
                        "spec.rules[0].http.paths[0].backend",
                        "Required value: port name or number is required",
                    ),
                    (
                        "spec.rules[0].http.paths[1].pathType",
                        "Required value: pathType must be specified",
                    ),
                    (
                        "spec.rules[0].http.paths[2].pathType",
                        "Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
                    ),
                    (
                        "spec.rules[0].http.paths[2].backend",
                        "Invalid value: \"\": resource or service backend is required",
                    ),
                ],
            ),
            (
                json!({"spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 70000}}},
                    "tls": [{"hosts": ["*"], "secretName": "Bad"}]}}),
                &[
                    (
                        "spec.defaultBackend.service.port.number",
                        "Invalid value: 70000: must be between 1 and 65535, inclusive",
                    ),
                    (
                        "spec.tls[0].hosts[0]",
                        "Invalid value: \"*\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                    ),
                    (
                        "spec.tls[0].secretName",
                        "Invalid value: \"Bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                    ),
                ],
            ),
            (
                json!({"metadata": {"annotations": {"kubernetes.io/ingress.class": "a"}},
                    "spec": {"ingressClassName": "b", "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
                &[(
                    "annotations.kubernetes.io/ingress.class",
                    "Invalid value: \"a\": must match `ingressClassName` when both are specified",
                )],
            ),
        ];
        for (obj, want) in cases {
            let got: Vec<_> = ingress(obj, None)
                .into_iter()
                .map(|c| (c.field, c.message))
                .collect();
            let want: Vec<_> = want
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect();
            assert_eq!(got, want, "{obj}");
        }
    }
}
