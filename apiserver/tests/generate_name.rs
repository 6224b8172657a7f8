//! generateName under collisions: the server tries eight generated names before it answers
//! upstream's AlreadyExists, so a client never sees a collision it could not have caused.

use std::sync::atomic::{AtomicUsize, Ordering};

use apiserver::testing::http::HttpClient;
use serde_json::{Value, json};

/// Names cycle through nine suffixes, so collisions are certain once all nine exist.
fn nine_names(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed) % 9)
}

fn generated(prefix: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": prefix}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_names_that_collide_are_retried_up_to_eight_times() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |c| c.generate_name = nine_names).await;
    let client = HttpClient::new(&server.url());
    for i in 0..9 {
        let (code, body) = client.post(CMS, &generated("web-")).await.unwrap();
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["metadata"]["name"], format!("web-{i}"));
    }

    // The tenth create meets web-0..web-7 taken: after eight names the server gives up, with
    // upstream's message, as kubectl prints it.
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let manifest = generated("web-").to_string();
    let (ok, out, err) =
        apiserver::testing::kubectl(&kubeconfig, &["create", "-f", "-"], Some(&manifest)).await;
    assert!(!ok, "{out}");
    assert_eq!(
        err.trim(),
        "Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \"web-7\" \
         already exists, the server was not allowed to generate a unique name"
    );
    let (code, body) = client.post(CMS, &generated("web-")).await.unwrap();
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["details"]["retryAfterSeconds"], 1, "{body}");

    // With one name free again, a create that meets six taken names first still succeeds.
    let (code, _) = client
        .send("DELETE", &format!("{CMS}/web-4"), "application/json", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (ok, out, err) = apiserver::testing::kubectl(
        &kubeconfig,
        &["create", "-f", "-", "-o", "jsonpath={.metadata.name}"],
        Some(&manifest),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "web-4");

    // A name the client chose is its own collision: plain AlreadyExists, no retry.
    let (code, body) = client
        .post(
            CMS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-1"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["message"], "configmaps \"web-1\" already exists");
}
