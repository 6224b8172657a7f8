//! storage.k8s.io validation: StorageClass, as upstream's pkg/apis/storage/validation.

use serde_json::{Value, json};

use super::fields::{self, text};
use crate::meta::default_field;
use crate::status::Cause;

/// Upstream's bounds on a StorageClass's parameters.
const MAX_PARAMETERS: usize = 512;
const MAX_PARAMETERS_BYTES: usize = 256 * 1024;

/// reclaimPolicy and volumeBindingMode as upstream defaults them.
pub fn default_storage_class(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        default_field(map, "reclaimPolicy", json!("Delete"));
        default_field(map, "volumeBindingMode", json!("Immediate"));
    }
}

pub fn storage_class(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let provisioner = text(obj, "provisioner");
    if provisioner.is_empty() {
        causes.push(Cause::required("provisioner"));
    } else {
        fields::qualified_name("provisioner", provisioner, &mut causes);
    }
    if let Some(params) = obj["parameters"].as_object() {
        if params.len() > MAX_PARAMETERS {
            causes.push(Cause::invalid_shown(
                "parameters",
                &params.len().to_string(),
                format!("must have at most {MAX_PARAMETERS} items"),
            ));
        }
        let size: usize = params
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > MAX_PARAMETERS_BYTES {
            causes.push(Cause::too_long("parameters", MAX_PARAMETERS_BYTES));
        }
        if params.keys().any(String::is_empty) {
            causes.push(Cause::invalid(
                "parameters",
                &obj["parameters"],
                "key must not be empty",
            ));
        }
    }
    let reclaim = &obj["reclaimPolicy"];
    if !reclaim.is_null() && !matches!(reclaim.as_str(), Some("Delete" | "Retain")) {
        causes.push(Cause::unsupported(
            "reclaimPolicy",
            reclaim,
            &["Delete", "Retain"],
        ));
    }
    let binding = &obj["volumeBindingMode"];
    if !binding.is_null() && !matches!(binding.as_str(), Some("Immediate" | "WaitForFirstConsumer"))
    {
        causes.push(Cause::unsupported(
            "volumeBindingMode",
            binding,
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
    if let Some(old) = old {
        for field in [
            "parameters",
            "provisioner",
            "reclaimPolicy",
            "volumeBindingMode",
        ] {
            if old[field] != obj[field] {
                causes.push(Cause::forbidden(
                    field,
                    format!("updates to {field} are forbidden."),
                ));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes_are_validated_as_upstream() {
        let mut ok = json!({"provisioner": "example.com/nfs", "parameters": {"server": "a"}});
        default_storage_class(&mut ok);
        assert_eq!(
            (
                ok["reclaimPolicy"].as_str(),
                ok["volumeBindingMode"].as_str()
            ),
            (Some("Delete"), Some("Immediate"))
        );
        assert!(storage_class(&ok, None).is_empty());
        let bad = json!({"provisioner": "", "reclaimPolicy": "Recycle"});
        let fields: Vec<String> = storage_class(&bad, None)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["provisioner", "reclaimPolicy"]);
        let mut moved = ok.clone();
        moved["provisioner"] = json!("example.com/other");
        let causes = storage_class(&moved, Some(&ok));
        assert_eq!(
            causes[0].message,
            "Forbidden: updates to provisioner are forbidden."
        );
    }
}
