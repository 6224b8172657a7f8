//! The scheduler's cache of nodes and the pods on them (bound, and assumed: placed by a
//! scheduling cycle but not yet bound), and the per-cycle Snapshot taken from it.
//!
//! NodeInfos are shared (`Arc`) between the cache and the snapshot; the cache changes one
//! with `Arc::make_mut`, which copies it only while the snapshot still holds it. Each
//! change bumps the node's generation and marks it dirty, so `update_snapshot` copies only
//! the nodes that changed since the last cycle: after one pod is assumed, one node.
//!
//! Pod states: (informer) Added -> bound; (cycle) assume -> Assumed -> binding finished ->
//! (informer) Added confirms it; a failed bind forgets it. Lock order: the cache's mutex is
//! taken alone, never while holding the queue's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::selector::LabelSelector;
use k8s_openapi::api::core::v1::Node;
use parking_lot::Mutex;

use crate::framework::types::{LabelsRef, NodeInfo, PodInfo};
use crate::topology::{Domains, Topology, same_classes};

/// One node as the cache knows it; `present` is false while only pods name it.
struct NodeEntry {
    info: Arc<NodeInfo>,
    present: bool,
}

struct PodState {
    pod: Arc<PodInfo>,
    assumed: bool,
    binding_finished: bool,
}

/// The nodes, pods and namespaces the scheduler has seen.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeEntry>,
    /// Present nodes in the order the snapshot lists them.
    order: Vec<String>,
    pods: HashMap<String, PodState>,
    namespaces: HashMap<String, LabelsRef>,
    /// "Kind/namespace/name" -> (namespace, selector) of objects that select pods.
    selectors: HashMap<String, (String, LabelSelector)>,
    selectors_changed: bool,
    pdbs: HashMap<String, Pdb>,
    pdbs_changed: bool,
    volumes: crate::plugins::volume_binding::Volumes,
    volumes_changed: bool,
    generation: u64,
    dirty: HashSet<String>,
    nodes_changed: bool,
    namespaces_changed: bool,
}

/// Topology keys whose domains a snapshot keeps at once (clusters use a handful: hostname,
/// zone, region and a few of their own).
const MAX_TOPOLOGY_KEYS: usize = 32;

/// What one scheduling cycle sees: every present node, read-only.
#[derive(Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    /// Nodes with pods that have any (anti-)affinity term.
    pub with_affinity: Vec<usize>,
    /// Nodes with pods that have required anti-affinity terms.
    pub with_required_anti_affinity: Vec<usize>,
    /// For each image name, on how many nodes it is present.
    pub image_nodes: HashMap<String, usize>,
    pub namespace_labels: HashMap<String, LabelsRef>,
    /// Per namespace, the selectors of Services, ReplicaSets, ReplicationControllers and
    /// StatefulSets (PodTopologySpread's default constraints select with them).
    pub spread_selectors: HashMap<String, Vec<LabelSelector>>,
    /// For this cycle's pod: pods nominated to each node with at least its priority. Filter
    /// runs as if they were already there, so preemption's room is not taken by others.
    pub nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// PodDisruptionBudgets, which preemption tries not to violate.
    pub pdbs: Vec<Pdb>,
    /// PersistentVolumeClaims and PersistentVolumes (VolumeBinding).
    pub volumes: crate::plugins::volume_binding::Volumes,
    /// Per topology key, each node's domain: built on first use, dropped when nodes or
    /// their labels change.
    topology: Mutex<HashMap<String, Topology>>,
}

/// What preemption needs of a PodDisruptionBudget.
#[derive(Clone, Debug)]
pub struct Pdb {
    pub namespace: String,
    pub selector: LabelSelector,
    /// status.disruptionsAllowed.
    pub disruptions_allowed: i32,
    /// status.disruptedPods: evictions the API already counted.
    pub disrupted_pods: Vec<String>,
}

impl Snapshot {
    pub fn index_of(&self, node: &str) -> Option<usize> {
        self.index.get(node).copied()
    }

    pub fn get(&self, node: &str) -> Option<&NodeInfo> {
        self.index_of(node).map(|i| &*self.nodes[i])
    }

    /// The node with the pods nominated to it added (None when it has none): what a pod
    /// of lower or equal priority must fit beside.
    pub fn with_nominated(&self, node: &NodeInfo) -> Option<NodeInfo> {
        let nominated = self.nominated.get(&node.name)?;
        let mut copy = node.clone();
        for p in nominated {
            copy.add_pod(p.clone());
        }
        Some(copy)
    }

    /// Each node's domain for a topology key.
    pub fn domains(&self, key: &str) -> Arc<Domains> {
        self.kept_domains(key)
            .unwrap_or_else(|| Arc::new(Domains::build(key, self.nodes.iter().map(|n| &**n))))
    }

    /// A topology key's domains if the snapshot keeps them or has room to. Topology keys
    /// come from pod specs: the first few are kept (and updated between cycles); for the
    /// others this is None, and callers build a table for the one use or count by value.
    pub fn kept_domains(&self, key: &str) -> Option<Arc<Domains>> {
        let mut all = self.topology.lock();
        if let Some(t) = all.get(key) {
            return Some(t.domains.clone());
        }
        if all.len() >= MAX_TOPOLOGY_KEYS {
            return None;
        }
        let t = Topology::build(key, &self.nodes);
        let domains = t.domains.clone();
        all.insert(key.to_owned(), t);
        Some(domains)
    }

    /// Reads a topology key's domains and their pods by class (built on first use).
    pub fn with_topology<R>(&self, key: &str, read: impl FnOnce(&Topology) -> R) -> R {
        let mut all = self.topology.lock();
        if let Some(t) = all.get_mut(key) {
            return read(t.with_classes(&self.nodes));
        }
        let mut t = Topology::build(key, &self.nodes);
        let r = read(t.with_classes(&self.nodes));
        if all.len() < MAX_TOPOLOGY_KEYS {
            all.insert(key.to_owned(), t);
        }
        r
    }

    /// A namespace's labels (for namespaceSelector in affinity terms).
    pub fn namespace_labels(&self, ns: &str) -> Option<LabelsRef> {
        self.namespace_labels.get(ns).cloned()
    }

    /// A snapshot of these nodes (tests and the in-process benchmark).
    pub fn from_nodes(nodes: Vec<NodeInfo>) -> Snapshot {
        let mut cache = Cache::default();
        for n in nodes {
            let pods = n.pods.clone();
            cache.add_node(n.node.clone());
            for p in pods {
                let p = if p.node_name.is_empty() {
                    Arc::new(p.bound_to(&n.name))
                } else {
                    p
                };
                cache.add_pod(p);
            }
        }
        let mut s = Snapshot::default();
        cache.update_snapshot(&mut s);
        s
    }
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    fn touch(&mut self, name: &str) -> &mut NodeInfo {
        self.generation += 1;
        let generation = self.generation;
        self.dirty.insert(name.to_owned());
        let entry = self.nodes.entry(name.to_owned()).or_insert_with(|| {
            let mut node = Node::default();
            node.metadata.name = Some(name.to_owned());
            NodeEntry {
                info: Arc::new(NodeInfo::new(Arc::new(node))),
                present: false,
            }
        });
        let info = Arc::make_mut(&mut entry.info);
        info.generation = generation;
        info
    }

    pub fn add_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.touch(&name).set_node(node);
        let entry = self.nodes.get_mut(&name).expect("touched");
        if !entry.present {
            entry.present = true;
            self.order.push(name);
            self.nodes_changed = true;
        }
    }

    pub fn update_node(&mut self, node: Arc<Node>) {
        self.add_node(node);
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(entry) = self.nodes.get_mut(name) else {
            return;
        };
        if entry.info.pods.is_empty() {
            self.nodes.remove(name);
        } else {
            entry.present = false;
        }
        self.order.retain(|n| n != name);
        self.nodes_changed = true;
        self.dirty.insert(name.to_owned());
    }

    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    /// The pod the cache holds under this uid (bound or assumed).
    pub fn pod(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.pods.get(uid).map(|p| p.pod.clone())
    }

    fn place(&mut self, pod: Arc<PodInfo>) {
        let node = pod.node_name.clone();
        self.touch(&node).add_pod(pod);
    }

    fn unplace(&mut self, pod: &PodInfo) {
        let node = pod.node_name.clone();
        self.touch(&node).remove_pod(&pod.uid);
        if let Some(e) = self.nodes.get(&node)
            && !e.present
            && e.info.pods.is_empty()
        {
            self.nodes.remove(&node);
        }
    }

    /// A scheduling cycle placed `pod` (already carrying its node name): count it now so
    /// the next cycle sees the node's resources as used.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>) {
        let uid = pod.uid.clone();
        self.place(pod.clone());
        self.pods.insert(
            uid,
            PodState {
                pod,
                assumed: true,
                binding_finished: false,
            },
        );
    }

    pub fn finish_binding(&mut self, uid: &str) {
        if let Some(p) = self.pods.get_mut(uid) {
            p.binding_finished = true;
        }
    }

    /// The bind failed: the assumed pod no longer holds its node's resources.
    pub fn forget_pod(&mut self, uid: &str) {
        if let Some(state) = self.pods.get(uid)
            && state.assumed
        {
            let pod = state.pod.clone();
            self.pods.remove(uid);
            self.unplace(&pod);
        }
    }

    /// The informer saw a bound pod (new, or the confirmation of an assumed one).
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        if pod.node_name.is_empty() {
            return;
        }
        if let Some(old) = self.pods.get(&pod.uid).map(|s| s.pod.clone()) {
            self.unplace(&old);
        }
        self.place(pod.clone());
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                pod,
                assumed: false,
                binding_finished: true,
            },
        );
    }

    pub fn update_pod(&mut self, pod: Arc<PodInfo>) {
        self.add_pod(pod);
    }

    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(state) = self.pods.remove(uid) {
            self.unplace(&state.pod);
        }
    }

    pub fn set_namespace(&mut self, name: &str, labels: Option<LabelsRef>) {
        match labels {
            Some(l) => self.namespaces.insert(name.to_owned(), l),
            None => self.namespaces.remove(name),
        };
        self.namespaces_changed = true;
    }

    /// Records (or with None forgets) the pod selector of a Service or workload, keyed
    /// "Kind/namespace/name".
    pub fn set_selector(&mut self, key: &str, namespace: &str, selector: Option<LabelSelector>) {
        match selector {
            Some(s) => self
                .selectors
                .insert(key.to_owned(), (namespace.to_owned(), s)),
            None => self.selectors.remove(key),
        };
        self.selectors_changed = true;
    }

    /// Records (or with None forgets) a PodDisruptionBudget, keyed "namespace/name".
    pub fn set_pdb(&mut self, key: &str, pdb: Option<Pdb>) {
        match pdb {
            Some(p) => self.pdbs.insert(key.to_owned(), p),
            None => self.pdbs.remove(key),
        };
        self.pdbs_changed = true;
    }

    /// Records (or with None forgets) a PersistentVolumeClaim, keyed "namespace/name".
    pub fn set_claim(
        &mut self,
        key: &str,
        claim: Option<Arc<k8s_openapi::api::core::v1::PersistentVolumeClaim>>,
    ) {
        match claim {
            Some(c) => self.volumes.claims.insert(key.to_owned(), c),
            None => self.volumes.claims.remove(key),
        };
        self.volumes_changed = true;
    }

    /// Records (or with None forgets) a PersistentVolume.
    pub fn set_volume(
        &mut self,
        name: &str,
        volume: Option<Arc<k8s_openapi::api::core::v1::PersistentVolume>>,
    ) {
        match volume {
            Some(v) => self.volumes.volumes.insert(name.to_owned(), v),
            None => self.volumes.volumes.remove(name),
        };
        self.volumes_changed = true;
    }

    /// Brings `snapshot` up to date, copying only the nodes that changed since its last
    /// update (and rebuilding the node list only when nodes came or went).
    pub fn update_snapshot(&mut self, snapshot: &mut Snapshot) {
        let mut lists_changed = self.nodes_changed;
        let mut images_changed = self.nodes_changed;
        let mut labels_changed = self.nodes_changed;
        if self.nodes_changed {
            snapshot.nodes = self
                .order
                .iter()
                .map(|n| self.nodes[n].info.clone())
                .collect();
            snapshot.index = self
                .order
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect();
        } else {
            for name in &self.dirty {
                let (Some(&i), Some(entry)) = (snapshot.index.get(name), self.nodes.get(name))
                else {
                    continue;
                };
                let old = &snapshot.nodes[i];
                lists_changed |= (old.pods_with_affinity > 0)
                    != (entry.info.pods_with_affinity > 0)
                    || (old.pods_with_required_anti_affinity > 0)
                        != (entry.info.pods_with_required_anti_affinity > 0);
                images_changed |= !Arc::ptr_eq(&old.images, &entry.info.images);
                // Labels change only with the Node object.
                labels_changed |=
                    !Arc::ptr_eq(&old.node, &entry.info.node) && old.labels != entry.info.labels;
                if !labels_changed && !same_classes(old, &entry.info) {
                    for t in snapshot.topology.get_mut().values_mut() {
                        t.apply(i, old, -1);
                        t.apply(i, &entry.info, 1);
                    }
                }
                snapshot.nodes[i] = entry.info.clone();
            }
        }
        self.dirty.clear();
        self.nodes_changed = false;
        if labels_changed {
            snapshot.topology.get_mut().clear();
        }
        if lists_changed {
            snapshot.with_affinity = (0..snapshot.nodes.len())
                .filter(|&i| snapshot.nodes[i].pods_with_affinity > 0)
                .collect();
            snapshot.with_required_anti_affinity = (0..snapshot.nodes.len())
                .filter(|&i| snapshot.nodes[i].pods_with_required_anti_affinity > 0)
                .collect();
        }
        if images_changed {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for n in &snapshot.nodes {
                for image in n.images.keys() {
                    *counts.entry(image.clone()).or_default() += 1;
                }
            }
            snapshot.image_nodes = counts;
        }
        if self.selectors_changed {
            let mut by_ns: HashMap<String, Vec<LabelSelector>> = HashMap::new();
            for (ns, sel) in self.selectors.values() {
                by_ns.entry(ns.clone()).or_default().push(sel.clone());
            }
            snapshot.spread_selectors = by_ns;
            self.selectors_changed = false;
        }
        if self.volumes_changed {
            snapshot.volumes = self.volumes.clone();
            self.volumes_changed = false;
        }
        if self.pdbs_changed {
            snapshot.pdbs = self.pdbs.values().cloned().collect();
            self.pdbs_changed = false;
        }
        if self.namespaces_changed {
            snapshot.namespace_labels = self.namespaces.clone();
            self.namespaces_changed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::interner::Memo;
    use crate::framework::label_class::ClassKey;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn snapshot_copies_only_changed_nodes() {
        let mut cache = Cache::new();
        for i in 0..3 {
            cache.add_node(Arc::new(make_node(&format!("n{i}")).cpu("4").obj()));
        }
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 3);
        let before: Vec<_> = snap.nodes.clone();
        let pod = make_pod("p").uid("u1").cpu("1").node("n1").info();
        cache.assume_pod(Arc::new(pod));
        cache.update_snapshot(&mut snap);
        assert!(Arc::ptr_eq(&before[0], &snap.nodes[0]));
        assert!(Arc::ptr_eq(&before[2], &snap.nodes[2]));
        assert!(!Arc::ptr_eq(&before[1], &snap.nodes[1]));
        assert_eq!(snap.nodes[1].requested.milli_cpu, 1000);
        assert_eq!(
            before[1].requested.milli_cpu, 0,
            "the old snapshot is untouched"
        );
        assert!(snap.nodes[1].generation > before[1].generation);

        cache.forget_pod("u1");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[1].requested.milli_cpu, 0);

        // The informer confirms a bound pod; removing its node keeps the pod accounted.
        cache.add_pod(Arc::new(make_pod("q").uid("u2").cpu("2").node("n2").info()));
        cache.remove_node("n0");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 2);
        assert_eq!(snap.get("n2").unwrap().requested.milli_cpu, 2000);
        assert!(snap.get("n0").is_none());
    }

    #[test]
    fn topology_counts_follow_the_pods_between_cycles() {
        let zone = "topology.kubernetes.io/zone";
        let mut cache = Cache::new();
        for (name, z) in [("a", "z1"), ("b", "z1"), ("c", "z2"), ("d", "")] {
            let mut node = make_node(name).cpu("4");
            if !z.is_empty() {
                node = node.label(zone, z);
            }
            cache.add_node(Arc::new(node.obj()));
        }
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let web = |k: &ClassKey| k.labels.get("app").is_some_and(|v| v == "web");
        let counts = |snap: &Snapshot| {
            let kept = snap.with_topology(zone, |t| t.counts(&mut Memo::new(0), web));
            let mut fresh = Topology::build(zone, &snap.nodes);
            let fresh = fresh
                .with_classes(&snap.nodes)
                .counts(&mut Memo::new(0), web);
            assert_eq!(kept, fresh, "kept up to date = built afresh");
            kept
        };
        assert_eq!(counts(&snap), vec![0, 0]);
        let pod = |name: &str, app: &str, node: &str| {
            Arc::new(make_pod(name).uid(name).label("app", app).node(node).info())
        };
        cache.assume_pod(pod("p1", "web", "a"));
        cache.assume_pod(pod("p2", "web", "b"));
        cache.assume_pod(pod("p3", "db", "c"));
        cache.assume_pod(pod("p4", "web", "d"));
        cache.update_snapshot(&mut snap);
        assert_eq!(counts(&snap), vec![2, 0]);
        cache.forget_pod("p1");
        cache.add_pod(pod("p5", "web", "c"));
        cache.update_snapshot(&mut snap);
        assert_eq!(counts(&snap), vec![1, 1]);
        // A node moving to another zone rebuilds the domains.
        cache.update_node(Arc::new(make_node("c").cpu("4").label(zone, "z3").obj()));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.domains(zone).values, vec!["z1", "z3"]);
        assert_eq!(counts(&snap), vec![1, 1]);
        // Pods naming many topology keys cannot make the snapshot keep a table for each.
        for i in 0..1000 {
            assert!(snap.domains(&format!("example.com/key-{i}")).is_empty());
        }
        assert!(snap.topology.lock().len() <= MAX_TOPOLOGY_KEYS);
        assert_eq!(counts(&snap), vec![1, 1]);
        assert!(
            snap.topology.lock().contains_key(zone),
            "the first keys stay kept"
        );
    }

    #[test]
    fn pods_may_arrive_before_their_node() {
        let mut cache = Cache::new();
        cache.add_pod(Arc::new(
            make_pod("p").uid("u").cpu("1").node("late").info(),
        ));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert!(snap.nodes.is_empty());
        cache.add_node(Arc::new(make_node("late").cpu("4").obj()));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("late").unwrap().pods.len(), 1);
    }
}
