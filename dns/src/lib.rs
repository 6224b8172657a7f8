//! The cluster DNS server: Services, their endpoints and pods by name, as Kubernetes'
//! DNS-based service discovery specification defines them. `zone` is the cluster zone in
//! memory, `watch` keeps it in step with the cluster (the objects decoded slim by
//! `objects`), `server` answers from it over UDP and TCP and `forward` asks the node's
//! resolvers for other names.

pub mod component;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod objects;
pub mod server;
pub mod testing;
pub mod watch;
pub mod zone;

pub use component::{Config, run};
pub use error::{Error, Result};
