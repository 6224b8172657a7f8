//! Decoding protobuf request bodies into the JSON the same request would carry: zero scalars
//! dropped as Go's `omitempty` drops them, but for pointer fields whose zero means something.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Map, Value};

use super::wire::{Reader, Wire};
use super::{JSON_SCHEMA_PROPS, JsonField, Kind, MAGIC, layout, message_name};

/// Pointer fields whose zero value means something (upstream sends them only when set, so a
/// zero is kept). Other zero scalars are dropped, as Go's `omitempty` drops them from JSON.
const MEANINGFUL_ZEROS: &[&str] = &[
    // A CRD version's required flags, and a schema's closed additionalProperties.
    "served",
    "storage",
    "additionalProperties",
    "minimum",
    "maximum",
    "minLength",
    "minItems",
    "minProperties",
    "replicas",
    "gracePeriodSeconds",
    "terminationGracePeriodSeconds",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "revisionHistoryLimit",
    "ttlSecondsAfterFinished",
    "backoffLimit",
    "parallelism",
    "completions",
    "partition",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "startingDeadlineSeconds",
    "priority",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "allowPrivilegeEscalation",
    "runAsNonRoot",
    "ready",
    "serving",
    "terminating",
    "hostUsers",
    "optional",
    "immutable",
    "orphanDependents",
    "suspend",
    "minAvailable",
    "maxUnavailable",
    "expirationSeconds",
    "defaultMode",
    "mode",
    "port",
    "containerPort",
];

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_owned())
}

/// Scalar or message value of one occurrence of a field.
fn value(kind: &Kind, wire: Wire<'_>) -> Result<Value, String> {
    Ok(match (kind, wire) {
        (Kind::Str, Wire::Bytes(b)) => Value::String(utf8(b)?),
        (Kind::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Kind::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Kind::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // Go writes a whole float64 without a fraction (`0`, not `0.0`).
        (Kind::Double, Wire::Fixed64(v)) => match f64::from_bits(v) {
            f if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            f => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        },
        (Kind::Bytes, Wire::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Message(name), Wire::Bytes(b)) => message(name, b)?,
        (Kind::Map(_), _) => return Err("a map entry outside a map".into()),
        _ => return Err("a field's wire type does not match its declared type".into()),
    })
}

/// Reads the scalar fields of a small well-known message: tag -> wire value.
fn small_fields(b: &[u8]) -> Result<HashMap<u32, Wire<'_>>, String> {
    let mut r = Reader::new(b);
    let mut out = HashMap::new();
    while !r.done() {
        let (tag, wire) = r.field()?;
        out.insert(tag, wire);
    }
    Ok(out)
}

fn varint_of(fields: &HashMap<u32, Wire<'_>>, tag: u32) -> i64 {
    match fields.get(&tag) {
        Some(Wire::Varint(v)) => *v as i64,
        _ => 0,
    }
}

fn string_of(fields: &HashMap<u32, Wire<'_>>, tag: u32) -> Result<String, String> {
    match fields.get(&tag) {
        Some(Wire::Bytes(b)) => utf8(b),
        _ => Ok(String::new()),
    }
}

/// Go's time.Duration.String() for whole and fractional seconds.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        return match n {
            n if n < 1_000 => format!("{sign}{n}ns"),
            n if n < 1_000_000 => format!("{sign}{}µs", trim_float(n as f64 / 1e3)),
            n => format!("{sign}{}ms", trim_float(n as f64 / 1e6)),
        };
    }
    let (h, rem) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let s = trim_float(rem as f64 / 1e9);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

fn trim_float(f: f64) -> String {
    let s = format!("{f:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn timestamp(fields: &HashMap<u32, Wire<'_>>, micro: bool) -> Value {
    let (secs, nanos) = (varint_of(fields, 1), varint_of(fields, 2));
    if secs == 0 && nanos == 0 {
        return Value::Null;
    }
    let Some(t) = chrono::DateTime::from_timestamp(secs, nanos as u32) else {
        return Value::Null;
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Value::String(t.format(format).to_string())
}

/// A message whose JSON form is the list of strings in its field 1 (ExtraValue, Verbs).
fn strings(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while !r.done() {
        if let (1, Wire::Bytes(s)) = r.field()? {
            out.push(Value::String(utf8(s)?));
        }
    }
    Ok(Value::Array(out))
}

/// Decodes one message to its JSON form.
fn message(name: &str, b: &[u8]) -> Result<Value, String> {
    match name {
        "apimachinery.pkg.api.resource.Quantity" => {
            return Ok(Value::String(string_of(&small_fields(b)?, 1)?));
        }
        "apimachinery.pkg.util.intstr.IntOrString" => {
            let f = small_fields(b)?;
            return Ok(if varint_of(&f, 1) == 1 {
                Value::String(string_of(&f, 3)?)
            } else {
                Value::from(varint_of(&f, 2) as i32)
            });
        }
        "apimachinery.pkg.apis.meta.v1.Time" => return Ok(timestamp(&small_fields(b)?, false)),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => return Ok(timestamp(&small_fields(b)?, true)),
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            return Ok(Value::String(go_duration(varint_of(&small_fields(b)?, 1))));
        }
        "apimachinery.pkg.apis.meta.v1.Verbs" => return strings(b),
        n if n.ends_with(".ExtraValue") => return strings(b),
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool" => {
            // A schema, or a bool.
            let f = small_fields(b)?;
            return match f.get(&2) {
                Some(Wire::Bytes(s)) => message(JSON_SCHEMA_PROPS, s),
                _ => Ok(Value::Bool(varint_of(&f, 1) != 0)),
            };
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray" => {
            // A schema, or a list of them.
            let mut r = Reader::new(b);
            let (mut one, mut many) = (None, Vec::new());
            while !r.done() {
                match r.field()? {
                    (1, Wire::Bytes(s)) => one = Some(message(JSON_SCHEMA_PROPS, s)?),
                    (2, Wire::Bytes(s)) => many.push(message(JSON_SCHEMA_PROPS, s)?),
                    _ => {}
                }
            }
            return Ok(one.unwrap_or(Value::Array(many)));
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray" => {
            // A schema, or a list of property names.
            let mut r = Reader::new(b);
            let (mut one, mut names) = (None, Vec::new());
            while !r.done() {
                match r.field()? {
                    (1, Wire::Bytes(s)) => one = Some(message(JSON_SCHEMA_PROPS, s)?),
                    (2, Wire::Bytes(s)) => names.push(Value::String(utf8(s)?)),
                    _ => {}
                }
            }
            return Ok(one.unwrap_or(Value::Array(names)));
        }
        "apimachinery.pkg.runtime.RawExtension"
        | "apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json" => {
            let f = small_fields(b)?;
            return Ok(match f.get(&1) {
                Some(Wire::Bytes(raw)) if !raw.is_empty() => {
                    serde_json::from_slice(raw).unwrap_or(Value::Null)
                }
                _ => Value::Null,
            });
        }
        _ => {}
    }
    let layout = layout(name)?;
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while !r.done() {
        let (tag, wire) = r.field()?;
        let Some(slot) = layout.slot(tag) else {
            continue;
        };
        let field = slot.field;
        let key = match &slot.json {
            JsonField::Named(key) => key.to_string(),
            JsonField::Inline => {
                if let (Kind::Message(inner), Wire::Bytes(b)) = (&field.kind, wire)
                    && let Value::Object(fields) = message(inner, b)?
                {
                    out.extend(fields);
                }
                continue;
            }
        };
        match &field.kind {
            Kind::Map(value_kind) => {
                let Wire::Bytes(entry) = wire else {
                    return Err("a map entry is not length-delimited".into());
                };
                let mut er = Reader::new(entry);
                let (mut k, mut v) = (String::new(), Value::Null);
                while !er.done() {
                    match er.field()? {
                        (1, Wire::Bytes(kb)) => k = utf8(kb)?,
                        (2, w) => v = value(value_kind, w)?,
                        _ => {}
                    }
                }
                if v.is_null() {
                    v = match value_kind {
                        Kind::Str | Kind::Bytes => Value::String(String::new()),
                        _ => Value::Object(Map::new()),
                    };
                }
                out.entry(key).or_insert_with(|| Value::Object(Map::new()))[&k] = v;
            }
            kind if field.repeated => {
                let items = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                let list = items.as_array_mut().expect("array");
                match (kind, wire) {
                    // Packed repeated numbers.
                    (Kind::Int32 | Kind::Int64, Wire::Bytes(packed)) => {
                        let mut pr = Reader::new(packed);
                        while !pr.done() {
                            list.push(value(kind, Wire::Varint(pr.varint()?))?);
                        }
                    }
                    (kind, wire) => list.push(value(kind, wire)?),
                }
            }
            kind => {
                let v = value(kind, wire)?;
                out.insert(key, v);
            }
        }
    }
    // Drop what Go's omitempty would: zero scalars (but meaningful pointer zeros) and nulls.
    out.retain(|k, v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0) || MEANINGFUL_ZEROS.contains(&k.as_str()),
        Value::Bool(b) => *b || MEANINGFUL_ZEROS.contains(&k.as_str()),
        _ => true,
    });
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into its JSON object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf prefix")?;
    let fields = small_fields(envelope)?;
    let type_meta = match fields.get(&1) {
        Some(Wire::Bytes(b)) => small_fields(b)?,
        _ => HashMap::new(),
    };
    let api_version = string_of(&type_meta, 1)?;
    let kind = string_of(&type_meta, 2)?;
    let raw = match fields.get(&2) {
        Some(Wire::Bytes(b)) => *b,
        _ => &[],
    };
    let name = message_name(&api_version, &kind);
    let mut object = match message(&name, raw)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    out.append(&mut object);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message as _;
    use serde_json::json;

    /// Wraps an encoded object in the runtime.Unknown envelope, as client-go does.
    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    fn check(api_version: &str, kind: &str, raw: Vec<u8>, expected: Value) {
        assert_eq!(decode(&envelope(api_version, kind, raw)).unwrap(), expected);
    }

    fn object_meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(String::new()),
            generate_name: Some(String::new()),
            resource_version: Some(String::new()),
            creation_timestamp: Some(meta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            ..Default::default()
        })
    }

    #[test]
    fn namespaces_and_secrets() {
        let ns = core::Namespace {
            metadata: object_meta("demo"),
            spec: Some(Default::default()),
            status: Some(Default::default()),
        };
        check(
            "v1",
            "Namespace",
            ns.encode_to_vec(),
            json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "demo", "labels": {"app": "web"}}, "spec": {}, "status": {}}),
        );
        let secret = core::Secret {
            metadata: object_meta("s"),
            data: [("bin".to_owned(), vec![0u8, 255, 1])].into(),
            string_data: Default::default(),
            r#type: Some("Opaque".into()),
            immutable: Some(false),
        };
        check(
            "v1",
            "Secret",
            secret.encode_to_vec(),
            json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "labels": {"app": "web"}},
            "data": {"bin": "AP8B"}, "type": "Opaque", "immutable": false}),
        );
    }

    #[test]
    fn deployments_with_quantities_and_int_or_string() {
        let container = core::Container {
            name: Some("web".into()),
            image: Some("busybox".into()),
            ports: vec![core::ContainerPort {
                container_port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }],
            resources: Some(core::ResourceRequirements {
                requests: [(
                    "cpu".to_owned(),
                    Quantity {
                        string: Some("100m".into()),
                    },
                )]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let deploy = apps::Deployment {
            metadata: object_meta("web"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_owned(), "web".to_owned())].into(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: object_meta(""),
                    spec: Some(core::PodSpec {
                        containers: vec![container],
                        host_network: Some(false),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_surge: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("25%".into()),
                        }),
                        max_unavailable: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(1),
                            str_val: Some(String::new()),
                        }),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&envelope("apps/v1", "Deployment", deploy.encode_to_vec())).unwrap();
        assert_eq!(
            got["spec"]["replicas"], 0,
            "an explicit zero replicas survives"
        );
        assert_eq!(
            got["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": "25%", "maxUnavailable": 1})
        );
        let c = &got["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["requests"]["cpu"], "100m");
        assert_eq!(
            c["ports"][0],
            json!({"containerPort": 8080, "protocol": "TCP"})
        );
        assert!(
            got["spec"]["template"]["spec"].get("hostNetwork").is_none(),
            "false non-pointer bools are omitted"
        );
    }

    #[test]
    fn groups_with_packages_of_their_own_and_delete_options() {
        use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
        let size = ext::JsonSchemaProps {
            r#type: Some("integer".into()),
            default: Some(ext::Json {
                raw: Some(b"3".to_vec()),
            }),
            ..Default::default()
        };
        let spec_schema = ext::JsonSchemaProps {
            r#type: Some("object".into()),
            properties: [("size".to_owned(), size)].into_iter().collect(),
            additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
                allows: Some(false),
                schema: None,
            })),
            x_kubernetes_preserve_unknown_fields: Some(true),
            ..Default::default()
        };
        let root = ext::JsonSchemaProps {
            r#type: Some("object".into()),
            properties: [("spec".to_owned(), spec_schema)].into_iter().collect(),
            ..Default::default()
        };
        let crd = ext::CustomResourceDefinition {
            metadata: object_meta("widgets.example.com"),
            spec: Some(ext::CustomResourceDefinitionSpec {
                group: Some("example.com".into()),
                scope: Some("Namespaced".into()),
                versions: vec![ext::CustomResourceDefinitionVersion {
                    name: Some("v1".into()),
                    served: Some(true),
                    storage: Some(true),
                    schema: Some(ext::CustomResourceValidation {
                        open_apiv3_schema: Some(root),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let decoded = decode(&envelope(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(decoded["spec"]["group"], "example.com");
        assert_eq!(decoded["metadata"]["name"], "widgets.example.com");
        let schema = &decoded["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let spec = &schema["properties"]["spec"];
        assert_eq!(
            spec["properties"]["size"],
            json!({"type": "integer", "default": 3})
        );
        assert_eq!(spec["additionalProperties"], json!(false), "{spec}");
        let version = &decoded["spec"]["versions"][0];
        assert_eq!(
            (&version["served"], &version["storage"]),
            (&json!(true), &json!(true))
        );
        assert_eq!(spec["x-kubernetes-preserve-unknown-fields"], json!(true));
        let review = k8s_pb::api::authorization::v1::SubjectAccessReview {
            spec: Some(k8s_pb::api::authorization::v1::SubjectAccessReviewSpec {
                user: Some("alice".into()),
                extra: [(
                    "scopes".to_owned(),
                    k8s_pb::api::authorization::v1::ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let decoded = decode(&envelope(
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            review.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(decoded["spec"]["extra"], json!({"scopes": ["a", "b"]}));
        let options = meta::DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        let decoded = decode(&envelope(
            "apps/v1",
            "DeleteOptions",
            options.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(decoded["propagationPolicy"], "Foreground");
    }

    #[test]
    fn names_keep_their_acronyms() {
        let svc = core::Service {
            metadata: object_meta("s"),
            spec: Some(core::ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                cluster_ips: vec!["10.96.0.10".into()],
                ports: vec![core::ServicePort {
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: None,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&envelope("v1", "Service", svc.encode_to_vec())).unwrap();
        assert_eq!(got["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(got["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(
            got["spec"]["ports"][0],
            json!({"port": 80, "targetPort": 8080})
        );
    }

    #[test]
    fn inline_members_merge_into_their_parent() {
        let pod = core::Pod {
            metadata: object_meta("p"),
            spec: Some(core::PodSpec {
                volumes: vec![core::Volume {
                    name: Some("cfg".into()),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: Some("c".into()),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                }],
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap();
        assert_eq!(
            got["spec"]["volumes"][0],
            json!({"name": "cfg", "configMap": {"name": "c"}})
        );
    }

    #[test]
    fn durations_and_bad_input() {
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\x00\x0a\x05").is_err());
    }
}
