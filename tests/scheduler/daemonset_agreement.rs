//! The DaemonSet controller and the scheduler judge a node alike: for every template and
//! node here, the controller's `should_run` says yes exactly when the default scheduler
//! admits the template's pod there (with the tolerations every daemon pod gets). The pod the
//! controller creates is then pinned to the node, replacing its required terms as upstream
//! does, so this agreement is what keeps a daemon pod off nodes its template excludes. Both
//! use common's node affinity and toleration helpers; this keeps them from drifting apart.

use std::sync::Arc;

use controller_manager::controllers::daemonset::logic::{add_default_tolerations, should_run};
use k8s_openapi::api::core::v1::{Node, PodSpec};
use scheduler::cache::Snapshot;
use scheduler::framework::CycleState;
use scheduler::framework::types::{NodeInfo, PodInfo};
use scheduler::testing::{default_framework, make_node, make_pod};

fn nodes() -> Vec<Node> {
    vec![
        make_node("plain").obj(),
        make_node("ssd").label("disk", "ssd").obj(),
        make_node("gpu")
            .taint("dedicated", "gpu", "NoSchedule")
            .obj(),
        make_node("evicting")
            .taint("dedicated", "gpu", "NoExecute")
            .obj(),
        make_node("cordoned").unschedulable().obj(),
        make_node("preferring")
            .taint("noisy", "", "PreferNoSchedule")
            .obj(),
        make_node("not-ready")
            .taint("node.kubernetes.io/not-ready", "", "NoExecute")
            .obj(),
        make_node("pressured")
            .taint("node.kubernetes.io/memory-pressure", "", "NoSchedule")
            .obj(),
    ]
}

fn templates() -> Vec<(&'static str, PodSpec)> {
    let spec = |p: k8s_openapi::api::core::v1::Pod| p.spec.expect("a spec");
    vec![
        ("plain", spec(make_pod("t").obj())),
        (
            "selector",
            spec(make_pod("t").node_selector("disk", "ssd").obj()),
        ),
        (
            "not-in",
            spec(
                make_pod("t")
                    .node_affinity_in("disk", "NotIn", &["ssd"])
                    .obj(),
            ),
        ),
        (
            "exists",
            spec(make_pod("t").node_affinity_in("disk", "Exists", &[]).obj()),
        ),
        (
            "tolerates-gpu",
            spec(
                make_pod("t")
                    .toleration("dedicated", "Equal", "gpu", "NoSchedule")
                    .obj(),
            ),
        ),
        (
            "tolerates-all",
            spec(make_pod("t").toleration("", "Exists", "", "").obj()),
        ),
    ]
}

/// Whether the default scheduler's PreFilter and Filter admit a daemon pod of `spec` on `node`.
fn scheduler_admits(spec: &PodSpec, node: &Node) -> bool {
    let framework = default_framework(1);
    let mut pod = make_pod("daemon").obj();
    let mut spec = spec.clone();
    add_default_tolerations(&mut spec);
    pod.spec = Some(spec);
    let pod = PodInfo::new(Arc::new(pod));
    let snapshot = Snapshot::from_nodes(vec![NodeInfo::new(Arc::new(node.clone()))]);
    let mut state = CycleState::default();
    let (_, status) = framework.run_pre_filter(&mut state, &pod, &snapshot);
    status.is_success()
        && framework
            .run_filter(&state, &pod, &snapshot.nodes[0])
            .is_success()
}

#[test]
fn the_daemonset_controller_and_the_scheduler_agree_on_every_node() {
    let mut admitted = 0;
    for (name, spec) in templates() {
        for node in nodes() {
            let controller = should_run(&spec, &node);
            let scheduler = scheduler_admits(&spec, &node);
            assert_eq!(
                controller,
                scheduler,
                "template {name} on node {}: the controller says {controller}, the scheduler {scheduler}",
                node.metadata.name.as_deref().unwrap_or("")
            );
            admitted += usize::from(controller);
        }
    }
    // Both verdicts occur, so agreement is not vacuous.
    assert!(admitted > 0 && admitted < 48, "{admitted} of 48 admitted");
}
