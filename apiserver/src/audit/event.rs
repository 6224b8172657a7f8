//! The audit Event (audit.k8s.io/v1) and its wire form. The request path only gathers owned
//! parts (mostly shared through an `Arc`) and raw bodies; decoding the bodies and writing JSON
//! happen on the backends' tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::policy::{Level, Stage};
use crate::auth::UserInfo;

pub const API_VERSION: &str = "audit.k8s.io/v1";
pub const DECISION: &str = "authorization.k8s.io/decision";
pub const REASON: &str = "authorization.k8s.io/reason";
pub const TRUNCATED: &str = "audit.k8s.io/truncated";

/// What is known of a request once it is authenticated; shared by all its stages' events.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub audit_id: String,
    pub request_uri: String,
    pub verb: String,
    pub user: UserInfo,
    pub source_ips: Vec<String>,
    pub user_agent: String,
    pub object_ref: Option<ObjectReference>,
    pub received: DateTime<Utc>,
}

/// The object a resource request is about (upstream's ObjectReference).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// A request or response body as it crossed the wire, decoded only when written.
#[derive(Clone, Debug)]
pub struct RawBody {
    pub bytes: Bytes,
    pub content_type: String,
}

/// One event: a request at one stage.
#[derive(Debug)]
pub struct Event {
    pub level: Level,
    pub stage: Stage,
    pub request: Arc<RequestRecord>,
    pub stage_timestamp: DateTime<Utc>,
    pub impersonated_user: Option<Arc<UserInfo>>,
    /// The answer's code; with `error_body`, its Status.
    pub response_code: Option<u16>,
    /// A failed answer's body (a Status), for the responseStatus' reason and message.
    pub error_body: Option<Bytes>,
    /// At Request and RequestResponse; for creates at Metadata too, where only the object's
    /// name is taken from it.
    pub request_body: Option<RawBody>,
    /// At RequestResponse.
    pub response_body: Option<RawBody>,
    pub annotations: Arc<BTreeMap<&'static str, String>>,
    pub omit_managed_fields: bool,
}

impl Event {
    /// What this event holds that a client chose the size of (bodies, the URI, the
    /// Audit-ID and User-Agent headers), counted against the backends' buffers. The
    /// request's record is shared by its stages and counted with each, to stay on the safe
    /// side.
    pub fn queued_bytes(&self) -> usize {
        let request = &*self.request;
        self.request_body.as_ref().map_or(0, |b| b.bytes.len())
            + self.response_body.as_ref().map_or(0, |b| b.bytes.len())
            + self.error_body.as_ref().map_or(0, Bytes::len)
            + request.request_uri.len()
            + request.audit_id.len()
            + request.user_agent.len()
    }

    /// The event as upstream's JSON, without a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        self.encode(false)
    }

    /// The event without its request and response objects, annotated
    /// `audit.k8s.io/truncated: "true"`, as upstream's truncating backends send an event over
    /// their size bound.
    pub fn to_truncated_json(&self) -> Vec<u8> {
        self.encode(true)
    }

    fn encode(&self, truncated: bool) -> Vec<u8> {
        let request = &*self.request;
        let includes_request = self.level >= Level::Request && !truncated;
        let request_object = self
            .request_body
            .as_ref()
            .filter(|_| includes_request)
            .and_then(|b| decode(&b.bytes, &b.content_type));
        let mut object_ref = request.object_ref.clone();
        if let (Some(r), Some(body)) = (&mut object_ref, &self.request_body) {
            match &request_object {
                Some(object) => fill_from_metadata(r, object.get("metadata")),
                // At Metadata only the names are read, not the whole object.
                None => fill_from_metadata(r, names_of(body).as_ref()),
            }
        }
        let mut annotations = std::borrow::Cow::Borrowed(&*self.annotations);
        if truncated {
            annotations.to_mut().insert(TRUNCATED, "true".to_owned());
        }
        let wire = Wire {
            kind: "Event",
            api_version: API_VERSION,
            level: self.level.as_str(),
            audit_id: &request.audit_id,
            stage: self.stage.as_str(),
            request_uri: &request.request_uri,
            verb: &request.verb,
            user: WireUser::from(&request.user),
            impersonated_user: self.impersonated_user.as_deref().map(WireUser::from),
            source_ips: &request.source_ips,
            user_agent: &request.user_agent,
            object_ref: object_ref.as_ref(),
            response_status: self.response_code.map(|code| self.response_status(code)),
            request_object: request_object.map(|o| self.trimmed(o)),
            response_object: self
                .response_body
                .as_ref()
                .filter(|_| !truncated)
                .and_then(|b| decode(&b.bytes, &b.content_type))
                .map(|o| self.trimmed(o)),
            request_received_timestamp: micro_time(request.received),
            stage_timestamp: micro_time(self.stage_timestamp),
            annotations: &annotations,
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// `{"metadata":{},"code":200}`, plus a failure's status, message, reason and details.
    fn response_status(&self, code: u16) -> Value {
        let mut status = Map::new();
        status.insert("metadata".into(), Value::Object(Map::new()));
        if let Some(Value::Object(answer)) = self
            .error_body
            .as_ref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            && answer.get("kind").and_then(Value::as_str) == Some("Status")
        {
            for field in ["status", "message", "reason", "details"] {
                if let Some(v) = answer.get(field) {
                    status.insert(field.into(), v.clone());
                }
            }
        }
        status.insert("code".into(), code.into());
        Value::Object(status)
    }

    /// Drops managedFields when the policy says so (of an object, or of a list's items).
    fn trimmed(&self, mut object: Value) -> Value {
        if self.omit_managed_fields {
            if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
            if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
                for item in items {
                    if let Some(m) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                    }
                }
            }
        }
        object
    }
}

/// A body as JSON, whatever it was sent as; None when it does not decode (e.g. cut short).
fn decode(bytes: &[u8], content_type: &str) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    crate::codec::decode(bytes, content_type).ok()
}

/// The metadata of a body, reading a JSON one only for the fields the reference needs.
fn names_of(body: &RawBody) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct Names {
        metadata: Option<Value>,
    }
    if body.content_type.starts_with("application/json") {
        return serde_json::from_slice::<Names>(&body.bytes).ok()?.metadata;
    }
    decode(&body.bytes, &body.content_type)?
        .get_mut("metadata")
        .map(Value::take)
}

/// Completes the reference from the request's object metadata, as upstream does (a create
/// names its object only in the body).
fn fill_from_metadata(r: &mut ObjectReference, metadata: Option<&Value>) {
    let Some(Value::Object(meta)) = metadata else {
        return;
    };
    let field = |name: &str| meta.get(name).and_then(Value::as_str).unwrap_or("");
    for (slot, name) in [
        (&mut r.namespace, "namespace"),
        (&mut r.name, "name"),
        (&mut r.uid, "uid"),
        (&mut r.resource_version, "resourceVersion"),
    ] {
        if slot.is_empty() {
            *slot = field(name).to_owned();
        }
    }
}

/// Upstream's MicroTime: RFC 3339 in UTC with microseconds.
pub fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: &'static str,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: &'static str,
    #[serde(rename = "requestURI")]
    request_uri: &'a str,
    verb: &'a str,
    user: WireUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<WireUser<'a>>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "<[String]>::is_empty")]
    source_ips: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<&'a ObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<Value>,
    request_received_timestamp: String,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<&'static str, String>,
}

/// authentication.k8s.io/v1 UserInfo.
#[derive(Serialize)]
struct WireUser<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    username: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: &'a BTreeMap<String, Vec<String>>,
}

impl<'a> From<&'a UserInfo> for WireUser<'a> {
    fn from(u: &'a UserInfo) -> WireUser<'a> {
        WireUser {
            username: &u.name,
            uid: &u.uid,
            groups: &u.groups,
            extra: &u.extra,
        }
    }
}

/// Upstream's `legacy` log line: one human-readable line of the event's essentials.
pub fn legacy_line(event: &Event) -> String {
    fn quoted(s: &str) -> String {
        format!("{s:?}")
    }
    fn list(items: &[String]) -> String {
        items
            .iter()
            .map(|g| quoted(g))
            .collect::<Vec<_>>()
            .join(",")
    }
    let r = &*event.request;
    let (user, groups) = if r.user.name.is_empty() {
        ("<none>".to_owned(), "<none>".to_owned())
    } else if r.user.groups.is_empty() {
        (r.user.name.clone(), "<none>".to_owned())
    } else {
        (r.user.name.clone(), list(&r.user.groups))
    };
    let (as_user, as_groups) = match &event.impersonated_user {
        Some(u) => (u.name.clone(), list(&u.groups)),
        None => ("<self>".to_owned(), "<lookup>".to_owned()),
    };
    let namespace = r
        .object_ref
        .as_ref()
        .map(|o| o.namespace.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("<none>");
    let response = event
        .response_code
        .map_or("<deferred>".to_owned(), |c| c.to_string());
    let ip = r.source_ips.first().map_or("<unknown>", String::as_str);
    format!(
        "{} AUDIT: id={} stage={} ip={} method={} user={} groups={} as={} asgroups={} user-agent={} namespace={} uri={} response=\"{response}\"",
        r.received.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        quoted(&r.audit_id),
        quoted(event.stage.as_str()),
        quoted(ip),
        quoted(&r.verb),
        quoted(&user),
        quoted(&groups),
        quoted(&as_user),
        quoted(&as_groups),
        quoted(&r.user_agent),
        quoted(namespace),
        quoted(&r.request_uri),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(level: Level, stage: Stage) -> Event {
        let received = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        Event {
            level,
            stage,
            request: Arc::new(RequestRecord {
                audit_id: "id-1".into(),
                request_uri: "/api/v1/namespaces/a/secrets".into(),
                verb: "create".into(),
                user: UserInfo::new("alice", vec!["devs".into()]),
                source_ips: vec!["10.0.0.1".into()],
                user_agent: "kubectl/v1.33".into(),
                object_ref: Some(ObjectReference {
                    resource: "secrets".into(),
                    namespace: "a".into(),
                    api_version: "v1".into(),
                    ..Default::default()
                }),
                received,
            }),
            stage_timestamp: received,
            impersonated_user: None,
            response_code: None,
            error_body: None,
            request_body: Some(RawBody {
                bytes: Bytes::from_static(
                    br#"{"kind":"Secret","metadata":{"name":"db","managedFields":[{}]},"data":{"k":"dg=="}}"#,
                ),
                content_type: "application/json".into(),
            }),
            response_body: None,
            annotations: Default::default(),
            omit_managed_fields: true,
        }
    }

    fn json(e: &Event) -> Value {
        serde_json::from_slice(&e.to_json()).unwrap()
    }

    #[test]
    fn client_chosen_headers_count_against_the_queue_bound() {
        let (queue, _events) = crate::audit::queue::bounded("log", 10_000);
        // Control: an ordinary event is queued.
        queue.push(&Arc::new(event(Level::Metadata, Stage::ResponseComplete)));
        assert_eq!(queue.errors(), 0);
        // Hostile: a megabyte of User-Agent per request, with no body at all.
        let mut hostile = event(Level::Metadata, Stage::ResponseComplete);
        hostile.request_body = None;
        let mut record = (*hostile.request).clone();
        record.user_agent = "x".repeat(1 << 20);
        hostile.request = Arc::new(record);
        let hostile = Arc::new(hostile);
        for _ in 0..100 {
            queue.push(&hostile);
        }
        // 64 MiB hold at most 63 more of them; the rest are dropped and counted.
        assert!(queue.errors() >= 37, "dropped {}", queue.errors());
    }

    #[test]
    fn metadata_names_the_created_object_but_never_holds_it() {
        let v = json(&event(Level::Metadata, Stage::ResponseComplete));
        assert_eq!(v["kind"], "Event");
        assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(v["objectRef"]["name"], "db");
        assert!(v.get("requestObject").is_none(), "{v}");
        assert_eq!(v["requestReceivedTimestamp"], "2026-01-02T03:04:05.123456Z");
        assert_eq!(
            v["user"]["groups"],
            serde_json::json!(["devs", "system:authenticated"])
        );
        assert!(
            !String::from_utf8(event(Level::Metadata, Stage::ResponseComplete).to_json())
                .unwrap()
                .contains("dg==")
        );
    }

    #[test]
    fn request_level_holds_the_object_without_managed_fields() {
        let v = json(&event(Level::Request, Stage::ResponseComplete));
        assert_eq!(v["requestObject"]["data"]["k"], "dg==");
        assert!(
            v["requestObject"]["metadata"]
                .get("managedFields")
                .is_none()
        );
    }

    #[test]
    fn a_failure_status_is_copied_into_the_response_status() {
        let mut e = event(Level::Metadata, Stage::ResponseComplete);
        e.response_code = Some(403);
        e.error_body = Some(Bytes::from_static(
            br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no","reason":"Forbidden","details":{"kind":"secrets"},"code":403}"#,
        ));
        let v = json(&e);
        assert_eq!(
            v["responseStatus"],
            serde_json::json!({"metadata": {}, "status": "Failure", "message": "no",
                "reason": "Forbidden", "details": {"kind": "secrets"}, "code": 403})
        );
        e.error_body = None;
        e.response_code = Some(201);
        assert_eq!(
            json(&e)["responseStatus"],
            serde_json::json!({"metadata": {}, "code": 201})
        );
    }

    #[test]
    fn the_legacy_line_is_upstreams() {
        let line = legacy_line(&event(Level::Metadata, Stage::RequestReceived));
        assert_eq!(
            line,
            r#"2026-01-02T03:04:05.123456789Z AUDIT: id="id-1" stage="RequestReceived" ip="10.0.0.1" method="create" user="alice" groups="\"devs\",\"system:authenticated\"" as="<self>" asgroups="<lookup>" user-agent="kubectl/v1.33" namespace="a" uri="/api/v1/namespaces/a/secrets" response="<deferred>""#
        );
    }
}
