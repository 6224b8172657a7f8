//! kubeadm: brings a cluster up in one command. `pki` creates the cluster's certificate
//! authority and certificates, `kubeconfig` the components' and the admin's kubeconfigs,
//! as upstream kubeadm's `certs` and `kubeconfig` phases do.

pub mod kubeconfig;
pub mod pki;
