//! The scheduler library's one error type: what can go wrong building a scheduler from its
//! configuration (never helped by retrying; upstream's messages) and running it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `--config` file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration (or a plugin's args) is not what upstream accepts.
    #[error("{0}")]
    Invalid(String),
    /// The filter and score thread pool could not be started.
    #[error("starting the scheduling threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    /// The scheduling-cycle thread could not be started.
    #[error("starting the scheduling cycle: {0}")]
    Thread(#[source] std::io::Error),
    /// The API client, the secure health server, leader election.
    #[error(transparent)]
    Common(#[from] common::Error),
}

impl Error {
    /// Whether trying again can help: never for a configuration, which must be fixed;
    /// maybe for the apiserver.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Common(e) => e.retryable(),
            _ => false,
        }
    }
}

impl From<serde_yaml::Error> for Error {
    fn from(e: serde_yaml::Error) -> Error {
        Error::Invalid(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns `Error::Invalid` with a formatted message, as `anyhow::bail!` would.
#[macro_export]
macro_rules! invalid {
    ($($message:tt)*) => {
        return Err($crate::Error::Invalid(format!($($message)*)))
    };
}
