//! The DNS server's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or configuration the server cannot work with (the cluster domain, say).
    #[error("{0}")]
    Invalid(String),
    /// A socket the server could not open.
    #[error("{0}")]
    Io(String),
    /// The API client, health servers and component frame.
    #[error(transparent)]
    Common(#[from] common::Error),
}

impl Error {
    /// Whether trying again can help: a bad configuration stays bad.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Invalid(_) => false,
            Error::Io(_) => true,
            Error::Common(e) => e.retryable(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
