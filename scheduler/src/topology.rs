//! Topology domains: for one topology key (zone, hostname, ...), the domain of every node
//! in a snapshot as a small dense index. Spreading and pod affinity count pods per domain
//! in arrays indexed this way instead of hashing label values for every node each cycle.
//! A snapshot builds a key's domains on first use and drops them when nodes, or a node's
//! labels, change. Beside the domains it keeps each domain's pods by label class, updated
//! from the nodes that change between cycles, so a spreading constraint that counts every
//! node can sum a few classes per domain instead of visiting every node.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::NodeInfo;
use crate::framework::interner::Memo;
use crate::framework::label_class::{ClassKey, LabelClass};

/// One domain's pods: class id -> (class, pods).
type DomainPods = HashMap<u32, (Arc<LabelClass>, u32)>;

/// A topology key's domains and, once asked for, the pods in each by label class.
#[derive(Debug)]
pub struct Topology {
    pub domains: Arc<Domains>,
    /// Per domain: its nodes' pods by class (None until `with_classes`).
    classes: Option<Vec<DomainPods>>,
}

impl Topology {
    /// The domains alone (what array counting needs).
    pub fn build(key: &str, nodes: &[Arc<NodeInfo>]) -> Topology {
        Topology {
            domains: Arc::new(Domains::build(key, nodes.iter().map(|n| &**n))),
            classes: None,
        }
    }

    /// Counts every node's pods by class into its domain, if not done yet.
    pub fn with_classes(&mut self, nodes: &[Arc<NodeInfo>]) -> &mut Topology {
        if self.classes.is_none() {
            self.classes = Some(vec![DomainPods::new(); self.domains.len()]);
            for (i, node) in nodes.iter().enumerate() {
                self.apply(i, node, 1);
            }
        }
        self
    }

    /// Adds (`sign` 1) or takes away (-1) the pods of the snapshot's node `i`.
    pub fn apply(&mut self, i: usize, node: &NodeInfo, sign: i64) {
        let d = self.domains.of_node[i];
        let Some(classes) = self.classes.as_mut() else {
            return;
        };
        if d == Domains::NONE {
            return;
        }
        let here = &mut classes[d as usize];
        for (class, n) in &node.classes {
            let left = here.get(&class.id).map_or(0, |(_, c)| i64::from(*c)) + sign * i64::from(*n);
            if left <= 0 {
                here.remove(&class.id);
            } else {
                here.insert(class.id, (class.clone(), left as u32));
            }
        }
    }

    /// Per domain: the pods whose class `selects` (decided once per class in `memo`).
    /// Call on a topology `with_classes`.
    pub fn counts(&self, memo: &mut Memo, selects: impl Fn(&ClassKey) -> bool) -> Vec<i64> {
        let Some(classes) = self.classes.as_ref() else {
            return vec![0; self.domains.len()];
        };
        classes
            .iter()
            .map(|here| {
                here.values()
                    .filter(|(c, _)| memo.get(c, &selects))
                    .map(|(_, n)| i64::from(*n))
                    .sum()
            })
            .collect()
    }
}

/// Whether two nodes hold the same pods by class (then a topology has nothing to update).
pub fn same_classes(a: &NodeInfo, b: &NodeInfo) -> bool {
    a.classes.len() == b.classes.len()
        && a.classes
            .iter()
            .zip(&b.classes)
            .all(|((x, n), (y, m))| x.id == y.id && n == m)
}

#[derive(Debug, Default)]
pub struct Domains {
    /// Per node, in snapshot order: its domain, or `Domains::NONE` without the key.
    pub of_node: Vec<u32>,
    /// Domain index -> label value.
    pub values: Vec<String>,
    ids: HashMap<String, u32>,
    /// How many nodes lack the key.
    pub missing: usize,
}

impl Domains {
    /// A node without the topology key.
    pub const NONE: u32 = u32::MAX;

    pub fn build<'a>(key: &str, nodes: impl Iterator<Item = &'a NodeInfo>) -> Domains {
        let mut d = Domains::default();
        for node in nodes {
            let id = match node.labels.get(key) {
                None => {
                    d.missing += 1;
                    Domains::NONE
                }
                Some(v) => match d.ids.get(v) {
                    Some(&id) => id,
                    None => {
                        let id = d.values.len() as u32;
                        d.values.push(v.clone());
                        d.ids.insert(v.clone(), id);
                        id
                    }
                },
            };
            d.of_node.push(id);
        }
        d
    }

    /// How many domains there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The domain of a label value, if a node of the snapshot has it.
    pub fn id(&self, value: &str) -> Option<usize> {
        self.ids.get(value).map(|&i| i as usize)
    }

    /// The domain of `node` for this key (by its labels; any node, in the snapshot or not).
    pub fn of(&self, node: &NodeInfo, key: &str) -> Option<usize> {
        node.labels.get(key).and_then(|v| self.id(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_node;

    #[test]
    fn nodes_get_dense_domains_and_none_without_the_key() {
        let zone = "topology.kubernetes.io/zone";
        let nodes = [
            make_node("a").label(zone, "z1").info(),
            make_node("b").info(),
            make_node("c").label(zone, "z2").info(),
            make_node("d").label(zone, "z1").info(),
        ];
        let d = Domains::build(zone, nodes.iter());
        assert_eq!(d.of_node, vec![0, Domains::NONE, 1, 0]);
        assert_eq!(d.values, vec!["z1", "z2"]);
        assert_eq!((d.id("z2"), d.id("z3")), (Some(1), None));
        assert_eq!(d.of(&nodes[3], zone), Some(0));
        assert_eq!(d.of(&nodes[1], zone), None);
    }
}
