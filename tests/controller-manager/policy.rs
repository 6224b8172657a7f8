//! ResourceQuota usage and PodDisruptionBudget status against a real apiserver.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::{cluster, eventually};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_status_counts_what_the_namespace_holds() {
    let c = cluster(&["resourcequota"]).await;
    c.create(json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "default"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "2", "requests.memory": "1Gi", "limits.memory": "2Gi",
            "configmaps": "5", "services": "4", "count/deployments.apps": "3"}}})).await;
    for i in 0..2 {
        c.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}"), "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}]}})).await;
    }
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}})).await;
    c.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}}})).await;
    let configmaps = Api::<ConfigMap>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    let services = Api::<Service>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    let quotas: Api<ResourceQuota> = Api::namespaced(c.client.clone(), "default");
    let used = eventually("used counts", T, || async {
        let s = quotas.get("q").await.unwrap().status?;
        let used: Vec<(String, String)> = s.used?.into_iter().map(|(k, v)| (k, v.0)).collect();
        (used.iter().any(|(k, v)| k == "pods" && v == "2")).then_some(used)
    })
    .await;
    let get = |k: &str| {
        used.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("requests.cpu"), "500m");
    assert_eq!(get("requests.memory"), "128Mi");
    assert_eq!(get("limits.memory"), "256Mi");
    assert_eq!(get("configmaps"), configmaps.to_string());
    assert_eq!(get("services"), services.to_string());
    assert_eq!(get("count/deployments.apps"), "1");
    let out = c.kubectl_ok(&["describe", "resourcequota", "q"]).await;
    assert!(
        out.contains("requests.cpu") && out.contains("500m"),
        "{out}"
    );
    // A pod going away is counted off.
    c.pods("default")
        .delete("p1", &Default::default())
        .await
        .unwrap();
    eventually("pods 1", T, || async {
        let s = quotas.get("q").await.unwrap().status?;
        (s.used?.get("pods")?.0 == "1").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruption_budget_status_follows_healthy_pods() {
    let c = cluster(&["replicaset", "disruption"]).await;
    c.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})).await;
    c.create(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "min2", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})).await;
    c.create(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "max34", "namespace": "default"},
        "spec": {"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}})).await;
    eventually("3 pods", T, || async {
        (c.live_pods("default", "app=web").await.len() == 3).then_some(())
    })
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "default");
    let reason = |pdb: &PodDisruptionBudget| {
        pdb.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| c[0].reason.clone())
    };
    eventually("no disruptions while pods are unready", T, || async {
        let p = pdbs.get("min2").await.unwrap();
        (reason(&p).as_deref() == Some("InsufficientPods")).then_some(())
    })
    .await;
    c.make_all_ready("default", "app=web").await;
    eventually("one disruption allowed by each budget", T, || async {
        let min2 = pdbs.get("min2").await.unwrap().status?;
        let max34 = pdbs.get("max34").await.unwrap().status?;
        let ok = (min2.current_healthy, min2.desired_healthy, min2.expected_pods, min2.disruptions_allowed) == (3, 2, 3, 1)
            // 34% of 3 rounds up to 2 unavailable: 1 must stay, 2 may go.
            && (max34.desired_healthy, max34.expected_pods, max34.disruptions_allowed) == (1, 3, 2);
        ok.then_some(())
    })
    .await;
    let out = c.kubectl_ok(&["get", "pdb", "min2"]).await;
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(3) == Some("1")),
        "ALLOWED DISRUPTIONS 1:\n{out}"
    );
}

/// The pvc-protection and pv-protection controllers: a claim a pod uses, and a volume bound
/// to a claim, stay (Terminating) when deleted until nothing uses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_volumes_in_use_outlive_their_deletion() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
    use kube::api::{DeleteParams, PostParams};
    let c = cluster(&["pvc-protection", "pv-protection"]).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    c.create(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        .await;
    c.create(
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "vol"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/tmp/vol"}}}),
    )
    .await;
    // Objects made without the admission plugin get the finalizer from the controllers.
    eventually("the claim's finalizer", T, || async {
        let claim = claims.get("data").await.unwrap();
        claim
            .metadata
            .finalizers?
            .contains(&"kubernetes.io/pvc-protection".to_owned())
            .then_some(())
    })
    .await;
    eventually("the volume's finalizer", T, || async {
        let volume = volumes.get("vol").await.unwrap();
        volume
            .metadata
            .finalizers?
            .contains(&"kubernetes.io/pv-protection".to_owned())
            .then_some(())
    })
    .await;
    c.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
        .await;
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    // Used: it stays, terminating, while the pod exists (a second's worth of syncs).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = claims.get("data").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some(), "{held:?}");
    pods.delete("user", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("the claim goes once no pod uses it", T, || async {
        claims
            .get_opt("data")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // A bound volume stays until it is released.
    let mut bound = volumes.get("vol").await.unwrap();
    bound.status = Some(serde_json::from_value(json!({"phase": "Bound"})).unwrap());
    let bound = volumes
        .replace_status("vol", &PostParams::default(), &bound)
        .await
        .unwrap();
    assert_eq!(bound.status.unwrap().phase.as_deref(), Some("Bound"));
    volumes
        .delete("vol", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut held = volumes.get("vol").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some(), "{held:?}");
    held.status = Some(serde_json::from_value(json!({"phase": "Released"})).unwrap());
    volumes
        .replace_status("vol", &PostParams::default(), &held)
        .await
        .unwrap();
    eventually("the volume goes once released", T, || async {
        volumes
            .get_opt("vol")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}
