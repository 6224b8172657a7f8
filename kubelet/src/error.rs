//! The kubelet library's one error type: what went wrong talking to the apiserver or the
//! container runtime, on the node's disk or streams, or in its configuration, and whether
//! trying again can help. A variant's message includes its cause (the logs print `{e}`);
//! only the wrapped errors (`Api`, `Runtime`, `Common`) also hand it out as `source()`,
//! so that `{e:#}` does not print a cause twice.

use std::borrow::Cow;

use crate::cri;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed, or the apiserver refused it.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The container runtime (CRI) failed a call or could not be reached.
    #[error(transparent)]
    Runtime(#[from] cri::Error),
    /// Reading or writing a file, or a connection: `what` names the path or address.
    #[error("{what}: {error}")]
    Io {
        what: Cow<'static, str>,
        error: std::io::Error,
    },
    /// A flag, manifest or kubeconfig that cannot work as it is; it must be fixed first.
    #[error("{0}")]
    Invalid(String),
    /// The runtime's streaming server did not open an exec, attach or port-forward.
    #[error("{0}")]
    Stream(String),
    /// TLS bootstrapping did not get a client certificate (denied, failed, not signed in
    /// time); a new request may.
    #[error("{0}")]
    Certificate(String),
    /// What the shared component code in `common` reported: the client's configuration,
    /// TLS files, serving, delegated authentication and authorization reviews.
    #[error(transparent)]
    Common(#[from] common::Error),
    /// What was being done when `error` happened, for the log line.
    #[error("{what}: {error}")]
    Context { what: String, error: Box<Error> },
}

impl Error {
    /// Whether trying again can help: an apiserver conflict or outage, a runtime that is
    /// restarting, a dropped connection, a certificate not yet signed, yes; an invalid flag
    /// or manifest, a file that is not there, no.
    pub fn retryable(&self) -> bool {
        use std::io::ErrorKind::*;
        match self {
            Error::Api(e) => common::api_errors::is_retryable(e),
            Error::Runtime(e) => e.retryable(),
            Error::Io { error, .. } => matches!(
                error.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | Interrupted
                    | UnexpectedEof
            ),
            Error::Certificate(_) => true,
            Error::Invalid(_) | Error::Stream(_) => false,
            Error::Common(e) => e.retryable(),
            Error::Context { error, .. } => error.retryable(),
        }
    }

    /// Wraps an error of the shared component code (common's client, TLS, server, reviews).
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

/// For `map_err`: an I/O error with what was being done ("reading /etc/kubernetes/x").
pub(crate) fn io(what: impl Into<Cow<'static, str>>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |error| Error::Io { what, error }
}

// A manifest or object that does not decode is invalid input.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Invalid(e.to_string())
    }
}

impl From<serde_yaml::Error> for Error {
    fn from(e: serde_yaml::Error) -> Error {
        Error::Invalid(e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarting_runtime_is_retried_an_invalid_manifest_is_not() {
        let down = cri::Error::Connect {
            endpoint: "/run/containerd/containerd.sock".into(),
            reason: "connection refused".into(),
        };
        assert!(Error::from(down).context("syncing pod").retryable());
        assert!(!Error::Invalid("the manifest's pod has no name".into()).retryable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(io("dialing 127.0.0.1:10010")(refused).retryable());
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = io("reading /etc/kubernetes/manifests/x.yaml")(missing);
        assert!(!e.retryable());
        assert!(
            e.to_string()
                .starts_with("reading /etc/kubernetes/manifests/x.yaml: ")
        );
    }
}
