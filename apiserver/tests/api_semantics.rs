//! The API's answers to good and bad requests, checked at the HTTP level: Status codes, reasons
//! and messages as upstream gives them, and the watch protocol's corner cases.

use crate::support;

use std::time::Duration;

use apiserver::testing::http::HttpClient;
use futures::StreamExt;
use serde_json::{Value, json};
use support::ApiServer;

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

async fn setup() -> (ApiServer, HttpClient) {
    let server = ApiServer::start();
    let client = HttpClient::new(&server.url());
    (server, client)
}

/// Sends raw bytes; answers (status, JSON body).
async fn raw(
    client: &HttpClient,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    if matches!(value, Value::String(_)) {
        // Not JSON: send the bytes as they are.
        return client
            .send_raw(method, path, content_type, body.as_bytes().to_vec())
            .await
            .unwrap();
    }
    client
        .send(method, path, content_type, Some(&value))
        .await
        .unwrap()
}

fn check_status(got: &(u16, Value), code: u16, reason: &str, message: &str) {
    let (status, body) = got;
    assert_eq!(*status, code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    let text = body["message"].as_str().unwrap_or("");
    assert!(text.contains(message), "message {text:?} lacks {message:?}");
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn bad_input_gets_upstream_statuses() {
    let (_s, c) = setup().await;
    check_status(
        &raw(&c, "POST", CMS, "application/json", "{not json").await,
        400,
        "BadRequest",
        "",
    );
    check_status(
        &c.post(CMS, &json!(["not", "an", "object"])).await.unwrap(),
        400,
        "BadRequest",
        "Object 'Kind' is missing",
    );
    // apiVersion and kind default to the endpoint's, as clients may leave them out.
    let (code, obj) = c
        .post(CMS, &json!({"metadata": {"name": "defaulted"}}))
        .await
        .unwrap();
    assert_eq!(
        (code, obj["kind"].as_str(), obj["apiVersion"].as_str()),
        (201, Some("ConfigMap"), Some("v1"))
    );
    check_status(
        &c.post(
            CMS,
            &json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .await
        .unwrap(),
        400,
        "BadRequest",
        "does not match the expected API version",
    );
    check_status(
        &c.post(CMS, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}})).await.unwrap(),
        400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request",
    );
    let invalid = c.post(CMS, &cm("Bad_Name")).await.unwrap();
    check_status(
        &invalid,
        422,
        "Invalid",
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\"",
    );
    assert_eq!(invalid.1["details"]["causes"][0]["field"], "metadata.name");
    check_status(
        &c.post(
            CMS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        )
        .await
        .unwrap(),
        422,
        "Invalid",
        "metadata.name: Required value: name or generateName is required",
    );
    check_status(
        &c.get("/api/v1/namespaces/default/widgets").await.unwrap(),
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    check_status(
        &c.get(&format!("{CMS}/missing")).await.unwrap(),
        404,
        "NotFound",
        "configmaps \"missing\" not found",
    );
    check_status(
        &c.post("/api/v1/namespaces/nowhere/configmaps", &cm("x"))
            .await
            .unwrap(),
        404,
        "NotFound",
        "namespaces \"nowhere\" not found",
    );
    // A wrongly typed field is refused and stores nothing.
    let typed = c.post(CMS, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}, "data": {"a": 5}})).await.unwrap();
    assert_eq!(typed.0, 400, "{}", typed.1);
    assert_eq!(c.get(&format!("{CMS}/t")).await.unwrap().0, 404);
    // A body over 3 MiB.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": "x".repeat(3 * 1024 * 1024 + 10)}});
    check_status(
        &c.post(CMS, &big).await.unwrap(),
        413,
        "RequestEntityTooLarge",
        "limit is 3145728",
    );
}

#[tokio::test]
async fn conflicts_and_field_validation() {
    let (_s, c) = setup().await;
    let (code, created) = c.post(CMS, &cm("a")).await.unwrap();
    assert_eq!(code, 201);
    check_status(
        &c.post(CMS, &cm("a")).await.unwrap(),
        409,
        "AlreadyExists",
        "configmaps \"a\" already exists",
    );
    let mut stale = created.clone();
    stale["data"]["a"] = json!("2");
    let (code, _) = c
        .send("PUT", &format!("{CMS}/a"), "application/json", Some(&stale))
        .await
        .unwrap();
    assert_eq!(code, 200);
    check_status(
        &c.send("PUT", &format!("{CMS}/a"), "application/json", Some(&stale))
            .await
            .unwrap(),
        409,
        "Conflict",
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again",
    );
    let unknown =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "bogus": 1});
    check_status(
        &c.post(&format!("{CMS}?fieldValidation=Strict"), &unknown)
            .await
            .unwrap(),
        400,
        "BadRequest",
        "strict decoding error: unknown field \"bogus\"",
    );
    let (code, obj) = c
        .post(&format!("{CMS}?fieldValidation=Ignore"), &unknown)
        .await
        .unwrap();
    assert_eq!(code, 201);
    assert!(obj.get("bogus").is_none(), "unknown fields are dropped");
    // dryRun stores nothing.
    let (code, _) = c
        .post(&format!("{CMS}?dryRun=All"), &cm("dry"))
        .await
        .unwrap();
    assert_eq!(code, 201);
    assert_eq!(c.get(&format!("{CMS}/dry")).await.unwrap().0, 404);
}

#[tokio::test]
async fn generation_status_and_finalizers() {
    let (_s, c) = setup().await;
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"replicas": 99},
    });
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let (code, d) = c.post(path, &deploy).await.unwrap();
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["status"], json!({}), "create resets status");
    let merge = "application/merge-patch+json";
    let (_, d) = c
        .send(
            "PATCH",
            &format!("{path}/d"),
            merge,
            Some(&json!({"spec": {"replicas": 3}, "status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            d["metadata"]["generation"].as_i64(),
            d["status"].get("replicas")
        ),
        (Some(2), None),
        "{d}"
    );
    let (_, d) = c
        .send(
            "PATCH",
            &format!("{path}/d/status"),
            merge,
            Some(&json!({"status": {"replicas": 7}, "spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            d["metadata"]["generation"].as_i64(),
            d["status"]["replicas"].as_i64(),
            d["spec"]["replicas"].as_i64()
        ),
        (Some(2), Some(7), Some(3))
    );

    // A finalizer holds a deleted object until it is removed.
    let (_, _) = c.post(CMS, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f", "finalizers": ["example.com/hold"]}})).await.unwrap();
    let (code, held) = c
        .send("DELETE", &format!("{CMS}/f"), "application/json", None)
        .await
        .unwrap();
    assert!(code == 200 || code == 202, "{held}");
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(c.get(&format!("{CMS}/f")).await.unwrap().0, 200);
    let (code, _) = c
        .send(
            "PATCH",
            &format!("{CMS}/f"),
            merge,
            Some(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        c.get(&format!("{CMS}/f")).await.unwrap().0,
        404,
        "removing the last finalizer deletes it"
    );
}

#[tokio::test]
async fn watch_bookmarks_initial_events_and_expiry() {
    let (_s, c) = setup().await;
    c.post(CMS, &cm("one")).await.unwrap();
    let mut w = c
        .watch(&format!("{CMS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"))
        .await
        .unwrap();
    let first = w.next().await.unwrap();
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("one"))
    );
    let bookmark = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    c.post(CMS, &cm("two")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            next["type"].as_str(),
            next["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("two"))
    );

    // Label-selected watches see objects enter and leave the selection.
    let mut sel = c
        .watch(&format!(
            "{CMS}?watch=true&labelSelector=team%3Dblue&resourceVersion=0"
        ))
        .await
        .unwrap();
    let merge = "application/merge-patch+json";
    c.send(
        "PATCH",
        &format!("{CMS}/one"),
        merge,
        Some(&json!({"metadata": {"labels": {"team": "blue"}}})),
    )
    .await
    .unwrap();
    c.send(
        "PATCH",
        &format!("{CMS}/one"),
        merge,
        Some(&json!({"metadata": {"labels": {"team": "red"}}})),
    )
    .await
    .unwrap();
    let a = tokio::time::timeout(Duration::from_secs(5), sel.next())
        .await
        .unwrap()
        .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), sel.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a["type"].as_str(), b["type"].as_str()),
        (Some("ADDED"), Some("DELETED"))
    );

    // timeoutSeconds ends the stream.
    let mut short = c
        .watch(&format!(
            "{CMS}?watch=true&timeoutSeconds=1&resourceVersion=0"
        ))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while short.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "a watch ends after timeoutSeconds");

    // A resourceVersion in the future is answered after a short wait with an error.
    let (_, list) = c.get(CMS).await.unwrap();
    let far: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap()
        + 1000;
    let mut future = c
        .watch(&format!("{CMS}?watch=true&resourceVersion={far}"))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), future.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e["type"], "ERROR");
}

#[tokio::test]
async fn services_get_addresses_and_node_ports_once() {
    let (_s, c) = setup().await;
    let path = "/api/v1/namespaces/default/services";
    let svc = |name: &str, ty: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]}})
    };
    let (code, a) = c.post(path, &svc("a", "NodePort")).await.unwrap();
    assert_eq!(code, 201, "{a}");
    let (_, b) = c.post(path, &svc("b", "NodePort")).await.unwrap();
    assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
    assert_ne!(
        a["spec"]["ports"][0]["nodePort"],
        b["spec"]["ports"][0]["nodePort"]
    );
    let port = a["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port));
    let (_, kubernetes) = c.get(&format!("{path}/kubernetes")).await.unwrap();
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.96.0.1");
    let taken = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"},
        "spec": {"clusterIP": a["spec"]["clusterIP"], "ports": [{"port": 80}]}});
    check_status(
        &c.post(path, &taken).await.unwrap(),
        422,
        "Invalid",
        "provided IP is already allocated",
    );
}

#[tokio::test]
async fn pods_bind_once_and_delete_gracefully() {
    let (_s, c) = setup().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, created) = c.post(pods, &pod).await.unwrap();
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["status"]["qosClass"], "BestEffort");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, _) = c
        .post(&format!("{pods}/p/binding"), &binding)
        .await
        .unwrap();
    assert_eq!(code, 201);
    let (_, bound) = c.get(&format!("{pods}/p")).await.unwrap();
    assert_eq!(bound["spec"]["nodeName"], "n1");
    assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
    // As upstream, binding writes through storage: the pod's field ownership is the creator's.
    assert_eq!(
        bound["metadata"]["managedFields"],
        created["metadata"]["managedFields"]
    );

    // A binding's annotations land on the pod, and are validated as the pod's own.
    let pod2 = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(c.post(pods, &pod2).await.unwrap().0, 201);
    let bad = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "p2", "annotations": {"bad key!": "x"}},
        "target": {"kind": "Node", "name": "n1"}});
    check_status(
        &c.post(&format!("{pods}/p2/binding"), &bad).await.unwrap(),
        422,
        "Invalid",
        "metadata.annotations",
    );
    // Hostile or mistaken bindings are refused before anything is written.
    let bind_p2 = format!("{pods}/p2/binding");
    let with = |meta: serde_json::Value, target: serde_json::Value| json!({"apiVersion": "v1", "kind": "Binding", "metadata": meta, "target": target});
    let node = json!({"kind": "Node", "name": "n1"});
    for (binding, code, reason, message) in [
        (
            with(
                json!({"name": "p2", "annotations": {"a": {"nested": 1}}}),
                node.clone(),
            ),
            400,
            "BadRequest",
            "Binding in version \"v1\" cannot be handled as a Binding",
        ),
        (
            with(json!({"name": "other"}), node.clone()),
            400,
            "BadRequest",
            "name in URL does not match name in Binding object",
        ),
        (
            with(
                json!({"name": "p2", "namespace": "kube-system"}),
                node.clone(),
            ),
            400,
            "BadRequest",
            "does not match the namespace sent on the request",
        ),
        (
            with(json!({"name": "p2"}), json!({"kind": "Pod", "name": "n1"})),
            422,
            "Invalid",
            "target.kind: Unsupported value: \"Pod\"",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p2"}}),
            422,
            "Invalid",
            "target.name: Required value",
        ),
        (
            with(json!({"name": "p2", "uid": "not-the-uid"}), node.clone()),
            409,
            "Conflict",
            "Precondition failed: UID in precondition: not-the-uid",
        ),
    ] {
        check_status(
            &c.post(&bind_p2, &binding).await.unwrap(),
            code,
            reason,
            message,
        );
    }
    let (_, unbound) = c.get(&format!("{pods}/p2")).await.unwrap();
    assert!(unbound["spec"]["nodeName"].is_null(), "{unbound}");
    assert!(unbound["metadata"]["annotations"].is_null(), "{unbound}");
    // A pod with scheduling gates is not bound.
    let gated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated"},
        "spec": {"schedulingGates": [{"name": "example.com/wait"}],
            "containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(c.post(pods, &gated).await.unwrap().0, 201);
    check_status(
        &c.post(
            &format!("{pods}/gated/binding"),
            &with(json!({"name": "gated"}), node.clone()),
        )
        .await
        .unwrap(),
        409,
        "Conflict",
        "pod gated has non-empty .spec.schedulingGates",
    );
    let good = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "p2", "annotations": {"example.com/placed-by": "test"}},
        "target": {"kind": "Node", "name": "n2"}});
    let (code, _) = c.post(&format!("{pods}/p2/binding"), &good).await.unwrap();
    assert_eq!(code, 201);
    let (_, bound2) = c.get(&format!("{pods}/p2")).await.unwrap();
    assert_eq!(bound2["spec"]["nodeName"], "n2");
    assert_eq!(
        bound2["metadata"]["annotations"]["example.com/placed-by"],
        "test"
    );
    let again = c
        .post(&format!("{pods}/p/binding"), &binding)
        .await
        .unwrap();
    check_status(
        &again,
        409,
        "Conflict",
        "is already assigned to node \"n1\"",
    );

    // A pod on a node is marked for deletion and stays until deleted with grace 0 (the kubelet).
    let (code, marked) = c
        .send("DELETE", &format!("{pods}/p"), "application/json", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(c.get(&format!("{pods}/p")).await.unwrap().0, 200);
    let (code, _) = c
        .send(
            "DELETE",
            &format!("{pods}/p?gracePeriodSeconds=0"),
            "application/json",
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(c.get(&format!("{pods}/p")).await.unwrap().0, 404);

    // Priority admission resolves priorityClassName.
    let critical = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crit"},
        "spec": {"priorityClassName": "system-node-critical", "containers": [{"name": "c", "image": "busybox"}]}});
    let (code, crit) = c.post(pods, &critical).await.unwrap();
    assert_eq!(
        (code, crit["spec"]["priority"].as_i64()),
        (201, Some(2_000_001_000)),
        "{crit}"
    );
    let mut unknown = critical.clone();
    unknown["metadata"]["name"] = json!("u");
    unknown["spec"]["priorityClassName"] = json!("nope");
    check_status(
        &c.post(pods, &unknown).await.unwrap(),
        403,
        "Forbidden",
        "no PriorityClass with name nope was found",
    );

    // A pod never scheduled goes at once.
    c.post(pods, &pod).await.unwrap();
    c.send("DELETE", &format!("{pods}/p"), "application/json", None)
        .await
        .unwrap();
    assert_eq!(c.get(&format!("{pods}/p")).await.unwrap().0, 404);
}

#[tokio::test]
async fn namespaces_terminate_and_refuse_new_content() {
    let (_s, c) = setup().await;
    c.post(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}}),
    )
    .await
    .unwrap();
    let (_, ns) = c.get("/api/v1/namespaces/gone").await.unwrap();
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "gone"
    );
    let (code, ns) = c
        .send(
            "DELETE",
            "/api/v1/namespaces/gone",
            "application/json",
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let refused = c
        .post("/api/v1/namespaces/gone/configmaps", &cm("late"))
        .await
        .unwrap();
    check_status(
        &refused,
        403,
        "Forbidden",
        "unable to create new content in namespace gone because it is being terminated",
    );
    assert_eq!(
        refused.1["details"]["causes"],
        json!([{"reason": "NamespaceTerminating", "message": "namespace gone is being terminated",
                "field": "metadata.namespace"}])
    );
    // The namespace controller's last step: finalize removes the spec finalizer and the object.
    let mut ns = ns.clone();
    ns["spec"]["finalizers"] = json!([]);
    let (code, _) = c
        .send(
            "PUT",
            "/api/v1/namespaces/gone/finalize",
            "application/json",
            Some(&ns),
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(c.get("/api/v1/namespaces/gone").await.unwrap().0, 404);
}

#[tokio::test]
async fn health_metrics_version_and_sigterm() {
    let (mut s, c) = setup().await;
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(
            c.get_text(path).await.unwrap(),
            (200, "ok".to_owned()),
            "{path}"
        );
    }
    let (_, version) = c.get("/version").await.unwrap();
    assert_eq!(
        (version["major"].as_str(), version["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    c.get(CMS).await.unwrap();
    // A watcher receives one event; the counter of events sent counts it.
    let mut watch = c.watch(&format!("{CMS}?watch=true")).await.unwrap();
    let cm = json!({"metadata": {"name": "counted"}, "data": {"a": "1"}});
    assert_eq!(c.post(CMS, &cm).await.unwrap().0, 201);
    assert_eq!(watch.next().await.unwrap()["type"], "ADDED");
    // A request to a subresource is counted under it; a 200 and a 404 of the same series
    // make two counters but one latency histogram.
    let ns = "/api/v1/namespaces/default";
    c.send(
        "PUT",
        &format!("{ns}/pods/nope/status"),
        "application/json",
        Some(&json!({})),
    )
    .await
    .unwrap();
    assert_eq!(c.get(&format!("{CMS}/counted")).await.unwrap().0, 200);
    // A subresource nobody serves is not a label: the path's words never reach /metrics.
    let (code, _) = c.get(&format!("{ns}/pods/nope/x%22y")).await.unwrap();
    assert_eq!(code, 404);
    assert_eq!(c.get(&format!("{CMS}/missing")).await.unwrap().0, 404);
    let (_, text) = c.get_text("/metrics").await.unwrap();
    for line in [
        "apiserver_request_total{verb=\"LIST\",resource=\"configmaps\",subresource=\"\",code=\"200\"} 1",
        "apiserver_request_total{verb=\"POST\",resource=\"configmaps\",subresource=\"\",code=\"201\"} 1",
        "apiserver_watch_events_total{group=\"\",version=\"v1\",kind=\"ConfigMap\"} 1",
        "apiserver_request_total{verb=\"PUT\",resource=\"pods\",subresource=\"status\",code=\"404\"} 1",
        "apiserver_request_total{verb=\"GET\",resource=\"configmaps\",subresource=\"\",code=\"200\"} 1",
        "apiserver_request_total{verb=\"GET\",resource=\"configmaps\",subresource=\"\",code=\"404\"} 1",
        "apiserver_request_duration_seconds_count{verb=\"GET\",resource=\"configmaps\",subresource=\"\"} 2",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let histograms = text
        .lines()
        .filter(|l| {
            l.starts_with(
                "apiserver_request_duration_seconds_count{verb=\"GET\",resource=\"configmaps\"",
            )
        })
        .count();
    assert_eq!(histograms, 1, "{text}");
    assert!(!text.contains("x\"y") && !text.contains("x%22y"), "{text}");
    let status = s.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status}"
    );
    assert!(s.log().contains("kube-apiserver stopped"), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_from_a_compacted_revision_is_410_expired() {
    let mut s = ApiServer::start_with(&["--etcd-compaction-interval", "1s"]);
    let c = HttpClient::new(&s.url());
    let (_, first) = c.post(CMS, &cm("first")).await.unwrap();
    let old = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..3 {
        c.post(CMS, &cm(&format!("later{i}"))).await.unwrap();
    }
    // Two compaction ticks forget the history up to the writes above; a restart empties the
    // watch cache, so the old revision can only come from the store, which no longer has it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.restart();
    let c = HttpClient::new(&s.url());
    let mut w = c
        .watch(&format!("{CMS}?watch=true&resourceVersion={old}"))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e["type"], "ERROR", "{e}");
    assert_eq!(
        (e["object"]["code"].as_i64(), e["object"]["reason"].as_str()),
        (Some(410), Some("Expired")),
        "{e}"
    );
    assert!(
        e["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version"),
        "{e}"
    );
}

#[tokio::test]
async fn recreate_right_after_delete() {
    let (_s, c) = setup().await;
    for _ in 0..20 {
        let (code, body) = c.post(CMS, &cm("again")).await.unwrap();
        assert_eq!(code, 201, "{body}");
        let (code, _) = c
            .send("DELETE", &format!("{CMS}/again"), "application/json", None)
            .await
            .unwrap();
        assert_eq!(code, 200);
    }
}

/// NetworkPolicies are validated as upstream: a /33 CIDR, port 99999 and policyType
/// "Sideways" are three causes of one 422; a valid policy is stored, defaulted.
#[tokio::test]
async fn network_policies_are_validated() {
    let (_s, c) = setup().await;
    const NPS: &str = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let policy = |name: &str, cidr: &str, port: u32, types: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": types,
                     "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}], "ports": [{"port": port}]}]}})
    };
    let bad = c
        .post(
            NPS,
            &policy("bad", "10.0.0.0/33", 99999, json!(["Sideways"])),
        )
        .await
        .unwrap();
    check_status(
        &bad,
        422,
        "Invalid",
        "NetworkPolicy.networking.k8s.io \"bad\" is invalid: [spec.ingress[0].ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive, ",
    );
    let causes: Vec<(&str, &str, &str)> = bad.1["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["reason"].as_str().unwrap(),
                c["field"].as_str().unwrap(),
                c["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        causes,
        [
            (
                "FieldValueInvalid",
                "spec.ingress[0].ports[0].port",
                "Invalid value: 99999: must be between 1 and 65535, inclusive"
            ),
            (
                "FieldValueInvalid",
                "spec.ingress[0].from[0].ipBlock.cidr",
                "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            ),
            (
                "FieldValueNotSupported",
                "spec.policyTypes[0]",
                "Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\""
            ),
        ]
    );
    let (code, _) = c.get(&format!("{NPS}/bad")).await.unwrap();
    assert_eq!(code, 404, "an invalid policy is not stored");

    // Positive control: the same shape with good values is created and defaulted.
    let (code, good) = c
        .post(NPS, &policy("good", "10.0.0.0/8", 443, json!([])))
        .await
        .unwrap();
    assert_eq!(code, 201, "{good}");
    assert_eq!(good["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(good["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(good["metadata"]["generation"], 1);
}
