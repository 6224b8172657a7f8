//! The store: etcd's data model (keys, byte values, revisions, watches), knowing nothing about Kubernetes.
//!
//! Semantics, shared by every backend and checked by the conformance suite in `conformance.rs`:
//! - Every successful write (create, update, delete) gets the next revision of one global,
//!   strictly increasing counter. A key's `mod_revision` is the revision of its last write and
//!   its `create_revision` the revision that created it.
//! - `update` and `delete` are compare-and-swap on the key's `mod_revision`: a mismatch answers
//!   [`Error::Conflict`] carrying the current value, so the caller can retry without a re-read.
//! - `range` reads every key under a prefix, in key order, as of one revision (0: the latest);
//!   a start key outside the prefix is refused ([`Error::OutOfRange`]), never read.
//! - `watch(prefix, after)` yields every event with revision > `after`, in revision order, with no
//!   gaps, each with the previous value of the key.
//! - `compact(rev)` forgets history older than `rev`; reading or watching from before it answers
//!   [`Error::Compacted`] (the apiserver turns it into 410 Gone / Expired).

pub mod encryption;
pub mod etcd;
pub mod sqlite;

#[cfg(test)]
mod conformance;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A store revision; the apiserver's resourceVersion.
pub type Revision = i64;

/// One key as of some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// What a watch event did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The key was created (no previous value) or updated (`prev` holds the old value).
    Put,
    /// The key was deleted; `kv.value` is empty and `prev` holds the last value.
    Delete,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// The key after the change; for a delete, `mod_revision` is the revision of the delete.
    pub kv: KeyValue,
    /// The key before the change, when it existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The answer to a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// More keys matched than `limit` allowed.
    pub more: bool,
}

/// Which keys a range read returns.
#[derive(Clone, Debug, Default)]
pub struct RangeOptions {
    /// Read as of this revision; 0 reads the latest.
    pub revision: Revision,
    /// Start at this key (inclusive) instead of at the prefix; used to continue a paged list.
    pub start_key: Option<String>,
    /// Return at most this many keys; 0 means no limit.
    pub limit: usize,
}

/// A stream of watch events in revision order. An `Err` ends the stream.
pub type WatchStream = BoxStream<'static, Result<Event>>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` found the key present. Not retryable.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key does not exist. Not retryable.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's mod_revision differed from the expected one; `current` is what is there now.
    /// Retryable after merging with `current`.
    #[error("key {key} was modified concurrently")]
    Conflict { key: String, current: Box<KeyValue> },
    /// The requested revision is older than the oldest one kept. Retry from a fresh list.
    #[error("required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the store's. Retryable later.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A range's start key lies outside the prefix it was asked for: a caller's bug (or a
    /// forged continue token that got past the handler). Not retryable.
    #[error("start key {start:?} is outside the range prefix {prefix:?}")]
    OutOfRange { prefix: String, start: String },
    /// A value could not be encrypted or decrypted (`encryption`): no configured key reads
    /// it, or it was tampered with. Not retryable until the configuration changes.
    #[error("unable to transform key {key:?}: {message}")]
    Transform { key: String, message: String },
    /// The backend cannot be reached or failed; a retry may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// The start key of a range under `prefix`: the prefix itself, or `opts.start_key` when it
/// lies within the prefix. Every backend reads ranges through this, so no caller can read
/// outside the prefix it names.
pub fn range_start(prefix: &str, opts: &RangeOptions) -> Result<String> {
    match &opts.start_key {
        None => Ok(prefix.to_owned()),
        Some(start) if start.starts_with(prefix) => Ok(start.clone()),
        Some(start) => Err(Error::OutOfRange {
            prefix: prefix.to_owned(),
            start: start.clone(),
        }),
    }
}

/// The operations every backend provides; see the module docs for their semantics.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest value of `key`, if present.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix`, in key order, as `opts` asks.
    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult>;

    /// Stores `value` under `key` if the key is absent.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces the value of `key` if its mod_revision is `expected`.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue>;

    /// Deletes `key`, if its mod_revision is `expected` when one is given. Returns the deleted
    /// value and the revision of the delete.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)>;

    /// Every event under `prefix` with revision > `after`, then live events, until dropped.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The store's latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets history older than `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Whether `key`'s stored value is in a form a write would change though the object did
    /// not (encrypted with a key other than the one writes use now), so an update must write
    /// it rather than answer "nothing changed" (upstream's stale read; how keys are rotated).
    async fn stale(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
}
