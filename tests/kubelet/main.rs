//! kubelet's integration tests, one module per area, linked into one test binary (one
//! link instead of one per file keeps the build's time and disk down).

mod acceptance;
mod api;
mod binary;
mod cri;
mod hollow;
mod network;
mod node;
mod pods;
mod service_accounts;
mod static_pods;
mod streams;
mod support;
mod volumes;
