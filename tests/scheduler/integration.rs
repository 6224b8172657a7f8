//! The scheduler against a real kube-apiserver (in this process, embedded store): 100
//! nodes, pods with every kind of constraint, and checks that each placement satisfies
//! them; unschedulable pods get upstream's condition and event; preemption evicts the
//! right victim.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::component::InProcess;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use scheduler::config::KubeSchedulerConfiguration;
use scheduler::testing::{make_node, make_pod};

const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "kubernetes.io/hostname";

struct Cluster {
    server: apiserver::server::InProcess,
    dir: tempfile::TempDir,
    client: Client,
    scheduler: parking_lot::Mutex<Option<InProcess>>,
}

async fn cluster() -> Cluster {
    let api = cluster_tests::LocalApiServer::start().await;
    Cluster {
        server: api.server,
        dir: api.dir,
        client: api.client,
        scheduler: Default::default(),
    }
}

impl Cluster {
    /// Starts kube-scheduler as its binary runs it (without leader election or the
    /// health server).
    async fn start_scheduler(&self) {
        let kubeconfig = self.dir.path().join("scheduler.kubeconfig");
        apiserver::testing::write_kubeconfig(&kubeconfig, &format!("http://{}", self.server.addr));
        let config =
            scheduler::testing::config(kubeconfig, KubeSchedulerConfiguration::default_config());
        *self.scheduler.lock() = Some(InProcess::spawn(|stop| scheduler::run(config, stop)));
    }

    async fn create_node(&self, node: Node) {
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }

    async fn create_pod(&self, mut pod: Pod) {
        pod.metadata.uid = None;
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    async fn pods(&self) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// Waits until `done` holds for the pods (at most 30 s).
    async fn wait_for(&self, what: &str, done: impl Fn(&[Pod]) -> bool) -> Vec<Pod> {
        for _ in 0..300 {
            let pods = self.pods().await;
            if done(&pods) {
                return pods;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pods = self.pods().await;
        let state: Vec<(String, Option<String>)> = pods
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone().unwrap(),
                    node_of(p).map(str::to_owned),
                )
            })
            .collect();
        panic!("timed out waiting for {what}: {state:?}");
    }

    async fn shutdown(self) {
        let scheduler = self.scheduler.lock().take();
        if let Some(s) = scheduler {
            s.stop().await.unwrap();
        }
    }
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn label<'a>(p: &'a Pod, k: &str) -> Option<&'a str> {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(k))
        .map(String::as_str)
}

fn condition(p: &Pod) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placements_satisfy_every_constraint_on_100_nodes() {
    let c = cluster().await;
    let mut nodes = HashMap::new();
    for i in 0..100 {
        let name = format!("node-{i:03}");
        let mut b = make_node(&name)
            .cpu("4")
            .memory("16Gi")
            .label(ZONE, &format!("z{}", i % 4));
        if i % 10 == 0 {
            b = b
                .taint("dedicated", "gpu", "NoSchedule")
                .label("gpu", "true");
        }
        if i == 1 || i == 2 {
            b = b.label("ports", "yes");
        }
        let node = b.obj();
        nodes.insert(name, node.clone());
        c.create_node(node).await;
    }
    c.start_scheduler().await;

    let mut pods = Vec::new();
    for i in 0..40 {
        pods.push(make_pod(&format!("res-{i}")).cpu("1").memory("1Gi").obj());
    }
    for i in 0..5 {
        pods.push(make_pod(&format!("big-{i}")).cpu("3500m").obj());
    }
    for i in 0..5 {
        pods.push(
            make_pod(&format!("gpu-{i}"))
                .cpu("500m")
                .node_selector("gpu", "true")
                .toleration("dedicated", "Equal", "gpu", "NoSchedule")
                .obj(),
        );
    }
    for i in 0..5 {
        pods.push(
            make_pod(&format!("zoned-{i}"))
                .node_affinity_in(ZONE, "In", &["z1"])
                .obj(),
        );
    }
    for i in 0..10 {
        pods.push(
            make_pod(&format!("anti-{i}"))
                .label("app", "anti")
                .pod_anti_affinity(&[("app", "anti")], HOST)
                .obj(),
        );
    }
    pods.push(
        make_pod("leader")
            .label("app", "leader")
            .node_affinity_in(ZONE, "In", &["z2"])
            .obj(),
    );
    for i in 0..5 {
        pods.push(
            make_pod(&format!("follower-{i}"))
                .label("app", "follower")
                .pod_affinity(&[("app", "leader")], ZONE)
                .obj(),
        );
    }
    for i in 0..12 {
        pods.push(
            make_pod(&format!("spread-{i}"))
                .label("app", "spread")
                .spread(1, ZONE, "DoNotSchedule", &[("app", "spread")])
                .obj(),
        );
    }
    for i in 0..3 {
        pods.push(
            make_pod(&format!("port-{i}"))
                .label("app", "port")
                .node_selector("ports", "yes")
                .host_port(8080, "TCP", "")
                .obj(),
        );
    }
    pods.push(make_pod("huge").cpu("100").obj());
    let total = pods.len();
    // The leader first, so that followers have someone to follow.
    pods.sort_by_key(|p| p.metadata.name.as_deref() != Some("leader"));
    for p in pods {
        c.create_pod(p).await;
    }

    // All but `huge` and one `port-*` pod get a node.
    let pods = c
        .wait_for("pods to be bound", |pods| {
            pods.len() == total && pods.iter().filter(|p| node_of(p).is_some()).count() == total - 2
        })
        .await;

    let mut cpu: BTreeMap<&str, i64> = BTreeMap::new();
    let zone = |n: &str| nodes[n].metadata.labels.as_ref().unwrap()[ZONE].clone();
    let tainted = |n: &str| nodes[n].spec.as_ref().unwrap().taints.is_some();
    let mut anti_nodes = Vec::new();
    let mut spread_zones: BTreeMap<String, usize> = BTreeMap::new();
    let mut leader_zone = String::new();
    let mut follower_zones = Vec::new();
    let mut port_nodes = Vec::new();
    for p in &pods {
        let name = p.metadata.name.as_deref().unwrap();
        let Some(n) = node_of(p) else { continue };
        let info = scheduler::framework::PodInfo::new(Arc::new(p.clone()));
        *cpu.entry(n).or_default() += info.requests.milli_cpu;
        let app = label(p, "app").unwrap_or("");
        if name.starts_with("gpu-") {
            assert!(tainted(n), "{name} must go to a gpu node, went to {n}");
        } else {
            assert!(!tainted(n), "{name} does not tolerate the taint of {n}");
        }
        if name.starts_with("zoned-") {
            assert_eq!(zone(n), "z1", "{name}");
        }
        match app {
            "anti" => anti_nodes.push(n.to_owned()),
            "spread" => *spread_zones.entry(zone(n)).or_default() += 1,
            "leader" => leader_zone = zone(n),
            "follower" => follower_zones.push(zone(n)),
            "port" => port_nodes.push(n.to_owned()),
            _ => {}
        }
    }
    for (n, used) in &cpu {
        assert!(*used <= 4000, "{n} has {used}m of cpu requested");
    }
    anti_nodes.sort();
    anti_nodes.dedup();
    assert_eq!(anti_nodes.len(), 10, "anti-affinity pods share nodes");
    assert_eq!(leader_zone, "z2");
    assert!(
        follower_zones.iter().all(|z| *z == leader_zone),
        "{follower_zones:?}"
    );
    assert_eq!(
        spread_zones.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3, 3],
        "{spread_zones:?}"
    );
    port_nodes.sort();
    assert_eq!(port_nodes, vec!["node-001", "node-002"]);

    // The pods that cannot run say why, as upstream does.
    let huge = c
        .wait_for("huge's condition", |pods| {
            pods.iter()
                .any(|p| p.metadata.name.as_deref() == Some("huge") && condition(p).is_some())
        })
        .await
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some("huge"))
        .unwrap();
    assert_eq!(
        condition(&huge).unwrap(),
        (
            "False".to_owned(),
            "Unschedulable".to_owned(),
            "0/100 nodes are available: 10 node(s) had untolerated taint {dedicated: gpu}, 90 Insufficient cpu. preemption: 0/100 nodes are available: 100 Preemption is not helpful for scheduling.".to_owned()
        )
    );
    let port_pending = pods
        .iter()
        .find(|p| label(p, "app") == Some("port") && node_of(p).is_none())
        .unwrap();
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let name = port_pending.metadata.name.clone().unwrap();
    let mut found = None;
    for _ in 0..50 {
        let list = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap();
        found = list
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"));
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event = found.expect("a FailedScheduling event");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let msg = event.message.unwrap();
    assert!(
        msg.starts_with("0/100 nodes are available: 10 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't have free ports for the requested pod ports, 88 node(s) didn't match Pod's node affinity/selector."),
        "{msg}"
    );
    // Reasons sort as strings, as upstream's do; the port holders could be preempted.
    assert!(msg.ends_with(" preemption: 0/100 nodes are available: 2 No preemption victims found for incoming pod, 98 Preemption is not helpful for scheduling."), "{msg}");
    let scheduled = events
        .list(&ListParams::default().fields("involvedObject.name=res-0"))
        .await
        .unwrap();
    assert!(
        scheduled.items.iter().any(|e| {
            e.reason.as_deref() == Some("Scheduled")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Successfully assigned default/res-0 to node-"))
        }),
        "{:?}",
        scheduled.items
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_evicts_the_lowest_priority_victim() {
    let c = cluster().await;
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(c.client.clone());
    for (name, value) in [("low", 10), ("mid", 20), ("high", 1000)] {
        let pc = serde_json::from_value(serde_json::json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value,
        }))
        .unwrap();
        classes.create(&PostParams::default(), &pc).await.unwrap();
    }
    for i in 0..2 {
        c.create_node(make_node(&format!("n{i}")).cpu("2").obj())
            .await;
    }
    c.start_scheduler().await;
    let with_class = |name: &str, class: &str| {
        let mut p = make_pod(name).cpu("1").obj();
        let spec = p.spec.as_mut().unwrap();
        spec.priority_class_name = Some(class.into());
        spec.termination_grace_period_seconds = Some(0);
        p
    };
    // Fill both nodes: three "mid" pods and one "low" pod.
    for (name, class) in [("m0", "mid"), ("m1", "mid"), ("m2", "mid"), ("l0", "low")] {
        c.create_pod(with_class(name, class)).await;
    }
    let filled = c
        .wait_for("the nodes to fill", |pods| {
            pods.iter().filter(|p| node_of(p).is_some()).count() == 4
        })
        .await;
    let low_node = filled
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("l0"))
        .and_then(node_of)
        .unwrap()
        .to_owned();
    c.create_pod(with_class("urgent", "high")).await;
    let pods = c
        .wait_for("the high priority pod to run", |pods| {
            pods.iter()
                .any(|p| p.metadata.name.as_deref() == Some("urgent") && node_of(p).is_some())
        })
        .await;
    let names: Vec<&str> = pods
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert!(
        !names.contains(&"l0"),
        "the low priority pod is the victim: {names:?}"
    );
    for m in ["m0", "m1", "m2"] {
        assert!(names.contains(&m), "{m} must survive: {names:?}");
    }
    let urgent = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("urgent"))
        .unwrap();
    assert_eq!(node_of(urgent), Some(low_node.as_str()));
    assert_eq!(
        urgent
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref()),
        Some(low_node.as_str())
    );
    c.shutdown().await;
}
