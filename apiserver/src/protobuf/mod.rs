//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`): the wire form client-go's typed
//! clients send, and ask answers in, for built-in kinds. Bodies are decoded into the JSON the
//! same request would carry (`decode`), and answers encoded from the JSON the server keeps
//! (`encode`).
//!
//! A body is the magic `k8s\0` and a runtime.Unknown envelope holding the apiVersion, kind and
//! the object's own protobuf bytes. The wire format is read and written generically with the
//! field table build.rs extracts from k8s-pb; JSON field names come from k8s-openapi's schemas
//! (protobuf names are the JSON names, but prost snake-cases them: `podIP` -> `pod_ip`).

mod decode;
mod encode;
mod wire;

use std::collections::HashMap;
use std::sync::LazyLock;

pub use decode::decode;
pub use encode::{Encoded, encode_object, list, watch_frame};

/// A protobuf field's type.
pub enum Kind {
    Str,
    Int32,
    Int64,
    Bool,
    Double,
    Bytes,
    /// A message, by its full name (`api.core.v1.PodSpec`).
    Message(&'static str),
    /// A map from strings to values of this kind.
    Map(&'static Kind),
}

pub struct Field {
    pub tag: u32,
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

include!(concat!(env!("OUT_DIR"), "/protobuf_messages.rs"));

/// The prefix every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\x00";

pub const JSON_SCHEMA_PROPS: &str =
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps";

/// A message's fields with where each goes in JSON, worked out once for every message.
pub struct Layout {
    pub message: &'static Message,
    pub slots: Box<[Slot]>,
}

pub struct Slot {
    pub field: &'static Field,
    pub json: JsonField,
}

impl Layout {
    pub fn slot(&self, tag: u32) -> Option<&Slot> {
        self.slots.iter().find(|s| s.field.tag == tag)
    }
}

static LAYOUTS: LazyLock<HashMap<&'static str, Layout>> = LazyLock::new(|| {
    MESSAGES
        .iter()
        .map(|message| {
            let slots = message
                .fields
                .iter()
                .map(|field| Slot {
                    field,
                    json: json_field(message.name, field.name, &field.kind),
                })
                .collect();
            (message.name, Layout { message, slots })
        })
        .collect()
});

/// The layout of a message by its full name.
pub fn layout(name: &str) -> Result<&'static Layout, String> {
    LAYOUTS
        .get(name)
        .ok_or_else(|| format!("unknown protobuf message {name}"))
}

/// JSON property names of each k8s-openapi schema, keyed by the normalized name (lowercase,
/// no underscores) prost's snake_case also normalizes to.
static JSON_NAMES: LazyLock<HashMap<String, HashMap<String, String>>> = LazyLock::new(|| {
    let mut generator = schemars::SchemaGenerator::default();
    for r in crate::registry::BUILTIN.iter() {
        if let crate::registry::Schema::Typed(schema) = r.schema {
            schema(&mut generator);
        }
    }
    generator.subschema_for::<k8s_openapi::api::policy::v1::Eviction>();
    generator.subschema_for::<k8s_openapi::api::core::v1::Binding>();
    generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    generator
        .take_definitions(false)
        .into_iter()
        .map(|(name, schema)| {
            let props = schema["properties"]
                .as_object()
                .map(|p| p.keys().map(|k| (normalize(k), k.clone())).collect())
                .unwrap_or_default();
            (name, props)
        })
        .collect()
});

/// Every property name of any schema by its normalized form (None where schemas spell one
/// name two ways).
static ANY_SCHEMA_NAMES: LazyLock<HashMap<String, Option<String>>> = LazyLock::new(|| {
    let mut out: HashMap<String, Option<String>> = HashMap::new();
    for (normalized, name) in JSON_NAMES.values().flatten() {
        out.entry(normalized.clone())
            .and_modify(|known| {
                if known.as_ref() != Some(name) {
                    *known = None;
                }
            })
            .or_insert_with(|| Some(name.clone()));
    }
    out
});

fn normalize(name: &str) -> String {
    // `$ref` and `x-kubernetes-list-type` (JSONSchemaProps) are prost's `ref` and
    // `x_kubernetes_list_type`.
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '$'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The schema definition name of a prost message: k8s-pb writes Go's package and acronyms
/// its own way (`apiextensions_apiserver`, `JsonSchemaProps`).
fn definition_name(message: &str) -> String {
    format!(
        "io.k8s.{}",
        message
            .replace("apiextensions_apiserver.", "apiextensions-apiserver.")
            .replace("kube_aggregator.", "kube-aggregator.")
            .replace(".JsonSchemaProps", ".JSONSchemaProps")
            .replace(".Json", ".JSON")
    )
}

/// Where a prost field goes in the JSON object.
pub enum JsonField {
    /// Under this property name.
    Named(Box<str>),
    /// Its message's fields merge into the parent, as Go's `json:",inline"` embeds them
    /// (Volume's volumeSource, Probe's handler, IngressRule's ingressRuleValue).
    Inline,
}

/// The JSON placement of a prost field of `message`.
fn json_field(message: &str, field: &str, kind: &Kind) -> JsonField {
    let def = definition_name(message);
    if let Some(props) = JSON_NAMES.get(&def) {
        if let Some(name) = props.get(&normalize(field)) {
            return JsonField::Named(name.as_str().into());
        }
        if matches!(kind, Kind::Message(_)) {
            return JsonField::Inline;
        }
    }
    // Not a schema of its own (VolumeSource, inlined into Volume): the spelling any schema
    // gives that name (`downwardAPI`, `scaleIO`), else snake_case to lowerCamelCase.
    if let Some(Some(name)) = ANY_SCHEMA_NAMES.get(&normalize(field)) {
        return JsonField::Named(name.as_str().into());
    }
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    JsonField::Named(out.into())
}

/// The k8s-pb package of an apiVersion: `apps/v1` -> `api.apps.v1`, `v1` -> `api.core.v1`;
/// the groups served beside the core API's have packages of their own.
fn package(api_version: &str) -> String {
    match api_version.split_once('/') {
        None => format!("api.core.{api_version}"),
        Some(("meta.k8s.io", v)) => format!("apimachinery.pkg.apis.meta.{v}"),
        Some(("apiextensions.k8s.io", v)) => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{v}")
        }
        Some(("apiregistration.k8s.io", v)) => {
            format!("kube_aggregator.pkg.apis.apiregistration.{v}")
        }
        Some(("internal.apiserver.k8s.io", v)) => format!("api.apiserverinternal.{v}"),
        Some((group, v)) => format!("api.{}.{v}", group.split('.').next().unwrap_or(group)),
    }
}

/// The message of a kind in an apiVersion: DeleteOptions is meta's whatever group a typed
/// client sends it with, and the v1 Status every error answers is meta's too.
pub fn message_name(api_version: &str, kind: &str) -> String {
    match (api_version, kind) {
        (_, "DeleteOptions") | ("v1", "Status") => {
            return format!("apimachinery.pkg.apis.meta.v1.{kind}");
        }
        _ => {}
    }
    format!("{}.{kind}", package(api_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON properties a message's layout carries, through its inline members too.
    fn carried(name: &str, out: &mut Vec<String>) {
        for slot in &LAYOUTS[name].slots {
            match (&slot.json, &slot.field.kind) {
                (JsonField::Named(key), _) => out.push(key.to_string()),
                (JsonField::Inline, Kind::Message(inner)) => carried(inner, out),
                (JsonField::Inline, _) => {}
            }
        }
    }

    /// Every property of every built-in kind's schema has a protobuf field: nothing an
    /// object holds is lost on its way into a protobuf answer.
    #[test]
    fn every_schema_property_has_a_field() {
        let mut checked = 0;
        let mut missing = Vec::new();
        for message in MESSAGES {
            let Some(props) = JSON_NAMES.get(&definition_name(message.name)) else {
                continue;
            };
            let mut fields = Vec::new();
            carried(message.name, &mut fields);
            for prop in props.values() {
                // TypeMeta is the envelope's, not the message's.
                if !fields.contains(prop) && prop != "apiVersion" && prop != "kind" {
                    missing.push(format!("{}.{prop}", message.name));
                }
            }
            checked += 1;
        }
        assert!(
            checked > 250,
            "only {checked} messages matched their schemas"
        );
        assert!(missing.is_empty(), "no protobuf field for {missing:#?}");
    }
}
