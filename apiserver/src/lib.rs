//! kube-apiserver: the Kubernetes API over an embedded store (SQLite) or etcd.

pub mod storage;
pub mod testing;
