//! What every tetsu component shares: the frame a component runs in (health and metrics
//! servers, leader election, shutdown), selectors, quantities, metrics, the health server,
//! owner-only files, API clients, leader election, logging setup, shutdown signals and the
//! bootstrap token format with its cluster-info signatures. No storage and no component
//! logic live here.

pub mod bootstraptoken;
pub mod client;
pub mod component;
pub mod delegated_auth;
pub mod events;
pub mod files;
pub mod flags;
pub mod health;
pub mod leader_election;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod quantity;
pub mod selector;
pub mod shutdown;
pub mod tls;
