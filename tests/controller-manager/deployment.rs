//! The Deployment controller (with the ReplicaSet controller) against a real apiserver and
//! real kubectl; the test plays the kubelet by marking pods ready.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::{Cluster, cluster, eventually};

const T: Duration = Duration::from_secs(30);

fn deployment(name: &str, replicas: i32, strategy: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    })
}

/// Plays the kubelet: every pod of `selector` becomes ready shortly after it appears.
fn kubelet(c: &Arc<Cluster>, selector: &'static str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (c.clone(), stop.clone());
    tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            c.make_all_ready("default", selector).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    stop
}

fn images(pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_keeps_every_replica_ready_and_kubectl_rollout_works() {
    let c = Arc::new(cluster(&["deployment", "replicaset"]).await);
    let stop = kubelet(&c, "app=web");
    c.create(deployment(
        "web",
        3,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
    ))
    .await;
    let out = c
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );

    // Watch readiness through the rollout.
    let min_ready = Arc::new(AtomicUsize::new(usize::MAX));
    let watching = Arc::new(AtomicBool::new(true));
    let monitor = {
        let (c, min_ready, watching) = (c.clone(), min_ready.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let ready = c
                    .live_pods("default", "app=web")
                    .await
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                min_ready.fetch_min(ready, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    c.kubectl_ok(&["set", "image", "deployment/web", "c=nginx:2"])
        .await;
    c.kubectl_ok(&[
        "annotate",
        "deployment/web",
        "kubernetes.io/change-cause=upgrade to 2",
    ])
    .await;
    let out = c
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    watching.store(false, Ordering::Relaxed);
    monitor.await.unwrap();
    assert!(
        min_ready.load(Ordering::Relaxed) >= 3,
        "ready pods dropped to {} during the rollout",
        min_ready.load(Ordering::Relaxed)
    );
    let pods = eventually("old pods gone", T, || async {
        let pods = c.live_pods("default", "app=web").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert_eq!(images(&pods), ["nginx:2"; 3]);

    // Status as kubectl and dashboards read it.
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let d = api.get("web").await.unwrap();
    let s = d.status.clone().unwrap();
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    let cond = |t: &str| {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        cond("Available").reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );
    assert_eq!(
        cond("Progressing").reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");

    // Two ReplicaSets, named after the template hash, the old one scaled to zero.
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let list = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 2);
    for rs in &list {
        let hash = &rs.labels()["pod-template-hash"];
        assert_eq!(rs.name_any(), format!("web-{hash}"));
    }

    let history = c
        .kubectl_ok(&["rollout", "history", "deployment/web"])
        .await;
    assert!(history.contains("REVISION"), "{history}");
    assert!(
        history.contains("1 ") && history.contains("upgrade to 2"),
        "{history}"
    );

    // Undo goes back to nginx:1 as revision 3.
    let out = c.kubectl_ok(&["rollout", "undo", "deployment/web"]).await;
    assert!(out.contains("rolled back"), "{out}");
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    eventually("nginx:1 again", T, || async {
        let pods = c.live_pods("default", "app=web").await;
        (pods.len() == 3 && images(&pods) == ["nginx:1"; 3]).then_some(())
    })
    .await;
    let history = c
        .kubectl_ok(&["rollout", "history", "deployment/web"])
        .await;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    stop.store(true, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_old_pods_before_starting_new_ones_and_pause_holds_a_rollout() {
    let c = Arc::new(cluster(&["deployment", "replicaset"]).await);
    let stop = kubelet(&c, "app=batch");
    c.create(deployment("batch", 2, json!({"type": "Recreate"})))
        .await;
    c.kubectl_ok(&["rollout", "status", "deployment/batch", "--timeout=30s"])
        .await;

    // Pause: a template change creates nothing.
    c.kubectl_ok(&["rollout", "pause", "deployment/batch"])
        .await;
    c.kubectl_ok(&["set", "image", "deployment/batch", "c=nginx:2"])
        .await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    eventually("Progressing=Unknown DeploymentPaused", T, || async {
        let d = api.get("batch").await.unwrap();
        let s = d.status?;
        let p = s
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        (p.reason.as_deref() == Some("DeploymentPaused") && p.status == "Unknown").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    assert_eq!(
        rss.list(&ListParams::default().labels("app=batch"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Resume: old and new pods never run together.
    let mixed = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(true));
    let monitor = {
        let (c, mixed, watching) = (c.clone(), mixed.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let imgs = images(&c.live_pods("default", "app=batch").await);
                if imgs.iter().any(|i| i == "nginx:1") && imgs.iter().any(|i| i == "nginx:2") {
                    mixed.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    c.kubectl_ok(&["rollout", "resume", "deployment/batch"])
        .await;
    c.kubectl_ok(&["rollout", "status", "deployment/batch", "--timeout=30s"])
        .await;
    eventually("2 nginx:2 pods", T, || async {
        let pods = c.live_pods("default", "app=batch").await;
        (images(&pods) == ["nginx:2"; 2]).then_some(())
    })
    .await;
    watching.store(false, Ordering::Relaxed);
    monitor.await.unwrap();
    assert!(
        !mixed.load(Ordering::Relaxed),
        "old and new pods ran together under Recreate"
    );
    stop.store(true, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_exceeds_its_progress_deadline_and_history_is_pruned() {
    let c = cluster(&["deployment", "replicaset"]).await;
    let mut d = deployment("stuck", 1, json!({"type": "RollingUpdate"}));
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    d["spec"]["revisionHistoryLimit"] = json!(1);
    c.create(d).await;
    // No kubelet: pods never become ready.
    let (ok, out, err) = c
        .kubectl(&["rollout", "status", "deployment/stuck", "--timeout=30s"])
        .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{err}"
    );
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let s = api.get("stuck").await.unwrap().status.unwrap();
    let p = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    assert!(p.message.unwrap().ends_with("has timed out progressing."));

    // With pods ready, three more templates leave the current ReplicaSet and one old one.
    c.make_all_ready("default", "app=stuck").await;
    for image in ["nginx:2", "nginx:3", "nginx:4"] {
        c.kubectl_ok(&["set", "image", "deployment/stuck", &format!("c={image}")])
            .await;
        eventually("the new pod ready and the rollout complete", T, || async {
            c.make_all_ready("default", "app=stuck").await;
            let d = api.get("stuck").await.unwrap();
            let s = d.status?;
            let p = s
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Progressing")?;
            (p.reason.as_deref() == Some("NewReplicaSetAvailable")
                && s.observed_generation == d.metadata.generation)
                .then_some(())
        })
        .await;
    }
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually("history pruned to revisionHistoryLimit", T, || async {
        let n = rss
            .list(&ListParams::default().labels("app=stuck"))
            .await
            .unwrap()
            .items
            .len();
        (n == 2).then_some(())
    })
    .await;
}
