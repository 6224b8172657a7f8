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
}
