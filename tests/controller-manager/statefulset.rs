//! The StatefulSet controller: ordered creation with stable names and claims, reverse-order
//! scale down, and a rolling update with a partition.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::{cluster, eventually};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_pods_with_stable_names_claims_and_a_partitioned_rollout() {
    let c = Arc::new(cluster(&["statefulset"]).await);
    c.create(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})).await;
    let names = || async {
        c.live_pods("default", "app=web")
            .await
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>()
    };
    eventually("web-0", T, || async {
        (names().await == ["web-0"]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        names().await,
        ["web-0"],
        "web-1 waits for web-0 to be ready"
    );
    let p0 = c.pods("default").get("web-0").await.unwrap();
    let spec = p0.spec.as_ref().unwrap();
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain.as_deref()),
        (Some("web-0"), Some("web"))
    );
    let claim = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "data")
        .unwrap();
    assert_eq!(
        claim.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-web-0"
    );
    assert_eq!(p0.labels()["statefulset.kubernetes.io/pod-name"], "web-0");
    for i in 0..3 {
        c.set_pod_ready("default", &format!("web-{i}"), true).await;
        let want: Vec<String> = (0..=(i + 1).min(2)).map(|n| format!("web-{n}")).collect();
        eventually("the next ordinal", T, || async {
            (names().await == want).then_some(())
        })
        .await;
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    for i in 0..3 {
        assert!(
            pvcs.get_opt(&format!("data-web-{i}"))
                .await
                .unwrap()
                .is_some(),
            "claim for web-{i}"
        );
    }
    let sets: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    eventually("status 3 ready", T, || async {
        let s = sets.get("web").await.unwrap().status?;
        (s.replicas == 3 && s.ready_replicas == Some(3) && s.current_revision == s.update_revision)
            .then_some(())
    })
    .await;

    // Rolling update with partition 1: web-2 and web-1 change, web-0 stays.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.make_all_ready("default", "app=web").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}}})),
    )
    .await
    .unwrap();
    let images = || async {
        c.live_pods("default", "app=web")
            .await
            .iter()
            .map(|p| {
                (
                    p.name_any(),
                    p.spec.as_ref().unwrap().containers[0]
                        .image
                        .clone()
                        .unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    eventually("web-1 and web-2 on nginx:2", T, || async {
        (images().await
            == [
                ("web-0".into(), "nginx:1".into()),
                ("web-1".into(), "nginx:2".into()),
                ("web-2".into(), "nginx:2".into()),
            ])
        .then_some(())
    })
    .await;
    // Scale down: the highest ordinals go.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("only web-0", T, || async {
        (names().await == ["web-0"]).then_some(())
    })
    .await;
    assert!(
        pvcs.get_opt("data-web-2").await.unwrap().is_some(),
        "claims outlive their pods"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
