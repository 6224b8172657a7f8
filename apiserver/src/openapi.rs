//! The OpenAPI documents: /openapi/v3 (an index of group-versions and one OpenAPI 3.0 document
//! per group-version) built from the resource table and k8s-openapi's JSON schemas.
//!
//! kubectl reads them for two things. Before sending a write it looks up the PATCH operation of
//! the kind (by its x-kubernetes-group-version-kind) and, when that operation takes the
//! `fieldValidation` query parameter, leaves validation to the server instead of validating
//! against the v2 schema. `kubectl explain` reads the kind's schema from components/schemas.
//! The PATCH request bodies deliberately omit the strategic-merge media type: kubectl then
//! computes strategic patches from its compiled-in types, whose patch merge keys our schemas
//! do not carry.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value, json};

use crate::registry::{BUILTIN, ResourceInfo, Resources, Schema};

/// The built-in group-versions' documents, built once: ("" or group, version) -> document.
static DOCUMENTS: LazyLock<BTreeMap<(String, String), Arc<Value>>> =
    LazyLock::new(|| documents(BUILTIN.iter().map(|r| &**r)));

/// The documents of the group-versions CustomResourceDefinitions serve (not cached: they
/// change with the definitions, and are small).
fn custom_documents(served: &Resources) -> BTreeMap<(String, String), Arc<Value>> {
    let custom: Vec<Arc<ResourceInfo>> =
        served.all().into_iter().filter(|r| r.is_custom()).collect();
    documents(custom.iter().map(|r| &**r))
}

/// One document per group-version of `resources`.
fn documents<'a>(
    resources: impl Iterator<Item = &'a ResourceInfo>,
) -> BTreeMap<(String, String), Arc<Value>> {
    let mut by_gv: BTreeMap<(String, String), Vec<&ResourceInfo>> = BTreeMap::new();
    for r in resources {
        by_gv
            .entry((r.group.clone(), r.version.clone()))
            .or_default()
            .push(r);
    }
    by_gv
        .into_iter()
        .map(|((g, v), resources)| {
            let doc = build(&g, &v, &resources);
            ((g, v), Arc::new(doc))
        })
        .collect()
}

/// The protobuf media type client-go asks /openapi/v2 for (its `@` is no token character:
/// matched as a plain string), and the one upstream answers with.
const V2_PROTOBUF_ASKED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// /openapi/v2: a Swagger 2.0 document with no definitions, as JSON or as gnostic's protobuf
/// Document, by the first Accept clause that names one (none: JSON; none matching: 406).
/// kubectl reads it only to validate what /openapi/v3 cannot place, such as the items of a
/// `kind: List`: with no definitions it leaves them to the server's own validation
/// (fieldValidation=Strict), which every create then runs. Definitions it did read would have
/// to be complete, or valid files would fail on "unknown field".
pub fn v2(headers: &axum::http::HeaderMap) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    for clause in accept.split(',') {
        let media = clause.split(';').next().unwrap_or("").trim();
        match media {
            "application/json" | "application/*" | "*/*" => {
                let doc = json!({
                    "swagger": "2.0",
                    "info": { "title": "Kubernetes", "version": V2_VERSION },
                    "paths": {},
                });
                return (
                    [(header::CONTENT_TYPE, "application/json")],
                    doc.to_string(),
                )
                    .into_response();
            }
            V2_PROTOBUF_ASKED | V2_PROTOBUF => {
                return ([(header::CONTENT_TYPE, V2_PROTOBUF)], v2_protobuf()).into_response();
            }
            _ => {}
        }
    }
    StatusCode::NOT_ACCEPTABLE.into_response()
}

/// The version the v2 document's info names.
const V2_VERSION: &str = "v1.33.0";

/// gnostic's openapi.v2.Document{swagger: "2.0", info: {title: "Kubernetes", version}}.
fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, V2_VERSION.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    doc
}

/// The URL path of a group-version's discovery root, without the leading slash.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A short stable hash of a document, for the index's cache-busting `hash` parameter.
fn hash(doc: &Value) -> String {
    // FNV-1a over the serialized document: stable across runs of the same build.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// The /openapi/v3 index.
pub fn v3_index(served: &Resources) -> Value {
    let custom = custom_documents(served);
    let paths: Map<String, Value> = DOCUMENTS
        .iter()
        .chain(custom.iter())
        .map(|((g, v), doc)| {
            let path = gv_path(g, v);
            let url = format!("/openapi/v3/{path}?hash={}", hash(doc));
            (path, json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// The OpenAPI 3.0 document of one group-version.
pub fn v3_document(served: &Resources, group: &str, version: &str) -> Option<Arc<Value>> {
    let gv = (group.to_owned(), version.to_owned());
    match DOCUMENTS.get(&gv) {
        Some(doc) => Some(doc.clone()),
        None => custom_documents(served).remove(&gv),
    }
}

fn gvk(r: &ResourceInfo) -> Value {
    json!({ "group": r.group, "version": r.version, "kind": r.kind })
}

fn query_param(name: &str, description: &str, ty: &str) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": { "type": ty, "uniqueItems": true } })
}

fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values are: All.",
            "string",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
            "string",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    [
        ("labelSelector", "A selector to restrict the list of returned objects by their labels.", "string"),
        ("fieldSelector", "A selector to restrict the list of returned objects by their fields.", "string"),
        ("limit", "The maximum number of responses to return for a list call.", "integer"),
        ("continue", "The continue option should be set when retrieving more results from the server.", "string"),
        ("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from.", "string"),
        ("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls.", "string"),
        ("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", "boolean"),
        ("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type BOOKMARK.", "boolean"),
        ("sendInitialEvents", "sendInitialEvents=true may be set together with watch=true.", "boolean"),
        ("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    ]
    .iter()
    .map(|(n, d, t)| query_param(n, d, t))
    .collect()
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "uniqueItems": true } })
}

fn body(schema_ref: &Value, media: &[&str]) -> Value {
    let content: Map<String, Value> = media
        .iter()
        .map(|m| (m.to_string(), json!({ "schema": schema_ref })))
        .collect();
    json!({ "content": content, "required": true })
}

fn ok(schema_ref: &Value, code: &str) -> Value {
    json!({ code: { "description": "OK", "content": {
        "application/json": { "schema": schema_ref },
        "application/yaml": { "schema": schema_ref },
    }}})
}

/// DELETE's answers: 200 when done, 202 when the object stays and the client asked for
/// orphanDependents=false; upstream declares the same schema for both.
fn delete_responses(schema_ref: &Value) -> Value {
    let mut responses = ok(schema_ref, "200");
    responses["202"] = ok(schema_ref, "202")["202"].clone();
    responses["202"]["description"] = json!("Accepted");
    responses
}

fn operation(r: &ResourceInfo, action: &str, id: String, params: Vec<Value>) -> Value {
    json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(r),
        "parameters": params,
        "tags": [r.api_version()],
    })
}

/// The operations on one object (`sub` empty) or one of its subresources; `delete_ref` is the
/// schema of DELETE's answer.
fn item_ops(r: &ResourceInfo, kind_ref: &Value, delete_ref: &Value, sub: &str) -> Value {
    let suffix = capitalize(sub);
    let name = format!("{}{suffix}", r.kind);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let mut get = operation(r, "get", format!("read{scope}{name}"), Vec::new());
    get["responses"] = ok(kind_ref, "200");
    let mut put = operation(r, "put", format!("replace{scope}{name}"), write_params());
    put["requestBody"] = body(kind_ref, &["*/*"]);
    put["responses"] = ok(kind_ref, "200");
    let mut patch_params = write_params();
    patch_params.push(query_param(
        "force",
        "Force is going to \"force\" Apply requests.",
        "boolean",
    ));
    let mut patch = operation(r, "patch", format!("patch{scope}{name}"), patch_params);
    patch["requestBody"] = body(
        &json!({ "type": "object" }),
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ],
    );
    patch["responses"] = ok(kind_ref, "200");
    let mut ops = json!({ "get": get, "put": put, "patch": patch });
    if sub.is_empty() {
        let mut delete = operation(
            r,
            "delete",
            format!("delete{scope}{name}"),
            vec![
                query_param(
                    "dryRun",
                    "When present, indicates that modifications should not be persisted.",
                    "string",
                ),
                query_param(
                    "gracePeriodSeconds",
                    "The duration in seconds before the object should be deleted.",
                    "integer",
                ),
                query_param(
                    "propagationPolicy",
                    "Whether and how garbage collection will be performed.",
                    "string",
                ),
            ],
        );
        delete["responses"] = delete_responses(delete_ref);
        ops["delete"] = delete;
    }
    ops
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn collection_ops(r: &ResourceInfo, kind_ref: &Value, status_ref: &Value) -> Value {
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let mut list = operation(r, "list", format!("list{scope}{}", r.kind), list_params());
    list["responses"] = ok(&json!({ "type": "object" }), "200");
    let mut create = operation(
        r,
        "post",
        format!("create{scope}{}", r.kind),
        write_params(),
    );
    create["requestBody"] = body(kind_ref, &["*/*"]);
    create["responses"] = ok(kind_ref, "201");
    // Declared a Status, as upstream does, though the answer is the list of deleted objects.
    let mut delete = operation(
        r,
        "deletecollection",
        format!("deletecollection{scope}{}", r.kind),
        list_params(),
    );
    delete["responses"] = ok(status_ref, "200");
    json!({ "get": list, "post": create, "delete": delete })
}

/// The schemas of one group-version's kinds, each kind marked with its group-version-kind, with
/// the references to each kind's schema and to Status's.
fn schemas(resources: &[&ResourceInfo]) -> (Map<String, Value>, Vec<Value>, Value) {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut custom = Map::new();
    let refs: Vec<Value> = resources
        .iter()
        .map(|r| match &r.schema {
            Schema::Typed(schema) => schema(&mut generator).to_value(),
            Schema::Custom(schema) => {
                // Named as upstream names a CRD's schema: the group reversed, version, kind.
                let mut name: Vec<&str> = r.group.split('.').rev().collect();
                name.push(&r.version);
                name.push(&r.kind);
                let name = name.join(".");
                let schema = schema
                    .as_ref()
                    .and_then(|s| serde_json::to_value(&**s).ok())
                    .unwrap_or_else(|| json!({ "type": "object" }));
                custom.insert(name.clone(), schema);
                json!({ "$ref": format!("#/components/schemas/{name}") })
            }
        })
        .collect();
    let status_ref = generator
        .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>()
        .to_value();
    let mut defs: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    defs.extend(custom);
    for (r, reference) in resources.iter().zip(&refs) {
        let name = reference["$ref"]
            .as_str()
            .and_then(|s| s.rsplit('/').next())
            .unwrap_or("");
        if let Some(schema) = defs.get_mut(name) {
            schema["x-kubernetes-group-version-kind"] = json!([gvk(r)]);
        }
    }
    (defs, refs, status_ref)
}

fn build(group: &str, version: &str, resources: &[&ResourceInfo]) -> Value {
    let (components, refs, status_ref) = schemas(resources);
    let root = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for (r, kind_ref) in resources.iter().zip(&refs) {
        let base = if r.namespaced {
            // The cluster-wide list of a namespaced resource.
            let mut all = collection_ops(r, kind_ref, &status_ref);
            if let Some(m) = all.as_object_mut() {
                m.remove("post");
                m.remove("delete");
            }
            paths.insert(format!("{root}/{}", r.plural), all);
            format!("{root}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{root}/{}", r.plural)
        };
        {
            let ns_params: Vec<Value> = if r.namespaced {
                vec![path_param("namespace")]
            } else {
                Vec::new()
            };
            let mut collection = collection_ops(r, kind_ref, &status_ref);
            collection["parameters"] = json!(ns_params);
            paths.insert(base.clone(), collection);
            let mut item_params = ns_params.clone();
            item_params.push(path_param("name"));
            let delete_ref = match r.delete_answer_kind() {
                "Status" => &status_ref,
                _ => kind_ref,
            };
            let mut item = item_ops(r, kind_ref, delete_ref, "");
            item["parameters"] = json!(item_params);
            paths.insert(format!("{base}/{{name}}"), item);
            for sub in r
                .subresources
                .iter()
                .filter(|s| matches!(**s, "status" | "approval"))
            {
                let mut ops = item_ops(r, kind_ref, delete_ref, sub);
                ops["parameters"] = json!(item_params);
                paths.insert(format!("{base}/{{name}}/{sub}"), ops);
            }
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": components },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_is_negotiated_by_the_first_clause_that_names_a_form() {
        use axum::http::{HeaderMap, HeaderValue, header};
        let ask = |accept: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(a) = accept {
                headers.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
            }
            let r = v2(&headers);
            let ct = r
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ct)
        };
        assert_eq!(ask(None), (200, Some("application/json".into())));
        assert_eq!(
            ask(Some(V2_PROTOBUF_ASKED)),
            (200, Some(V2_PROTOBUF.into()))
        );
        assert_eq!(
            ask(Some("text/html, application/json")),
            (200, Some("application/json".into()))
        );
        assert_eq!(ask(Some("text/html")).0, 406);
        // Document{swagger: "2.0", info: {title, version}}, as gnostic encodes it.
        let mut expected = vec![0x0a, 3];
        expected.extend_from_slice(b"2.0");
        expected.extend_from_slice(&[0x12, 0x15, 0x0a, 10]);
        expected.extend_from_slice(b"Kubernetes");
        expected.extend_from_slice(&[0x12, 7]);
        expected.extend_from_slice(b"v1.33.0");
        assert_eq!(v2_protobuf(), expected);
    }

    /// Every `$ref` in `v` names a schema in `components`.
    fn check_refs(v: &Value, components: &Map<String, Value>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let name = r
                        .strip_prefix("#/components/schemas/")
                        .expect("a components ref");
                    assert!(components.contains_key(name), "dangling $ref {r}");
                }
                m.values().for_each(|x| check_refs(x, components));
            }
            Value::Array(a) => a.iter().for_each(|x| check_refs(x, components)),
            _ => {}
        }
    }

    #[test]
    fn kubectl_finds_field_validation_on_patch() {
        let index = v3_index(&Resources::new());
        assert!(
            index["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        let doc = v3_document(&Resources::new(), "apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let schema = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(schema["properties"]["spec"].is_object());
    }

    #[test]
    fn every_reference_resolves() {
        for ((g, v), doc) in DOCUMENTS.iter() {
            let components = doc["components"]["schemas"]
                .as_object()
                .unwrap_or_else(|| panic!("{g}/{v}"));
            check_refs(doc, components);
        }
    }
}
