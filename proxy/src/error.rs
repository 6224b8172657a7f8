//! kube-proxy's one error type: the host refusing a change (nft, ip, sysctl), flags it
//! cannot use, and the shared parts' errors (files and processes among them, as
//! `common::Error::Io`).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host tool failed: the program, its arguments and what it printed.
    #[error("{0}")]
    Host(String),
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
            Error::Host(_) => true,
            Error::Invalid(_) => false,
            Error::Common(e) => e.retryable(),
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        Error::Common(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
