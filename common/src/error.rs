//! The common library's one error type: what the shared parts of the components (TLS, the
//! health servers, API clients, delegated auth, proxying, the component frame) can fail
//! with, and whether trying again can help.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or a socket: what was being done and the system's answer.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Configuration that has to be fixed: flags, kubeconfigs, certificates and keys.
    #[error("{0}")]
    Invalid(String),
    /// The apiserver refused, or could not be reached.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A peer spoke HTTP wrongly or went away (a proxied backend, a health check).
    #[error("{0}")]
    Http(String),
    /// This component no longer holds its leader-election Lease.
    #[error("leaderelection lost")]
    LeadershipLost,
    /// A component run in this process failed (its own error type, boxed).
    #[error("{}", describe(&**.0))]
    Component(BoxError),
}

impl Error {
    /// Whether trying again can help: a peer or the apiserver may come back, a bad
    /// configuration or a lost leadership will not mend themselves.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Http(_) => true,
            Error::Api(e) => !matches!(e, kube::Error::Api(s) if s.code < 500 && s.code != 429),
            Error::Invalid(_) | Error::LeadershipLost | Error::Component(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any component's error, as the frame that runs components holds it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error and its causes on one line, each cause once (a message that already quotes its
/// cause is not followed by it again).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// Adds what was being done to a failure, as anyhow's `context` does, into a typed error.
pub trait Context<T> {
    /// The failure of an I/O operation on `what`.
    fn io(self, what: impl FnOnce() -> String) -> Result<T>;
    /// A failure that means the configuration `what` is wrong.
    fn invalid(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn io(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }

    fn invalid(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Invalid(format!("{}: {e}", what())))
    }
}

/// For errors that only explain themselves: library errors of TLS, certificates, parsers.
pub fn invalid(what: impl Display, e: impl Display) -> Error {
    Error::Invalid(format!("{what}: {e}"))
}
