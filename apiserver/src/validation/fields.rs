//! Field validators several kinds share (labels and label selectors, ports, IPs and CIDRs,
//! config keys), each pushing causes with upstream's field paths and messages.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

use common::selector::{validate_label_value, validate_qualified_name};

use crate::meta::{NameRule, validate_name};
use crate::status::Cause;

pub const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
pub const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
pub const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// The elements of a JSON array, none when absent or not an array.
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A string field, "" when absent.
pub fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A label key (qualified name) at `path`.
pub fn label_key(path: &str, key: &str, causes: &mut Vec<Cause>) {
    for msg in validate_qualified_name(key) {
        causes.push(Cause::invalid(path, &json!(key), msg));
    }
}

/// A label map (`metadata.labels`, a selector's matchLabels, a Service's selector).
pub fn labels(map: &Value, path: &str, causes: &mut Vec<Cause>) {
    for (k, v) in map.as_object().into_iter().flatten() {
        label_key(path, k, causes);
        let value = v.as_str().unwrap_or("");
        for msg in validate_label_value(value) {
            causes.push(Cause::invalid(path, v, msg));
        }
    }
}

/// A metav1.LabelSelector; `label_values` is false where upstream tolerates invalid values
/// that were already stored.
pub fn label_selector(sel: &Value, path: &str, label_values: bool, causes: &mut Vec<Cause>) {
    if sel.is_null() {
        return;
    }
    labels(&sel["matchLabels"], &format!("{path}.matchLabels"), causes);
    for (i, expr) in items(&sel["matchExpressions"]).iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let values = items(&expr["values"]);
        match text(expr, "operator") {
            "In" | "NotIn" if values.is_empty() => causes.push(Cause::required_detail(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(Cause::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::invalid(
                format!("{p}.operator"),
                &json!(other),
                "not a valid selector operator",
            )),
        }
        label_key(&format!("{p}.key"), text(expr, "key"), causes);
        if label_values {
            for (j, v) in values.iter().enumerate() {
                for msg in validate_label_value(v.as_str().unwrap_or("")) {
                    causes.push(Cause::invalid(format!("{p}.values[{j}]"), v, msg));
                }
            }
        }
    }
}

/// Whether a label selector passes [`label_selector`].
pub fn selector_is_valid(sel: &Value) -> bool {
    let mut causes = Vec::new();
    label_selector(sel, "", true, &mut causes);
    causes.is_empty()
}

/// A port number, 1-65535.
pub fn port_number(path: &str, port: &Value, causes: &mut Vec<Cause>) {
    if !port.as_i64().is_some_and(|p| (1..=65535).contains(&p)) {
        causes.push(Cause::invalid(path, port, PORT_RANGE_MSG));
    }
}

/// The problems with an IANA_SVC_NAME port name, in upstream's words.
pub fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    let charset = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !charset {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

/// An IntOrString port: a number 1-65535 or an IANA_SVC_NAME.
pub fn port_number_or_name(path: &str, port: &Value, causes: &mut Vec<Cause>) {
    match port.as_str() {
        Some(name) => {
            for msg in port_name_errors(name) {
                causes.push(Cause::invalid(path, port, msg));
            }
        }
        None => port_number(path, port, causes),
    }
}

/// An RFC 1123 label at `path`.
pub fn dns_label(path: &str, value: &str, causes: &mut Vec<Cause>) {
    for msg in validate_name(NameRule::Label, value) {
        causes.push(Cause::invalid(path, &json!(value), msg));
    }
}

/// An RFC 1123 subdomain at `path`.
pub fn dns_subdomain(path: &str, value: &str, causes: &mut Vec<Cause>) {
    for msg in validate_name(NameRule::Subdomain, value) {
        causes.push(Cause::invalid(path, &json!(value), msg));
    }
}

/// A qualified name (`prefix/name`) at `path`.
pub fn qualified_name(path: &str, value: &str, causes: &mut Vec<Cause>) {
    label_key(path, value, causes);
}

/// An IP address as Go's ParseIPSloppy reads it: IPv4 octets may have leading zeros.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let octets: Vec<&str> = s.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (b, o) in bytes.iter_mut().zip(&octets) {
        if o.is_empty() || o.len() > 3 || !o.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = o.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(bytes)))
}

/// A parsed CIDR: its network address (host bits cleared) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses as Go's ParseCIDRSloppy does; None when invalid.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = s.split_once('/')?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = len.parse().ok()?;
        let ip = parse_ip(ip)?;
        let network = match ip {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            _ => return None,
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `ip` lies inside this network (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Cidr::parse(&format!("{ip}/{}", self.prefix)).is_some_and(|c| c == *self)
            }
            _ => false,
        }
    }
}

/// A CIDR at `path`; answers it when valid.
pub fn cidr(path: &str, value: &str, causes: &mut Vec<Cause>) -> Option<Cidr> {
    let parsed = Cidr::parse(value);
    if parsed.is_none() {
        causes.push(Cause::invalid(path, &json!(value), CIDR_MSG));
    }
    parsed
}

/// An IP address at `path`.
pub fn ip(path: &str, value: &str, causes: &mut Vec<Cause>) {
    if parse_ip(value).is_none() {
        causes.push(Cause::invalid(path, &json!(value), IP_MSG));
    }
}

/// The problems with a ConfigMap or Secret key, in upstream's words.
pub fn config_key_errors(key: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters");
    }
    let ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
    }
    if key == "." {
        errs.push("must not be '.'");
    } else if key == ".." {
        errs.push("must not be '..'");
    } else if key.starts_with("..") {
        errs.push("must not start with '..'");
    }
    errs
}

/// A quantity that must not be negative; answers its parsed value.
pub fn nonnegative_quantity(
    path: &str,
    value: &Value,
    causes: &mut Vec<Cause>,
) -> Option<common::quantity::Quantity> {
    let q = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    match common::quantity::Quantity::parse(&q) {
        Ok(parsed) if parsed.milli_value() < 0 => {
            causes.push(Cause::invalid(
                path,
                &json!(q),
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(parsed) => Some(parsed),
        // The typed round trip rejects unparsable quantities before they are stored.
        Err(_) => None,
    }
}

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// The number of a `N%` string.
fn percent(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An IntOrString count: a non-negative integer or a percentage. Upstream prints these
/// values unquoted (IntOrString is a Stringer).
pub fn int_or_percent(v: &Value, path: &str, causes: &mut Vec<Cause>) {
    match v {
        Value::String(s) if percent(s).is_none() => {
            causes.push(Cause::invalid_shown(path, s, PERCENT_MSG));
        }
        Value::String(_) => {}
        other => {
            if other.as_i64().is_some_and(|n| n < 0) {
                causes.push(Cause::invalid(
                    path,
                    other,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

/// A percentage, if `v` is one, is at most 100%.
pub fn at_most_100_percent(v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(s) = v.as_str()
        && percent(s).is_some_and(|p| p > 100)
    {
        causes.push(Cause::invalid_shown(
            path,
            s,
            "must not be greater than 100%",
        ));
    }
}

/// An IntOrString's number (a percentage's digits); 0 when neither.
pub fn int_or_percent_value(v: &Value) -> i64 {
    match v {
        Value::String(s) => percent(s).unwrap_or(0),
        other => other.as_i64().unwrap_or(0),
    }
}

/// An optional integer field that must not be negative.
pub fn nonnegative(obj: &Value, field: &str, path: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = obj[field].as_i64()
        && n < 0
    {
        causes.push(Cause::invalid(
            format!("{path}.{field}"),
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.2.3/16").unwrap();
        assert_eq!(c.network.to_string(), "10.1.0.0");
        assert!(c.contains("10.1.255.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert_eq!(Cidr::parse("010.0.0.0/8").unwrap().prefix, 8);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix, 0);
        assert_eq!(Cidr::parse("fd00::/8").unwrap().prefix, 8);
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "::/129",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn port_names() {
        assert!(port_name_errors("http").is_empty());
        assert!(port_name_errors("web-8080").is_empty());
        assert_eq!(
            port_name_errors("8080"),
            ["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name_errors("-a--b"),
            [
                "must not contain consecutive hyphens",
                "must not begin or end with a hyphen"
            ]
        );
        assert_eq!(port_name_errors("abcdefghijklmnop").len(), 1);
        assert_eq!(port_name_errors("HTTP").len(), 2);
    }

    #[test]
    fn config_keys() {
        assert!(config_key_errors("app.properties").is_empty());
        assert!(config_key_errors("KEY_NAME-1").is_empty());
        assert_eq!(config_key_errors("..a"), ["must not start with '..'"]);
        assert_eq!(config_key_errors("a/b").len(), 1);
        assert_eq!(config_key_errors("").len(), 1);
    }

    #[test]
    fn selectors() {
        let mut causes = Vec::new();
        label_selector(
            &json!({"matchLabels": {"a": "b c"}, "matchExpressions": [
                {"key": "k", "operator": "In"},
                {"key": "k", "operator": "Exists", "values": ["x"]},
                {"key": "-k", "operator": "Near"}]}),
            "spec.selector",
            true,
            &mut causes,
        );
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
                "spec.selector.matchExpressions[2].key",
            ]
        );
        assert_eq!(
            causes[1].message,
            "Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
    }
}
