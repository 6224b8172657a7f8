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

/// A topology key's domains and the pods in each, by label class.
#[derive(Debug)]
pub struct Topology {
    pub domains: Arc<Domains>,
    /// Per domain: its nodes' pods, by class.
    classes: Vec<Vec<(Arc<LabelClass>, u32)>>,
}

impl Topology {
    pub fn build(key: &str, nodes: &[Arc<NodeInfo>]) -> Topology {
        let domains = Domains::build(key, nodes.iter().map(|n| &**n));
        let mut t = Topology {
            classes: vec![Vec::new(); domains.len()],
            domains: Arc::new(domains),
        };
        for (i, node) in nodes.iter().enumerate() {
            t.apply(i, node, 1);
        }
        t
    }

    /// Adds (`sign` 1) or takes away (-1) the pods of the snapshot's node `i`.
    pub fn apply(&mut self, i: usize, node: &NodeInfo, sign: i64) {
        let d = self.domains.of_node[i];
        if d == Domains::NONE {
            return;
        }
        let here = &mut self.classes[d as usize];
        for (class, n) in &node.classes {
            match here.iter().position(|(c, _)| c.id == class.id) {
                Some(j) => {
                    let left = i64::from(here[j].1) + sign * i64::from(*n);
                    if left <= 0 {
                        here.swap_remove(j);
                    } else {
                        here[j].1 = left as u32;
                    }
                }
                None if sign > 0 => here.push((class.clone(), *n)),
                None => {}
            }
        }
    }

    /// Per domain: the pods whose class `selects` (decided once per class in `memo`).
    pub fn counts(&self, memo: &mut Memo, selects: impl Fn(&ClassKey) -> bool) -> Vec<i64> {
        self.classes
            .iter()
            .map(|classes| {
                classes
                    .iter()
                    .filter(|(c, _)| memo.get(c, &selects))
                    .map(|(_, n)| i64::from(*n))
                    .sum()
            })
            .collect()
    }
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
