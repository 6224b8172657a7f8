//! The whole-cluster tests: one binary, a module per area.

mod bootstrap;
mod kubeadm;
mod multinode;
mod security;
