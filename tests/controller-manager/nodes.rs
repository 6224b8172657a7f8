//! Node controllers: pod CIDR allocation, node lifecycle with taint-based eviction, and
//! pod garbage collection, with short periods instead of upstream's minutes.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use controller_manager::runtime::Options;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::{Cluster, apiserver, eventually};

const T: Duration = Duration::from_secs(30);

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn node(c: &Cluster, name: &str) {
    c.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
        .await;
}

/// Plays the kubelet's heartbeat: renews the node's Lease and posts Ready=True.
async fn heartbeat(c: &Cluster, name: &str) {
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let spec =
        json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now()}});
    if leases.get_opt(name).await.unwrap().is_none() {
        c.create(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec["spec"]}),
        )
        .await;
    } else {
        leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&spec))
            .await
            .unwrap();
    }
    let nodes: Api<Node> = Api::all(c.client.clone());
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ipam_hands_out_unique_pod_cidrs() {
    let mut c = apiserver().await;
    let options = Options {
        allocate_node_cidrs: true,
        cluster_cidr: Some("10.244.0.0/16".into()),
        ..Options::default()
    };
    c.start_controllers_with(&["nodeipam"], options).await;
    let names: Vec<String> = (0..8).map(|i| format!("node-{i}")).collect();
    futures::future::join_all(names.iter().map(|n| node(&c, n))).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let cidrs = eventually("every node has a pod CIDR", T, || async {
        let list = nodes.list(&Default::default()).await.unwrap().items;
        let cidrs: Vec<String> = list
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        (cidrs.len() == 8).then_some(cidrs)
    })
    .await;
    let unique: HashSet<&String> = cidrs.iter().collect();
    assert_eq!(unique.len(), 8, "{cidrs:?}");
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.244.") && c.ends_with(".0/24")),
        "{cidrs:?}"
    );
    let n0 = nodes.get("node-0").await.unwrap();
    assert_eq!(
        n0.spec.as_ref().unwrap().pod_cidrs.as_ref().unwrap()[0],
        cidrs[0]
    );

    // A deleted node's range is free again, but never handed to two live nodes.
    nodes.delete("node-3", &Default::default()).await.unwrap();
    node(&c, "node-8").await;
    let all = eventually("node-8 has a pod CIDR", T, || async {
        let list = nodes.list(&Default::default()).await.unwrap().items;
        let cidrs: Vec<String> = list
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        list.iter()
            .find(|n| n.name_any() == "node-8")?
            .spec
            .as_ref()?
            .pod_cidr
            .as_ref()?;
        Some(cidrs)
    })
    .await;
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "{all:?}"
    );
}

/// TaintNodesByCondition: a new node starts with the not-ready NoSchedule taint, and the
/// node lifecycle controller lifts it as soon as the node reports Ready, not at its next
/// periodic pass (an hour away here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_is_tainted_not_ready_until_it_reports_ready() {
    let mut c = support::apiserver_with(|config| {
        config.admission.taint_nodes_by_condition = true;
    })
    .await;
    let options = Options {
        node_monitor_period: Duration::from_secs(3600),
        ..Options::default()
    };
    c.start_controllers_with(&["nodelifecycle"], options).await;
    let created = c
        .create(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fresh"},
            "spec": {"taints": [{"key": "example.com/dedicated", "effect": "NoSchedule"}]}}),
        )
        .await;
    assert_eq!(
        created["spec"]["taints"],
        json!([{"key": "example.com/dedicated", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
        "{created}"
    );
    // A node that comes with the taint does not get it twice.
    let given = c
        .create(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "given"},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}),
        )
        .await;
    assert_eq!(
        given["spec"]["taints"].as_array().unwrap().len(),
        1,
        "{given}"
    );

    let started = std::time::Instant::now();
    heartbeat(&c, "fresh").await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let taints = eventually("the not-ready taint lifted", T, async || {
        let node = nodes.get("fresh").await.unwrap();
        let taints = node.spec.unwrap().taints.unwrap_or_default();
        (!taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/not-ready"))
        .then_some(taints)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "lifted on the node's change, not by the periodic pass"
    );
    assert_eq!(taints.len(), 1, "other taints stay: {taints:?}");
    assert_eq!(taints[0].key, "example.com/dedicated");
    // The node that never reported keeps it.
    let given = nodes.get("given").await.unwrap();
    assert_eq!(given.spec.unwrap().taints.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_tainted_and_its_pods_evicted_after_toleration_seconds() {
    let mut c = apiserver().await;
    let options = Options {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(2),
        ..Options::default()
    };
    c.start_controllers_with(&["nodelifecycle", "taint-eviction-controller"], options)
        .await;
    node(&c, "worker").await;
    heartbeat(&c, "worker").await;
    let pod = |name: &str, tolerations: serde_json::Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "worker", "tolerations": tolerations,
                "containers": [{"name": "c", "image": "busybox"}]}})
    };
    c.create(pod(
        "brief",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 2}]),
    ))
    .await;
    c.create(pod(
        "stays",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute"}]),
    ))
    .await;
    c.set_pod_ready("default", "brief", true).await;

    // While the kubelet keeps renewing, nothing happens.
    for _ in 0..6 {
        heartbeat(&c, "worker").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let nodes: Api<Node> = Api::all(c.client.clone());
    let n = nodes.get("worker").await.unwrap();
    let taints = n.spec.as_ref().and_then(|s| s.taints.as_ref());
    assert!(
        taints.is_none_or(|t| t.is_empty()),
        "a live node is not tainted: {taints:?}"
    );

    // Silence: Ready=Unknown, unreachable taints, pods not ready.
    let silent = std::time::Instant::now();
    let taints = eventually("unreachable taints", T, || async {
        let n = nodes.get("worker").await.unwrap();
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        let taints: Vec<String> = n
            .spec?
            .taints?
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        (ready.status == "Unknown" && taints.len() == 2).then_some((ready, taints))
    })
    .await;
    assert!(
        silent.elapsed() >= Duration::from_millis(1500),
        "tainted before the grace period"
    );
    let tainted = std::time::Instant::now();
    assert_eq!(taints.0.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        taints.1,
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    eventually("brief evicted after its tolerationSeconds", T, || async {
        let p = c.pods("default").get("brief").await.unwrap();
        let ready = p
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(!ready, "pods of an unreachable node are marked not ready");
        p.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    // timeAdded has whole seconds, so the 2 s may count from up to a second before the taint.
    assert!(
        tainted.elapsed() >= Duration::from_millis(900),
        "evicted before tolerationSeconds"
    );
    let stays = c.pods("default").get("stays").await.unwrap();
    assert!(
        stays.metadata.deletion_timestamp.is_none(),
        "tolerates forever"
    );

    // The kubelet comes back: the taints go.
    heartbeat(&c, "worker").await;
    eventually("taints removed", T, || async {
        let n = nodes.get("worker").await.unwrap();
        n.spec?.taints.is_none_or(|t| t.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_gc_removes_pods_of_missing_nodes_and_old_terminated_pods() {
    let mut c = apiserver().await;
    let options = Options {
        pod_gc_period: Duration::from_millis(200),
        pod_gc_quarantine: Duration::from_millis(500),
        terminated_pod_gc_threshold: 2,
        ..Options::default()
    };
    c.start_controllers_with(&["podgc"], options).await;
    c.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lost", "namespace": "default"},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}}))
    .await;
    for i in 0..4 {
        let name = format!("done-{i}");
        c.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .await;
        c.pods("default")
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"phase": "Succeeded"}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct creation seconds
    }
    eventually("orphan and oldest terminated pods gone", T, || async {
        let names: Vec<String> = c
            .pods("default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        (names == ["done-2", "done-3"]).then_some(())
    })
    .await;
}
