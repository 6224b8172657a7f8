//! Auditing (--audit-policy-file): the events of each level and stage in the log, rules in
//! order, no Secret data at Metadata, the Audit-ID header, forbidden requests with their user,
//! rotation, and the webhook backend against a receiver in the test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::audit::AuditConfig;
use apiserver::audit::log::LogConfig;
use apiserver::audit::webhook::WebhookConfig;
use apiserver::testing::http::HttpClient;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::support::ApiServer;

/// A secret's value as stored (base64 of "hunter2-hunter2").
const SECRET_DATA: &str = "aHVudGVyMi1odW50ZXIy";

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  resources: [{group: "", resources: [configmaps], resourceNames: [quiet]}]
- level: RequestResponse
  namespaces: [open]
  resources: [{group: "", resources: [secrets]}]
- level: Metadata
  resources: [{group: "", resources: [secrets]}]
- level: Request
  resources: [{group: "", resources: [configmaps]}]
- level: Metadata
  verbs: [watch]
- level: None
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn log_config(path: PathBuf) -> LogConfig {
    LogConfig {
        path,
        ..Default::default()
    }
}

async fn start(dir: &Path, policy: &str, log: LogConfig) -> apiserver::server::InProcess {
    let policy = write(dir, "policy.yaml", policy);
    apiserver::testing::spawn_with(dir, |c| {
        c.audit = AuditConfig {
            policy_file: Some(policy),
            log: Some(log),
            webhook: None,
        }
    })
    .await
}

/// The lines the log's writer has ended: it may be in the middle of the last one.
fn whole_lines(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |end| end + 1)]
}

/// The log's events, once `done` holds for them (polled until a deadline).
async fn events_until(path: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = whole_lines(&text)
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
            .collect();
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log never got there:\n{}",
            events
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of one request at `stage` whose URI is `uri` and verb `verb`.
fn find<'a>(events: &'a [Value], verb: &str, uri: &str, stage: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["verb"] == verb && e["requestURI"] == uri && e["stage"] == stage)
        .collect()
}

fn has(events: &[Value], verb: &str, uri: &str, stage: &str) -> bool {
    !find(events, verb, uri, stage).is_empty()
}

/// A request with headers, answering (status, Audit-ID header, body).
async fn send(
    base: &str,
    method: &str,
    path: &str,
    audit_id: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    send_accepting(base, method, path, audit_id, body, "application/json").await
}

async fn send_accepting(
    base: &str,
    method: &str,
    path: &str,
    audit_id: Option<&str>,
    body: Option<&Value>,
    accept: &str,
) -> (u16, String, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("accept", accept)
        .header("user-agent", "audit-test/1.0");
    if let Some(id) = audit_id {
        request = request.header("Audit-ID", id);
    }
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let response = client
        .request(request.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("audit-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        id,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {"password": SECRET_DATA}})
}

#[tokio::test]
async fn events_follow_the_policy_level_and_stages() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit/audit.log");
    let server = start(dir.path(), POLICY, log_config(log.clone())).await;
    let base = server.url();
    let client = HttpClient::new(&base);
    let (code, _) = client
        .post("/api/v1/namespaces", &json!({"metadata": {"name": "open"}}))
        .await
        .unwrap();
    assert_eq!(code, 201);

    // Metadata: who created and read the Secret, never its data.
    let secrets = "/api/v1/namespaces/default/secrets";
    let (code, created_id, _) = send(
        &base,
        "POST",
        secrets,
        Some("my-audit-id"),
        Some(&secret("db")),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created_id, "my-audit-id", "a client's Audit-ID is kept");
    let (code, read_id, _) = send(&base, "GET", &format!("{secrets}/db"), None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        uuid::Uuid::parse_str(&read_id).unwrap().get_version_num(),
        4
    );
    // RequestResponse in `open`: both objects.
    let open = "/api/v1/namespaces/open/secrets";
    let (code, _, _) = send(&base, "POST", open, None, Some(&secret("shown"))).await;
    assert_eq!(code, 201);
    // A protobuf answer is recorded as the object it carries.
    let protobuf = "application/vnd.kubernetes.protobuf, */*";
    let shown_path = format!("{open}/shown");
    let (code, _, _) = send_accepting(&base, "GET", &shown_path, None, None, protobuf).await;
    assert_eq!(code, 200);
    // Request: the ConfigMap's body, not the answer. A read of `quiet` matches the first
    // rule, None (a create names no object in its path, so resourceNames cannot match it).
    let configmaps = "/api/v1/namespaces/default/configmaps";
    for name in ["quiet", "loud"] {
        let cm = json!({"metadata": {"name": name}, "data": {"k": "v"}});
        assert_eq!(
            send(&base, "POST", configmaps, None, Some(&cm)).await.0,
            201
        );
        let path = format!("{configmaps}/{name}");
        assert_eq!(send(&base, "GET", &path, None, None).await.0, 200);
    }
    // A watch: ResponseStarted once the answer started.
    let watch_uri = "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1";
    let mut watch = client.watch(watch_uri).await.unwrap();
    // Not matched by any rule but the last: None.
    assert_eq!(
        client
            .get("/api/v1/namespaces/default/pods")
            .await
            .unwrap()
            .0,
        200
    );

    let events = events_until(&log, |e| {
        has(e, "get", &format!("{secrets}/db"), "ResponseComplete")
            && has(e, "create", open, "ResponseComplete")
            && has(e, "get", &format!("{open}/shown"), "ResponseComplete")
            && find(e, "create", configmaps, "ResponseComplete").len() == 2
            && has(e, "get", &format!("{configmaps}/loud"), "ResponseComplete")
            && has(e, "watch", watch_uri, "ResponseStarted")
    })
    .await;

    // The create at Metadata: both stages, one auditID, the object named from the body.
    let received = find(&events, "create", secrets, "RequestReceived");
    let complete = find(&events, "create", secrets, "ResponseComplete");
    assert_eq!((received.len(), complete.len()), (1, 1), "{events:?}");
    let (received, complete) = (received[0], complete[0]);
    assert_eq!(received["auditID"], "my-audit-id");
    assert_eq!(complete["auditID"], "my-audit-id");
    assert_eq!(complete["kind"], "Event");
    assert_eq!(complete["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(complete["level"], "Metadata");
    assert_eq!(complete["user"]["username"], "system:apiserver");
    assert_eq!(complete["userAgent"], "audit-test/1.0");
    assert_eq!(complete["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(
        complete["objectRef"],
        json!({"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"})
    );
    assert_eq!(
        complete["responseStatus"],
        json!({"metadata": {}, "code": 201})
    );
    assert_eq!(
        complete["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(received.get("responseStatus").is_none());
    for e in [received, complete] {
        assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
        assert!(
            !e.to_string().contains(SECRET_DATA),
            "secret data at Metadata: {e}"
        );
    }
    let stamp = complete["stageTimestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.len() == 27,
        "{stamp}"
    );
    // The read, with the Audit-ID the client was answered.
    let read = find(&events, "get", &format!("{secrets}/db"), "ResponseComplete")[0];
    assert_eq!(read["auditID"], read_id);
    assert!(!read.to_string().contains(SECRET_DATA));

    // RequestResponse: the request's and the answer's objects.
    let shown = find(&events, "create", open, "ResponseComplete")[0];
    assert_eq!(shown["level"], "RequestResponse");
    assert_eq!(shown["requestObject"]["data"]["password"], SECRET_DATA);
    assert_eq!(shown["responseObject"]["metadata"]["name"], "shown");
    assert!(shown["objectRef"]["uid"].is_null());
    let read_back = find(&events, "get", &shown_path, "ResponseComplete")[0];
    assert_eq!(read_back["responseObject"]["data"]["password"], SECRET_DATA);
    assert_eq!(read_back["responseObject"]["metadata"]["name"], "shown");

    // Request: the object sent, not the answer; rules in order put `quiet` at None.
    let loud = find(&events, "create", configmaps, "ResponseComplete")[1];
    assert_eq!(loud["level"], "Request");
    assert_eq!(loud["requestObject"]["metadata"]["name"], "loud");
    assert!(loud.get("responseObject").is_none());
    let read = find(
        &events,
        "get",
        &format!("{configmaps}/loud"),
        "ResponseComplete",
    )[0];
    assert!(read.get("requestObject").is_none() && read.get("responseObject").is_none());
    assert!(
        !has(
            &events,
            "get",
            &format!("{configmaps}/quiet"),
            "ResponseComplete"
        ),
        "the None rule came first"
    );
    assert!(!has(
        &events,
        "list",
        "/api/v1/namespaces/default/pods",
        "ResponseComplete"
    ));

    // The watch ends (its timeout): ResponseComplete.
    while watch.next().await.is_some() {}
    events_until(&log, |e| has(e, "watch", watch_uri, "ResponseComplete")).await;
}

#[tokio::test]
async fn metrics_count_events_and_levels() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let server = start(dir.path(), POLICY, log_config(log.clone())).await;
    let client = HttpClient::new(&server.url());
    let cm = json!({"metadata": {"name": "c"}});
    assert_eq!(
        client
            .post("/api/v1/namespaces/default/configmaps", &cm)
            .await
            .unwrap()
            .0,
        201
    );
    let (_, metrics) = client.get_text("/metrics").await.unwrap();
    for line in [
        "apiserver_audit_level_total{level=\"Request\"} 1",
        "apiserver_audit_error_total{plugin=\"log\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let events: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("apiserver_audit_event_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 2.0, "{metrics}");
}

#[tokio::test]
async fn a_bad_policy_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
    );
    let config = apiserver::server::Config {
        data_dir: dir.path().join("data"),
        secure_port: 0,
        audit: AuditConfig {
            policy_file: Some(policy),
            log: Some(log_config(dir.path().join("audit.log"))),
            webhook: None,
        },
        ..Default::default()
    };
    let error = match apiserver::server::spawn_in_process(config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("loading audit policy file") && error.contains("Loud"),
        "{error}"
    );
}

/// A policy logging every object whole, for tests of rotation.
const EVERYTHING: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: RequestResponse\n";

/// Creates 25 ConfigMaps `<prefix>0..24` of ~100 KB: ~200 KB of log each (the object in the
/// request and in the answer), 5 MB in all.
async fn fill_log(client: &HttpClient, prefix: &str) {
    let big = "x".repeat(100_000);
    for i in 0..25 {
        let cm = json!({"metadata": {"name": format!("{prefix}{i}")}, "data": {"k": big}});
        let (code, _) = client
            .post("/api/v1/namespaces/default/configmaps", &cm)
            .await
            .unwrap();
        assert_eq!(code, 201);
    }
}

#[tokio::test]
async fn rotation_keeps_max_backups() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/audit.log");
    let server = start(
        dir.path(),
        EVERYTHING,
        LogConfig {
            max_size_mb: 1,
            max_backups: 2,
            ..log_config(log.clone())
        },
    )
    .await;
    fill_log(&HttpClient::new(&server.url()), "c").await;
    let backups = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("audit-") && n.ends_with(".log"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("\"c24\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last create was never logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names = backups(log.parent().unwrap());
    assert_eq!(names.len(), 2, "{names:?}");
    for name in names {
        let size = std::fs::metadata(log.with_file_name(name)).unwrap().len();
        assert!(size <= 1 << 20, "{size}");
    }
}

#[tokio::test]
async fn compressed_rotation_keeps_max_backups_as_gzip() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let server = start(
        dir.path(),
        EVERYTHING,
        LogConfig {
            max_size_mb: 1,
            max_backups: 2,
            compress: true,
            ..log_config(log.clone())
        },
    )
    .await;
    fill_log(&HttpClient::new(&server.url()), "z").await;
    // Backups are compressed off the writer's thread; wait until only .gz ones remain.
    let deadline = Instant::now() + Duration::from_secs(20);
    let names = loop {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("audit-"))
            .collect();
        names.sort();
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("\"z24\"")
            && names.len() == 2
            && names.iter().all(|n| n.ends_with(".log.gz"))
        {
            break names;
        }
        assert!(Instant::now() < deadline, "backups: {names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in names {
        let file = std::fs::File::open(dir.path().join(&name)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|e| e["kind"] == "Event"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn events_over_the_size_bound_lose_their_objects() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let server = start(
        dir.path(),
        EVERYTHING,
        LogConfig {
            truncate: Some(apiserver::audit::truncate::Truncate {
                max_event_bytes: 20_000,
                max_batch_bytes: 1 << 20,
            }),
            ..log_config(log.clone())
        },
    )
    .await;
    let client = HttpClient::new(&server.url());
    for (name, size) in [("small", 10), ("large", 30_000)] {
        let cm = json!({"metadata": {"name": name}, "data": {"k": "x".repeat(size)}});
        let (code, _) = client
            .post("/api/v1/namespaces/default/configmaps", &cm)
            .await
            .unwrap();
        assert_eq!(code, 201);
    }
    let uri = "/api/v1/namespaces/default/configmaps";
    let events = events_until(&log, |e| {
        find(e, "create", uri, "ResponseComplete").len() == 2
    })
    .await;
    let created = find(&events, "create", uri, "ResponseComplete");
    let (small, large) = (created[0], created[1]);
    assert_eq!(small["requestObject"]["metadata"]["name"], "small");
    assert_eq!(small["responseObject"]["metadata"]["name"], "small");
    assert!(small["annotations"].get("audit.k8s.io/truncated").is_none());
    assert!(
        large.get("requestObject").is_none() && large.get("responseObject").is_none(),
        "{large}"
    );
    assert_eq!(large["annotations"]["audit.k8s.io/truncated"], "true");
    assert_eq!(large["objectRef"]["name"], "large");
}

#[tokio::test]
async fn a_panic_is_recorded_at_the_panic_stage() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";
    let server = start(dir.path(), policy, log_config(log.clone())).await;
    // The server's own layers around a handler with a bug.
    let state = server.state.clone();
    let app = axum::Router::new()
        .route(
            "/api/v1/namespaces/default/pods",
            axum::routing::get(|| async {
                panic!("a handler bug");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            apiserver::auth::filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            apiserver::audit::filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            apiserver::metrics::track,
        ))
        .layer(axum::Extension(apiserver::auth::Trusted));
    let request = axum::http::Request::get("/api/v1/namespaces/default/pods")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let uri = "/api/v1/namespaces/default/pods";
    let events = events_until(&log, |e| has(e, "list", uri, "Panic")).await;
    let panic = find(&events, "list", uri, "Panic")[0];
    assert_eq!(panic["responseStatus"]["code"], 500);
    assert_eq!(panic["responseStatus"]["reason"], "InternalError");
    assert!(
        panic["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("a handler bug"),
        "{panic}"
    );
    assert!(has(&events, "list", uri, "RequestReceived"));
}

/// Answers every POST with 200 and keeps its JSON body.
async fn receiver() -> (String, Arc<parking_lot::Mutex<Vec<Value>>>) {
    let received = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/audit",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/audit", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn the_webhook_receives_event_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = receiver().await;
    let kubeconfig = dir.path().join("webhook.kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &url);
    let policy = write(
        dir.path(),
        "policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: \"\", resources: [configmaps]}]\n",
    );
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.audit = AuditConfig {
            policy_file: Some(policy),
            log: None,
            webhook: Some(WebhookConfig {
                config_file: kubeconfig,
                max_batch_size: 3,
                max_batch_wait: Duration::from_millis(200),
                initial_backoff: Duration::from_millis(100),
                // Batches of three events split into requests of at most two.
                truncate: Some(apiserver::audit::truncate::Truncate {
                    max_event_bytes: 100 << 10,
                    max_batch_bytes: 1_000,
                }),
                ..Default::default()
            }),
        }
    })
    .await;
    let client = HttpClient::new(&server.url());
    for i in 0..4 {
        let cm = json!({"metadata": {"name": format!("w{i}")}});
        let (code, _) = client
            .post("/api/v1/namespaces/default/configmaps", &cm)
            .await
            .unwrap();
        assert_eq!(code, 201);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lists = received.lock().clone();
        let items: Vec<&Value> = lists
            .iter()
            .flat_map(|l| l["items"].as_array().unwrap())
            .collect();
        if items.len() >= 8 {
            for list in &lists {
                assert_eq!(list["kind"], "EventList");
                assert_eq!(list["apiVersion"], "audit.k8s.io/v1");
                assert!(list["items"].as_array().unwrap().len() <= 2, "{list}");
            }
            let names: Vec<&str> = items
                .iter()
                .filter(|e| e["stage"] == "ResponseComplete")
                .map(|e| e["objectRef"]["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["w0", "w1", "w2", "w3"]);
            break;
        }
        assert!(Instant::now() < deadline, "received only {lists:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A forbidden request through the binary's secure port, with RBAC and a static token: its
/// user and the forbid decision are logged.
#[test]
fn a_forbidden_request_logs_the_user_and_decision() {
    let files = tempfile::tempdir().unwrap();
    let tokens = write(
        files.path(),
        "tokens.csv",
        "tetsu-test,alice,alice-uid,\"devs\"\n",
    );
    let policy = write(
        files.path(),
        "policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  resources: [{group: \"\", resources: [secrets]}]\n",
    );
    let log = files.path().join("audit.log");
    let server = ApiServer::start_https_with(&[
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--authorization-mode",
        "RBAC",
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
    ]);
    let stderr = server.fails(&["get", "secrets", "-n", "default"]);
    assert!(stderr.contains("forbidden"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let event = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = whole_lines(&text)
            .lines()
            .find(|l| l.contains("\"forbid\""))
        {
            break serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no forbidden event in:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(event["stage"], "ResponseComplete");
    assert_eq!(event["verb"], "list");
    assert_eq!(event["user"]["username"], "alice");
    assert_eq!(event["user"]["uid"], "alice-uid");
    assert_eq!(
        event["user"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    assert_eq!(
        event["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(event["responseStatus"]["code"], 403);
    assert_eq!(event["responseStatus"]["reason"], "Forbidden");
    assert!(
        event["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("User \"alice\" cannot list resource \"secrets\""),
        "{event}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
