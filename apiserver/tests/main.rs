//! apiserver's integration tests, one module per area, linked into one test binary (one
//! link instead of one per file keeps the build's time and disk down).

mod admission;
mod api_semantics;
mod audit;
mod crd;
mod delete_answers;
mod durability;
mod encryption;
mod generate_name;
mod kms;
mod kube_rs;
mod kubectl;
mod limits;
mod pod_security;
mod protobuf;
mod python_client;
mod random_requests;
mod response_bytes;
mod ssa;
mod support;
