//! controller-manager's integration tests, one module per area, linked into one test binary (one
//! link instead of one per file keeps the build's time and disk down).

mod batch;
mod binary;
mod bootstrap;
mod certificates;
mod daemonset;
mod deployment;
mod endpoints;
mod garbagecollector;
mod namespace;
mod nodes;
mod policy;
mod rbac;
mod replicaset;
mod statefulset;
mod support;
