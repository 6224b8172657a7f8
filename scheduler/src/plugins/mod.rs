//! The in-tree plugins of upstream's default profile, one module each.

pub mod default_binder;
pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
pub mod volume_binding;
pub mod volume_restrictions;

#[cfg(test)]
pub(crate) mod test_util;

use crate::framework::registry::Factory;

/// Every in-tree plugin by its upstream name.
pub const FACTORIES: &[(&str, Factory)] = &[
    (priority_sort::NAME, priority_sort::factory),
    (scheduling_gates::NAME, scheduling_gates::factory),
    (node_unschedulable::NAME, node_unschedulable::factory),
    (node_name::NAME, node_name::factory),
    (taint_toleration::NAME, taint_toleration::factory),
    (node_affinity::NAME, node_affinity::factory),
    (node_ports::NAME, node_ports::factory),
    (node_resources::fit::NAME, node_resources::fit::factory),
    (
        node_resources::balanced_allocation::NAME,
        node_resources::balanced_allocation::factory,
    ),
    (volume_restrictions::NAME, volume_restrictions::factory),
    (volume_binding::NAME, volume_binding::factory),
    (pod_topology_spread::NAME, pod_topology_spread::factory),
    (inter_pod_affinity::NAME, inter_pod_affinity::factory),
    (default_preemption::NAME, default_preemption::factory),
    (image_locality::NAME, image_locality::factory),
    (default_binder::NAME, default_binder::factory),
];
