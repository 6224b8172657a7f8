//! What plugins look at: a pod with everything the hot path needs computed once
//! (PodInfo), and a node with the pods on it and their sums (NodeInfo).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use common::quantity::Quantity;
use common::scheduling::node_affinity::NodeFields;
use common::scheduling::resources;
use common::selector::{LabelSelector, Operator, Requirement};
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodAffinityTerm, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::interner::{Interned, Interner, Memo};
use super::label_class::{ClassKey, LabelClass, class_of};

/// CPU a container without a CPU request counts as when spreading load (upstream's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts as when spreading load (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources: requests of a pod, or allocatable and requested of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended and hugepages resources, sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resource {
    /// Builds from a ResourceList (requests, limits, capacity or allocatable).
    pub fn from_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> Resource {
        Resource::from_pairs(list.into_iter().flatten().map(|(n, q)| (n.as_str(), q)))
    }

    /// Builds from (resource name, quantity) pairs.
    pub fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a ApiQuantity)>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in pairs {
            let Ok(q) = Quantity::parse(&q.0) else {
                continue;
            };
            match name {
                "cpu" => r.milli_cpu = q.milli_value(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                "pods" => r.allowed_pod_number = q.value(),
                other if is_scalar_resource(other) => r.set_scalar(other, q.value()),
                _ => {}
            }
        }
        r
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    pub fn set_scalar(&mut self, name: &str, value: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 = value,
            Err(i) => self.scalar.insert(i, (name.to_owned(), value)),
        }
    }

    /// Adds (sign 1) or subtracts (sign -1) another amount.
    pub fn add(&mut self, other: &Resource, sign: i64) {
        self.milli_cpu += sign * other.milli_cpu;
        self.memory += sign * other.memory;
        self.ephemeral_storage += sign * other.ephemeral_storage;
        self.allowed_pod_number += sign * other.allowed_pod_number;
        for (name, v) in &other.scalar {
            let cur = self.scalar(name);
            self.set_scalar(name, cur + sign * v);
        }
    }

    /// Each amount the larger of the two.
    pub fn max_with(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let cur = self.scalar(name);
            self.set_scalar(name, cur.max(*v));
        }
    }

    /// The amount of a named resource (cpu in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            other => self.scalar(other),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

/// Extended resources (`example.com/foo`), hugepages and attachable volumes: everything the
/// scheduler counts besides cpu, memory, ephemeral-storage and pods.
pub fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

/// A host port a pod asks for; 0.0.0.0 conflicts with every address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// Which namespaces an affinity term's selector looks in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NamespaceScope {
    /// The listed namespaces (the pod's own when the term lists none and has no selector).
    Names(Vec<String>),
    /// The listed namespaces plus those whose labels match (an empty selector: all).
    Selector(Vec<String>, LabelSelector),
}

/// A pod (anti-)affinity term, parsed once and interned (equal terms of many pods share
/// one, so a cycle decides each distinct term once).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AffinityTerm {
    /// None (a nil labelSelector) matches no pod.
    pub selector: Option<LabelSelector>,
    pub namespaces: NamespaceScope,
    pub topology_key: String,
}

impl AffinityTerm {
    fn parse(term: &PodAffinityTerm, pod: &Pod) -> Term {
        let own_ns = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_labels = pod.metadata.labels.as_ref();
        let mut selector = term.label_selector.as_ref().map(|s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
                .unwrap_or_default()
        });
        // matchLabelKeys and mismatchLabelKeys add the incoming pod's own label values.
        if let Some(sel) = selector.as_mut() {
            let mut extra = Vec::new();
            for (keys, op) in [
                (&term.match_label_keys, Operator::In),
                (&term.mismatch_label_keys, Operator::NotIn),
            ] {
                for key in keys.iter().flatten() {
                    if let Some(v) = pod_labels.and_then(|l| l.get(key)) {
                        extra.push(Requirement {
                            key: key.clone(),
                            op,
                            values: vec![v.clone()],
                        });
                    }
                }
            }
            if !extra.is_empty() {
                let mut all: Vec<Requirement> = sel.requirements().to_vec();
                all.extend(extra);
                *sel = LabelSelector::from_requirements(all);
            }
        }
        let names: Vec<String> = term.namespaces.clone().unwrap_or_default();
        let namespaces = match &term.namespace_selector {
            Some(ns) => {
                let sel = serde_json::to_value(ns)
                    .ok()
                    .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
                    .unwrap_or_default();
                NamespaceScope::Selector(names, sel)
            }
            None if names.is_empty() => NamespaceScope::Names(vec![own_ns]),
            None => NamespaceScope::Names(names),
        };
        TERMS.lock().intern(AffinityTerm {
            selector,
            namespaces,
            topology_key: term.topology_key.clone(),
        })
    }

    /// Whether `pod` is one this term selects; `ns_labels` gives a namespace's labels.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &dyn Fn(&str) -> Option<LabelsRef>) -> bool {
        self.selects(&pod.namespace, &pod.labels, ns_labels)
    }

    /// Whether this term selects the pods of a label class.
    pub fn matches_class(
        &self,
        class: &ClassKey,
        ns_labels: &dyn Fn(&str) -> Option<LabelsRef>,
    ) -> bool {
        self.selects(&class.namespace, &class.labels, ns_labels)
    }

    fn selects(
        &self,
        namespace: &String,
        labels: &BTreeMap<String, String>,
        ns_labels: &dyn Fn(&str) -> Option<LabelsRef>,
    ) -> bool {
        let in_scope = match &self.namespaces {
            NamespaceScope::Names(names) => names.contains(namespace),
            NamespaceScope::Selector(names, sel) => {
                names.contains(namespace)
                    || (sel.is_everything()
                        || ns_labels(namespace).is_some_and(|l| sel.matches_map(&l)))
            }
        };
        in_scope
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches_map(labels))
    }
}

/// A namespace's labels as the snapshot keeps them.
pub type LabelsRef = Arc<BTreeMap<String, String>>;

/// An interned affinity term.
pub type Term = Arc<Interned<AffinityTerm>>;

static TERMS: LazyLock<Mutex<Interner<AffinityTerm>>> = LazyLock::new(Default::default);

/// A per-cycle memo over affinity terms.
pub fn term_memo() -> Memo {
    Memo::new(TERMS.lock().id_bound())
}

/// A weighted (preferred) affinity term.
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    pub term: Term,
    pub weight: i32,
}

/// A pod and everything about it the scheduler reads often.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Namespace, labels and terminating state, interned (see label_class).
    pub class: Arc<LabelClass>,
    pub priority: i32,
    /// The pod's effective requests (init containers and overhead included).
    pub requests: Resource,
    /// CPU and memory with upstream's defaults for containers that request none.
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<Term>,
    pub required_anti_affinity: Vec<Term>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    /// The node the pod is bound to (spec.nodeName) or assumed on; empty while pending.
    pub node_name: String,
}

/// A container's requests (a limit without a request counts as the request); `non_zero`
/// gives CPU and memory upstream's defaults when the container requests none.
fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let mut r = Resource::from_pairs(resources::container_requests(c));
    if non_zero {
        if !resources::requests_resource(c, "cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !resources::requests_resource(c, "memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

impl resources::Amounts for Resource {
    fn add_amounts(&mut self, other: &Self) {
        self.add(other, 1);
    }
    fn max_amounts(&mut self, other: &Self) {
        self.max_with(other);
    }
}

/// The pod's requests as upstream's PodRequests computes them (common's `pod_requests`).
fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    resources::pod_requests(
        spec,
        |c| container_requests(c, non_zero),
        |o| Resource::from_list(Some(o)),
    )
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let requests = pod_requests(&pod, false);
        let non_zero = pod_requests(&pod, true);
        let mut host_ports = Vec::new();
        for c in spec.into_iter().flat_map(|s| s.containers.iter()) {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|ip| !ip.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port,
                    });
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<Term> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::parse(t, &pod))
                .collect()
        };
        let preferred =
            |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                terms
                    .into_iter()
                    .flatten()
                    .map(|t| WeightedAffinityTerm {
                        term: AffinityTerm::parse(&t.pod_affinity_term, &pod),
                        weight: t.weight,
                    })
                    .collect::<Vec<_>>()
            };
        let namespace = meta.namespace.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let class = class_of(ClassKey {
            namespace: namespace.clone(),
            labels: labels.clone(),
            terminating: meta.deletion_timestamp.is_some(),
        });
        PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace,
            name: meta.name.clone().unwrap_or_default(),
            labels,
            class,
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests,
            non_zero_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            host_ports,
            required_affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            pod,
        }
    }

    /// The same pod placed on `node` (what the cache assumes after a scheduling cycle).
    /// The API object is shared, not copied: `node_name` is what the cache reads.
    pub fn bound_to(&self, node: &str) -> PodInfo {
        PodInfo {
            node_name: node.to_owned(),
            ..self.clone()
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> =
            std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    pub fn is_terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// Sizes of an image on a node; how many nodes have it comes from the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageState {
    pub size: i64,
}

/// A node and the pods the scheduler knows are on it (bound or assumed).
///
/// `repr(C)` keeps declaration order: the fields every Filter and Score reads come first,
/// so a node costs the scan one or two cache lines.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct NodeInfo {
    pub unschedulable: bool,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub taints: Vec<Taint>,
    pub used_ports: Vec<HostPort>,
    /// Image name (every name of each image) to its size.
    pub images: Arc<HashMap<String, ImageState>>,
    pub allocatable: Resource,
    pub requested: Resource,
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    /// Bumped on every change, so a snapshot can tell what to copy.
    pub generation: u64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub node: Arc<Node>,
    /// The pods' label classes and how many pods of each are here (read only by
    /// spreading and pod affinity, so kept out of the filters' cache lines).
    pub classes: Vec<(Arc<LabelClass>, u32)>,
}

impl NodeInfo {
    /// The node's labels and name, as node affinity reads them.
    pub fn fields(&self) -> NodeFields<'_> {
        NodeFields {
            labels: &self.labels,
            name: &self.name,
        }
    }

    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo {
            node: node.clone(),
            name: String::new(),
            generation: 0,
            pods: Vec::new(),
            classes: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            used_ports: Vec::new(),
            requested: Resource::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            allocatable: Resource::default(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            images: Arc::default(),
        };
        info.set_node(node);
        info
    }

    /// Takes a new version of the node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.as_ref();
        self.allocatable = Resource::from_list(
            status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())),
        );
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let mut images = HashMap::new();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                images.insert(
                    normalized_image_name(name),
                    ImageState {
                        size: image.size_bytes.unwrap_or(0),
                    },
                );
            }
        }
        self.images = Arc::new(images);
        self.node = node;
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests, 1);
        self.non_zero_cpu += pod.non_zero_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        match self.classes.iter_mut().find(|(c, _)| c.id == pod.class.id) {
            Some((_, n)) => *n += 1,
            None => self.classes.push((pod.class.clone(), 1)),
        }
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; false if it was not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.add(&pod.requests, -1);
        self.non_zero_cpu -= pod.non_zero_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        if let Some(j) = self.classes.iter().position(|(c, _)| c.id == pod.class.id) {
            self.classes[j].1 -= 1;
            if self.classes[j].1 == 0 {
                self.classes.swap_remove(j);
            }
        }
        true
    }
}

/// Image names as the container runtime reports them: `busybox` and
/// `docker.io/library/busybox:latest` are one image.
pub fn normalized_image_name(name: &str) -> String {
    let mut n = name.to_owned();
    let last = n.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && !last.contains('@') {
        n.push_str(":latest");
    }
    n
}
