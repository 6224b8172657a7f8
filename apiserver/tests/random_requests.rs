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
        let Ok(request) = axum::http::Request::builder()
            .method(r.method)
            .uri(r.uri())
            .header("content-type", r.content_type)
            .body(Body::from(r.body.clone()))
        else {
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
