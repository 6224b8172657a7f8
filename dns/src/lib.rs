//! The cluster DNS server (issue #20, being built): Services, their endpoints and pods by
//! name, as Kubernetes' DNS-based service discovery specification defines them. `zone` is
//! the cluster zone in memory, answering from the objects the server watches.

pub mod error;
pub mod forward;
pub mod server;
pub mod zone;

pub use error::{Error, Result};
