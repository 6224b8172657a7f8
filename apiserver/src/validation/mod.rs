//! Validation with upstream's field paths and messages: here the object metadata every kind
//! shares (name, namespace, labels, annotations, finalizers, ownerReferences); the kinds' own
//! rules live in one module per API group, called from their strategies.

pub mod apps;
pub mod batch;
pub mod certificates;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod events;
pub mod fields;
pub mod networking;
pub mod node;
pub mod pods;
pub mod policy;
pub mod rbac;
pub mod scheduling;
pub mod storage;

use serde_json::Value;

use crate::meta;
use crate::registry::ResourceInfo;
use crate::status::Cause;

/// Upstream's limit on the total size of annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

pub fn validate_metadata(resource: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = meta::name(obj);
    for msg in meta::validate_name(resource.strategy.name_rule(), name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &Value::String(name.to_owned()),
            msg,
        ));
    }
    if resource.namespaced && meta::namespace(obj).is_empty() {
        causes.push(Cause::required("metadata.namespace"));
    }
    if let Some(labels) = meta::labels(obj) {
        for (k, v) in labels {
            for msg in common::selector::validate_qualified_name(k) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    msg,
                ));
            }
            match v.as_str() {
                Some(s) => {
                    for msg in common::selector::validate_label_value(s) {
                        causes.push(Cause::invalid("metadata.labels", v, msg));
                    }
                }
                None => causes.push(Cause::invalid("metadata.labels", v, "must be a string")),
            }
        }
    }
    if let Some(annotations) = meta::metadata(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            for msg in common::selector::validate_qualified_name(&k.to_lowercase()) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    msg,
                ));
            }
        }
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: format!("Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes"),
            });
        }
    }
    for (i, f) in meta::finalizers(obj).iter().enumerate() {
        for msg in common::selector::validate_qualified_name(f) {
            causes.push(Cause::invalid(
                format!("metadata.finalizers[{i}]"),
                &Value::String(f.clone()),
                msg,
            ));
        }
    }
    let owners = meta::metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array);
    for (i, owner) in owners.into_iter().flatten().enumerate() {
        for field in ["apiVersion", "kind", "name", "uid"] {
            if owner[field].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(format!(
                    "metadata.ownerReferences[{i}].{field}"
                )));
            }
        }
    }
    causes
}

/// Metadata an update may not change.
pub fn validate_metadata_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let (n, o) = (meta::meta_str(new, field), meta::meta_str(old, field));
        if n != o {
            causes.push(Cause::invalid(
                format!("metadata.{field}"),
                &Value::String(n.to_owned()),
                "field is immutable",
            ));
        }
    }
    causes
}

/// What the validation modules' table tests compare: (field, message) of each cause.
#[cfg(test)]
pub(crate) mod testing {
    use crate::status::Cause;

    pub fn pairs(causes: Vec<Cause>) -> Vec<(String, String)> {
        causes.into_iter().map(|c| (c.field, c.message)).collect()
    }

    /// Asserts `got` has exactly the causes `want` lists, in order; `what` names the case.
    pub fn check(got: Vec<Cause>, want: &[(&str, &str)], what: &dyn std::fmt::Display) {
        let want: Vec<_> = want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(pairs(got), want, "{what}");
    }
}
