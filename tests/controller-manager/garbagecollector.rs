//! Cascading deletion through the garbage collector, with real kubectl's --cascade modes.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::{cluster, eventually};

const T: Duration = Duration::from_secs(30);

fn deployment(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_cascade_removes_replicasets_and_pods() {
    let c = cluster(&["deployment", "replicaset", "garbagecollector"]).await;
    c.create(deployment("bg")).await;
    eventually("2 pods", T, || async {
        (c.live_pods("default", "app=bg").await.len() == 2).then_some(())
    })
    .await;
    c.kubectl_ok(&["delete", "deployment", "bg"]).await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually("ReplicaSets and pods collected", T, || async {
        let rs = rss
            .list(&ListParams::default().labels("app=bg"))
            .await
            .unwrap()
            .items;
        let pods = c
            .pods("default")
            .list(&ListParams::default().labels("app=bg"))
            .await
            .unwrap()
            .items;
        (rs.is_empty() && pods.is_empty()).then_some(())
    })
    .await;

    // Any kind: a ConfigMap owned by another ConfigMap goes with it.
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = c
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}))
        .await;
    c.create(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dependent",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner["metadata"]["uid"]}]}}),
    )
    .await;
    c.kubectl_ok(&["delete", "configmap", "owner"]).await;
    eventually("dependent ConfigMap collected", T, || async {
        cms.get_opt("dependent")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_cascade_deletes_dependents_before_the_owner() {
    let c = cluster(&["deployment", "replicaset", "garbagecollector"]).await;
    c.create(deployment("fg")).await;
    eventually("2 pods", T, || async {
        (c.live_pods("default", "app=fg").await.len() == 2).then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ])
    .await;
    let d = deployments.get("fg").await.unwrap();
    assert!(d.metadata.deletion_timestamp.is_some());
    assert!(d.finalizers().iter().any(|f| f == "foregroundDeletion"));
    eventually("the owner gone after its dependents", T, || async {
        let d = deployments.get_opt("fg").await.unwrap();
        let rs = rss
            .list(&ListParams::default().labels("app=fg"))
            .await
            .unwrap()
            .items;
        let pods = c
            .pods("default")
            .list(&ListParams::default().labels("app=fg"))
            .await
            .unwrap()
            .items;
        if d.is_none() {
            assert!(
                rs.is_empty() && pods.is_empty(),
                "owner removed before its dependents"
            );
            return Some(());
        }
        None
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_cascade_keeps_dependents_without_the_reference() {
    let c = cluster(&["replicaset", "garbagecollector"]).await;
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "keep", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "keep"}},
            "template": {"metadata": {"labels": {"app": "keep"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .await;
    eventually("2 pods", T, || async {
        (c.live_pods("default", "app=keep").await.len() == 2).then_some(())
    })
    .await;
    c.kubectl_ok(&["delete", "replicaset", "keep", "--cascade=orphan"])
        .await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually("ReplicaSet gone, pods orphaned", T, || async {
        let gone = rss.get_opt("keep").await.unwrap().is_none();
        let pods = c.live_pods("default", "app=keep").await;
        let orphaned = pods.iter().all(|p| p.owner_references().is_empty());
        (gone && pods.len() == 2 && orphaned).then_some(())
    })
    .await;
}

/// A kind defined after the collector started: it is discovered, an object it owns goes
/// with it, and a namespace's deletion takes that kind's objects along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_a_kind_defined_while_running_are_collected() {
    let c = cluster(&["garbagecollector", "namespace"]).await;
    c.create(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]},
    }))
    .await;
    eventually("widgets served", T, || async {
        c.kubectl(&["get", "widgets"]).await.0.then_some(())
    })
    .await;
    let widget = |ns: &str| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 1}})
    };
    let owner = c.create(widget("default")).await;
    c.create(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owned", "namespace": "default", "ownerReferences": [{
            "apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
            "uid": owner["metadata"]["uid"]}]},
    }))
    .await;
    // Not collected while its owner exists (the kind is resolved, not assumed gone).
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cms.get_opt("owned").await.unwrap().is_some());
    c.kubectl_ok(&["delete", "widget", "w"]).await;
    eventually("the owned ConfigMap collected", T, || async {
        cms.get_opt("owned").await.unwrap().is_none().then_some(())
    })
    .await;

    c.kubectl_ok(&["create", "namespace", "scratch"]).await;
    c.create(widget("scratch")).await;
    c.kubectl_ok(&["delete", "namespace", "scratch", "--wait=false"])
        .await;
    eventually("the namespace and its widget gone", T, || async {
        let (found, _, _) = c.kubectl(&["get", "namespace", "scratch"]).await;
        (!found).then_some(())
    })
    .await;
    let left = c.kubectl_ok(&["get", "widgets", "-A", "-o", "name"]).await;
    assert_eq!(left.trim(), "");
}
