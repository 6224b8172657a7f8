//! kube-apiserver: the Kubernetes API over an embedded store (SQLite) or etcd.
//!
//! A request flows `server` (router; `conn`: listeners, TLS) -> `audit` (its events) -> `auth`
//! (who, and may they) ->
//! `limits` (in-flight limits, deadlines) -> `handlers` (path, verb, query) -> `registry`
//! (the resource and its strategy) -> `storage` for writes, or `cache` for lists and watches.

pub mod admission;
pub mod apply;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod codec;
pub mod conn;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod limits;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod query;
pub mod registry;
pub mod request;
pub mod server;
pub mod services;
pub mod state;
pub mod status;
pub mod storage;
pub mod table;
pub mod testing;
pub mod tls;
pub mod validation;

pub use error::{Error, Result};
