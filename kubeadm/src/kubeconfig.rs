//! Kubeconfigs as upstream kubeadm (1.29+) writes them: each holds the cluster CA, the
//! apiserver's address and a client certificate for one identity, embedded as data.
//! admin.conf is `kubernetes-admin` in `kubeadm:cluster-admins` (bound to cluster-admin,
//! so it can be revoked); super-admin.conf is in `system:masters` (bypasses authorization,
//! for emergencies); the scheduler, controller-manager and kubelet get their own names.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::pki::{Pki, Usage};

/// One kubeconfig file and who it says the user is.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub file: &'static str,
    pub user: &'static str,
    pub groups: &'static [&'static str],
}

pub const ADMIN: Identity = Identity {
    file: "admin.conf",
    user: "kubernetes-admin",
    groups: &["kubeadm:cluster-admins"],
};
pub const SUPER_ADMIN: Identity = Identity {
    file: "super-admin.conf",
    user: "kubernetes-super-admin",
    groups: &["system:masters"],
};
pub const CONTROLLER_MANAGER: Identity = Identity {
    file: "controller-manager.conf",
    user: "system:kube-controller-manager",
    groups: &[],
};
pub const SCHEDULER: Identity = Identity {
    file: "scheduler.conf",
    user: "system:kube-scheduler",
    groups: &[],
};

/// The kubelet's identity on `node`: system:node:<node> in system:nodes.
pub fn kubelet(node: &str) -> (String, &'static [&'static str]) {
    (format!("system:node:{node}"), &["system:nodes"])
}

/// The kubeconfig text for `user` at `server`.
pub fn render(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let context = format!("{user}@kubernetes");
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: {context}
  context:
    cluster: kubernetes
    user: {user}
current-context: {context}
preferences: {{}}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

/// Writes `dir/<file>` for `user` in `groups` unless it exists; answers its path.
pub fn write(
    pki: &Pki,
    dir: &Path,
    file: &str,
    server: &str,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<PathBuf> {
    let path = dir.join(file);
    if path.exists() {
        common::files::restrict(&path, common::files::PRIVATE_FILE)?;
        return Ok(path);
    }
    common::files::create_private_dir(dir)?;
    let ca = std::fs::read_to_string(pki.path("ca.crt"))?;
    let signed = pki.sign(user, groups, &[], Usage::Client)?;
    let text = render(server, &ca, user, &signed.cert_pem, &signed.key_pem);
    // It holds a private key: owner-only, like upstream's.
    common::files::create_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Every control-plane kubeconfig (admin, super-admin, controller-manager, scheduler) and
/// the kubelet's for `node`.
pub fn write_all(pki: &Pki, dir: &Path, server: &str, node: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for id in [ADMIN, SUPER_ADMIN, CONTROLLER_MANAGER, SCHEDULER] {
        paths.push(write(pki, dir, id.file, server, id.user, id.groups)?);
    }
    let (user, groups) = kubelet(node);
    paths.push(write(pki, dir, "kubelet.conf", server, &user, groups)?);
    Ok(paths)
}
