//! The garbage collector's view of the cluster: every object with its owner references,
//! and for every uid the objects that name it as an owner. Changes answer the work they
//! cause (upstream's GraphBuilder): an object whose owner vanished must be checked for
//! deletion; an owner being deleted in the foreground waits for its blocking dependents;
//! an owner deleted with orphaning must first free its dependents.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// Which object a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    /// Being deleted in the foreground: waits for its blocking dependents to go first.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }
}

/// What a change asks the collector to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    /// Check whether the object (by uid) must be deleted, or, when it is being deleted in
    /// the foreground, whether its dependents are gone.
    AttemptToDelete(String),
    /// Remove the owner's references from its dependents, then its orphan finalizer.
    AttemptToOrphan(String),
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid -> uids of the objects that reference it.
    dependents: HashMap<String, HashSet<String>>,
    /// Until every kind has been listed once, a missing owner may simply not be listed yet.
    synced: bool,
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The objects that reference `uid` as an owner.
    pub fn dependents(&self, uid: &str) -> Vec<Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).cloned())
            .collect()
    }

    /// Records an added or changed object.
    pub fn apply(&mut self, node: Node) -> Vec<Work> {
        let uid = node.identity.uid.clone();
        let mut work = Vec::new();
        let old_owners: HashSet<String> = self
            .nodes
            .get(&uid)
            .map(|n| n.owners.iter().map(|o| o.uid.clone()).collect())
            .unwrap_or_default();
        let new_owners: HashSet<String> = node.owners.iter().map(|o| o.uid.clone()).collect();
        for gone in old_owners.difference(&new_owners) {
            if let Some(d) = self.dependents.get_mut(gone) {
                d.remove(&uid);
            }
            // The owner may have been waiting for this reference to go.
            if self.nodes.get(gone).is_some_and(Node::deleting_dependents) {
                work.push(Work::AttemptToDelete(gone.clone()));
            }
        }
        for added in new_owners.difference(&old_owners) {
            self.dependents
                .entry(added.clone())
                .or_default()
                .insert(uid.clone());
            if self.synced && !self.nodes.contains_key(added) {
                work.push(Work::AttemptToDelete(uid.clone()));
            }
        }
        if node.deleting {
            if node.finalizers.iter().any(|f| f == FOREGROUND) {
                work.push(Work::AttemptToDelete(uid.clone()));
                for d in self.dependents.get(&uid).into_iter().flatten() {
                    work.push(Work::AttemptToDelete(d.clone()));
                }
            }
            if node.finalizers.iter().any(|f| f == ORPHAN) {
                work.push(Work::AttemptToOrphan(uid.clone()));
            }
            // A dependent going away may unblock an owner deleted in the foreground.
            for o in &node.owners {
                if self
                    .nodes
                    .get(&o.uid)
                    .is_some_and(Node::deleting_dependents)
                {
                    work.push(Work::AttemptToDelete(o.uid.clone()));
                }
            }
        }
        self.nodes.insert(uid, node);
        work.dedup();
        work
    }

    /// Records a deleted object: its dependents lost an owner.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let mut work = Vec::new();
        let Some(node) = self.nodes.remove(uid) else {
            return work;
        };
        for o in &node.owners {
            if let Some(d) = self.dependents.get_mut(&o.uid) {
                d.remove(uid);
                if d.is_empty() && !self.nodes.contains_key(&o.uid) {
                    self.dependents.remove(&o.uid);
                }
            }
            if self
                .nodes
                .get(&o.uid)
                .is_some_and(Node::deleting_dependents)
            {
                work.push(Work::AttemptToDelete(o.uid.clone()));
            }
        }
        for d in self.dependents.get(uid).into_iter().flatten() {
            work.push(Work::AttemptToDelete(d.clone()));
        }
        work
    }

    /// Every kind has been listed: objects whose owners are still unknown are checked.
    pub fn mark_synced(&mut self) -> Vec<Work> {
        self.synced = true;
        let mut work = Vec::new();
        for (owner, deps) in &self.dependents {
            if !self.nodes.contains_key(owner) {
                work.extend(deps.iter().map(|d| Work::AttemptToDelete(d.clone())));
            }
        }
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, owners: &[(&str, bool)], deleting: bool, finalizers: &[&str]) -> Node {
        Node {
            identity: Identity {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: "ns".into(),
                name: uid.into(),
                uid: uid.into(),
            },
            owners: owners
                .iter()
                .map(|(u, block)| OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: (*u).into(),
                    uid: (*u).into(),
                    controller: None,
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            deleting,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn deleting_an_owner_queues_its_dependents() {
        let mut g = Graph::default();
        g.apply(node("owner", &[], false, &[]));
        g.apply(node("a", &[("owner", false)], false, &[]));
        g.apply(node("b", &[("owner", true)], false, &[]));
        let mut work = g.remove("owner");
        work.sort_by_key(|w| format!("{w:?}"));
        assert_eq!(
            work,
            [
                Work::AttemptToDelete("a".into()),
                Work::AttemptToDelete("b".into())
            ]
        );
        assert_eq!(
            g.dependents("owner").len(),
            2,
            "they still name it until collected"
        );
    }

    #[test]
    fn missing_owners_are_checked_only_after_the_first_full_list() {
        let mut g = Graph::default();
        assert!(
            g.apply(node("a", &[("ghost", false)], false, &[]))
                .is_empty()
        );
        assert_eq!(g.mark_synced(), [Work::AttemptToDelete("a".into())]);
        assert_eq!(
            g.apply(node("b", &[("ghost", false)], false, &[])),
            [Work::AttemptToDelete("b".into())]
        );
    }

    #[test]
    fn foreground_deletion_waits_on_dependents_and_orphaning_frees_them() {
        let mut g = Graph::default();
        g.apply(node("a", &[("owner", true)], false, &[]));
        g.apply(node("owner", &[], false, &[]));
        let work = g.apply(node("owner", &[], true, &[FOREGROUND]));
        assert!(work.contains(&Work::AttemptToDelete("owner".into())));
        assert!(work.contains(&Work::AttemptToDelete("a".into())));
        // The dependent going away wakes the owner.
        assert_eq!(g.remove("a"), [Work::AttemptToDelete("owner".into())]);

        let work = g.apply(node("o2", &[], true, &[ORPHAN]));
        assert_eq!(work, [Work::AttemptToOrphan("o2".into())]);
    }
}
