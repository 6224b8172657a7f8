//! Response bytes as upstream writes them: Status fields in its Go struct order, and every
//! JSON body ended with a newline (clients typed from upstream compare these strings).

use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn send(app: &axum::Router, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_objects_are_written_as_upstream_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let app = apiserver::server::router(server.state.clone())
        .layer(axum::Extension(apiserver::auth::Trusted));

    let (code, body) = send(&app, "GET", "/api/v1/namespaces/default/pods/x", "").await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"pods\"},\"code\":404}\n"
    );

    // An Invalid Status: details (name, kind, causes of reason, message, field) before code.
    let cms = "/api/v1/namespaces/default/configmaps";
    let bad = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad"}}"#;
    let (code, body) = send(&app, "POST", cms, bad).await;
    assert_eq!(code, 422);
    let order = [
        "\"kind\"",
        "\"apiVersion\"",
        "\"metadata\"",
        "\"status\"",
        "\"message\"",
        "\"reason\"",
        "\"details\":{\"name\"",
        "\"kind\":\"ConfigMap\"",
        "\"causes\":[{\"reason\"",
        "\"field\"",
        "\"code\":422}\n",
    ];
    let mut at = 0;
    for key in order {
        let found = body[at..]
            .find(key)
            .unwrap_or_else(|| panic!("{key} after {at}: {body}"));
        at += found + key.len();
    }
    assert_eq!(at, body.len(), "{body}");

    // Objects, lists and the delete Status end with a newline too.
    let good = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good"}}"#;
    let (code, body) = send(&app, "POST", cms, good).await;
    assert_eq!(code, 201);
    assert!(body.ends_with("}\n"), "{body}");
    let (code, body) = send(&app, "GET", &format!("{cms}/good"), "").await;
    assert_eq!(code, 200);
    assert!(body.ends_with("}\n") && !body.ends_with("\n\n"), "{body}");
    let (code, body) = send(&app, "GET", cms, "").await;
    assert_eq!(code, 200);
    assert!(body.ends_with("]}\n"), "{body}");
    server.stop();
}
