//! The ReplicaSet and ReplicationController controllers against a real apiserver.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, ReplicationController};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{cluster, eventually};

const T: Duration = Duration::from_secs(20);

fn replicaset(name: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    })
}

#[tokio::test]
async fn replicaset_creates_counts_and_scales_down_unready_first() {
    let c = cluster(&["replicaset"]).await;
    c.create(replicaset("web", 3)).await;
    let pods = eventually("3 pods", T, || async {
        let pods = c.live_pods("default", "app=web").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    for p in &pods {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.controller),
            ("ReplicaSet", "web", Some(true))
        );
    }
    // Two become ready; status follows.
    c.set_pod_ready("default", &pods[0].name_any(), true).await;
    c.set_pod_ready("default", &pods[1].name_any(), true).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually("status 3 replicas, 2 ready, 2 available", T, || async {
        let s = rs_api.get("web").await.unwrap().status.unwrap();
        (s.replicas == 3
            && s.ready_replicas == Some(2)
            && s.available_replicas == Some(2)
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == Some(1))
        .then_some(())
    })
    .await;
    // Scaling to 2 deletes the pod that is not ready.
    rs_api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let left = eventually("2 pods", T, || async {
        let pods = c.live_pods("default", "app=web").await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    let names: Vec<String> = left.iter().map(|p| p.name_any()).collect();
    assert!(
        !names.contains(&pods[2].name_any()),
        "the unready pod goes first: {names:?}"
    );
    // A pod deleted by someone else is replaced.
    c.pods("default")
        .delete(&names[0], &Default::default())
        .await
        .unwrap();
    eventually("a replacement", T, || async {
        let pods = c.live_pods("default", "app=web").await;
        (pods.len() == 2 && !pods.iter().any(|p| p.name_any() == names[0])).then_some(())
    })
    .await;
    // Events carry upstream's reasons and messages: one per pod created or deleted.
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let mut wanted: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            (
                "SuccessfulCreate".to_owned(),
                format!("Created pod: {}", p.name_any()),
            )
        })
        .collect();
    wanted.push((
        "SuccessfulDelete".into(),
        format!("Deleted pod: {}", pods[2].name_any()),
    ));
    eventually(
        "SuccessfulCreate and SuccessfulDelete events naming the pods",
        T,
        || async {
            let list = events.list(&ListParams::default()).await.unwrap().items;
            let seen: Vec<(String, String)> = list
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some("web"))
                .filter_map(|e| Some((e.reason.clone()?, e.message.clone()?)))
                .collect();
            wanted.iter().all(|w| seen.contains(w)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn replicaset_adopts_orphans_and_releases_pods_that_stop_matching() {
    let c = cluster(&["replicaset"]).await;
    // An orphan that matches exists first.
    c.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "namespace": "default", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .await;
    c.create(replicaset("db", 2)).await;
    let pods = eventually("2 pods, the orphan adopted", T, || async {
        let pods = c.live_pods("default", "app=db").await;
        let owned = pods.iter().all(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|r| r.len() == 1)
        });
        (pods.len() == 2 && owned).then_some(pods)
    })
    .await;
    assert!(
        pods.iter().any(|p| p.name_any() == "orphan"),
        "adopted, not replaced"
    );
    // Relabel the orphan: it is released and replaced.
    c.pods("default")
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
        )
        .await
        .unwrap();
    eventually("orphan released and replaced", T, || async {
        let orphan = c.pods("default").get("orphan").await.unwrap();
        let released = orphan
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty());
        let pods = c.live_pods("default", "app=db").await;
        (released && pods.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn replication_controller_keeps_its_replicas() {
    let c = cluster(&["replicationcontroller"]).await;
    c.create(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .await;
    eventually("2 pods", T, || async {
        (c.live_pods("default", "app=legacy").await.len() == 2).then_some(())
    })
    .await;
    c.make_all_ready("default", "app=legacy").await;
    let api: Api<ReplicationController> = Api::namespaced(c.client.clone(), "default");
    eventually("status ready 2", T, || async {
        let s = api.get("legacy").await.unwrap().status.unwrap();
        (s.replicas == 2 && s.ready_replicas == Some(2)).then_some(())
    })
    .await;
}
