//! Scheduling helpers shared by the scheduler, the DaemonSet and taint-eviction controllers,
//! the resource quota controller, the kubelet and the apiserver: what upstream keeps in
//! k8s.io/component-helpers (node affinity, tolerations, pod requests) and the QoS class.
//! Pure functions over k8s-openapi types; matching allocates nothing, so the scheduler calls
//! them per node in Filter and Score.

pub mod node_affinity;
pub mod qos;
pub mod resources;
pub mod tolerations;
