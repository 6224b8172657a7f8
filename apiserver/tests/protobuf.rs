//! Protobuf answers as client-go's typed clients and components ask for them
//! (`Accept: application/vnd.kubernetes.protobuf, */*`): objects, lists and watch streams of
//! built-in kinds in Kubernetes protobuf, read back here with k8s-pb's generated messages;
//! errors and custom resources in JSON, and 406 for a custom resource asked in protobuf only.

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use tower::ServiceExt;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const CLIENT_GO: &str = "application/vnd.kubernetes.protobuf, */*";

struct Answer {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    accept: &str,
    body: (&str, Vec<u8>),
) -> axum::response::Response {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("accept", accept)
        .header("content-type", body.0)
        .body(Body::from(body.1))
        .unwrap();
    app.clone().oneshot(request).await.unwrap()
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    accept: &str,
    body: (&str, Vec<u8>),
) -> Answer {
    let response = send(app, method, path, accept, body).await;
    let code = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        code,
        content_type,
        body: body.to_vec(),
    }
}

/// An apiserver in this process (kept alive by the first two) and its router, trusted.
async fn in_process() -> (
    tempfile::TempDir,
    apiserver::server::InProcess,
    axum::Router,
) {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let app = apiserver::server::router(server.state.clone())
        .layer(axum::Extension(apiserver::auth::Trusted));
    (dir, server, app)
}

fn none() -> (&'static str, Vec<u8>) {
    ("application/json", Vec::new())
}

/// `k8s\0` + runtime.Unknown, as client-go writes a body and reads an answer.
fn wrap(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

/// The (apiVersion, kind, message) of a protobuf answer.
fn unwrap(body: &[u8]) -> (String, String, Vec<u8>) {
    let unknown = Unknown::decode(body.strip_prefix(b"k8s\0").expect("the protobuf magic"))
        .expect("a runtime.Unknown");
    let type_meta = unknown.type_meta.unwrap();
    (
        type_meta.api_version.unwrap_or_default(),
        type_meta.kind.unwrap_or_default(),
        unknown.raw.unwrap_or_default(),
    )
}

/// The message of a protobuf answer, checked to be of `api_version` and `kind`.
fn message_of(answer: &Answer, api_version: &str, kind: &str) -> Vec<u8> {
    assert_eq!(
        answer.content_type,
        PROTOBUF,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let (got_version, got_kind, raw) = unwrap(&answer.body);
    assert_eq!(
        (got_version.as_str(), got_kind.as_str()),
        (api_version, kind)
    );
    raw
}

fn config_map(name: &str) -> Vec<u8> {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            ..Default::default()
        }),
        data: [("k".to_owned(), "v".to_owned())].into(),
        binary_data: [("b".to_owned(), vec![0u8, 255])].into(),
        ..Default::default()
    };
    wrap("v1", "ConfigMap", cm.encode_to_vec())
}

fn read_config_map(answer: &Answer) -> core::ConfigMap {
    assert_eq!(
        (answer.code / 100, answer.content_type.as_str()),
        (2, PROTOBUF),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let (api_version, kind, raw) = unwrap(&answer.body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
    core::ConfigMap::decode(&raw[..]).unwrap()
}

/// Reads one length-prefixed WatchEvent frame from a protobuf watch stream.
async fn next_event(body: &mut Body, pending: &mut Vec<u8>) -> meta::WatchEvent {
    loop {
        if pending.len() >= 4 {
            let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
            if pending.len() >= 4 + len {
                let event = meta::WatchEvent::decode(&pending[4..4 + len]).unwrap();
                pending.drain(..4 + len);
                return event;
            }
        }
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("a watch event within 20 s")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            pending.extend_from_slice(&data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_kinds_answer_in_protobuf() {
    let (_dir, _server, app) = in_process().await;
    let cms = "/api/v1/namespaces/default/configmaps";

    // Create: a protobuf body, a protobuf answer with what the server filled in.
    let created =
        read_config_map(&call(&app, "POST", cms, CLIENT_GO, (PROTOBUF, config_map("a"))).await);
    let meta = created.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("a"));
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.uid.is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.unwrap().seconds.unwrap() > 1_700_000_000);
    assert_eq!(created.binary_data["b"], vec![0u8, 255]);

    // Get and list.
    let got = read_config_map(&call(&app, "GET", &format!("{cms}/a"), CLIENT_GO, none()).await);
    assert_eq!(got.data["k"], "v");
    assert_eq!(
        got.metadata.unwrap().resource_version,
        meta.resource_version
    );
    let list = call(&app, "GET", cms, PROTOBUF, none()).await;
    let raw = message_of(&list, "v1", "ConfigMapList");
    let list = core::ConfigMapList::decode(&raw[..]).unwrap();
    let list_rv = list.metadata.unwrap().resource_version.unwrap();
    assert!(list_rv.parse::<u64>().unwrap() > 0);
    let names: Vec<_> = list
        .items
        .iter()
        .map(|c| c.metadata.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a"]);

    // Watch: length-prefixed WatchEvent frames holding enveloped objects.
    let watch = send(
        &app,
        "GET",
        &format!("{cms}?watch=true&resourceVersion={list_rv}&allowWatchBookmarks=true"),
        CLIENT_GO,
        none(),
    )
    .await;
    assert_eq!(
        watch.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut stream = watch.into_body();
    let mut pending = Vec::new();
    let answer = call(&app, "POST", cms, CLIENT_GO, (PROTOBUF, config_map("b"))).await;
    assert_eq!(answer.code, 201);
    // A delete's Success Status is protobuf too (meta.v1.Status, named v1 Status).
    let answer = call(&app, "DELETE", &format!("{cms}/a"), CLIENT_GO, none()).await;
    assert_eq!((answer.code, answer.content_type.as_str()), (200, PROTOBUF));
    let (api_version, kind, raw) = unwrap(&answer.body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Status"));
    let status = meta::Status::decode(&raw[..]).unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    assert_eq!(status.details.unwrap().name.as_deref(), Some("a"));
    for (expected_type, expected_name) in [("ADDED", "b"), ("DELETED", "a")] {
        let event = next_event(&mut stream, &mut pending).await;
        assert_eq!(event.r#type.as_deref(), Some(expected_type));
        let (api_version, kind, raw) = unwrap(&event.object.unwrap().raw.unwrap());
        assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
        let object = core::ConfigMap::decode(&raw[..]).unwrap();
        assert_eq!(
            object.metadata.unwrap().name.as_deref(),
            Some(expected_name)
        );
    }

    // Errors stay JSON Statuses, which client-go reads by their content type.
    let missing = call(&app, "GET", &format!("{cms}/zz"), CLIENT_GO, none()).await;
    assert_eq!(
        (missing.code, missing.content_type.as_str()),
        (404, "application/json")
    );
    // JSON and YAML clients are unchanged.
    let json = call(&app, "GET", &format!("{cms}/b"), "application/json", none()).await;
    assert_eq!(json.content_type, "application/json");
    let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(value["binaryData"]["b"], "AP8=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_answer_json_or_406() {
    let (_dir, _server, app) = in_process().await;
    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    // The definition itself is a built-in kind: its answer is protobuf.
    let answer = call(
        &app,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        CLIENT_GO,
        ("application/json", crd.to_string().into_bytes()),
    )
    .await;
    assert_eq!((answer.code, answer.content_type.as_str()), (201, PROTOBUF));
    assert_eq!(unwrap(&answer.body).1, "CustomResourceDefinition");

    let gadgets = "/apis/example.com/v1/namespaces/default/gadgets";
    let gadget = serde_json::json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"x": 1}
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = call(
            &app,
            "POST",
            gadgets,
            CLIENT_GO,
            ("application/json", gadget.to_string().into_bytes()),
        )
        .await;
        if answer.code == 201 {
            assert_eq!(answer.content_type, "application/json");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kind was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let json = call(&app, "GET", &format!("{gadgets}/g"), CLIENT_GO, none()).await;
    assert_eq!(
        (json.code, json.content_type.as_str()),
        (200, "application/json")
    );
    let refused = call(&app, "GET", &format!("{gadgets}/g"), PROTOBUF, none()).await;
    assert_eq!(refused.code, 406);
    let status: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(status["reason"], "NotAcceptable");

    // Metadata-only answers serve custom resources too, in protobuf as well.
    let list = call(&app, "GET", gadgets, METADATA_LIST, none()).await;
    let raw = message_of(&list, "meta.k8s.io/v1", "PartialObjectMetadataList");
    let list = meta::PartialObjectMetadataList::decode(&raw[..]).unwrap();
    assert_eq!(
        list.items[0].metadata.as_ref().unwrap().name.as_deref(),
        Some("g")
    );
    let one = call(
        &app,
        "GET",
        &format!("{gadgets}/g"),
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
        none(),
    )
    .await;
    let one: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["metadata"]["name"], "g");
    assert!(one.get("spec").is_none(), "{one}");
}

/// What client-go's metadata informers send for lists and watches.
const METADATA_LIST: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_informers_get_metadata_only() {
    let (_dir, _server, app) = in_process().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    assert_eq!(
        call(&app, "POST", cms, CLIENT_GO, (PROTOBUF, config_map("a")))
            .await
            .code,
        201
    );

    let list = call(&app, "GET", cms, METADATA_LIST, none()).await;
    let raw = message_of(&list, "meta.k8s.io/v1", "PartialObjectMetadataList");
    let list = meta::PartialObjectMetadataList::decode(&raw[..]).unwrap();
    let rv = list.metadata.unwrap().resource_version.unwrap();
    let item = list.items[0].metadata.clone().unwrap();
    assert_eq!(
        (item.name.as_deref(), item.labels["app"].as_str()),
        (Some("a"), "web")
    );

    // A watch: each event's object is a PartialObjectMetadata.
    let watch = send(
        &app,
        "GET",
        &format!("{cms}?watch=true&resourceVersion={rv}"),
        &METADATA_LIST.replace("PartialObjectMetadataList", "PartialObjectMetadata"),
        none(),
    )
    .await;
    let mut stream = watch.into_body();
    let mut pending = Vec::new();
    assert_eq!(
        call(&app, "POST", cms, CLIENT_GO, (PROTOBUF, config_map("b")))
            .await
            .code,
        201
    );
    let event = next_event(&mut stream, &mut pending).await;
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let (api_version, kind, raw) = unwrap(&event.object.unwrap().raw.unwrap());
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    let object = meta::PartialObjectMetadata::decode(&raw[..]).unwrap();
    assert_eq!(object.metadata.unwrap().name.as_deref(), Some("b"));

    // And in JSON.
    let json_accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let got = call(&app, "GET", &format!("{cms}/a"), json_accept, none()).await;
    let got: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        (
            got["kind"].as_str(),
            got["metadata"]["labels"]["app"].as_str()
        ),
        (Some("PartialObjectMetadata"), Some("web"))
    );
    assert!(got.get("data").is_none(), "{got}");
}
