//! The DaemonSet controller: a pod per fitting node, following nodes as they come, and a
//! rolling update that kubectl's rollout commands follow.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::Api;
use serde_json::json;
use support::{Cluster, cluster, eventually};

const T: Duration = Duration::from_secs(30);

async fn node(c: &Cluster, name: &str, taints: serde_json::Value) {
    c.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints}})).await;
}

/// node name -> image of the daemon pod pinned there.
async fn placement(c: &Cluster) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = c
        .live_pods("default", "app=agent")
        .await
        .iter()
        .map(|p| {
            let spec = p.spec.as_ref().unwrap();
            let term = &spec
                .affinity
                .as_ref()
                .unwrap()
                .node_affinity
                .as_ref()
                .unwrap()
                .required_during_scheduling_ignored_during_execution
                .as_ref()
                .unwrap()
                .node_selector_terms[0];
            let node = term.match_fields.as_ref().unwrap()[0]
                .values
                .as_ref()
                .unwrap()[0]
                .clone();
            (node, spec.containers[0].image.clone().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_fitting_node_and_a_rolling_update() {
    let c = Arc::new(cluster(&["daemonset"]).await);
    node(&c, "a", json!([])).await;
    node(&c, "b", json!([])).await;
    node(
        &c,
        "c",
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    c.create(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}})).await;
    eventually("pods on a and b, not on the tainted c", T, || async {
        (placement(&c).await
            == [
                ("a".into(), "agent:1".into()),
                ("b".into(), "agent:1".into()),
            ])
        .then_some(())
    })
    .await;
    let pod = &c.live_pods("default", "app=agent").await[0];
    let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
    );
    node(&c, "d", json!([])).await;
    eventually("a pod for the new node", T, || async {
        (placement(&c).await.len() == 3).then_some(())
    })
    .await;

    // The "kubelet" keeps pods ready; a new image rolls node by node.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.make_all_ready("default", "app=agent").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    c.kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"])
        .await;
    c.kubectl_ok(&["set", "image", "daemonset/agent", "c=agent:2"])
        .await;
    let out = c
        .kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    eventually("every node on agent:2", T, || async {
        let p = placement(&c).await;
        (p.len() == 3 && p.iter().all(|(_, i)| i == "agent:2")).then_some(())
    })
    .await;
    let ds: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
    let s = ds.get("agent").await.unwrap().status.unwrap();
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_misscheduled
        ),
        (3, 3, 0)
    );
    assert_eq!(s.updated_number_scheduled, Some(3));
    let history = c
        .kubectl_ok(&["rollout", "history", "daemonset/agent"])
        .await;
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
