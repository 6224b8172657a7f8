//! PodSecurity admission as upstream's: a namespace's enforce label refuses violating pods
//! with upstream's message, its warn label answers `Warning` headers, workloads are warned
//! and never refused, bad labels are refused, and raising an enforce level lists the pods
//! already there that violate it.

use std::time::{Duration, Instant};

use apiserver::testing::http::HttpClient;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

struct Server {
    _dir: tempfile::TempDir,
    server: apiserver::server::InProcess,
    client: HttpClient,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |_| {}).await;
    let client = HttpClient::new(&server.url());
    Server {
        _dir: dir,
        server,
        client,
    }
}

/// A request answering (status, the texts of its Warning headers, body).
async fn send(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Vec<String>, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let quoted = text.strip_prefix("299 - \"").unwrap().strip_suffix('"');
            quoted.unwrap().replace("\\\"", "\"")
        })
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, warnings, value)
}

async fn create(s: &Server, path: &str, body: &Value) -> (u16, Vec<String>, Value) {
    send(&s.server.url(), "POST", path, "application/json", body).await
}

async fn namespace(s: &Server, name: &str, labels: Value) {
    let ns = json!({"metadata": {"name": name, "labels": labels}});
    let (code, _, body) = create(s, "/api/v1/namespaces", &ns).await;
    assert_eq!(code, 201, "{body}");
}

fn pod(name: &str, security_context: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "securityContext": security_context}]}})
}

fn restricted_pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}})
}

/// What restricted says of a pod whose container `c` sets nothing.
const BARE_AT_RESTRICTED: &str = "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

/// Waits until lists (served from the watch cache, which admission reads) show `done`.
async fn until_listed(client: &HttpClient, path: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = client.get(path).await.unwrap();
        if done(list["items"].as_array().unwrap()) {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never showed it: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn enforce_refuses_pods_and_warn_warns() {
    let s = server().await;
    namespace(
        &s,
        "strict",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    let pods = "/api/v1/namespaces/strict/pods";

    let (code, warnings, status) = create(&s, pods, &pod("x", json!({"privileged": true}))).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        format!(
            "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true), {BARE_AT_RESTRICTED}"
        )
    );
    assert!(warnings.is_empty(), "{warnings:?}");

    let (code, warnings, created) = create(&s, pods, &restricted_pod("ok")).await;
    assert_eq!(code, 201, "{created}");
    assert!(warnings.is_empty(), "{warnings:?}");

    // A workload is admitted whatever its template, with the warning (warn follows enforce).
    let deployment = json!({"metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod("", json!({}))["spec"]}}});
    let (code, warnings, created) = create(
        &s,
        "/apis/apps/v1/namespaces/strict/deployments",
        &deployment,
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        warnings,
        [format!(
            "would violate PodSecurity \"restricted:latest\": {BARE_AT_RESTRICTED}"
        )]
    );

    // warn alone: admitted, with the warning.
    namespace(
        &s,
        "loose",
        json!({"pod-security.kubernetes.io/warn": "baseline"}),
    )
    .await;
    let (code, warnings, created) = create(
        &s,
        "/api/v1/namespaces/loose/pods",
        &pod("p", json!({"privileged": true})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        warnings,
        [
            "would violate PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
        ]
    );

    // No labels: privileged, nothing said.
    let (code, warnings, _) = create(
        &s,
        "/api/v1/namespaces/default/pods",
        &pod("p", json!({"privileged": true})),
    )
    .await;
    assert_eq!((code, warnings.len()), (201, 0));

    // Labels naming no level or version are refused.
    let bad = json!({"metadata": {"name": "bad", "labels": {
        "pod-security.kubernetes.io/enforce": "strict"}}});
    let (code, _, status) = create(&s, "/api/v1/namespaces", &bad).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Namespace \"bad\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
    );
    s.server.stop();
}

#[tokio::test]
async fn raising_enforce_lists_the_pods_that_violate_it() {
    let s = server().await;
    namespace(&s, "later", json!({})).await;
    let pods = "/api/v1/namespaces/later/pods";
    for p in [
        pod("bare-b", json!({})),
        pod("bare-a", json!({})),
        pod("priv", json!({"privileged": true})),
        restricted_pod("fine"),
    ] {
        let (code, _, body) = create(&s, pods, &p).await;
        assert_eq!(code, 201, "{body}");
    }
    until_listed(&s.client, pods, |items| items.len() == 4).await;

    let url = s.server.url();
    let labels =
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    let merge = "application/merge-patch+json";
    let path = "/api/v1/namespaces/later";
    let expected = [
        "existing pods in namespace \"later\" violate the new PodSecurity enforce level \"restricted:latest\"",
        "bare-a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
        "priv: privileged, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
    ];
    // A dry run says the same, and changes nothing.
    let dry = format!("{path}?dryRun=All");
    let (code, warnings, _) = send(&url, "PATCH", &dry, merge, &labels).await;
    assert_eq!(code, 200);
    assert_eq!(warnings, expected);
    let (code, warnings, ns) = send(&url, "PATCH", path, merge, &labels).await;
    assert_eq!(code, 200, "{ns}");
    assert_eq!(warnings, expected);
    // The same level again is no news.
    let (_, warnings, _) = send(&url, "PATCH", path, merge, &labels).await;
    assert!(warnings.is_empty(), "{warnings:?}");

    // Pods already there: an update that changes no image is not evaluated; one that does is.
    until_listed(&s.client, "/api/v1/namespaces", |items| {
        items.iter().any(|n| {
            n["metadata"]["name"] == "later"
                && n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        })
    })
    .await;
    let relabel = json!({"metadata": {"labels": {"x": "y"}}});
    let (code, _, body) = send(&url, "PATCH", &format!("{pods}/priv"), merge, &relabel).await;
    assert_eq!(code, 200, "{body}");
    let image = json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let strategic = "application/strategic-merge-patch+json";
    let (code, _, status) = send(&url, "PATCH", &format!("{pods}/priv"), strategic, &image).await;
    assert_eq!(code, 403, "{status}");
    assert!(
        status["message"].as_str().unwrap().starts_with(
            "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": privileged"
        ),
        "{status}"
    );

    // A bad label on update is refused.
    let bad =
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce-version": "1.30"}}});
    let (code, _, status) = send(&url, "PATCH", path, merge, &bad).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Namespace \"later\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: \"1.30\": must be \"latest\" or \"v1.x\""
    );
    s.server.stop();
}

#[tokio::test]
async fn the_audit_level_and_the_enforced_policy_are_in_the_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.audit = apiserver::audit::AuditConfig {
            policy_file: Some(policy),
            log: Some(apiserver::audit::log::LogConfig {
                path: log.clone(),
                ..Default::default()
            }),
            webhook: None,
        }
    })
    .await;
    let url = server.url();
    let ns = json!({"metadata": {"name": "watched", "labels": {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/audit": "restricted"}}});
    assert_eq!(
        send(&url, "POST", "/api/v1/namespaces", "application/json", &ns)
            .await
            .0,
        201
    );
    let pods = "/api/v1/namespaces/watched/pods";
    let (code, _, body) = send(&url, "POST", pods, "application/json", &pod("a", json!({}))).await;
    assert_eq!(code, 201, "{body}");
    let (code, _, _) = send(
        &url,
        "POST",
        pods,
        "application/json",
        &pod("b", json!({"privileged": true})),
    )
    .await;
    assert_eq!(code, 403);

    let deadline = Instant::now() + Duration::from_secs(20);
    let created = |events: &[Value], code: u16| {
        events
            .iter()
            .find(|e| {
                e["verb"] == "create"
                    && e["requestURI"] == pods
                    && e["stage"] == "ResponseComplete"
                    && e["responseStatus"]["code"] == code
            })
            .cloned()
    };
    let (admitted, refused) = loop {
        let events: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if let (Some(a), Some(r)) = (created(&events, 201), created(&events, 403)) {
            break (a, r);
        }
        assert!(Instant::now() < deadline, "no events: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let annotations = &admitted["annotations"];
    assert_eq!(
        annotations["pod-security.kubernetes.io/enforce-policy"],
        "baseline:latest"
    );
    assert_eq!(
        annotations["pod-security.kubernetes.io/audit-violations"],
        format!("would violate PodSecurity \"restricted:latest\": {BARE_AT_RESTRICTED}")
    );
    let annotations = &refused["annotations"];
    assert_eq!(
        annotations["pod-security.kubernetes.io/enforce-policy"],
        "baseline:latest"
    );
    assert!(
        annotations["pod-security.kubernetes.io/audit-violations"]
            .as_str()
            .unwrap()
            .starts_with("would violate PodSecurity \"restricted:latest\": privileged"),
        "{refused}"
    );
    server.stop();
}

#[tokio::test]
async fn the_configuration_sets_defaults_and_exemptions() {
    let dir = tempfile::tempdir().unwrap();
    let config = apiserver::admission::pod_security::Configuration::from_value(&json!({
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "baseline"},
        "exemptions": {"namespaces": ["free"], "runtimeClasses": ["kata"]},
    }))
    .unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.admission.pod_security_config = std::sync::Arc::new(config);
    })
    .await;
    let url = server.url();
    let post = |path: &'static str, body: Value| {
        let url = url.clone();
        async move { send(&url, "POST", path, "application/json", &body).await }
    };
    let privileged = pod("p", json!({"privileged": true}));

    // No labels: the configured default.
    let (code, _, status) = post("/api/v1/namespaces/default/pods", privileged.clone()).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
    );
    // An exempt runtime class (which RuntimeClass admission needs to exist).
    let class = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "kata"}, "handler": "kata"});
    let (code, _, body) = post("/apis/node.k8s.io/v1/runtimeclasses", class).await;
    assert_eq!(code, 201, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = HttpClient::new(&url)
            .get("/apis/node.k8s.io/v1/runtimeclasses")
            .await
            .unwrap()
            .1;
        if !listed["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the RuntimeClass never listed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut kata = privileged.clone();
    kata["spec"]["runtimeClassName"] = json!("kata");
    let (code, _, body) = post("/api/v1/namespaces/default/pods", kata).await;
    assert_eq!(code, 201, "{body}");

    // An exempt namespace: its labels are ignored, and it says so.
    let free = json!({"metadata": {"name": "free", "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}});
    let (code, warnings, _) = post("/api/v1/namespaces", free).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            "namespace \"free\" is exempt from Pod Security, and the policy (enforce=restricted:latest) will be ignored"
        ]
    );
    let (code, warnings, body) = post("/api/v1/namespaces/free/pods", privileged).await;
    assert_eq!(code, 201, "{body}");
    assert!(warnings.is_empty(), "{warnings:?}");
    server.stop();
}

#[tokio::test]
async fn an_exempt_user_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = apiserver::admission::pod_security::Configuration::from_value(&json!({
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "restricted"},
        // Who requests to the in-process server (its trusted plain-HTTP port) act as.
        "exemptions": {"usernames": ["system:apiserver"]},
    }))
    .unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.admission.pod_security_config = std::sync::Arc::new(config);
    })
    .await;
    let privileged = pod("p", json!({"privileged": true}));
    let path = "/api/v1/namespaces/default/pods";
    let (code, warnings, body) =
        send(&server.url(), "POST", path, "application/json", &privileged).await;
    assert_eq!(code, 201, "{body}");
    assert!(warnings.is_empty(), "{warnings:?}");
    server.stop();
}
