//! The rules of CustomResourceDefinition objects themselves (upstream's apiextensions
//! strategy and validation): defaults, the stored version recorded at creation, a delete that
//! keeps the definition terminating until its objects are gone, and the checks of names,
//! scope, versions and structural schemas.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CLEANUP_FINALIZER, columns, schema};
use crate::meta::{self, NameRule};
use crate::registry::Strategy;
use crate::status::Cause;

pub struct Definitions;
pub static DEFINITIONS: Definitions = Definitions;

/// Groups only the Kubernetes project may define kinds in, without its approval annotation.
const PROTECTED_SUFFIXES: [&str; 2] = [".k8s.io", ".kubernetes.io"];
const APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

impl Strategy for Definitions {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let spec = meta::object_at(obj, &["spec"]);
        let kind = spec
            .get("names")
            .and_then(|n| n.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut)
            && !kind.is_empty()
        {
            meta::default_field(names, "listKind", json!(format!("{kind}List")));
            meta::default_field(names, "singular", json!(kind.to_lowercase()));
        }
        let conversion = meta::object_at(obj, &["spec", "conversion"]);
        meta::default_field(conversion, "strategy", json!("None"));
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        let storage = obj["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["storage"] == true)
            .and_then(|v| v["name"].as_str())
            .map(str::to_owned);
        obj["status"] = json!({
            "acceptedNames": { "plural": "", "kind": "" },
            "conditions": [],
            "storedVersions": storage.into_iter().collect::<Vec<_>>(),
        });
    }
    // A definition is held by its cleanup finalizer until its custom resources are gone.
    fn deletes_gracefully(&self) -> bool {
        true
    }
    fn terminate(&self, obj: &mut Value) -> bool {
        let mut changed = false;
        let finalizers = meta::finalizers(obj);
        if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
            let mut finalizers = finalizers;
            finalizers.push(CLEANUP_FINALIZER.to_owned());
            meta::metadata_mut(obj).insert("finalizers".into(), json!(finalizers));
            changed = true;
        }
        // Set once: the controller moves it on as it deletes the objects.
        let marked = obj["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Terminating"));
        if !marked {
            let pending = condition(
                "Terminating",
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            );
            changed |= set_condition(obj, pending);
        }
        changed
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate(obj, old)
    }
}

/// A condition as upstream writes it, stamped now.
pub fn condition(type_: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_,
        "status": "True",
        "lastTransitionTime": meta::now_rfc3339(),
        "reason": reason,
        "message": message,
    })
}

/// Sets a condition in status.conditions; the transition time moves only when the status
/// does. Answers whether anything changed.
pub fn set_condition(obj: &mut Value, new: Value) -> bool {
    let conditions = meta::object_at(obj, &["status"])
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("made an array above");
    match list.iter_mut().find(|c| c["type"] == new["type"]) {
        Some(old) => {
            let same = old["status"] == new["status"]
                && old["reason"] == new["reason"]
                && old["message"] == new["message"];
            if same {
                return false;
            }
            let mut new = new;
            if old["status"] == new["status"] {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = new;
            true
        }
        None => {
            list.push(new);
            true
        }
    }
}

/// Upstream's DNS-1035 label check, with its message.
fn dns1035(field: &str, value: &str, causes: &mut Vec<Cause>) {
    let ok = value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        causes.push(Cause::invalid(
            field,
            &json!(value),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ));
    }
}

fn kind_name(field: &str, value: &str, causes: &mut Vec<Cause>) {
    let mut inner = Vec::new();
    dns1035(field, &value.to_lowercase(), &mut inner);
    if !inner.is_empty() {
        causes.push(Cause::invalid(
            field,
            &json!(value),
            "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
        ));
    }
}

/// Every problem with a definition (`old` on update).
pub fn validate(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let crd = match CustomResourceDefinition::deserialize(obj) {
        Ok(crd) => crd,
        // Type errors are answered by normalization.
        Err(_) => return causes,
    };
    let spec = &crd.spec;
    let name = meta::name(obj);
    let group = spec.group.as_str();
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else {
        for msg in meta::validate_name(NameRule::Subdomain, group) {
            causes.push(Cause::invalid("spec.group", &json!(group), msg));
        }
        if !group.contains('.') {
            causes.push(Cause::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        }
        let approved = obj["metadata"]["annotations"][APPROVAL_ANNOTATION].is_string();
        if PROTECTED_SUFFIXES
            .iter()
            .any(|s| group.ends_with(s) || group == &s[1..])
            && !approved
        {
            causes.push(Cause::required_detail(
                format!("metadata.annotations[{APPROVAL_ANNOTATION}]"),
                &format!("protected groups must have approval annotation \"{APPROVAL_ANNOTATION}\", see https://github.com/kubernetes/enhancements/pull/1111"),
            ));
        }
    }
    let names = &spec.names;
    if name != format!("{}.{group}", names.plural) {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if names.plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    } else {
        dns1035("spec.names.plural", &names.plural, &mut causes);
    }
    if let Some(singular) = names.singular.as_deref().filter(|s| !s.is_empty()) {
        dns1035("spec.names.singular", singular, &mut causes);
    }
    if names.kind.is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    } else {
        kind_name("spec.names.kind", &names.kind, &mut causes);
    }
    if let Some(list_kind) = names.list_kind.as_deref() {
        kind_name("spec.names.listKind", list_kind, &mut causes);
        if list_kind == names.kind {
            causes.push(Cause::invalid(
                "spec.names.listKind",
                &json!(list_kind),
                "kind and listKind may not be the same",
            ));
        }
    }
    for (i, short) in names.short_names.iter().flatten().enumerate() {
        dns1035(&format!("spec.names.shortNames[{i}]"), short, &mut causes);
    }
    for (i, category) in names.categories.iter().flatten().enumerate() {
        dns1035(
            &format!("spec.names.categories[{i}]"),
            category,
            &mut causes,
        );
    }
    match spec.scope.as_str() {
        "Cluster" | "Namespaced" => {}
        "" => causes.push(Cause::required("spec.scope")),
        other => causes.push(Cause::unsupported(
            "spec.scope",
            &json!(other),
            &["Cluster", "Namespaced"],
        )),
    }
    if spec.versions.is_empty() {
        causes.push(Cause::required_detail(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if spec.versions.iter().filter(|v| v.storage).count() != 1 {
        causes.push(Cause::invalid_shown(
            "spec.versions",
            "[]apiextensions.CustomResourceDefinitionVersion{...}",
            "must have exactly one version marked as storage version",
        ));
    }
    if !spec.versions.is_empty() && !spec.versions.iter().any(|v| v.served) {
        causes.push(Cause::invalid_shown(
            "spec.versions",
            "[]apiextensions.CustomResourceDefinitionVersion{...}",
            "must have at least one version marked as served",
        ));
    }
    for (i, v) in spec.versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        dns1035(&format!("{path}.name"), &v.name, &mut causes);
        if spec.versions[..i].iter().any(|w| w.name == v.name) {
            causes.push(Cause::duplicate(format!("{path}.name"), &json!(v.name)));
        }
        if let Some(scale) = v.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
            let at = format!("{path}.subresources.scale");
            let simple = |p: &str, roots: &[&str]| {
                roots.iter().any(|r| {
                    p.strip_prefix(r).is_some_and(|rest| {
                        !rest.is_empty()
                            && rest
                                .split('.')
                                .all(|f| !f.is_empty() && !f.contains(['[', ']']))
                    })
                })
            };
            if !simple(&scale.spec_replicas_path, &[".spec."]) {
                causes.push(Cause::invalid(
                    format!("{at}.specReplicasPath"),
                    &json!(scale.spec_replicas_path),
                    "should be a json path under .spec",
                ));
            }
            if !simple(&scale.status_replicas_path, &[".status."]) {
                causes.push(Cause::invalid(
                    format!("{at}.statusReplicasPath"),
                    &json!(scale.status_replicas_path),
                    "should be a json path under .status",
                ));
            }
            if let Some(p) = scale.label_selector_path.as_deref()
                && !simple(p, &[".spec.", ".status."])
            {
                causes.push(Cause::invalid(
                    format!("{at}.labelSelectorPath"),
                    &json!(p),
                    "should be a json path under either .spec or .status",
                ));
            }
        }
        let fields = v.selectable_fields.as_deref().unwrap_or_default();
        if fields.len() > MAX_SELECTABLE_FIELDS {
            causes.push(Cause::too_many(
                format!("{path}.selectableFields"),
                fields.len(),
                MAX_SELECTABLE_FIELDS,
            ));
        }
        let root = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        for (j, f) in fields.iter().enumerate() {
            let at = format!("{path}.selectableFields[{j}].jsonPath");
            if fields[..j].iter().any(|g| g.json_path == f.json_path) {
                causes.push(Cause::duplicate(at, &json!(f.json_path)));
            } else if root.is_some_and(|r| !selectable_scalar(r, &f.json_path)) {
                causes.push(Cause::invalid(
                    at,
                    &json!(f.json_path),
                    "must be a simple path (.spec.field) to a string, integer or boolean field of the schema",
                ));
            }
        }
        for (j, c) in v.additional_printer_columns.iter().flatten().enumerate() {
            let at = format!("{path}.additionalPrinterColumns[{j}]");
            if c.name.is_empty() {
                causes.push(Cause::required(format!("{at}.name")));
            }
            if !columns::TYPES.contains(&c.type_.as_str()) {
                causes.push(Cause::unsupported(
                    format!("{at}.type"),
                    &json!(c.type_),
                    &columns::TYPES,
                ));
            }
            if let Some(f) = c
                .format
                .as_deref()
                .filter(|f| !f.is_empty() && !columns::FORMATS.contains(f))
            {
                causes.push(Cause::unsupported(
                    format!("{at}.format"),
                    &json!(f),
                    &columns::FORMATS,
                ));
            }
            if c.json_path.is_empty() {
                causes.push(Cause::required(format!("{at}.jsonPath")));
            } else if let Err(e) = columns::check_path(&c.json_path) {
                causes.push(Cause::invalid(
                    format!("{at}.jsonPath"),
                    &json!(c.json_path),
                    e,
                ));
            }
        }
        match v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        {
            None => causes.push(Cause::required_detail(
                format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(root) => structural(
                root,
                &format!("{path}.schema.openAPIV3Schema"),
                true,
                &mut causes,
            ),
        }
    }
    if let Some(old) = old.and_then(|o| CustomResourceDefinition::deserialize(o).ok()) {
        if old.spec.scope != spec.scope {
            causes.push(Cause::invalid(
                "spec.scope",
                &json!(spec.scope),
                "field is immutable",
            ));
        }
        if old.spec.group != spec.group {
            causes.push(Cause::invalid(
                "spec.group",
                &json!(spec.group),
                "field is immutable",
            ));
        }
    }
    causes
}

/// A CRD version may declare at most this many selectable fields, as upstream.
const MAX_SELECTABLE_FIELDS: usize = 8;

/// Whether `path` (`.spec.color`) names a scalar field of the schema a selector can compare.
fn selectable_scalar(root: &JSONSchemaProps, path: &str) -> bool {
    let Some(rest) = path.strip_prefix('.') else {
        return false;
    };
    let mut schema = root;
    for field in rest.split('.') {
        let Some(next) = schema.properties.as_ref().and_then(|p| p.get(field)) else {
            return false;
        };
        schema = next;
    }
    matches!(
        schema.type_.as_deref(),
        Some("string" | "integer" | "boolean")
    )
}

/// Upstream's structural-schema rules, in part: every field has a type (unless it is
/// int-or-string or keeps unknown fields), the root is an object, arrays say what they hold,
/// patterns compile, list types are known.
fn structural(s: &JSONSchemaProps, path: &str, root: bool, causes: &mut Vec<Cause>) {
    let free = s.x_kubernetes_int_or_string == Some(true)
        || s.x_kubernetes_preserve_unknown_fields == Some(true);
    match s.type_.as_deref() {
        None | Some("") if root => causes.push(Cause::required_detail(
            format!("{path}.type"),
            "must not be empty at the root",
        )),
        Some(t) if root && t != "object" => causes.push(Cause::invalid(
            format!("{path}.type"),
            &json!(t),
            "must be object at the root",
        )),
        None | Some("") if !free => causes.push(Cause::required_detail(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        )),
        Some(t)
            if !matches!(
                t,
                "object" | "array" | "string" | "integer" | "number" | "boolean"
            ) =>
        {
            causes.push(Cause::unsupported(
                format!("{path}.type"),
                &json!(t),
                &["array", "boolean", "integer", "number", "object", "string"],
            ))
        }
        _ => {}
    }
    if s.type_.as_deref() == Some("array") && s.items.is_none() {
        causes.push(Cause::required_detail(
            format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(rules) = &s.x_kubernetes_validations {
        super::cel::check_rules(rules, &format!("{path}.x-kubernetes-validations"), causes);
    }
    // A default must itself be valid by its schema (rules included), as upstream checks it
    // when the definition is written rather than at every object it fills in.
    if let Some(default) = &s.default {
        let node = schema::Structural::new(std::sync::Arc::new(s.clone()));
        causes.extend(node.validate_value(&default.0, &format!("{path}.default")));
    }
    if let Some(p) = &s.pattern
        && let Err(e) = schema::compile_pattern(p)
    {
        causes.push(Cause::invalid(
            format!("{path}.pattern"),
            &json!(p),
            format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    if let Some(t) = s.x_kubernetes_list_type.as_deref() {
        if !matches!(t, "atomic" | "set" | "map") {
            causes.push(Cause::unsupported(
                format!("{path}.x-kubernetes-list-type"),
                &json!(t),
                &["atomic", "map", "set"],
            ));
        }
        if t == "map"
            && s.x_kubernetes_list_map_keys
                .as_ref()
                .is_none_or(|k| k.is_empty())
        {
            causes.push(Cause::required_detail(
                format!("{path}.x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
    }
    if s.properties.is_some() && s.additional_properties.is_some() {
        causes.push(Cause::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    for (name, prop) in s.properties.iter().flatten() {
        structural(prop, &format!("{path}.properties[{name}]"), false, causes);
    }
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => {
            structural(item, &format!("{path}.items"), false, causes)
        }
        Some(JSONSchemaPropsOrArray::Schemas(_)) => causes.push(Cause::forbidden(
            format!("{path}.items"),
            "items must be a schema object and not an array",
        )),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &s.additional_properties {
        structural(
            extra,
            &format!("{path}.additionalProperties"),
            false,
            causes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
        })
    }

    fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
        validate(obj, old).iter().map(Cause::render).collect()
    }

    #[test]
    fn a_valid_definition_passes_and_is_defaulted() {
        let mut obj = crd();
        DEFINITIONS.default(&mut obj);
        assert_eq!(messages(&obj, None), Vec::<String>::new());
        assert_eq!(obj["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(obj["spec"]["names"]["singular"], "widget");
        DEFINITIONS.prepare_for_create(&mut obj);
        assert_eq!(obj["status"]["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn each_rule_names_its_field() {
        type Change = fn(&mut Value);
        let cases: Vec<(Change, &str)> = vec![
            (
                |o| o["metadata"]["name"] = json!("w.example.com"),
                "metadata.name: Invalid value: \"w.example.com\": must be spec.names.plural+\".\"+spec.group",
            ),
            (
                |o| {
                    o["spec"]["group"] = json!("example");
                    o["metadata"]["name"] = json!("widgets.example")
                },
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
            ),
            (
                |o| o["spec"]["scope"] = json!("Everywhere"),
                "spec.scope: Unsupported value: \"Everywhere\": supported values: \"Cluster\", \"Namespaced\"",
            ),
            (
                |o| o["spec"]["versions"][0]["storage"] = json!(false),
                "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must have exactly one version marked as storage version",
            ),
            (
                |o| o["spec"]["versions"][0]["schema"] = json!({}),
                "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
            ),
            (
                |o| {
                    o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
                        ["size"] = json!({})
                },
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields",
            ),
            (
                |o| o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["type"] = json!("string"),
                "spec.versions[0].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root",
            ),
            (
                |o| {
                    o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
                        ["size"]["default"] = json!("big")
                },
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].default: Invalid value: \"big\": spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].default in body must be of type integer: \"string\"",
            ),
            (
                |o| {
                    let spec = &mut o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
                        ["spec"];
                    spec["default"] = json!({"size": 0});
                    spec["x-kubernetes-validations"] = json!([{"rule": "self.size > 0"}]);
                },
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].default: Invalid value: \"object\": failed rule: self.size > 0",
            ),
            (
                |o| {
                    o["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
                        json!([{"rule": "self.size >"}])
                },
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.size >\": compilation failed: ",
            ),
            (
                |o| o["spec"]["names"]["kind"] = json!("Wid get"),
                "spec.names.kind: Invalid value: \"Wid get\": may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ),
        ];
        for (change, want) in cases {
            let mut obj = crd();
            change(&mut obj);
            let got = messages(&obj, None);
            assert!(
                got.len() == 1 && got[0].starts_with(want),
                "{got:?}, wanted {want}"
            );
        }
    }

    #[test]
    fn protected_groups_need_approval_and_scope_is_immutable() {
        let mut obj = crd();
        obj["spec"]["group"] = json!("things.k8s.io");
        obj["metadata"]["name"] = json!("widgets.things.k8s.io");
        assert_eq!(messages(&obj, None).len(), 1);
        obj["metadata"]["annotations"] = json!({ APPROVAL_ANNOTATION: "https://example.com/pr/1" });
        assert!(messages(&obj, None).is_empty());
        let old = crd();
        let mut new = crd();
        new["spec"]["scope"] = json!("Cluster");
        assert_eq!(
            messages(&new, Some(&old)),
            ["spec.scope: Invalid value: \"Cluster\": field is immutable"]
        );
    }

    #[test]
    fn deleting_adds_the_cleanup_finalizer_and_a_terminating_condition_once() {
        let mut obj = crd();
        assert!(DEFINITIONS.terminate(&mut obj));
        assert_eq!(meta::finalizers(&obj), [CLEANUP_FINALIZER]);
        assert_eq!(
            obj["status"]["conditions"][0]["reason"],
            "InstanceDeletionPending"
        );
        assert!(!DEFINITIONS.terminate(&mut obj));
    }
}
