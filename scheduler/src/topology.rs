//! Topology domains: for one topology key (zone, hostname, ...), the domain of every node
//! in a snapshot as a small dense index. Spreading and pod affinity count pods per domain
//! in arrays indexed this way instead of hashing label values for every node each cycle.
//! A snapshot builds a key's domains on first use and drops them when nodes, or a node's
//! labels, change.

use std::collections::HashMap;

use crate::framework::NodeInfo;

#[derive(Debug, Default)]
pub struct Domains {
    /// Per node, in snapshot order: its domain, or `Domains::NONE` without the key.
    pub of_node: Vec<u32>,
    /// Domain index -> label value.
    pub values: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Domains {
    /// A node without the topology key.
    pub const NONE: u32 = u32::MAX;

    pub fn build<'a>(key: &str, nodes: impl Iterator<Item = &'a NodeInfo>) -> Domains {
        let mut d = Domains::default();
        for node in nodes {
            let id = match node.labels.get(key) {
                None => Domains::NONE,
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
