//! What server-side apply needs to know of a kind's shape: which lists are keyed (and by
//! which fields), which are sets, and which lists, maps and structs are owned whole (atomic).
//! Built-in kinds follow the markers upstream's types carry (a table by field, as
//! patch/schema.rs does for strategic merge); custom resources their CRD's structural schema.
//! Anything else is deduced as upstream deduces it: maps granular, lists atomic.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// How a list's items are owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value.
    Atomic,
    /// Items are scalars, each owned by value.
    Set,
    /// Items are objects, each owned by these key fields (sorted by name when encoded).
    Map(Vec<String>),
}

/// The shape of one node, as far as ownership goes.
#[derive(Clone, Debug)]
pub enum Shape {
    /// A scalar, or anything owned whole (atomic lists, maps and structs).
    Atomic,
    /// A map or struct whose entries are owned one by one; `field(name)` says each one's shape.
    Granular,
    /// A list.
    List(ListType),
}

/// A kind's shapes, asked by path: field names from the root, list items skipped
/// (`["spec", "template", "spec", "containers"]`).
pub trait Types: Send + Sync {
    fn shape(&self, path: &[&str]) -> Shape;
    /// A keyed list item's default for a key field it omits (a port's protocol is TCP).
    fn key_default(&self, path: &[&str], key: &str) -> Option<serde_json::Value> {
        let _ = (path, key);
        None
    }
}

/// Built-in kinds, by the markers of upstream's Go types.
pub struct Builtin {
    pub kind: &'static str,
}

/// Struct fields upstream marks atomic wherever they appear (LabelSelector, object
/// references, key selectors, node selectors).
const ATOMIC_FIELDS: &[&str] = &[
    "selector",
    "labelSelector",
    "namespaceSelector",
    "podSelector",
    "nodeSelector",
    "scopeSelector",
    "secretKeyRef",
    "configMapKeyRef",
    "fieldRef",
    "resourceFieldRef",
    "claimRef",
    "roleRef",
    "requiredDuringSchedulingIgnoredDuringExecution",
    "targetRef",
    "involvedObject",
    "regarding",
    "related",
];

/// Keyed lists wherever they appear: field name and keys.
const KEYED_LISTS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("env", &["name"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
    ("volumes", &["name"]),
    ("hostAliases", &["ip"]),
    (
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    ("schedulingGates", &["name"]),
    ("resourceClaims", &["name"]),
    ("claims", &["name"]),
    ("ownerReferences", &["uid"]),
    ("podIPs", &["ip"]),
];

impl Types for Builtin {
    fn shape(&self, path: &[&str]) -> Shape {
        let Some(last) = path.last().copied() else {
            return Shape::Granular;
        };
        let parent = path.len().checked_sub(2).map(|i| path[i]);
        let keyed = |keys: &[&str]| {
            Shape::List(ListType::Map(keys.iter().map(|k| k.to_string()).collect()))
        };
        match last {
            "finalizers" if path == ["metadata", "finalizers"] => Shape::List(ListType::Set),
            "labels" | "annotations" => Shape::Granular,
            "ports" if self.kind == "Service" && path == ["spec", "ports"] => {
                keyed(&["port", "protocol"])
            }
            "ports" if parent.is_some_and(|p| p.ends_with("ontainers")) => {
                keyed(&["containerPort", "protocol"])
            }
            "imagePullSecrets" if self.kind == "ServiceAccount" => Shape::List(ListType::Atomic),
            "imagePullSecrets" => keyed(&["name"]),
            "secrets" if self.kind == "ServiceAccount" => keyed(&["name"]),
            "conditions" if path.first() == Some(&"status") => keyed(&["type"]),
            "addresses" if self.kind == "Node" && path == ["status", "addresses"] => {
                keyed(&["type"])
            }
            "podCIDRs" if self.kind == "Node" => Shape::List(ListType::Set),
            f if ATOMIC_FIELDS.contains(&f) => Shape::Atomic,
            f => match KEYED_LISTS.iter().find(|(name, _)| *name == f) {
                Some((_, keys)) => keyed(keys),
                // Maps and structs are granular; unmarked lists are atomic: the walk asks
                // for a list's shape only when the value is a list.
                None => Shape::Granular,
            },
        }
    }

    fn key_default(&self, path: &[&str], key: &str) -> Option<serde_json::Value> {
        (key == "protocol" && path.last() == Some(&"ports")).then(|| serde_json::json!("TCP"))
    }
}

/// A custom resource's shapes, from its version's structural schema (ObjectMeta's fields as
/// the built-in kinds have them).
pub struct Structural {
    pub root: Option<Arc<JSONSchemaProps>>,
}

impl Structural {
    fn schema_at(&self, path: &[&str]) -> Option<&JSONSchemaProps> {
        let mut node: &JSONSchemaProps = self.root.as_deref()?;
        for (i, field) in path.iter().enumerate() {
            node = if let Some(p) = node.properties.as_ref().and_then(|p| p.get(*field)) {
                p
            } else if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &node.additional_properties {
                extra
            } else {
                return None;
            };
            // Paths skip list items: below a list, the item's schema answers.
            if i + 1 < path.len()
                && node.type_.as_deref() == Some("array")
                && let Some(JSONSchemaPropsOrArray::Schema(item)) = &node.items
            {
                node = item;
            }
        }
        Some(node)
    }
}

impl Types for Structural {
    fn shape(&self, path: &[&str]) -> Shape {
        if path.first() == Some(&"metadata") {
            return Builtin { kind: "" }.shape(path);
        }
        let Some(schema) = self.schema_at(path) else {
            // Unknown content (preserve-unknown-fields): maps granular, lists atomic.
            return Shape::Granular;
        };
        if schema.type_.as_deref() == Some("array") {
            return Shape::List(match schema.x_kubernetes_list_type.as_deref() {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map(
                    schema
                        .x_kubernetes_list_map_keys
                        .clone()
                        .unwrap_or_default(),
                ),
                _ => ListType::Atomic,
            });
        }
        if schema.x_kubernetes_map_type.as_deref() == Some("atomic") {
            return Shape::Atomic;
        }
        Shape::Granular
    }

    fn key_default(&self, path: &[&str], key: &str) -> Option<serde_json::Value> {
        let list = self.schema_at(path)?;
        let Some(JSONSchemaPropsOrArray::Schema(item)) = &list.items else {
            return None;
        };
        item.properties
            .as_ref()?
            .get(key)?
            .default
            .as_ref()
            .map(|d| d.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_lists_follow_upstreams_markers() {
        let pod = Builtin { kind: "Pod" };
        let keys = |shape: Shape| match shape {
            Shape::List(ListType::Map(k)) => k,
            other => panic!("{other:?}"),
        };
        assert_eq!(keys(pod.shape(&["spec", "containers"])), ["name"]);
        assert_eq!(
            keys(pod.shape(&["spec", "containers", "ports"])),
            ["containerPort", "protocol"]
        );
        assert_eq!(keys(pod.shape(&["spec", "volumes"])), ["name"]);
        assert!(matches!(
            pod.shape(&["metadata", "finalizers"]),
            Shape::List(ListType::Set)
        ));
        assert!(matches!(
            pod.shape(&["spec", "nodeSelector"]),
            Shape::Atomic
        ));
        assert!(matches!(
            pod.shape(&["metadata", "labels"]),
            Shape::Granular
        ));
        let svc = Builtin { kind: "Service" };
        assert_eq!(keys(svc.shape(&["spec", "ports"])), ["port", "protocol"]);
        assert!(matches!(svc.shape(&["spec", "selector"]), Shape::Atomic));
        assert_eq!(
            pod.key_default(&["spec", "containers", "ports"], "protocol"),
            Some(serde_json::json!("TCP"))
        );
    }

    #[test]
    fn custom_lists_follow_the_schema() {
        let schema: JSONSchemaProps = serde_json::from_value(serde_json::json!({
            "type": "object", "properties": {"spec": {"type": "object", "properties": {
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                          "items": {"type": "object", "properties": {
                              "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"},
                              "opts": {"type": "object", "x-kubernetes-map-type": "atomic"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}
        }))
        .unwrap();
        let types = Structural {
            root: Some(Arc::new(schema)),
        };
        assert!(matches!(
            types.shape(&["spec", "tags"]),
            Shape::List(ListType::Set)
        ));
        assert!(matches!(
            types.shape(&["spec", "args"]),
            Shape::List(ListType::Atomic)
        ));
        assert!(matches!(
            types.shape(&["spec", "ports"]),
            Shape::List(ListType::Map(_))
        ));
        assert!(matches!(
            types.shape(&["spec", "ports", "opts"]),
            Shape::Atomic
        ));
        assert!(matches!(
            types.shape(&["spec", "free", "x"]),
            Shape::Granular
        ));
        assert!(matches!(
            types.shape(&["metadata", "finalizers"]),
            Shape::List(ListType::Set)
        ));
        assert_eq!(
            types.key_default(&["spec", "ports"], "protocol"),
            Some(serde_json::json!("TCP"))
        );
    }
}
