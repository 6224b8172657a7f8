//! kube-proxy's one error type: the host refusing a change (nft, ip, sysctl), files it
//! writes, flags it cannot use, and the shared parts' errors.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host tool failed: the program, its arguments and what it printed.
    #[error("{0}")]
    Host(String),
    /// A file or process could not be used: what was being done and the system's answer.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A flag or configuration kube-proxy cannot work with.
    #[error("{0}")]
    Invalid(String),
    /// The API client, health servers and component frame.
    #[error(transparent)]
    Common(#[from] common::Error),
}

impl Error {
    /// Whether trying again can help: the host may accept the change later (the next sync
    /// rewrites the table), a bad flag stays bad.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Host(_) | Error::Io { .. } => true,
            Error::Invalid(_) => false,
            Error::Common(e) => e.retryable(),
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        Error::Common(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
