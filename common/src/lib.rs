//! What every tetsu component shares: the frame a component runs in (health and metrics
//! servers, leader election, shutdown), the informer every watch goes through, scheduling helpers (node affinity, tolerations, QoS
//! class, pod requests), reading the apiserver's refusals, selectors, quantities, metrics,
//! owner-only files, API clients, logging setup and the bootstrap token format with its
//! cluster-info signatures. No storage and no component logic live here.

pub mod api_errors;
pub mod bootstraptoken;
pub mod client;
pub mod component;
pub mod delegated_auth;
pub mod dynamic_cert;
pub mod error;
pub mod events;
pub mod files;
pub mod flags;
pub mod health;
pub mod informer;
pub mod leader_election;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod quantity;
pub mod quota;
pub mod reflector;
pub mod scheduling;
pub mod selector;
pub mod shutdown;
pub mod tls;

pub use error::{Error, Result};

/// The heap allocator every tetsu binary installs, each in its main.rs:
/// `#[global_allocator] static ALLOCATOR: common::Allocator = common::ALLOCATOR;`.
/// mimalloc rather than glibc's malloc: the apiserver's writes build and drop many small
/// serde_json values, and glibc's malloc and free were a fifth of an end-to-end scheduling
/// run's CPU; with mimalloc the same run took 15-33% less CPU per pod and bound pods about
/// twice as fast, at the same peak RSS (2026-12-07, README's scheduler benchmarks). Test
/// binaries keep the system allocator (benches' counted_work installs its counting one).
pub type Allocator = mimalloc::MiMalloc;
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;
