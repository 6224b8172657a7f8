//! Encoding the JSON the server keeps into protobuf answers: one object in the runtime.Unknown
//! envelope, a list of objects, and a watch event's frame. Every field the JSON holds is
//! written, zeros too (the reader cannot tell an absent pointer from a zero otherwise); nulls
//! and fields the kind does not have are left out. A value of the wrong type is an error, so
//! that the caller answers JSON instead of something a client would misread.

use std::ops::Range;

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use super::{JSON_SCHEMA_PROPS, JsonField, Kind, MAGIC, layout, message_name};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The bytes a length-delimited field of `n` bytes takes with a one-byte key.
fn field_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

fn key(out: &mut Vec<u8>, tag: u32, wire: u8) {
    varint(out, (u64::from(tag) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    key(out, tag, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn varint_field(out: &mut Vec<u8>, tag: u32, v: u64) {
    key(out, tag, VARINT);
    varint(out, v);
}

/// Writes field `tag` as a message `body` appends; answers the message's length.
fn nested(
    out: &mut Vec<u8>,
    tag: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<usize, String> {
    key(out, tag, LEN);
    let start = out.len();
    body(out)?;
    let len = out.len() - start;
    // The length goes before the body, known only now: shift the body by its few bytes.
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len as u64);
    out.splice(start..start, prefix);
    Ok(len)
}

fn mismatch(expected: &str, v: &Value) -> String {
    let found = match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("expected {expected}, found {found}")
}

fn int(v: &Value) -> Result<i64, String> {
    v.as_i64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        })
        .ok_or_else(|| mismatch("an integer", v))
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| mismatch("a string", v))
}

/// One occurrence of a field of `kind` holding `v`.
fn field(out: &mut Vec<u8>, tag: u32, kind: &Kind, v: &Value) -> Result<(), String> {
    match kind {
        Kind::Str => bytes_field(out, tag, string(v)?.as_bytes()),
        Kind::Int32 => {
            let n = i32::try_from(int(v)?).map_err(|_| format!("{v} is out of int32's range"))?;
            // Negative int32s are sign-extended to ten bytes, as protobuf requires.
            varint_field(out, tag, i64::from(n) as u64);
        }
        Kind::Int64 => varint_field(out, tag, int(v)? as u64),
        Kind::Bool => {
            let b = v.as_bool().ok_or_else(|| mismatch("a bool", v))?;
            varint_field(out, tag, u64::from(b));
        }
        Kind::Double => {
            let f = v.as_f64().ok_or_else(|| mismatch("a number", v))?;
            key(out, tag, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Kind::Bytes => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(string(v)?)
                .map_err(|e| format!("bytes field is not base64: {e}"))?;
            bytes_field(out, tag, &b);
        }
        Kind::Message(name) => {
            nested(out, tag, |out| message(name, v, out))?;
        }
        Kind::Map(_) => return Err("a map inside a list".into()),
    }
    Ok(())
}

/// Seconds and nanoseconds since the epoch of an RFC 3339 time.
fn timestamp(out: &mut Vec<u8>, v: &Value) -> Result<(), String> {
    let s = string(v)?;
    if s.is_empty() {
        return Ok(());
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("time {s:?}: {e}"))?;
    varint_field(out, 1, t.timestamp() as u64);
    let nanos = t.timestamp_subsec_nanos();
    if nanos != 0 {
        varint_field(out, 2, u64::from(nanos));
    }
    Ok(())
}

/// Nanoseconds of a Go duration string (`1h0m0s`, `1.5s`, `300ms`, `-2m`).
fn go_duration(s: &str) -> Result<i64, String> {
    let nanos = (common::flags::parse_go_duration(s)? * 1e9).round();
    if nanos.abs() >= i64::MAX as f64 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(nanos as i64)
}

/// Writes the fields of message `name` holding `v`.
fn message(name: &str, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match name {
        "apimachinery.pkg.api.resource.Quantity" => match v {
            Value::String(s) => bytes_field(out, 1, s.as_bytes()),
            Value::Number(n) => bytes_field(out, 1, n.to_string().as_bytes()),
            other => return Err(mismatch("a quantity", other)),
        },
        "apimachinery.pkg.util.intstr.IntOrString" => match v {
            Value::String(s) => {
                varint_field(out, 1, 1);
                bytes_field(out, 3, s.as_bytes());
            }
            other => {
                let n = i32::try_from(int(other)?).map_err(|_| format!("{other} is too large"))?;
                varint_field(out, 1, 0);
                varint_field(out, 2, i64::from(n) as u64);
            }
        },
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            timestamp(out, v)?;
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            varint_field(out, 1, go_duration(string(v)?)? as u64);
        }
        "apimachinery.pkg.apis.meta.v1.Verbs" => strings(out, v)?,
        n if n.ends_with(".ExtraValue") => strings(out, v)?,
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool" => match v {
            Value::Bool(b) => varint_field(out, 1, u64::from(*b)),
            schema => {
                varint_field(out, 1, 1);
                nested(out, 2, |out| message(JSON_SCHEMA_PROPS, schema, out))?;
            }
        },
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray" => match v {
            Value::Array(schemas) => {
                for schema in schemas {
                    nested(out, 2, |out| message(JSON_SCHEMA_PROPS, schema, out))?;
                }
            }
            schema => {
                nested(out, 1, |out| message(JSON_SCHEMA_PROPS, schema, out))?;
            }
        },
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray" => match v
        {
            Value::Array(names) => {
                for name in names {
                    bytes_field(out, 2, string(name)?.as_bytes());
                }
            }
            schema => {
                nested(out, 1, |out| message(JSON_SCHEMA_PROPS, schema, out))?;
            }
        },
        "apimachinery.pkg.runtime.RawExtension"
        | "apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json" => {
            let raw = serde_json::to_vec(v).map_err(|e| e.to_string())?;
            bytes_field(out, 1, &raw);
        }
        _ => fields(name, v, out)?,
    }
    Ok(())
}

/// A message whose JSON form is a list of strings, in its field 1 (ExtraValue, Verbs).
fn strings(out: &mut Vec<u8>, v: &Value) -> Result<(), String> {
    let items = v
        .as_array()
        .ok_or_else(|| mismatch("a list of strings", v))?;
    for item in items {
        bytes_field(out, 1, string(item)?.as_bytes());
    }
    Ok(())
}

/// A message generically, field by field from its layout.
fn fields(name: &str, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let object = v.as_object().ok_or_else(|| mismatch("an object", v))?;
    for slot in &layout(name)?.slots {
        let f = slot.field;
        let value = match &slot.json {
            // Go's inline members (Probe's handler, Volume's source) read their fields from
            // the parent's object.
            JsonField::Inline => {
                if let Kind::Message(inner) = f.kind {
                    let mark = out.len();
                    if nested(out, f.tag, |out| message(inner, v, out))? == 0 {
                        out.truncate(mark);
                    }
                }
                continue;
            }
            JsonField::Named(key) => match object.get(&**key) {
                None | Some(Value::Null) => continue,
                Some(value) => value,
            },
        };
        let at = |e: String| format!("{}: {e}", slot_name(&slot.json));
        match &f.kind {
            Kind::Map(value_kind) => {
                let entries = value
                    .as_object()
                    .ok_or_else(|| at(mismatch("a map", value)))?;
                for (k, item) in entries {
                    nested(out, f.tag, |out| {
                        bytes_field(out, 1, k.as_bytes());
                        match item {
                            Value::Null => Ok(()),
                            item => field(out, 2, value_kind, item),
                        }
                    })
                    .map_err(at)?;
                }
            }
            kind if f.repeated => {
                let items = value
                    .as_array()
                    .ok_or_else(|| at(mismatch("a list", value)))?;
                for item in items {
                    match (kind, item) {
                        (Kind::Message(_), Value::Null) => {
                            nested(out, f.tag, |_| Ok(()))?;
                        }
                        (Kind::Str, Value::Null) => bytes_field(out, f.tag, b""),
                        (kind, item) => field(out, f.tag, kind, item).map_err(at)?,
                    }
                }
            }
            kind => field(out, f.tag, kind, value).map_err(at)?,
        }
    }
    Ok(())
}

fn slot_name(json: &JsonField) -> &str {
    match json {
        JsonField::Named(name) => name,
        JsonField::Inline => "(inline)",
    }
}

/// An object in protobuf: `k8s\0` and the runtime.Unknown envelope around its message.
#[derive(Clone)]
pub struct Encoded {
    pub bytes: Bytes,
    /// Where the object's own message lies in `bytes` (a list's item).
    raw: Range<usize>,
}

impl Encoded {
    /// The object's own message, without the envelope.
    pub fn raw(&self) -> &[u8] {
        &self.bytes[self.raw.clone()]
    }
}

/// The envelope's head: magic, typeMeta{apiVersion, kind}, and the key and length of `raw`.
fn envelope_head(api_version: &str, kind: &str, raw_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw_len + api_version.len() + kind.len() + 24);
    out.extend_from_slice(MAGIC);
    key(&mut out, 1, LEN);
    varint(
        &mut out,
        (field_len(api_version.len()) + field_len(kind.len())) as u64,
    );
    bytes_field(&mut out, 1, api_version.as_bytes());
    bytes_field(&mut out, 2, kind.as_bytes());
    key(&mut out, 2, LEN);
    varint(&mut out, raw_len as u64);
    out
}

/// The envelope's tail: contentEncoding and contentType, empty as Go's server writes them.
const ENVELOPE_TAIL: [u8; 4] = [0x1a, 0, 0x22, 0];

/// `raw` (an object's message) in the envelope naming its apiVersion and kind.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Encoded {
    let mut out = envelope_head(api_version, kind, raw.len());
    let start = out.len();
    out.extend_from_slice(raw);
    out.extend_from_slice(&ENVELOPE_TAIL);
    Encoded {
        bytes: out.into(),
        raw: start..start + raw.len(),
    }
}

/// The message of an object of a built-in kind (by its apiVersion and kind), no envelope.
fn encode_raw(object: &Value) -> Result<Vec<u8>, String> {
    let (api_version, kind) = type_of(object);
    let mut out = Vec::with_capacity(1024);
    message(&message_name(api_version, kind), object, &mut out)?;
    Ok(out)
}

fn type_of(object: &Value) -> (&str, &str) {
    let text = |k| object.get(k).and_then(Value::as_str).unwrap_or("");
    (text("apiVersion"), text("kind"))
}

/// An object of a built-in kind (or a Status) in its envelope.
pub fn encode_object(object: &Value) -> Result<Encoded, String> {
    let raw = encode_raw(object)?;
    let (api_version, kind) = type_of(object);
    Ok(envelope(api_version, kind, &raw))
}

/// A list in its envelope: `{metadata: ListMeta, items: [...]}` from its items' messages.
pub fn list<'a>(
    api_version: &str,
    list_kind: &str,
    list_meta: &Value,
    items: impl Iterator<Item = &'a [u8]> + Clone,
) -> Result<Bytes, String> {
    let mut meta = Vec::with_capacity(64);
    nested(&mut meta, 1, |out| {
        message("apimachinery.pkg.apis.meta.v1.ListMeta", list_meta, out)
    })?;
    let raw_len = meta.len() + items.clone().map(|i| field_len(i.len())).sum::<usize>();
    let mut out = envelope_head(api_version, list_kind, raw_len);
    out.reserve(raw_len + ENVELOPE_TAIL.len());
    out.extend_from_slice(&meta);
    for item in items {
        bytes_field(&mut out, 2, item);
    }
    out.extend_from_slice(&ENVELOPE_TAIL);
    Ok(out.into())
}

/// A watch event as a protobuf stream frame: a four-byte big-endian length, then a bare
/// meta.v1.WatchEvent{type, object: RawExtension{raw: the object's envelope}}.
pub fn watch_frame(event_type: &str, object: &[u8]) -> Bytes {
    let object_field = field_len(object.len());
    let len = field_len(event_type.len()) + field_len(object_field);
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    bytes_field(&mut out, 1, event_type.as_bytes());
    key(&mut out, 2, LEN);
    varint(&mut out, object_field as u64);
    bytes_field(&mut out, 1, object);
    debug_assert_eq!(out.len(), 4 + len);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::runtime::Unknown;
    use prost::Message as _;
    use serde_json::json;

    /// Reads an envelope back with prost: (apiVersion, kind, the object's message).
    fn unwrap(bytes: &[u8]) -> (String, String, Vec<u8>) {
        let unknown = Unknown::decode(bytes.strip_prefix(MAGIC).expect("magic")).unwrap();
        let type_meta = unknown.type_meta.unwrap();
        (
            type_meta.api_version.unwrap(),
            type_meta.kind.unwrap(),
            unknown.raw.unwrap(),
        )
    }

    /// Encodes, checks the envelope, decodes again with our decoder: the JSON must come back.
    fn round_trip(object: Value) -> Vec<u8> {
        let encoded = encode_object(&object).unwrap();
        let (api_version, kind, raw) = unwrap(&encoded.bytes);
        assert_eq!((api_version.as_str(), kind.as_str()), type_of(&object));
        assert_eq!(raw, encoded.raw());
        assert_eq!(super::super::decode(&encoded.bytes).unwrap(), object);
        raw
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-0", "namespace": "default", "uid": "0b5e7e52-1c1b-4c4e-9b6a-0c1b2b3c4d5e",
                "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2026-12-07T13:05:03Z",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": "ünïcode ✓"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                    "uid": "11111111-2222-3333-4444-555555555555", "controller": true, "blockOwnerDeletion": true}],
                "finalizers": ["example.com/hold"],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                    "time": "2026-12-07T13:05:03Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]
            },
            "spec": {
                "containers": [{
                    "name": "web", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g", "daemon off;"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "prod"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "initialDelaySeconds": 5, "periodSeconds": 10},
                    "readinessProbe": {"tcpSocket": {"port": 8080}},
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}],
                    "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false}
                }],
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "web-config", "defaultMode": 420}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}
                ],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "nodeName": "node-1", "serviceAccountName": "default", "priority": -5,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}
            },
            "status": {
                "phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                "startTime": "2026-12-07T13:05:04Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T13:05:06Z"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.27",
                    "imageID": "", "started": true,
                    "state": {"running": {"startedAt": "2026-12-07T13:05:05Z"}}}]
            }
        })
    }

    #[test]
    fn objects_come_back_as_they_went() {
        let mut expected = pod();
        // Zero scalars of non-pointer fields and empty strings are written, and omitted again
        // on reading, as Go's omitempty omits them.
        expected["status"]["containerStatuses"][0]
            .as_object_mut()
            .unwrap()
            .remove("imageID");
        expected["status"]["containerStatuses"][0]
            .as_object_mut()
            .unwrap()
            .remove("restartCount");
        let encoded = encode_object(&pod()).unwrap();
        assert_eq!(super::super::decode(&encoded.bytes).unwrap(), expected);

        // prost reads the same bytes as Go's generated code would.
        let (_, _, raw) = unwrap(&encoded.bytes);
        let decoded = core::Pod::decode(&raw[..]).unwrap();
        let meta = decoded.metadata.unwrap();
        assert_eq!(meta.name.as_deref(), Some("web-0"));
        assert_eq!(meta.generation, Some(3));
        assert_eq!(
            meta.creation_timestamp.unwrap().seconds,
            Some(1_796_648_703)
        );
        assert_eq!(meta.labels["tier"], "front");
        let fields = meta.managed_fields[0].fields_v1.clone().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&fields.raw.unwrap()).unwrap(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}}})
        );
        let spec = decoded.spec.unwrap();
        assert_eq!(spec.priority, Some(-5), "negative int32s");
        assert_eq!(spec.tolerations[0].toleration_seconds, Some(300));
        let c = &spec.containers[0];
        assert_eq!(
            c.resources.as_ref().unwrap().requests["memory"]
                .string
                .as_deref(),
            Some("64Mi")
        );
        let probe = c.liveness_probe.as_ref().unwrap();
        let http = probe.handler.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(http.port.as_ref().unwrap().str_val.as_deref(), Some("http"));
        assert_eq!(http.port.as_ref().unwrap().r#type, Some(1));
        assert_eq!(
            c.security_context.as_ref().unwrap().run_as_user,
            Some(0),
            "an explicit zero survives"
        );
        let volume = spec.volumes[0].volume_source.as_ref().unwrap();
        assert_eq!(volume.config_map.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(
            decoded.status.unwrap().pod_ips[0].ip.as_deref(),
            Some("10.244.0.5")
        );
    }

    #[test]
    fn special_shapes() {
        // Bytes, MicroTime, Duration, RawExtension, CRD schemas, ExtraValue.
        round_trip(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "data": {"bin": "AP8B"}, "type": "Opaque", "immutable": true}));
        let raw = round_trip(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                     "renewTime": "2026-12-07T13:05:03.123456Z"}}),
        );
        let lease = k8s_pb::api::coordination::v1::Lease::decode(&raw[..]).unwrap();
        assert_eq!(
            lease.spec.unwrap().renew_time.unwrap().nanos,
            Some(123_456_000)
        );
        round_trip(
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "r"}, "data": {"spec": {"template": {"x": 1}}}, "revision": 2}),
        );
        round_trip(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "additionalProperties": false,
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"size": {"type": "integer", "default": 3, "minimum": 0},
                                           "tags": {"type": "array", "items": {"type": "string"}},
                                           "mode": {"type": "string", "enum": ["a", "b"]}},
                            "required": ["size"]}}}}}]}}),
        );
        round_trip(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "metadata": {}, "spec": {"user": "alice", "extra": {"scopes": ["a", "b"]},
                "resourceAttributes": {"verb": "get", "resource": "pods"}},
            "status": {"allowed": true}}),
        );
        assert_eq!(go_duration("1h0m0s").unwrap(), 3_600_000_000_000);
        assert_eq!(go_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(go_duration("-2m30s").unwrap(), -150_000_000_000);
        assert_eq!(go_duration("300µs").unwrap(), 300_000);
        assert_eq!(go_duration("0").unwrap(), 0);
        assert!(go_duration("5 parsecs").is_err() && go_duration("").is_err());
    }

    #[test]
    fn statuses_lists_and_watch_frames() {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"x\" not found", "reason": "NotFound",
            "details": {"name": "x", "kind": "pods"}, "code": 404});
        let (_, kind, raw) = unwrap(&encode_object(&status).unwrap().bytes);
        assert_eq!(kind, "Status");
        let decoded = k8s_pb::apimachinery::pkg::apis::meta::v1::Status::decode(&raw[..]).unwrap();
        assert_eq!(
            (decoded.code, decoded.reason.as_deref()),
            (Some(404), Some("NotFound"))
        );

        let items: Vec<Encoded> = ["a", "b"]
            .iter()
            .map(|n| {
                encode_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": n}, "data": {"k": "v"}}))
                .unwrap()
            })
            .collect();
        let bytes = list(
            "v1",
            "ConfigMapList",
            &json!({"resourceVersion": "7", "continue": "next"}),
            items.iter().map(Encoded::raw),
        )
        .unwrap();
        let (api_version, kind, raw) = unwrap(&bytes);
        assert_eq!(
            (api_version.as_str(), kind.as_str()),
            ("v1", "ConfigMapList")
        );
        let decoded = core::ConfigMapList::decode(&raw[..]).unwrap();
        let meta = decoded.metadata.unwrap();
        assert_eq!(
            (meta.resource_version.as_deref(), meta.r#continue.as_deref()),
            (Some("7"), Some("next"))
        );
        let names: Vec<_> = decoded
            .items
            .iter()
            .map(|c| c.metadata.as_ref().unwrap().name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);

        let frame = watch_frame("MODIFIED", &items[1].bytes);
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let event =
            k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent::decode(&frame[4..]).unwrap();
        assert_eq!(event.r#type.as_deref(), Some("MODIFIED"));
        assert_eq!(event.object.unwrap().raw.unwrap(), items[1].bytes.to_vec());
    }

    /// Kinds with shapes of their own, each read back by prost's generated message (which
    /// refuses a wire type its field does not have) and by our decoder.
    #[test]
    fn many_kinds_round_trip() {
        fn prost_reads<M: prost::Message + Default>(raw: &[u8]) {
            M::decode(raw).unwrap();
        }
        type ProstCheck = fn(&[u8]);
        let cases: Vec<(Value, ProstCheck)> = vec![
            (
                json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                    "metadata": {"name": "e", "namespace": "default"},
                    "eventTime": "2026-12-07T13:05:03.000001Z", "reportingController": "kubelet",
                    "reportingInstance": "node-1", "action": "Pulled", "reason": "Pulled", "type": "Normal",
                    "regarding": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u"},
                    "series": {"count": 3, "lastObservedTime": "2026-12-07T13:06:03.500000Z"},
                    "deprecatedFirstTimestamp": "2026-12-07T13:05:03Z", "deprecatedCount": 2}),
                prost_reads::<k8s_pb::api::events::v1::Event>,
            ),
            (
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "s-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "s"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                        "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}}],
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
                prost_reads::<k8s_pb::api::discovery::v1::EndpointSlice>,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                    "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"],
                        "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
                    "status": {"capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                        "allocatable": {"cpu": "1900m"},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-12-07T13:05:03Z"}],
                        "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                        "nodeInfo": {"kubeletVersion": "v1.33.0", "machineID": "m", "systemUUID": "s",
                            "bootID": "b", "kernelVersion": "6", "osImage": "Debian", "containerRuntimeVersion": "containerd://1.7",
                            "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64"},
                        "images": [{"names": ["busybox:1.36"], "sizeBytes": 1234567}]}}),
                prost_reads::<core::Node>,
            ),
            (
                json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                    "metadata": {"name": "csr-1"},
                    "spec": {"request": "LS0tLS1CRUdJTg==", "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                        "usages": ["digital signature", "client auth"], "username": "system:bootstrap:abc",
                        "groups": ["system:bootstrappers"], "expirationSeconds": 3600,
                        "extra": {"scopes": ["a"]}},
                    "status": {"certificate": "Y2VydA==", "conditions": [{"type": "Approved", "status": "True",
                        "lastUpdateTime": "2026-12-07T13:05:03Z"}]}}),
                prost_reads::<k8s_pb::api::certificates::v1::CertificateSigningRequest>,
            ),
            (
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                    "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid", "suspend": true,
                        "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox", "startupProbe": {"exec": {"command": ["true"]}},
                                "readinessProbe": {"grpc": {"port": 9000}}}]}}}}},
                    "status": {"lastScheduleTime": "2026-12-07T13:05:00Z"}}),
                prost_reads::<k8s_pb::api::batch::v1::CronJob>,
            ),
            (
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "np", "namespace": "default"},
                    "spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]},
                        "policyTypes": ["Ingress"],
                        "ingress": [{"ports": [{"port": "http", "protocol": "TCP"}, {"port": 8080, "endPort": 8090}],
                            "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}}),
                prost_reads::<k8s_pb::api::networking::v1::NetworkPolicy>,
            ),
            (
                json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "h", "namespace": "default"},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                        "minReplicas": 1, "maxReplicas": 5,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 60}}}],
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}}),
                prost_reads::<k8s_pb::api::autoscaling::v2::HorizontalPodAutoscaler>,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}],
                        "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "c",
                            "stdin": true, "tty": true}],
                        "volumes": [{"name": "d", "downwardAPI": {"items": [{"path": "labels",
                            "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                            {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "token",
                                "expirationSeconds": 3607}}]}}]}}),
                prost_reads::<core::Pod>,
            ),
            (
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "r"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
                    "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
                prost_reads::<k8s_pb::api::rbac::v1::ClusterRole>,
            ),
        ];
        for (object, prost_check) in cases {
            let raw = round_trip(object);
            prost_check(&raw);
        }
    }

    #[test]
    fn wrong_types_are_errors_not_misread_answers() {
        let bad = [
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"priority": "high"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"priority": 1_u64 << 40}}),
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": {"name": "x"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}}),
        ];
        for object in bad {
            assert!(encode_object(&object).is_err(), "{object}");
        }
        // Positive control: the same shapes with right types encode.
        assert!(
            encode_object(&json!({"apiVersion": "v1", "kind": "Pod", "spec": {"priority": 1}}))
                .is_ok()
        );
    }
}
