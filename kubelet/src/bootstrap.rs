//! Kubelet TLS bootstrapping (upstream's --bootstrap-kubeconfig): when --kubeconfig does not
//! exist yet, the kubelet uses the bootstrap credentials (a bootstrap token) to ask for a
//! client certificate through a CertificateSigningRequest (CN system:node:NAME,
//! O system:nodes, signer kubernetes.io/kube-apiserver-client-kubelet), waits until the
//! controller-manager approved and signed it, and writes a kubeconfig that uses it. An
//! expired certificate starts the bootstrap over.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::dynamic_cert::DynamicCert;

use crate::certificates::{Store, Template};
use crate::error::{Error, invalid, io};

/// The apiserver and CA of a kubeconfig's current context: (server, CA PEM base64).
fn cluster_of(path: &Path) -> crate::Result<(String, String)> {
    let config = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| Error::Invalid(format!("reading {}: {e}", path.display())))?;
    let context = config
        .contexts
        .iter()
        .find(|c| Some(&c.name) == config.current_context.as_ref())
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = config
        .clusters
        .iter()
        .find(|c| context.as_ref().is_none_or(|name| *name == c.name))
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| Error::Invalid(format!("{} names no cluster", path.display())))?;
    let server = cluster
        .server
        .ok_or_else(|| Error::Invalid(format!("{} has no server", path.display())))?;
    let ca = match (
        cluster.certificate_authority_data,
        cluster.certificate_authority,
    ) {
        (Some(data), _) => data,
        (None, Some(file)) => base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(&file).map_err(io(format!("reading the CA {file}")))?),
        (None, None) => invalid!("{} has no certificate authority", path.display()),
    };
    Ok((server, ca))
}

/// Makes sure `kubeconfig` exists with a certificate that has not expired: if not, gets one
/// with `bootstrap`, keeps it in `cert_dir`'s client store (kubelet-client-current.pem, key
/// included) and writes a kubeconfig that points at it, so rotations need no rewrite.
pub async fn ensure_kubeconfig(
    kubeconfig: &Path,
    bootstrap: &Path,
    node: &str,
    cert_dir: &Path,
    timeout: Duration,
) -> crate::Result<()> {
    let store = Store::client(cert_dir);
    if kubeconfig.exists() && !expired(&store) {
        return Ok(());
    }
    let (server, ca) = cluster_of(bootstrap)?;
    let client = common::client::client(Some(bootstrap))
        .await
        .map_err(Error::component)?;
    let (cert, key) = crate::certificates::request(&client, &Template::client(node), timeout)
        .await
        .map_err(|e| e.context("getting a client certificate with the bootstrap credentials"))?;
    let current = store.save(&cert, &key)?;
    let config = render(&server, &ca, node, &current);
    write_private(kubeconfig, config.as_bytes())?;
    tracing::info!(kubeconfig = %kubeconfig.display(), "wrote the kubeconfig with the node's certificate");
    Ok(())
}

/// Whether the store's current certificate has expired (then bootstrapping starts over, as
/// upstream's kubelet does); false when the store is empty (the kubeconfig has its own).
fn expired(store: &Store) -> bool {
    let Some(pem) = store.load() else {
        return false;
    };
    DynamicCert::from_pem(&pem, &pem)
        .ok()
        .and_then(|c| c.validity())
        .is_some_and(|(_, not_after)| not_after < chrono::Utc::now().timestamp())
}

/// The client certificate and key a kubeconfig's current user authenticates with (inline
/// data or files relative to the kubeconfig), as one PEM; None when it uses something else.
pub fn kubeconfig_identity(path: &Path) -> crate::Result<Option<Vec<u8>>> {
    let text = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::Invalid(format!("reading {}: {e}", path.display())))?;
    let context = config["current-context"].as_str().unwrap_or_default();
    let user_name = config["contexts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|c| c["name"].as_str() == Some(context))
        .and_then(|c| c["context"]["user"].as_str());
    let Some(user) = config["users"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|u| user_name.is_none_or(|n| u["name"].as_str() == Some(n)))
        .map(|u| &u["user"])
    else {
        return Ok(None);
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let part = |data: &str, file: &str| -> crate::Result<Option<Vec<u8>>> {
        if let Some(b64) = user[data].as_str() {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| Error::Invalid(format!("{} {data}: {e}", path.display())))?;
            return Ok(Some(pem));
        }
        match user[file].as_str() {
            Some(f) => {
                let f = base.join(f);
                std::fs::read(&f)
                    .map(Some)
                    .map_err(io(format!("reading {}", f.display())))
            }
            None => Ok(None),
        }
    };
    let cert = part("client-certificate-data", "client-certificate")?;
    let key = part("client-key-data", "client-key")?;
    Ok(cert.zip(key).map(|(mut c, k)| {
        if c == k {
            return c;
        }
        if !c.ends_with(b"\n") {
            c.push(b'\n');
        }
        c.extend(k);
        c
    }))
}

fn render(server: &str, ca: &str, node: &str, current: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: default-cluster\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: default-context\n  context:\n    cluster: default-cluster\n    user: default-auth\n    namespace: default\ncurrent-context: default-context\nusers:\n- name: default-auth\n  user:\n    # system:node:{node}\n    client-certificate: {}\n    client-key: {}\n",
        current.display(),
        current.display()
    )
}

/// Writes a file only its owner may read (it holds a key or points at one).
fn write_private(path: &Path, data: &[u8]) -> crate::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    common::files::write_private(path, data).map_err(io(format!("writing {}", path.display())))
}

/// The default place of the bootstrap certificate under the kubelet's root directory.
pub fn cert_dir(root_dir: &Path) -> PathBuf {
    root_dir.join("pki")
}
