//! The whole-cluster tests: one binary, a module per area.

mod attacks;
mod bootstrap;
mod client_suite;
mod component_serving;
mod dns;
mod kubeadm;
mod kubelet_auth;
mod multinode;
mod netpol;
mod operator;
mod rotation;
mod security;
