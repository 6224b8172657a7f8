//! kubelet: the node agent. `node` registers the Node and keeps its Lease and status fresh;
//! `pods` runs the pods bound to it (sandboxes, containers, restarts, probes, status,
//! deletion) through `cri`, a container runtime's CRI v1 API (containerd), or through
//! `hollow`'s simulated runtime (kubemark's hollow nodes, many per process); `server` is
//! the kubelet API on 10250 (logs, exec, attach, port-forward, stats); `images` builds OCI
//! images from busybox-static or a root filesystem (no registry is reachable here) and
//! imports them. `testing` starts a private containerd.

pub mod bootstrap;
pub mod certificates;
pub mod component;
pub mod config_file;
pub mod containerd;
pub mod cri;
pub mod error;
pub mod hollow;
pub mod images;
pub mod node;
pub mod pods;
pub mod server;
pub mod testing;

pub use component::{Config, Runtime, parse_labels, run, run_hollow};
pub use error::{Error, Result};
