//! kubeadm: brings a cluster up in one command, as upstream kubeadm's phases do. `pki`
//! and `kubeconfig` create the cluster's certificates and kubeconfigs; `init` and `join`
//! set a node up, `supervisor` runs its processes, `bootstrap` writes what a new cluster
//! needs (RBAC, cluster-info, tokens), `addons` the cluster DNS, `audit` the apiserver's
//! audit policy, `reset` removes it all again.

pub mod addons;
pub mod audit;
pub mod bootstrap;
pub mod certs;
pub mod components;
pub mod config;
pub mod init;
pub mod join;
pub mod kubeconfig;
pub mod pki;
pub mod preflight;
pub mod reset;
pub mod supervisor;
pub mod token;
pub mod tokens;
pub mod wait;
