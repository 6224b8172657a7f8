//! The controller-manager library's one error type: why a controller could not start or a
//! sync did not finish, and whether the work queue's retry can help. A variant's message
//! includes its cause (workers log `{e}`); only `Api` and `Common` also hand it out as
//! `source()`, so that `{e:#}` does not print a cause twice.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed, or the apiserver refused it.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A file a flag names could not be read.
    #[error("reading {flag} {}: {error}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A flag or an object that cannot work as it is (an unknown controller, a malformed
    /// CSR, a template without labels): it must be changed before a retry can help.
    #[error("{0}")]
    Invalid(String),
    /// The sync did what it could, but something is left that a later sync may finish
    /// (content still being deleted, a name collision, no pod CIDR free yet).
    #[error("{0}")]
    Unfinished(String),
    /// The process around the controllers failed: connecting to the apiserver, serving
    /// /healthz, or leader election (lost leadership too).
    #[error(transparent)]
    Common(#[from] common::Error),
    /// What was being done when `error` happened, for the log line.
    #[error("{what}: {error}")]
    Context { what: String, error: Box<Error> },
}

impl Error {
    /// Whether trying again can help: an apiserver conflict or outage, or unfinished work,
    /// yes; an invalid flag or object, or a file that cannot be read, no.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Api(e) => common::api_errors::is_retryable(e),
            Error::Unfinished(_) => true,
            Error::Read { .. } | Error::Invalid(_) => false,
            Error::Common(e) => e.retryable(),
            Error::Context { error, .. } => error.retryable(),
        }
    }

    /// The apiserver's error underneath any context.
    pub fn api(&self) -> Option<&kube::Error> {
        match self {
            Error::Api(e) => Some(e),
            Error::Context { error, .. } => error.api(),
            _ => None,
        }
    }

    /// Wraps the error of a part the process builds on (common's client, server, election).
    pub fn component(e: common::Error) -> Error {
        Error::Common(e)
    }

    /// Says what was being done when this error happened.
    pub fn context(self, what: impl Into<String>) -> Error {
        Error::Context {
            what: what.into(),
            error: Box::new(self),
        }
    }
}

// Encoding a request body or building a raw request (namespace finalize, access reviews)
// fails as kube's own client would report it.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Api(kube::Error::SerdeError(e))
    }
}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Error {
        Error::Api(kube::Error::HttpError(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns `Error::Invalid` with a formatted message.
macro_rules! invalid {
    ($($message:tt)*) => {
        return Err($crate::Error::Invalid(format!($($message)*)))
    };
}
pub(crate) use invalid;

/// Returns `Error::Unfinished` with a formatted message.
macro_rules! unfinished {
    ($($message:tt)*) => {
        return Err($crate::Error::Unfinished(format!($($message)*)))
    };
}
pub(crate) use unfinished;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> Error {
        Error::Api(kube::Error::Api(
            kube::core::Status::failure("", reason)
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn a_conflict_is_retried_an_invalid_object_is_not() {
        assert!(api(409, "Conflict").retryable());
        assert!(api(503, "ServiceUnavailable").retryable());
        assert!(!api(422, "Invalid").retryable());
        assert!(!Error::Invalid("no labels".into()).retryable());
        assert!(Error::Unfinished("content remaining".into()).retryable());
    }

    #[test]
    fn context_keeps_the_cause_and_says_what_was_done() {
        let e = api(409, "Conflict").context("creating pods for ns/rs (0 of 2 created)");
        assert!(e.retryable());
        assert!(crate::runtime::worker::is_conflict(&e));
        assert!(
            e.to_string()
                .starts_with("creating pods for ns/rs (0 of 2 created): ")
        );
    }
}
