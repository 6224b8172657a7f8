//! Property test: thousands of random requests (odd paths, queries, content types and bodies,
//! see `apiserver::testing::random_requests`) against a whole in-process server never panic a
//! handler and never answer 500.

use std::time::Duration;

use apiserver::auth::Trusted;
use apiserver::request::RequestInfo;
use apiserver::testing::random_requests::Generator;
use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_panic_or_fail_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let app = apiserver::server::router(server.state.clone()).layer(axum::Extension(Trusted));
    let mut generator = Generator::new(1414);
    let mut answered = std::collections::BTreeMap::new();
    for _ in 0..10_000 {
        let r = generator.request();
        let mut builder = axum::http::Request::builder()
            .method(r.method)
            .uri(r.uri())
            .header("content-type", r.content_type);
        for (name, value) in &r.headers {
            builder = builder.header(*name, *value);
        }
        let Ok(request) = builder.body(Body::from(r.body.clone())) else {
            continue; // not a request hyper would have parsed either
        };
        let info = RequestInfo::read(r.method, &r.path, &r.query);
        let response = tokio::time::timeout(Duration::from_secs(30), app.clone().oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("no answer in 30 s: {r:?}"))
            .expect("the router is infallible");
        let code = response.status().as_u16();
        assert_ne!(code, 500, "{r:?}");
        *answered.entry(code).or_insert(0) += 1;
        // Watches and streams stay open; everything else is read to its end.
        let streams = info.attrs.verb == "watch"
            || ["log", "exec", "attach", "portforward", "proxy"]
                .contains(&info.attrs.subresource.as_str());
        if !streams {
            tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
                .await
                .unwrap_or_else(|_| panic!("the body did not end in 30 s: {r:?}"))
                .expect("a body");
        }
    }
    // The requests reached the handlers, not only the router's 404.
    let ok: u32 = answered.range(200..300).map(|(_, n)| n).sum();
    assert!(ok >= 100, "{answered:?}");
    assert!(answered.len() >= 4, "{answered:?}");
    let metrics = server.state.metrics.render(0);
    assert!(
        metrics.contains("apiserver_request_panics_total 0"),
        "{metrics}"
    );
    server.stop();
}

/// If a handler panics anyway, the client gets a 500 Status, and the panic is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_a_500_status_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
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
            server.state.clone(),
            apiserver::metrics::track,
        ));
    let request = axum::http::Request::get("/api/v1/namespaces/default/pods")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "InternalError");
    assert!(
        server
            .state
            .metrics
            .render(0)
            .contains("apiserver_request_panics_total 1")
    );
    server.stop();
}
