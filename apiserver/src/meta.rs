//! Object metadata helpers over JSON objects, and upstream's name validation rules.

use serde_json::{Map, Value};

use common::selector::is_dns1123_label;

use crate::status::Cause;

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

/// `metadata`, created as an empty object if missing or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("object");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("object")
}

/// A string field of metadata, "" when absent.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

pub fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion")
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj)?.get("labels")?.as_object()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_terminating(obj: &Value) -> bool {
    metadata(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|t| !t.is_null()))
}

/// The value at a dotted path (`spec.replicas`), if there is one.
pub fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, part| v.get(part))
}

/// Reads a dotted path (`spec.nodeName`) as a string the way field selectors compare it.
pub fn field_string(obj: &Value, path: &str) -> Option<String> {
    match value_at(obj, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON object at `path` under `obj`, created (and any non-object replaced) as needed.
pub fn object_at<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = obj;
    for part in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(*part)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().expect("object")
}

/// Sets `key` in `map` unless it already holds a non-null value.
pub fn default_field(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            map.insert(key.to_owned(), value);
        }
    }
}

/// Which rule an object's name follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035,
    /// Any string usable as a path segment (RBAC kinds).
    PathSegment,
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// The problems with `name` under `rule`, in upstream's words; empty when valid.
pub fn validate_name(rule: NameRule, name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push("must be no more than 253 characters".to_owned());
            }
            if !name.split('.').all(is_dns1123_label) {
                errs.push(SUBDOMAIN_MSG.to_owned());
            }
        }
        NameRule::Label | NameRule::Dns1035 => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".to_owned());
            }
            let ok = name.is_ascii()
                && is_dns1123_label(&name[..name.len().min(63)])
                && (rule == NameRule::Label || name.as_bytes()[0].is_ascii_lowercase());
            if !ok {
                errs.push(
                    if rule == NameRule::Label {
                        LABEL_MSG
                    } else {
                        DNS1035_MSG
                    }
                    .to_owned(),
                );
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errs.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    errs.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    errs
}

/// Validates a DNS label used as a field value (container names, port names...).
pub fn validate_label_field(field: &str, value: &str, causes: &mut Vec<Cause>) {
    for msg in validate_name(NameRule::Label, value) {
        causes.push(Cause::invalid(field, &Value::String(value.to_owned()), msg));
    }
}

/// The characters generateName suffixes are drawn from (no vowels, no look-alikes), as upstream.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` plus five random characters.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut name = String::with_capacity(prefix.len() + 5);
    // Keep the whole name within 63 characters, as upstream trims long prefixes.
    let cut = (0..=prefix.len().min(58))
        .rev()
        .find(|i| prefix.is_char_boundary(*i))
        .unwrap_or(0);
    name.push_str(&prefix[..cut]);
    for _ in 0..5 {
        name.push(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char);
    }
    name
}

/// RFC 3339 timestamp with second precision, as metav1.Time serializes.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: NameRule, name: &str, valid: bool) {
        assert_eq!(
            validate_name(rule, name).is_empty(),
            valid,
            "{rule:?} {name:?}"
        );
    }

    #[test]
    fn names() {
        check(NameRule::Subdomain, "my-app.example", true);
        check(NameRule::Subdomain, "My-app", false);
        check(NameRule::Subdomain, "-a", false);
        check(NameRule::Subdomain, "", false);
        check(NameRule::Label, "a.b", false);
        check(NameRule::Label, "123-abc", true);
        check(NameRule::Dns1035, "123-abc", false);
        check(NameRule::Dns1035, "web", true);
        check(NameRule::Label, &"a".repeat(64), false);
        check(NameRule::PathSegment, "system:controller:x", true);
        check(NameRule::PathSegment, "a/b", false);
        // Non-ASCII input is refused, never sliced inside a character.
        check(NameRule::Label, &"é".repeat(40), false);
        assert!(generate_name(&"é".repeat(40)).len() > 5);
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        assert!(validate_name(NameRule::Subdomain, &n).is_empty());
    }
}
