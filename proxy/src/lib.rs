//! kube-proxy and the pod network agent: a node's networking. `services` tracks Services
//! and EndpointSlices, `nftables` renders them into upstream's nftables layout,
//! `proxier` keeps the table in step, `podnet` gives pods their addresses and routes,
//! `netpol` is NetworkPolicy (its semantics so far).

pub mod component;
pub mod error;
pub mod host;
pub mod metrics;
pub mod netpol;
pub mod nftables;
pub mod podnet;
pub mod proxier;
pub mod services;
pub mod testing;

pub use component::{Config, run};
pub use error::{Error, Result};
