//! `kubeadm join` discovery's controllers: bootstrapsigner signs kube-public/cluster-info
//! with every signing bootstrap token (and drops signatures of tokens that went away), and
//! tokencleaner deletes bootstrap tokens past their expiration.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::bootstraptoken::verify_detached;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::{Cluster, cluster, eventually};

const T: Duration = Duration::from_secs(30);

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nusers: null\n";

/// A bootstrap token Secret as `kubeadm token create` writes it.
async fn create_token(
    c: &Cluster,
    id: &str,
    secret: &str,
    signing: bool,
    expiration: Option<String>,
) {
    let mut data = json!({
        "token-id": id, "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": if signing { "true" } else { "false" },
    });
    if let Some(e) = expiration {
        data["expiration"] = json!(e);
    }
    c.create(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "stringData": data,
    }))
    .await;
}

/// RFC3339, `seconds` from now (negative: in the past).
fn from_now(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn cluster_info_data(c: &Cluster) -> BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(c.client.clone(), "kube-public")
        .get("cluster-info")
        .await
        .unwrap()
        .data
        .unwrap_or_default()
}

/// The signatures on cluster-info, by token id.
async fn signatures(c: &Cluster) -> BTreeMap<String, String> {
    cluster_info_data(c)
        .await
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("jws-kubeconfig-")?.to_owned(), v)))
        .collect()
}

async fn token_exists(c: &Cluster, id: &str) -> bool {
    Api::<Secret>::namespaced(c.client.clone(), "kube-system")
        .get_opt(&format!("bootstrap-token-{id}"))
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrapsigner_signs_cluster_info_with_signing_tokens() {
    let c = cluster(&["bootstrapsigner"]).await;
    c.create(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": KUBECONFIG},
    }))
    .await;
    create_token(&c, "abcdef", "0123456789abcdef", true, Some(from_now(3600))).await;
    create_token(&c, "nosign", "0123456789abcdef", false, None).await;
    create_token(&c, "expird", "0123456789abcdef", true, Some(from_now(-60))).await;

    let sigs = eventually("cluster-info signed for abcdef", T, || async {
        let sigs = signatures(&c).await;
        sigs.contains_key("abcdef").then_some(sigs)
    })
    .await;
    // Only the valid, unexpired signing token signs; the signature is what join verifies.
    assert_eq!(sigs.keys().collect::<Vec<_>>(), ["abcdef"]);
    assert!(verify_detached(
        &sigs["abcdef"],
        KUBECONFIG,
        "abcdef",
        "0123456789abcdef"
    ));
    assert!(!verify_detached(
        &sigs["abcdef"],
        KUBECONFIG,
        "abcdef",
        "fedcba9876543210"
    ));
    let header = sigs["abcdef"].split("..").next().unwrap();
    assert_eq!(header, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9");

    // A second signing token adds its own signature; one about to expire signs until it
    // does, then its signature goes even though its Secret stays (no tokencleaner here).
    create_token(&c, "ghijkl", "ghijkl0123456789", true, None).await;
    create_token(&c, "shortl", "0123456789abcdef", true, Some(from_now(3))).await;
    let sigs = eventually("cluster-info signed for ghijkl", T, || async {
        let sigs = signatures(&c).await;
        sigs.contains_key("ghijkl").then_some(sigs)
    })
    .await;
    assert!(verify_detached(
        &sigs["ghijkl"],
        KUBECONFIG,
        "ghijkl",
        "ghijkl0123456789"
    ));
    eventually("the expired token's signature removed", T, || async {
        let sigs = signatures(&c).await;
        (sigs.keys().collect::<Vec<_>>() == ["abcdef", "ghijkl"]).then_some(())
    })
    .await;
    assert!(token_exists(&c, "shortl").await);

    // A new kubeconfig is signed again by every token.
    let changed = KUBECONFIG.replace("10.0.0.1", "10.0.0.2");
    Api::<ConfigMap>::namespaced(c.client.clone(), "kube-public")
        .patch(
            "cluster-info",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"kubeconfig": changed}})),
        )
        .await
        .unwrap();
    eventually("cluster-info signed again", T, || async {
        let sigs = signatures(&c).await;
        (sigs.len() == 2
            && verify_detached(&sigs["abcdef"], &changed, "abcdef", "0123456789abcdef")
            && verify_detached(&sigs["ghijkl"], &changed, "ghijkl", "ghijkl0123456789"))
        .then_some(())
    })
    .await;

    // A deleted token's signature goes; the rest of cluster-info stays.
    Api::<Secret>::namespaced(c.client.clone(), "kube-system")
        .delete("bootstrap-token-abcdef", &DeleteParams::default())
        .await
        .unwrap();
    eventually("abcdef's signature removed", T, || async {
        let sigs = signatures(&c).await;
        (sigs.keys().collect::<Vec<_>>() == ["ghijkl"]).then_some(())
    })
    .await;
    assert_eq!(cluster_info_data(&c).await["kubeconfig"], changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokencleaner_deletes_expired_bootstrap_tokens() {
    let c = cluster(&["bootstrapsigner", "tokencleaner"]).await;
    c.create(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": KUBECONFIG},
    }))
    .await;
    create_token(&c, "expird", "0123456789abcdef", true, Some(from_now(-60))).await;
    create_token(&c, "soonex", "0123456789abcdef", true, Some(from_now(4))).await;
    create_token(&c, "foreva", "0123456789abcdef", true, None).await;

    // Already expired: deleted at once.
    eventually("the expired token deleted", T, || async {
        (!token_exists(&c, "expird").await).then_some(())
    })
    .await;
    // Signing until it expires, then its signature and its Secret go.
    let sigs = eventually("both live tokens sign", T, || async {
        let sigs = signatures(&c).await;
        (sigs.len() == 2).then_some(sigs)
    })
    .await;
    assert_eq!(sigs.keys().collect::<Vec<_>>(), ["foreva", "soonex"]);
    assert!(token_exists(&c, "soonex").await);
    eventually("the token deleted when it expires", T, || async {
        (!token_exists(&c, "soonex").await).then_some(())
    })
    .await;
    eventually("its signature removed", T, || async {
        (signatures(&c).await.keys().collect::<Vec<_>>() == ["foreva"]).then_some(())
    })
    .await;
    // No expiration: kept.
    assert!(token_exists(&c, "foreva").await);
}
