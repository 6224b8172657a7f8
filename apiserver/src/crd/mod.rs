//! CustomResourceDefinitions (apiextensions.k8s.io/v1): what an established definition serves,
//! the strategy of its custom resources, the definitions' own rules, and the controller that
//! accepts their names, establishes them and deletes their objects when they go.
//!
//! A definition becomes served resources in the watch cache, as the cache applies it, so a
//! custom resource is served from the first request after the definition is established and
//! discovery follows within the same moment.

mod cel;
pub mod columns;
pub mod controller;
pub mod definition;
pub mod schema;

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames,
};
use serde::Deserialize;
use serde_json::Value;

use crate::registry::subresources::{ScalePaths, ScaleSelector};
use crate::registry::{CustomNames, ResourceInfo, Strategy};
use crate::status::Cause;
use crate::table::Printer;

pub use definition::DEFINITIONS;

/// The finalizer that holds a definition until its custom resources are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Where definitions are kept below the store's root.
pub const STORAGE_PATH: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// A definition's name from its store key (the key's last segment).
pub fn name_of_key(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The definition's condition of `type_`, if set.
pub fn condition<'a>(crd: &'a CustomResourceDefinition, type_: &str) -> Option<&'a str> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

fn is_true(crd: &CustomResourceDefinition, type_: &str) -> bool {
    condition(crd, type_) == Some("True")
}

/// The names the definition serves under: those the naming controller accepted.
fn accepted_names(crd: &CustomResourceDefinition) -> Option<&CustomResourceDefinitionNames> {
    crd.status
        .as_ref()?
        .accepted_names
        .as_ref()
        .filter(|n| !n.plural.is_empty() && !n.kind.is_empty())
}

/// The resources a stored definition serves: one per served version, once it is
/// established; none before, or for a value that is not a definition.
pub fn served(value: &Value) -> Vec<Arc<ResourceInfo>> {
    let Ok(crd) = CustomResourceDefinition::deserialize(value) else {
        return Vec::new();
    };
    if !is_true(&crd, "Established") {
        return Vec::new();
    }
    let Some(accepted) = accepted_names(&crd) else {
        return Vec::new();
    };
    let names = CustomNames {
        group: crd.spec.group.clone(),
        kind: accepted.kind.clone(),
        list_kind: accepted
            .list_kind
            .clone()
            .unwrap_or_else(|| format!("{}List", accepted.kind)),
        plural: accepted.plural.clone(),
        singular: accepted
            .singular
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| accepted.kind.to_lowercase()),
        short_names: accepted.short_names.clone().unwrap_or_default(),
        categories: accepted.categories.clone().unwrap_or_default(),
    };
    let namespaced = crd.spec.scope == "Namespaced";
    let terminating = is_true(&crd, "Terminating");
    let mut versions: Vec<_> = crd.spec.versions.iter().filter(|v| v.served).collect();
    versions.sort_by(|a, b| version_order(&a.name, &b.name));
    versions
        .into_iter()
        .map(|v| {
            let schema = v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.clone())
                .map(Arc::new);
            let status = v.subresources.as_ref().is_some_and(|s| s.status.is_some());
            let scale = v
                .subresources
                .as_ref()
                .and_then(|s| s.scale.as_ref())
                .map(|s| {
                    let bare = |p: &str| p.trim_start_matches('.').to_owned();
                    ScaleAt {
                        spec_replicas: bare(&s.spec_replicas_path),
                        status_replicas: bare(&s.status_replicas_path),
                        selector: s.label_selector_path.as_deref().map(bare),
                    }
                });
            let subresources: &'static [&'static str] = match (status, scale.is_some()) {
                (true, true) => &["status", "scale"],
                (true, false) => &["status"],
                (false, true) => &["scale"],
                (false, false) => &[],
            };
            let columns = v.additional_printer_columns.as_deref().unwrap_or_default();
            let printer = Printer::Custom(Arc::new(columns::PrinterColumns::new(columns)));
            let strategy = CustomStrategy {
                schema: schema.clone().map(schema::Structural::new),
                status,
                terminating,
                scale,
                selectable: v
                    .selectable_fields
                    .iter()
                    .flatten()
                    .map(|f| Arc::from(f.json_path.trim_start_matches('.')))
                    .collect(),
            };
            let mut info = ResourceInfo::custom(
                names.clone(),
                &v.name,
                namespaced,
                subresources,
                Arc::new(strategy),
                schema,
            );
            info.printer = printer;
            if let Some(storage) = crd.spec.versions.iter().find(|v| v.storage)
                && storage.name != v.name
            {
                info.set_storage_version(&storage.name);
            }
            Arc::new(info)
        })
        .collect()
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first, then
/// versions that are not Kubernetes-like, alphabetically.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
        let parsed = v.strip_prefix('v').and_then(|rest| {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let major: u64 = rest[..digits].parse().ok()?;
            let tail = &rest[digits..];
            let (rank, minor) = if tail.is_empty() {
                (0, 0)
            } else if let Some(n) = tail.strip_prefix("beta") {
                (1, n.parse().ok()?)
            } else if let Some(n) = tail.strip_prefix("alpha") {
                (2, n.parse().ok()?)
            } else {
                return None;
            };
            Some((rank, major, minor))
        });
        match parsed {
            Some((rank, major, minor)) => (
                rank,
                std::cmp::Reverse(major),
                std::cmp::Reverse(minor),
                String::new(),
            ),
            None => (3, std::cmp::Reverse(0), std::cmp::Reverse(0), v.to_owned()),
        }
    }
    key(a).cmp(&key(b))
}

/// A custom resource's rules: its version's schema defaults, prunes and validates it.
pub struct CustomStrategy {
    schema: Option<schema::Structural>,
    /// The status subresource is enabled: status is written only through it.
    status: bool,
    /// The definition is being deleted: no new objects.
    terminating: bool,
    /// The scale subresource's paths, without their leading dots.
    scale: Option<ScaleAt>,
    /// The version's selectableFields, without their leading dots.
    selectable: Vec<Arc<str>>,
}

struct ScaleAt {
    spec_replicas: String,
    status_replicas: String,
    selector: Option<String>,
}

impl Strategy for CustomStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        if let Some(s) = &self.schema {
            s.default(obj);
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        if self.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        self.schema
            .as_ref()
            .map(|s| s.validate(obj, old))
            .unwrap_or_default()
    }
    fn prune(&self, obj: &Value) -> Value {
        match &self.schema {
            Some(s) => s.prune(obj),
            None => obj.clone(),
        }
    }
    fn scale_paths(&self) -> ScalePaths<'_> {
        match &self.scale {
            Some(s) => ScalePaths {
                spec_replicas: &s.spec_replicas,
                status_replicas: &s.status_replicas,
                selector: ScaleSelector::Serialized(s.selector.as_deref()),
            },
            None => crate::registry::subresources::WORKLOAD_SCALE,
        }
    }
    fn custom_selectable_fields(&self) -> &[Arc<str>] {
        &self.selectable
    }
    fn refuses_create(&self) -> Option<&'static str> {
        self.terminating
            .then_some("create not allowed while custom resource definition is terminating")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_are_served_in_kubernetes_priority_order() {
        let mut v = vec![
            "v1alpha1", "foo", "v1", "v2beta1", "v1beta2", "v2", "v1beta1", "bar",
        ];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            v,
            [
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
            ]
        );
    }

    #[test]
    fn only_an_established_definition_serves_under_its_accepted_names() {
        let mut crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [
                        {"name": "v1beta1", "served": true, "storage": false},
                        {"name": "v1", "served": true, "storage": true,
                         "subresources": {"status": {}}},
                        {"name": "v2alpha1", "served": false, "storage": false}]}
        });
        assert!(served(&crd).is_empty());
        crd["status"] = json!({
            "acceptedNames": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "conditions": [{"type": "Established", "status": "True"}]
        });
        let served = served(&crd);
        let versions: Vec<&str> = served.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let v1 = &served[0];
        assert_eq!(
            (
                v1.kind.as_str(),
                v1.list_kind.as_str(),
                v1.singular.as_str()
            ),
            ("Widget", "WidgetList", "widget")
        );
        assert_eq!(v1.short_names, ["wd"]);
        assert!(v1.namespaced && v1.has_subresource("status"));
        assert!(!served[1].has_subresource("status"));
        assert_eq!(v1.storage_path(), "example.com/widgets");
    }
}
