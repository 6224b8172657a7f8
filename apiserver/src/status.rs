//! Every error the apiserver answers, as a Kubernetes `Status` with upstream's code, reason and
//! message (the text kubectl prints after "Error from server (Reason): ").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::storage;

/// One field problem in an Invalid (422) answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// Upstream's cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `Invalid value: <value>: <detail>`, as upstream's field.Invalid renders.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Cause {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {}", detail.as_ref()),
        }
    }

    /// `Required value: <detail>`, as upstream's field.Required with a detail.
    pub fn required_detail(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("Required value: {detail}"),
        }
    }

    /// `Too long: may not be more than <max> bytes`; upstream omits the value.
    pub fn too_long(field: impl Into<String>, max: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }

    /// `Duplicate value: <shown>[: <detail>]` with the value already rendered, for values
    /// upstream prints as Go structs.
    pub fn duplicate_shown(field: impl Into<String>, shown: &str, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            format!("Duplicate value: {shown}")
        } else {
            format!("Duplicate value: {shown}: {detail}")
        };
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message,
        }
    }

    /// `Invalid value: <shown>: <detail>` with the value already rendered, for values upstream
    /// prints unquoted (quantities) or as Go literals.
    pub fn invalid_shown(field: impl Into<String>, shown: &str, detail: impl AsRef<str>) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {}", detail.as_ref()),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", detail.into()),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {value}: supported values: {list}"),
        }
    }

    /// `Invalid value: <value>: <detail>` for a value of the wrong type (upstream's
    /// field.TypeInvalid).
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Cause {
        Cause {
            reason: "FieldValueTypeInvalid",
            ..Cause::invalid(field, value, detail)
        }
    }

    /// `Too many: <actual>: must have at most <max> items` (upstream's field.TooMany).
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Cause {
        Cause {
            reason: "FieldValueTooMany",
            field: field.into(),
            message: format!("Too many: {actual}: must have at most {max} items"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value}"),
        }
    }

    /// `field: message`, as upstream joins causes into a Status message.
    pub(crate) fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A failed request, rendered as a `Status` object.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel through every Result, so they stay small.
    pub details: Option<Box<Value>>,
    /// Seconds a client should wait before retrying (Retry-After).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `pods "x"` or `deployments.apps "x"`, as upstream's qualified resource prints.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    Value::Object(d)
}

/// StatusDetails' fields in upstream's Go struct order (name, group, kind, uid, causes,
/// retryAfterSeconds): clients compare Status bodies as strings.
fn ordered_details(d: &Value, retry_after: Option<u64>) -> Value {
    const ORDER: [&str; 6] = [
        "name",
        "group",
        "kind",
        "uid",
        "causes",
        "retryAfterSeconds",
    ];
    let mut out = serde_json::Map::new();
    for key in ORDER {
        if let Some(v) = d.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(secs) = retry_after {
        out.insert("retryAfterSeconds".into(), json!(secs));
    }
    if let Some(m) = d.as_object() {
        for (k, v) in m {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(out)
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
        let q = qualified(group, resource);
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(404, "NotFound", format!("{q} \"{name}\" not found"))
        }
    }

    /// A path that names no resource the server knows.
    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> ApiError {
        let q = qualified(group, resource);
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{q} \"{name}\" already exists"),
            )
        }
    }

    /// A create whose generated names all existed (upstream's NewGenerateNameConflict).
    pub fn generate_name_conflict(group: &str, resource: &str, name: &str) -> ApiError {
        let q = qualified(group, resource);
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            retry_after: Some(1),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!(
                    "{q} \"{name}\" already exists, the server was not allowed to generate a unique name"
                ),
            )
        }
    }

    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
        let q = qualified(group, resource);
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {q} \"{name}\": {why}"),
            )
        }
    }

    /// The optimistic-concurrency failure kubectl and controllers retry on.
    pub fn stale(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let joined = causes.iter().map(Cause::render).collect::<Vec<_>>();
        let list = if joined.len() == 1 {
            joined[0].clone()
        } else {
            format!("[{}]", joined.join(", "))
        };
        let mut d = details(group, kind, name);
        d["causes"] = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        let q = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            details: Some(Box::new(d)),
            ..ApiError::new(422, "Invalid", format!("{q} \"{name}\" is invalid: {list}"))
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type}"
            ),
        )
    }

    pub fn not_acceptable(accept: &str) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io; got {accept}"
            ),
        )
    }

    pub fn too_large() -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// 410: a resourceVersion older than what is kept.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Gone", message)
    }

    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
        let q = qualified(group, resource);
        let what = if name.is_empty() {
            q
        } else {
            format!("{q} \"{name}\"")
        };
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(403, "Forbidden", format!("{what} is forbidden: {why}"))
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(504, "Timeout", message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(503, "ServiceUnavailable", message)
        }
    }

    /// The Status object itself (also used for watch ERROR events).
    /// The Status, its fields in upstream's Go struct order (kind, apiVersion, metadata,
    /// status, message, reason, details, code), empty ones left out as upstream's omitempty.
    pub fn to_status(&self) -> Value {
        let mut s = serde_json::Map::new();
        s.insert("kind".into(), json!("Status"));
        s.insert("apiVersion".into(), json!("v1"));
        s.insert("metadata".into(), json!({}));
        s.insert("status".into(), json!("Failure"));
        if !self.message.is_empty() {
            s.insert("message".into(), json!(self.message));
        }
        if !self.reason.is_empty() {
            s.insert("reason".into(), json!(self.reason));
        }
        if self.details.is_some() || self.retry_after.is_some() {
            let d = self.details.as_deref().cloned().unwrap_or(Value::Null);
            s.insert("details".into(), ordered_details(&d, self.retry_after));
        }
        s.insert("code".into(), json!(self.code));
        Value::Object(s)
    }

    /// Maps a store error about one object to the Status upstream answers.
    pub fn from_store(e: storage::Error, group: &str, resource: &str, name: &str) -> ApiError {
        match e {
            storage::Error::AlreadyExists(_) => ApiError::already_exists(group, resource, name),
            storage::Error::NotFound(_) => ApiError::not_found(group, resource, name),
            storage::Error::Conflict { .. } => ApiError::stale(group, resource, name),
            storage::Error::Compacted {
                requested,
                compacted,
            } => ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            storage::Error::FutureRevision { requested, current } => ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            e @ (storage::Error::OutOfRange { .. } | storage::Error::Transform { .. }) => {
                ApiError::internal(e)
            }
            storage::Error::Unavailable(m) => ApiError::internal(m),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        // Upstream's JSON encoder ends every body with a newline.
        body.push(b'\n');
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The Success Status some deletes answer.
pub fn success(group: &str, resource: &str, name: &str, uid: Option<&str>) -> Value {
    let mut d = details(group, resource, name);
    if let Some(uid) = uid {
        d["uid"] = json!(uid);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": ordered_details(&d, None),
    })
}
