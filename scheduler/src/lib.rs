//! kube-scheduler: upstream's scheduling framework and its default plugins, the scheduling
//! queue, the cache and snapshot, and the loops that place pods.
//!
//! The scheduler knows nothing about the store: it sees the cluster through its informers
//! (`informers`) and changes it only through `ClusterClient` (bindings, status, events).

pub mod cache;
pub mod client;
pub mod component;
pub mod config;
pub mod error;
pub mod framework;
pub mod informers;
pub mod metrics;
pub mod plugins;
pub mod queue;
pub mod scheduler;
pub mod testing;
pub mod topology;

pub use component::{Config, run};
pub use error::{Error, Result};
pub use scheduler::Scheduler;
