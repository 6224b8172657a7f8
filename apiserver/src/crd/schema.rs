//! A CustomResourceDefinition's structural schema (openAPIV3Schema) applied to custom
//! resources, as upstream's apiextensions-apiserver does: defaulting, pruning of fields the
//! schema does not know, and validation answering each problem with its field path and
//! upstream's message (`spec.replicas in body must be of type integer: "string"`).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use regex::Regex;
use serde_json::{Map, Value};

use crate::status::Cause;

/// Fields every object keeps whatever its schema says.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Longest pattern compiled, and the most memory a compiled one may take: a definition's
/// author cannot make every write of its objects slow.
const MAX_PATTERN: usize = 4096;
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A version's schema, ready to apply (its patterns and CEL rules compiled once).
pub struct Structural {
    root: Arc<JSONSchemaProps>,
    patterns: HashMap<String, Regex>,
    rules: super::cel::Rules,
}

/// A pattern as upstream accepts it, compiled with bounded size; the error says why not.
pub fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("must be at most {MAX_PATTERN} characters"));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

impl Structural {
    pub fn new(root: Arc<JSONSchemaProps>) -> Structural {
        let mut patterns = HashMap::new();
        each_schema(&root, &mut |s| {
            if let Some(p) = &s.pattern
                && let Ok(re) = compile_pattern(p)
            {
                patterns.insert(p.clone(), re);
            }
        });
        let rules = super::cel::Rules::new(&root);
        Structural {
            root,
            patterns,
            rules,
        }
    }

    /// Fills in the defaults the schema declares for absent fields.
    pub fn default(&self, obj: &mut Value) {
        default_value(&self.root, obj);
    }

    /// The object without the fields its schema does not declare (apiVersion, kind and
    /// metadata always stay).
    pub fn prune(&self, obj: &Value) -> Value {
        let mut out = obj.clone();
        if let Value::Object(map) = &mut out {
            let kept: Vec<(String, Value)> = ROOT_FIELDS
                .iter()
                .filter_map(|f| map.remove(*f).map(|v| (f.to_string(), v)))
                .collect();
            let mut rest = Value::Object(std::mem::take(map));
            prune_value(&self.root, &mut rest);
            let mut pruned = Map::new();
            pruned.extend(kept);
            if let Value::Object(rest) = rest {
                pruned.extend(rest);
            }
            *map = pruned;
        }
        out
    }

    /// Every problem with `obj` (apiVersion, kind and metadata are checked elsewhere), then
    /// its CEL rules (`old`: the object an update replaces) unless a problem found first
    /// would make them misleading, as upstream.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Value::Object(map) = obj else {
            return causes;
        };
        let mut rest = map.clone();
        for f in ROOT_FIELDS {
            rest.remove(f);
        }
        let mut v = Validator {
            patterns: &self.patterns,
            causes: &mut causes,
        };
        v.object_fields(&self.root, &rest, "");
        self.rules_unless_blocked(obj, old, "", &mut causes);
        causes
    }

    /// Every problem with a value of this (sub)schema found at `path`, its rules included: a
    /// definition's `default` is checked so when the definition is written.
    pub fn validate_value(&self, value: &Value, path: &str) -> Vec<Cause> {
        let mut causes = Vec::new();
        Validator {
            patterns: &self.patterns,
            causes: &mut causes,
        }
        .value(&self.root, value, path);
        self.rules_unless_blocked(value, None, path, &mut causes);
        causes
    }

    /// The CEL rules, unless a problem already found would make them misleading (a missing
    /// or mistyped field): then one cause says they were not run, as upstream.
    fn rules_unless_blocked(
        &self,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        causes: &mut Vec<Cause>,
    ) {
        if self.rules.is_empty() {
            return;
        }
        let blocking = causes.iter().any(|c| {
            matches!(
                c.reason,
                "FieldValueNotSupported"
                    | "FieldValueRequired"
                    | "FieldValueTooLong"
                    | "FieldValueTooMany"
                    | "FieldValueTypeInvalid"
            )
        });
        if blocking {
            causes.push(Cause::invalid(
                "<nil>",
                &Value::String("null".into()),
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            self.rules.validate(&self.root, value, old, path, causes);
        }
    }
}

/// Calls `f` on `schema` and every schema nested in it.
pub fn each_schema(schema: &JSONSchemaProps, f: &mut impl FnMut(&JSONSchemaProps)) {
    f(schema);
    for s in schema.properties.iter().flat_map(|p| p.values()) {
        each_schema(s, f);
    }
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => each_schema(s, f),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.iter().for_each(|s| each_schema(s, f)),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = &schema.additional_properties {
        each_schema(s, f);
    }
    for list in [&schema.all_of, &schema.any_of, &schema.one_of] {
        list.iter().flatten().for_each(|s| each_schema(s, f));
    }
    if let Some(s) = &schema.not {
        each_schema(s, f);
    }
}

pub(super) fn items_schema(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => Some(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.first(),
        None => None,
    }
}

pub(super) fn additional_schema(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s),
        _ => None,
    }
}

fn preserves_unknown(schema: &JSONSchemaProps) -> bool {
    schema.x_kubernetes_preserve_unknown_fields == Some(true)
}

fn default_value(schema: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, prop) in schema.properties.iter().flatten() {
                let absent = match map.get(name) {
                    None => true,
                    // A null where null is not allowed takes the default, as upstream.
                    Some(Value::Null) => prop.nullable != Some(true),
                    Some(_) => false,
                };
                if absent && let Some(default) = &prop.default {
                    map.insert(name.clone(), default.0.clone());
                }
                if let Some(v) = map.get_mut(name) {
                    default_value(prop, v);
                }
            }
            if let Some(extra) = additional_schema(schema) {
                for v in map.values_mut() {
                    default_value(extra, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = items_schema(schema) {
                items.iter_mut().for_each(|v| default_value(item, v));
            }
        }
        _ => {}
    }
}

fn prune_value(schema: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if schema.x_kubernetes_embedded_resource == Some(true) {
                // An embedded object keeps its apiVersion, kind and metadata as an object does.
                let kept: Vec<(String, Value)> = ROOT_FIELDS
                    .iter()
                    .filter_map(|f| map.remove(*f).map(|v| (f.to_string(), v)))
                    .collect();
                prune_map(schema, map);
                map.extend(kept);
            } else {
                prune_map(schema, map);
            }
        }
        Value::Array(items) => {
            if let Some(item) = items_schema(schema) {
                items.iter_mut().for_each(|v| prune_value(item, v));
            }
        }
        _ => {}
    }
}

fn prune_map(schema: &JSONSchemaProps, map: &mut Map<String, Value>) {
    if let Some(extra) = additional_schema(schema) {
        map.values_mut().for_each(|v| prune_value(extra, v));
        return;
    }
    let props = schema.properties.as_ref();
    if !preserves_unknown(schema) {
        map.retain(|k, _| props.is_some_and(|p| p.contains_key(k)));
    }
    for (name, v) in map.iter_mut() {
        if let Some(prop) = props.and_then(|p| p.get(name)) {
            prune_value(prop, v);
        }
    }
}

/// The JSON type name of a value, as go-openapi names it in messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A path for messages: `spec.replicas`, `spec.items[0]`, or `<root>` at the top.
fn shown(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

pub(super) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

struct Validator<'a> {
    patterns: &'a HashMap<String, Regex>,
    causes: &'a mut Vec<Cause>,
}

impl Validator<'_> {
    fn invalid(&mut self, path: &str, value: &Value, detail: String) {
        self.causes.push(Cause::invalid(
            shown(path),
            value,
            format!("{} {detail}", shown(path)),
        ));
    }

    fn value(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) {
        if value.is_null() {
            if schema.nullable != Some(true) && !preserves_unknown(schema) {
                let ty = schema.type_.as_deref().unwrap_or("object");
                if schema.type_.is_some() || schema.x_kubernetes_int_or_string == Some(true) {
                    self.type_error(path, ty, value);
                }
            }
            return;
        }
        if !self.type_ok(schema, value, path) {
            return;
        }
        if let Some(allowed) = &schema.enum_
            && !allowed.iter().any(|a| a.0 == *value)
        {
            let list: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
            self.causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: shown(path).to_owned(),
                message: format!(
                    "Unsupported value: {value}: supported values: {}",
                    list.join(", ")
                ),
            });
        }
        match value {
            Value::String(s) => self.string(schema, s, value, path),
            Value::Number(_) => self.number(schema, value, path),
            Value::Array(items) => self.array(schema, items, value, path),
            Value::Object(map) => {
                if schema.x_kubernetes_embedded_resource == Some(true) {
                    self.embedded_type(map, path);
                }
                self.object_fields(schema, map, path)
            }
            _ => {}
        }
        for sub in schema.all_of.iter().flatten() {
            self.value(sub, value, path);
        }
        if let Some(any) = &schema.any_of
            && !any.iter().any(|s| self.passes(s, value))
        {
            self.invalid(
                path,
                value,
                "must validate at least one schema (anyOf)".into(),
            );
        }
        if let Some(one) = &schema.one_of {
            let n = one.iter().filter(|s| self.passes(s, value)).count();
            if n != 1 {
                self.invalid(
                    path,
                    value,
                    "must validate one and only one schema (oneOf)".into(),
                );
            }
        }
        if let Some(not) = &schema.not
            && self.passes(not, value)
        {
            self.invalid(path, value, "must not validate the schema (not)".into());
        }
    }

    /// An embedded resource names its apiVersion and kind, as upstream requires.
    fn embedded_type(&mut self, map: &Map<String, Value>, path: &str) {
        for field in ["apiVersion", "kind"] {
            if map
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                self.causes.push(Cause::required_detail(
                    child(path, field),
                    "must not be empty",
                ));
            }
        }
    }

    /// Whether `value` passes `schema` alone (for anyOf, oneOf and not).
    fn passes(&self, schema: &JSONSchemaProps, value: &Value) -> bool {
        let mut causes = Vec::new();
        Validator {
            patterns: self.patterns,
            causes: &mut causes,
        }
        .value(schema, value, "");
        causes.is_empty()
    }

    fn type_error(&mut self, path: &str, expected: &str, value: &Value) {
        let detail = format!(
            "{} in body must be of type {expected}: \"{}\"",
            shown(path),
            type_name(value)
        );
        self.causes
            .push(Cause::type_invalid(shown(path), value, detail));
    }

    fn type_ok(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) -> bool {
        if schema.x_kubernetes_int_or_string == Some(true) {
            if matches!(type_name(value), "integer" | "string") {
                return true;
            }
            self.type_error(path, "integer,string", value);
            return false;
        }
        let Some(expected) = schema.type_.as_deref() else {
            return true;
        };
        let actual = type_name(value);
        let ok = match expected {
            "number" => matches!(actual, "integer" | "number"),
            "integer" => actual == "integer" || value.as_f64().is_some_and(|f| f.fract() == 0.0),
            other => actual == other,
        };
        if !ok {
            self.type_error(path, expected, value);
        }
        ok
    }

    fn string(&mut self, schema: &JSONSchemaProps, s: &str, value: &Value, path: &str) {
        let len = s.chars().count() as i64;
        if let Some(max) = schema.max_length
            && len > max
        {
            self.causes.push(Cause::too_long(shown(path), max as usize));
        }
        if let Some(min) = schema.min_length
            && len < min
        {
            self.invalid(
                path,
                value,
                format!("in body should be at least {min} chars long"),
            );
        }
        if let Some(p) = &schema.pattern
            && let Some(re) = self.patterns.get(p)
            && !re.is_match(s)
        {
            self.invalid(path, value, format!("in body should match '{p}'"));
        }
        if let Some(format) = &schema.format
            && !format_ok(format, s)
        {
            self.invalid(
                path,
                value,
                format!("in body must be of type {format}: \"{s}\""),
            );
        }
    }

    fn number(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) {
        let Some(n) = value.as_f64() else {
            return;
        };
        if let Some(max) = schema.maximum {
            if schema.exclusive_maximum == Some(true) && n >= max {
                self.invalid(
                    path,
                    value,
                    format!("in body should be less than {}", num(max)),
                );
            } else if n > max {
                let detail = format!("in body should be less than or equal to {}", num(max));
                self.invalid(path, value, detail);
            }
        }
        if let Some(min) = schema.minimum {
            if schema.exclusive_minimum == Some(true) && n <= min {
                self.invalid(
                    path,
                    value,
                    format!("in body should be greater than {}", num(min)),
                );
            } else if n < min {
                let detail = format!("in body should be greater than or equal to {}", num(min));
                self.invalid(path, value, detail);
            }
        }
        if let Some(m) = schema.multiple_of
            && m > 0.0
            && (n / m).fract() != 0.0
        {
            self.invalid(
                path,
                value,
                format!("in body should be a multiple of {}", num(m)),
            );
        }
    }

    fn array(&mut self, schema: &JSONSchemaProps, items: &[Value], value: &Value, path: &str) {
        if let Some(max) = schema.max_items
            && items.len() as i64 > max
        {
            self.causes.push(Cause::too_many(
                shown(path),
                items.len(),
                max.max(0) as usize,
            ));
        }
        if let Some(min) = schema.min_items
            && (items.len() as i64) < min
        {
            self.invalid(
                path,
                value,
                format!("in body should have at least {min} items"),
            );
        }
        let list_type = schema.x_kubernetes_list_type.as_deref();
        // Duplicates found by hashing a canonical encoding: linear in the list, whatever
        // its length (a quadratic scan of a 3 MiB list would hold a worker for minutes).
        if schema.unique_items == Some(true) || list_type == Some("set") {
            let mut seen = std::collections::HashSet::new();
            for (i, v) in items.iter().enumerate() {
                if !seen.insert(canonical(v)) {
                    self.causes
                        .push(Cause::duplicate(format!("{}[{i}]", shown(path)), v));
                }
            }
        }
        if list_type == Some("map") {
            let keys = schema
                .x_kubernetes_list_map_keys
                .as_deref()
                .unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            for (i, v) in items.iter().enumerate() {
                let key: Vec<&Value> = keys
                    .iter()
                    .map(|k| v.get(k).unwrap_or(&Value::Null))
                    .collect();
                let encoded: Vec<String> = key.iter().map(|v| canonical(v)).collect();
                if !seen.insert(encoded) {
                    let shown_key: Vec<String> = keys
                        .iter()
                        .zip(&key)
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    self.causes.push(Cause::duplicate_shown(
                        format!("{}[{i}]", shown(path)),
                        &format!("map[string]interface {{}}{{{}}}", shown_key.join(", ")),
                        "",
                    ));
                }
            }
        }
        if let Some(item) = items_schema(schema) {
            for (i, v) in items.iter().enumerate() {
                self.value(item, v, &format!("{path}[{i}]"));
            }
        }
    }

    /// An object's properties against `schema`.
    fn object_fields(&mut self, schema: &JSONSchemaProps, map: &Map<String, Value>, path: &str) {
        for name in schema.required.iter().flatten() {
            if !map.contains_key(name) {
                self.causes.push(Cause::required(child(path, name)));
            }
        }
        let count = map.len() as i64;
        if let Some(max) = schema.max_properties
            && count > max
        {
            self.causes
                .push(Cause::too_many(shown(path), map.len(), max.max(0) as usize));
        }
        if let Some(min) = schema.min_properties
            && count < min
        {
            let value = Value::Object(map.clone());
            self.invalid(
                path,
                &value,
                format!("in body should have at least {min} properties"),
            );
        }
        let extra = additional_schema(schema);
        for (name, v) in map {
            if let Some(prop) = schema.properties.as_ref().and_then(|p| p.get(name)) {
                self.value(prop, v, &child(path, name));
            } else if let Some(extra) = extra {
                self.value(extra, v, &format!("{}[{name}]", shown(path)));
            }
        }
    }
}

/// A value's JSON with object keys sorted: equal values encode alike.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by_key(|(k, _)| *k);
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String((*k).clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// A number as Go's %v prints it: integers without a fraction.
fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// The string formats upstream checks (others are accepted as is, as upstream does).
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "int32" => s.parse::<i32>().is_ok(),
        "int64" => s.parse::<i64>().is_ok(),
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "uuid" => uuid_ok(s),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, len)| {
            ip.parse::<std::net::IpAddr>().is_ok() && len.parse::<u8>().is_ok()
        }),
        "hostname" => {
            !s.is_empty()
                && crate::meta::validate_name(crate::meta::NameRule::Subdomain, s).is_empty()
        }
        "email" => s
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        _ => true,
    }
}

fn uuid_ok(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Structural {
        Structural::new(Arc::new(serde_json::from_value(v).unwrap()))
    }

    fn widget() -> Structural {
        schema(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": { "type": "integer", "minimum": 1, "maximum": 10 },
                        "color": { "type": "string", "enum": ["red", "blue"], "default": "red" },
                        "name": { "type": "string", "pattern": "^[a-z]+$", "maxLength": 8 },
                        "port": { "x-kubernetes-int-or-string": true },
                        "tags": { "type": "array", "items": { "type": "string" }, "x-kubernetes-list-type": "set" },
                        "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                        "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["port"],
                            "items": { "type": "object", "properties": {
                                "port": { "type": "integer" },
                                "name": { "type": "string", "default": "http" }
                            }}
                        }
                    }
                },
                "status": { "type": "object", "properties": { "ready": { "type": "boolean" } } }
            }
        }))
    }

    fn messages(obj: Value) -> Vec<String> {
        widget()
            .validate(&obj, None)
            .iter()
            .map(Cause::render)
            .collect()
    }

    #[test]
    fn a_valid_object_has_no_causes() {
        let obj = json!({ "apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "a"},
            "spec": { "size": 3, "color": "blue", "name": "abc", "port": "http", "tags": ["a", "b"],
                      "labels": {"a": "b"}, "free": {"anything": [1, {"x": null}]},
                      "ports": [{"port": 80}, {"port": 443}] } });
        assert_eq!(messages(obj), Vec::<String>::new());
    }

    #[test]
    fn each_rule_answers_with_its_path_and_upstream_message() {
        let cases = [
            (
                json!({"spec": {"size": "3"}}),
                "spec.size: Invalid value: \"3\": spec.size in body must be of type integer: \"string\"",
            ),
            (json!({"spec": {}}), "spec.size: Required value"),
            (
                json!({"spec": {"size": 11}}),
                "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
            ),
            (
                json!({"spec": {"size": 0}}),
                "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
            ),
            (
                json!({"spec": {"size": 1, "color": "green"}}),
                "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
            ),
            (
                json!({"spec": {"size": 1, "name": "ABC"}}),
                "spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'",
            ),
            (
                json!({"spec": {"size": 1, "name": "abcdefghij"}}),
                "spec.name: Too long: may not be more than 8 bytes",
            ),
            (
                json!({"spec": {"size": 1, "port": true}}),
                "spec.port: Invalid value: true: spec.port in body must be of type integer,string: \"boolean\"",
            ),
            (
                json!({"spec": {"size": 1, "tags": ["a", "a"]}}),
                "spec.tags[1]: Duplicate value: \"a\"",
            ),
            (
                json!({"spec": {"size": 1, "labels": {"a": 1}}}),
                "spec.labels[a]: Invalid value: 1: spec.labels[a] in body must be of type string: \"integer\"",
            ),
            (
                json!({"spec": {"size": 1, "ports": [{"port": 80}, {"port": 80}]}}),
                "spec.ports[1]: Duplicate value: map[string]interface {}{\"port\":80}",
            ),
            (
                json!({"spec": {"size": 1, "ports": [{"port": "x"}]}}),
                "spec.ports[0].port: Invalid value: \"x\": spec.ports[0].port in body must be of type integer: \"string\"",
            ),
            (
                json!({"spec": {"size": null}}),
                "spec.size: Invalid value: null: spec.size in body must be of type integer: \"null\"",
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(messages(obj.clone()), vec![want.to_owned()], "{obj}");
        }
    }

    #[test]
    fn an_embedded_resource_names_its_type() {
        let embedded = schema(json!({"type": "object", "properties": {"template": {
            "type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true}}}));
        let causes: Vec<String> = embedded
            .validate(&json!({"template": {"kind": "", "spec": {}}}), None)
            .iter()
            .map(Cause::render)
            .collect();
        assert_eq!(
            causes,
            [
                "template.apiVersion: Required value: must not be empty",
                "template.kind: Required value: must not be empty"
            ]
        );
        let named = json!({"template": {"apiVersion": "v1", "kind": "Pod"}});
        assert!(embedded.validate(&named, None).is_empty());
    }

    #[test]
    fn pruning_drops_what_the_schema_does_not_know() {
        let obj = json!({ "apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "a", "labels": {"k": "v"}},
            "extra": 1,
            "spec": { "size": 1, "unknown": true, "free": {"kept": {"deep": 1}}, "labels": {"any": "kept"},
                      "ports": [{"port": 1, "junk": 2}] } });
        let pruned = widget().prune(&obj);
        assert_eq!(
            pruned,
            json!({ "apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "a", "labels": {"k": "v"}},
            "spec": { "size": 1, "free": {"kept": {"deep": 1}}, "labels": {"any": "kept"}, "ports": [{"port": 1}] } })
        );
    }

    #[test]
    fn defaults_fill_absent_fields_at_every_depth() {
        let mut obj =
            json!({ "spec": { "size": 1, "ports": [{"port": 1}, {"port": 2, "name": "x"}] } });
        widget().default(&mut obj);
        assert_eq!(obj["spec"]["color"], "red");
        assert_eq!(
            obj["spec"]["ports"],
            json!([{"port": 1, "name": "http"}, {"port": 2, "name": "x"}])
        );
        // A set value is kept.
        let mut obj = json!({ "spec": { "size": 1, "color": "blue" } });
        widget().default(&mut obj);
        assert_eq!(obj["spec"]["color"], "blue");
    }

    #[test]
    fn duplicates_in_a_long_list_are_found_in_linear_time() {
        let mut tags: Vec<Value> = (0..200_000).map(|i| json!(format!("t{i}"))).collect();
        tags.push(json!("t7"));
        let obj = json!({"spec": {"size": 1, "tags": tags}});
        let start = std::time::Instant::now();
        assert_eq!(
            messages(obj),
            ["spec.tags[200000]: Duplicate value: \"t7\""]
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let set = schema(
            json!({"type": "object", "properties": {"s": {"type": "array",
            "x-kubernetes-list-type": "set", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}),
        );
        let causes = set.validate(&json!({"s": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]}), None);
        assert_eq!(causes.len(), 1, "key order does not hide a duplicate");
    }

    #[test]
    fn a_hostile_pattern_is_refused_not_compiled_without_bound() {
        assert!(compile_pattern("(a{1000}){1000}").is_err());
        assert!(compile_pattern(&"a".repeat(MAX_PATTERN + 1)).is_err());
        assert!(compile_pattern("^[a-z]+$").is_ok());
    }
}
