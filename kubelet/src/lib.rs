//! kubelet: the node agent. So far: `node` (registration, Lease, status), `pods` (the pod
//! workers: sandboxes, containers, restarts, status, deletion), `cri`, a client for a container runtime's CRI v1 API
//! (containerd), and `images`, building OCI images from a local root filesystem (no
//! registry is reachable here) and importing them. `testing` starts a private containerd.

pub mod cri;
pub mod images;
pub mod node;
pub mod pods;
pub mod server;
pub mod testing;
