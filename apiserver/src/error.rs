//! The apiserver library's one error type: what stops it from starting or serving (a flag
//! or file it cannot use, the store, the listeners and TLS). Request-time failures are
//! answered as Kubernetes Status objects (`status.rs`), not with this type.

use crate::storage;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, or a file a flag names, that the apiserver cannot start with.
    #[error("{0}")]
    Invalid(String),
    /// The store could not be opened, loaded or reached: what was being done and why.
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: storage::Error,
    },
    /// Files, listeners, certificates and clients (the shared parts).
    #[error(transparent)]
    Common(#[from] common::Error),
}

impl Error {
    /// Whether trying again can help: a store or a socket may come back; a bad flag or
    /// file has to be fixed first.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Invalid(_) => false,
            Error::Store { .. } => true,
            Error::Common(e) => e.retryable(),
        }
    }

    /// For `map_err`: the store failed while doing `what`.
    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(storage::Error) -> Error {
        let what = what.into();
        move |source| Error::Store { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
