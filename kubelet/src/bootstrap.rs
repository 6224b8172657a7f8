//! Kubelet TLS bootstrapping (upstream's --bootstrap-kubeconfig): when --kubeconfig does not
//! exist yet, the kubelet uses the bootstrap credentials (a bootstrap token) to ask for a
//! client certificate through a CertificateSigningRequest (CN system:node:NAME,
//! O system:nodes, signer kubernetes.io/kube-apiserver-client-kubelet), waits until the
//! controller-manager approved and signed it, and writes a kubeconfig that uses it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};

use crate::error::{Error, invalid, io};

const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

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

/// Makes sure `kubeconfig` exists: if not, gets a certificate with `bootstrap` and writes it.
/// The key and certificate are kept in `cert_dir` (kubelet-client.key, kubelet-client.crt).
pub async fn ensure_kubeconfig(
    kubeconfig: &Path,
    bootstrap: &Path,
    node: &str,
    cert_dir: &Path,
    timeout: Duration,
) -> crate::Result<()> {
    if kubeconfig.exists() {
        return Ok(());
    }
    let (server, ca) = cluster_of(bootstrap)?;
    let client = common::client::client(Some(bootstrap))
        .await
        .map_err(Error::component)?;
    let key = rcgen::KeyPair::generate().map_err(building("generating the client key"))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(building("the certificate request"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(building("the certificate request"))?;
    let csr: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "metadata": { "generateName": "node-csr-" },
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(&request),
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }))?;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(|e| {
            Error::from(e)
                .context("creating the CertificateSigningRequest with the bootstrap credentials")
        })?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, "waiting for the client certificate to be approved and signed");
    let deadline = tokio::time::Instant::now() + timeout;
    let certificate = loop {
        let current = api.get(&name).await?;
        let status = current.status.unwrap_or_default();
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
        {
            return Err(Error::Certificate(format!(
                "the certificate request {name} was {}: {}",
                c.type_.to_lowercase(),
                c.message.clone().unwrap_or_default()
            )));
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            break cert.0;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Certificate(format!(
                "the certificate request {name} was not signed within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    common::files::create_private_dir(cert_dir)
        .map_err(io(format!("creating {}", cert_dir.display())))?;
    let (cert_path, key_path) = (
        cert_dir.join("kubelet-client.crt"),
        cert_dir.join("kubelet-client.key"),
    );
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, &certificate)
        .map_err(io(format!("writing {}", cert_path.display())))?;
    let config = render(&server, &ca, node, &cert_path, &key_path);
    write_private(kubeconfig, config.as_bytes())?;
    tracing::info!(kubeconfig = %kubeconfig.display(), "wrote the kubeconfig with the node's certificate");
    Ok(())
}

fn render(server: &str, ca: &str, node: &str, cert: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: default-cluster\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: default-context\n  context:\n    cluster: default-cluster\n    user: default-auth\n    namespace: default\ncurrent-context: default-context\nusers:\n- name: default-auth\n  user:\n    # system:node:{node}\n    client-certificate: {}\n    client-key: {}\n",
        cert.display(),
        key.display()
    )
}

/// Writes a file only its owner may read (it holds a key or points at one).
fn write_private(path: &Path, data: &[u8]) -> crate::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    common::files::write_private(path, data).map_err(io(format!("writing {}", path.display())))
}

/// For `map_err`: building the key or the request failed (the same again would too).
fn building(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |e| Error::Invalid(format!("{what}: {e}"))
}

/// The default place of the bootstrap certificate under the kubelet's root directory.
pub fn cert_dir(root_dir: &Path) -> PathBuf {
    root_dir.join("pki")
}
