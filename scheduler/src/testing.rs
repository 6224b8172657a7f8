//! Builders for pods and nodes in tests and benchmarks: `make_pod("p").cpu("1").info()`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerImage, ContainerPort, Node, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinity,
    PodAffinityTerm, PodAntiAffinity, PodSchedulingGate, PodSpec, ResourceRequirements, Taint,
    Toleration, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::framework::types::{NodeInfo, PodInfo};
use crate::framework::{Framework, Handle, Registry};

/// The default profile with a client that does nothing and `threads` for filter and score.
pub fn default_framework(threads: usize) -> Arc<Framework> {
    let handle = Arc::new(Handle {
        client: Arc::new(crate::client::NoopClient),
    });
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool"),
    );
    let profile = crate::config::Profile::default();
    Arc::new(
        Framework::new(&profile, &Registry::in_tree(), handle, 0, pool)
            .expect("the default profile"),
    )
}

/// A pod under construction.
pub struct PodBuilder(Pod);

pub fn make_pod(name: &str) -> PodBuilder {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.to_owned());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(format!("uid-{name}"));
    pod.spec = Some(PodSpec {
        containers: vec![Container {
            name: "c".into(),
            image: Some("registry.k8s.io/pause:3.10".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    PodBuilder(pod)
}

/// A label selector from `key=value` pairs.
pub fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..Default::default()
    }
}

impl From<Pod> for PodBuilder {
    fn from(pod: Pod) -> Self {
        PodBuilder(pod)
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.as_mut().expect("spec")
    }

    fn affinity(&mut self) -> &mut Affinity {
        self.spec().affinity.get_or_insert_with(Default::default)
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.to_owned());
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.to_owned());
        self
    }

    pub fn request(mut self, name: &str, amount: &str) -> Self {
        let c = &mut self.spec().containers[0];
        c.resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert(name.to_owned(), Quantity(amount.to_owned()));
        self
    }

    pub fn cpu(self, amount: &str) -> Self {
        self.request("cpu", amount)
    }

    pub fn memory(self, amount: &str) -> Self {
        self.request("memory", amount)
    }

    /// Another container with these cpu and memory requests.
    pub fn container(mut self, cpu: &str, memory: &str) -> Self {
        let requests = [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
            .collect();
        let n = self.spec().containers.len();
        self.spec().containers.push(Container {
            name: format!("c{n}"),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            ..Default::default()
        });
        self
    }

    pub fn image(mut self, image: &str) -> Self {
        self.spec().containers[0].image = Some(image.to_owned());
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.to_owned());
        self
    }

    pub fn priority(mut self, p: i32) -> Self {
        self.spec().priority = Some(p);
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn host_port(mut self, port: i32, protocol: &str, ip: &str) -> Self {
        self.spec().containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                protocol: Some(protocol.to_owned()),
                host_ip: (!ip.is_empty()).then(|| ip.to_owned()),
                ..Default::default()
            });
        self
    }

    pub fn toleration(mut self, key: &str, op: &str, value: &str, effect: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: (!key.is_empty()).then(|| key.to_owned()),
                operator: Some(op.to_owned()),
                value: (!value.is_empty()).then(|| value.to_owned()),
                effect: (!effect.is_empty()).then(|| effect.to_owned()),
                ..Default::default()
            });
        self
    }

    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(k.to_owned(), v.to_owned());
        self
    }

    /// A required node affinity term `key op values` (terms are ORed).
    pub fn node_affinity_in(mut self, key: &str, op: &str, values: &[&str]) -> Self {
        let na = self
            .affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        na.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            })
            .node_selector_terms
            .push(NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: key.to_owned(),
                    operator: op.to_owned(),
                    values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
                }]),
                match_fields: None,
            });
        self
    }

    /// A preferred node affinity term.
    pub fn preferred_node_affinity(mut self, weight: i32, key: &str, values: &[&str]) -> Self {
        let na = self
            .affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        na.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(k8s_openapi::api::core::v1::PreferredSchedulingTerm {
                weight,
                preference: NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: key.to_owned(),
                        operator: "In".into(),
                        values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
                    }]),
                    match_fields: None,
                },
            });
        self
    }

    fn term(labels: &[(&str, &str)], topology_key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(selector(labels)),
            topology_key: topology_key.to_owned(),
            ..Default::default()
        }
    }

    pub fn pod_affinity(mut self, labels: &[(&str, &str)], topology_key: &str) -> Self {
        self.affinity()
            .pod_affinity
            .get_or_insert_with(PodAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(Self::term(labels, topology_key));
        self
    }

    pub fn pod_anti_affinity(mut self, labels: &[(&str, &str)], topology_key: &str) -> Self {
        self.affinity()
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(Self::term(labels, topology_key));
        self
    }

    pub fn preferred_pod_affinity(
        mut self,
        weight: i32,
        labels: &[(&str, &str)],
        key: &str,
    ) -> Self {
        self.affinity()
            .pod_affinity
            .get_or_insert_with(PodAffinity::default)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                weight,
                pod_affinity_term: Self::term(labels, key),
            });
        self
    }

    pub fn preferred_pod_anti_affinity(
        mut self,
        weight: i32,
        labels: &[(&str, &str)],
        key: &str,
    ) -> Self {
        self.affinity()
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                weight,
                pod_affinity_term: Self::term(labels, key),
            });
        self
    }

    pub fn spread(
        mut self,
        max_skew: i32,
        topology_key: &str,
        when_unsatisfiable: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(TopologySpreadConstraint {
                max_skew,
                topology_key: topology_key.to_owned(),
                when_unsatisfiable: when_unsatisfiable.to_owned(),
                label_selector: Some(selector(labels)),
                ..Default::default()
            });
        self
    }

    pub fn gate(mut self, name: &str) -> Self {
        self.spec()
            .scheduling_gates
            .get_or_insert_with(Vec::new)
            .push(PodSchedulingGate {
                name: name.to_owned(),
            });
        self
    }

    pub fn scheduler_name(mut self, name: &str) -> Self {
        self.spec().scheduler_name = Some(name.to_owned());
        self
    }

    pub fn obj(self) -> Pod {
        self.0
    }

    pub fn info(self) -> PodInfo {
        PodInfo::new(Arc::new(self.0))
    }

    pub fn arc(self) -> Arc<PodInfo> {
        Arc::new(self.info())
    }
}

/// A node under construction: 4 CPUs, 32Gi and 110 pods unless told otherwise.
pub struct NodeBuilder(Node);

pub fn make_node(name: &str) -> NodeBuilder {
    let mut node = Node::default();
    node.metadata.name = Some(name.to_owned());
    node.metadata.labels = Some(
        [("kubernetes.io/hostname".to_owned(), name.to_owned())]
            .into_iter()
            .collect(),
    );
    node.spec = Some(NodeSpec::default());
    node.status = Some(NodeStatus {
        allocatable: Some(
            [("cpu", "4"), ("memory", "32Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
                .collect(),
        ),
        ..Default::default()
    });
    NodeBuilder(node)
}

impl NodeBuilder {
    pub fn capacity(mut self, name: &str, amount: &str) -> Self {
        let status = self.0.status.as_mut().expect("status");
        status
            .allocatable
            .get_or_insert_with(BTreeMap::new)
            .insert(name.to_owned(), Quantity(amount.to_owned()));
        self
    }

    pub fn cpu(self, amount: &str) -> Self {
        self.capacity("cpu", amount)
    }

    pub fn memory(self, amount: &str) -> Self {
        self.capacity("memory", amount)
    }

    pub fn pods(self, amount: &str) -> Self {
        self.capacity("pods", amount)
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.0
            .spec
            .as_mut()
            .expect("spec")
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: key.to_owned(),
                value: (!value.is_empty()).then(|| value.to_owned()),
                effect: effect.to_owned(),
                time_added: None,
            });
        self
    }

    pub fn unschedulable(mut self) -> Self {
        self.0.spec.as_mut().expect("spec").unschedulable = Some(true);
        self
    }

    pub fn image(mut self, name: &str, size: i64) -> Self {
        self.0
            .status
            .as_mut()
            .expect("status")
            .images
            .get_or_insert_with(Vec::new)
            .push(ContainerImage {
                names: Some(vec![name.to_owned()]),
                size_bytes: Some(size),
            });
        self
    }

    pub fn obj(self) -> Node {
        self.0
    }

    pub fn info(self) -> NodeInfo {
        NodeInfo::new(Arc::new(self.0))
    }

    /// A NodeInfo with these pods on it.
    pub fn with_pods(self, pods: Vec<PodInfo>) -> NodeInfo {
        let mut info = self.info();
        for p in pods {
            info.add_pod(Arc::new(p));
        }
        info
    }
}

/// kube-scheduler started in this process (`scheduler::run`) over the apiserver of
/// `kubeconfig`, with `configuration`: no leader election, no health server.
pub fn config(
    kubeconfig: std::path::PathBuf,
    configuration: crate::config::KubeSchedulerConfiguration,
) -> crate::Config {
    crate::Config {
        kubeconfig: Some(kubeconfig),
        configuration,
        leader_election: common::flags::LeaderElectionFlags {
            leader_elect: false,
            ..Default::default()
        },
        serving: Default::default(),
        bind_address: [127, 0, 0, 1].into(),
        secure_port: 0,
    }
}
