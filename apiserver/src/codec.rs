//! Request and response bodies: reading a body within its bound, decoding JSON, YAML or
//! protobuf (refusing hostile shapes before any decoder runs), and answering in the format
//! the client negotiated. The resource handlers and the auth APIs share it.

mod duplicates;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::query::Query;
use crate::status::{ApiError, ApiResult};

/// The most a request body may hold, as upstream's limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How the client wants the answer encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// meta.k8s.io/v1 Table (server-side printing).
    Table,
    /// Kubernetes protobuf, which client-go's typed clients ask for first.
    Protobuf,
    /// Only the objects' metadata (meta.k8s.io/v1 PartialObjectMetadata and its List), in
    /// JSON or protobuf: what client-go's metadata informers ask for.
    PartialJson,
    PartialProtobuf,
}

impl Format {
    pub fn is_partial(self) -> bool {
        matches!(self, Format::PartialJson | Format::PartialProtobuf)
    }
}

/// An object, or a list of objects, reduced to metadata (PartialObjectMetadata[List]); a
/// Status stays as it is.
pub fn partial(body: &Value) -> Value {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let metadata = || body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if kind == "Status" {
        return body.clone();
    }
    match body.get("items").and_then(Value::as_array) {
        Some(items) if kind.ends_with("List") => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata(),
            "items": items.iter().map(partial).collect::<Vec<_>>(),
        }),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata(),
        }),
    }
}

/// The media type of protobuf bodies and answers.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Picks the answer format from the Accept header, as upstream's content negotiation: the
/// first clause the server can answer, in the header's order. `protobuf` says whether the
/// kind has a protobuf form (built-in kinds; a custom resource's clients get JSON).
pub fn negotiate(headers: &HeaderMap, protobuf: bool) -> ApiResult<Format> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Format::Json);
    }
    for choice in accept.split(',') {
        let mut params = choice.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let params: Vec<&str> = params.collect();
        let as_table = params.contains(&"as=Table");
        let v1 = params.contains(&"v=v1") && params.contains(&"g=meta.k8s.io");
        let as_partial = params.contains(&"as=PartialObjectMetadata")
            || params.contains(&"as=PartialObjectMetadataList");
        match media {
            "application/json" | "*/*" | "application/*" if as_partial && v1 => {
                return Ok(Format::PartialJson);
            }
            PROTOBUF if as_partial && v1 => return Ok(Format::PartialProtobuf),
            "application/json" | "*/*" | "application/*" if as_table && v1 => {
                return Ok(Format::Table);
            }
            "application/json" | "*/*" | "application/*"
                if !params.iter().any(|p| p.starts_with("as=")) =>
            {
                return Ok(Format::Json);
            }
            "application/yaml" if !as_table => return Ok(Format::Yaml),
            PROTOBUF if protobuf && params.is_empty() => return Ok(Format::Protobuf),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// Serializes an answer in the negotiated format. An object protobuf cannot carry (never
/// one the server validated) is answered in JSON, which every protobuf client also reads.
pub fn respond(status: StatusCode, format: Format, body: &Value) -> Response {
    let reduced;
    let (format, body) = match format {
        Format::PartialJson | Format::PartialProtobuf => {
            reduced = partial(body);
            let encoding = if format == Format::PartialJson {
                Format::Json
            } else {
                Format::Protobuf
            };
            (encoding, &reduced)
        }
        other => (other, body),
    };
    if format == Format::Protobuf {
        match crate::protobuf::encode_object(body) {
            Ok(encoded) => return raw_response(status, PROTOBUF, encoded.bytes),
            Err(e) => {
                let kind = body
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or_default();
                tracing::warn!(kind, "answering JSON: the object has no protobuf form: {e}");
            }
        }
    }
    let (bytes, content_type) = match format {
        Format::Yaml => (
            serde_yaml::to_string(body).unwrap_or_default().into_bytes(),
            "application/yaml",
        ),
        _ => {
            let mut bytes = serde_json::to_vec(body).unwrap_or_default();
            // Upstream's JSON encoder ends every body with a newline; clients compare bytes.
            bytes.push(b'\n');
            (bytes, "application/json")
        }
    };
    raw_response(status, content_type, Bytes::from(bytes))
}

pub fn raw_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Reads a request body (at most [`MAX_BODY`]) and decodes JSON, YAML or protobuf into a JSON
/// value. Duplicate fields of a JSON body are noted in `query` for fieldValidation.
pub async fn read_body(body: Body, headers: &HeaderMap, query: &mut Query) -> ApiResult<Value> {
    let bytes = read_bytes(body).await?;
    let content_type = content_type(headers);
    let value = decode(&bytes, &content_type)?;
    if content_type == "application/json" || content_type.is_empty() {
        query.duplicate_fields = duplicates::duplicate_fields(&bytes);
    }
    Ok(value)
}

pub async fn read_bytes(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

/// Decodes a JSON or YAML document into a JSON value; malformed input is a 400.
pub fn decode(bytes: &[u8], content_type: &str) -> ApiResult<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == PROTOBUF {
        return crate::protobuf::decode(bytes).map_err(|e| {
            ApiError::bad_request(format!("unable to decode the protobuf body: {e}"))
        });
    }
    let is_yaml = media == "application/yaml" || media == "application/apply-patch+yaml";
    check_body_shape(bytes, is_yaml)?;
    let value: Value = if is_yaml {
        serde_yaml::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
        })?
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    Ok(value)
}

/// The deepest flow nesting (`[` and `{`) a YAML body may have, as upstream's YAML decoder.
const MAX_YAML_DEPTH: usize = 10_000;

/// The most objects and arrays one body may hold. Each costs a few hundred bytes once decoded
/// and copied along the write path while `[` costs one byte to send, so 3 MiB of brackets
/// would take over a gigabyte; with this bound one body costs at most about 35 MiB (see
/// the README's worst requests). Real objects hold a few thousand (an EndpointSlice of 1,000
/// endpoints about 5,000).
pub const MAX_CONTAINERS: usize = 1 << 16;

/// Refuses, before any decoder runs, a body whose decoding would cost more than its size
/// warrants: more than [`MAX_CONTAINERS`] objects and arrays, or YAML nested deeper than
/// [`MAX_YAML_DEPTH`] (the YAML parser's time grows with the square of the nesting). JSON
/// strings are skipped exactly; in YAML every bracket counts, strings too, which a real
/// document stays far from.
pub fn check_body_shape(bytes: &[u8], yaml: bool) -> ApiResult<()> {
    let (mut depth, mut containers) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if !yaml => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                containers += 1;
                if yaml && depth > MAX_YAML_DEPTH {
                    return Err(ApiError::bad_request(format!(
                        "error converting YAML to JSON: yaml: exceeded max depth of {MAX_YAML_DEPTH}"
                    )));
                }
                // Far past the JSON decoder's own depth limit (128): the same 400, earlier.
                if !yaml && depth > 1000 {
                    return Err(ApiError::bad_request(
                        "couldn't get version/kind; json parse error: recursion limit exceeded",
                    ));
                }
                if containers > MAX_CONTAINERS {
                    return Err(ApiError::new(
                        413,
                        "RequestEntityTooLarge",
                        format!(
                            "Request entity too large: the body holds more than {MAX_CONTAINERS} objects and arrays"
                        ),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_fails_fast_on_hostile_bodies() {
        let start = std::time::Instant::now();
        // Nesting past the decoders' depth limit is refused, not recursed into.
        let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            decode(deep_json.as_bytes(), "application/json")
                .unwrap_err()
                .code,
            400
        );

        let deep_yaml = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            decode(deep_yaml.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            400
        );
        // Just under the scan's limit, the parser itself refuses the depth, quickly.
        let deep_yaml = format!("a: {}{}", "[".repeat(9_999), "]".repeat(9_999));
        assert_eq!(
            decode(deep_yaml.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            400
        );

        // A billion laughs: aliases that would expand to 10^9 strings.
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..9u8 {
            let (name, prev) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            let refs = vec![format!("*{prev}"); 9].join(",");
            laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        assert_eq!(
            decode(laughs.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            400
        );
        // Many containers, shallow or deep, in JSON or YAML: refused before decoding.
        let many = format!("[{}[]]", "[],".repeat(MAX_CONTAINERS));
        assert_eq!(
            decode(many.as_bytes(), "application/json")
                .unwrap_err()
                .code,
            413
        );
        assert_eq!(
            decode(many.as_bytes(), "application/yaml")
                .unwrap_err()
                .code,
            413
        );
        // Brackets inside JSON strings are text, not containers.
        let text = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(MAX_CONTAINERS + 1));
        assert!(decode(text.as_bytes(), "application/json").is_ok());
        // Positive control: an ordinary document decodes.
        assert!(decode(b"a: [1, 2]", "application/yaml").is_ok());
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn content_negotiation() {
        let mut h = HeaderMap::new();
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        h.insert(header::ACCEPT, HeaderValue::from_static(table));
        assert_eq!(negotiate(&h, true).unwrap(), Format::Table);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert_eq!(negotiate(&h, true).unwrap(), Format::Json);
        // client-go's typed clients: protobuf first, for kinds that have it.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf, */*"),
        );
        assert_eq!(negotiate(&h, true).unwrap(), Format::Protobuf);
        assert_eq!(negotiate(&h, false).unwrap(), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
        );
        assert_eq!(negotiate(&h, true).unwrap(), Format::Protobuf);
        assert!(
            negotiate(&h, false).is_err(),
            "custom resources have no protobuf"
        );
        // Metadata-only answers, for custom resources too.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
            ),
        );
        assert_eq!(negotiate(&h, true).unwrap(), Format::PartialProtobuf);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
            ),
        );
        assert_eq!(negotiate(&h, false).unwrap(), Format::PartialJson);
    }
}
