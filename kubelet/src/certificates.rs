//! The kubelet's certificate manager, as upstream's: a [`Store`] of PEM files in --cert-dir
//! (`kubelet-client-<time>.pem` with certificate and key, and a `kubelet-client-current.pem`
//! symlink to the newest; `kubelet-server-*` likewise), certificates obtained through
//! CertificateSigningRequests ([`request`]), and a [`Manager`] that asks for a new one at a
//! jittered 70-90% of the current one's lifetime and swaps it in without a restart: the
//! client certificate (--rotate-certificates, signer kube-apiserver-client-kubelet) through
//! the API client's [`DynamicCert`], which closes its connections so they authenticate anew;
//! the serving certificate (--rotate-server-certificates, signer kubelet-serving, names and
//! addresses of the Node) through the kubelet API's TLS, at the next handshake.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::dynamic_cert::DynamicCert;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};

use crate::error::{Error, io};

pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// Certificates of one kind kept in a directory, as upstream's file store.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    /// "kubelet-client" or "kubelet-server".
    prefix: &'static str,
}

impl Store {
    pub fn client(dir: &Path) -> Store {
        Store {
            dir: dir.to_owned(),
            prefix: "kubelet-client",
        }
    }

    pub fn serving(dir: &Path) -> Store {
        Store {
            dir: dir.to_owned(),
            prefix: "kubelet-server",
        }
    }

    /// `<dir>/<prefix>-current.pem`: the newest certificate and its key.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}-current.pem", self.prefix))
    }

    /// The current certificate and key (one PEM), if any.
    pub fn load(&self) -> Option<Vec<u8>> {
        std::fs::read(self.current_path()).ok()
    }

    /// Keeps a new pair: a new file only the owner may read, then the `-current` link moved
    /// to it in one rename, so a crash leaves either the old pair or the new one. Pairs older
    /// than the one it replaces are removed, so short lifetimes do not fill the directory.
    pub fn save(&self, cert_pem: &[u8], key_pem: &[u8]) -> crate::Result<PathBuf> {
        let previous = std::fs::read_link(self.current_path()).ok();
        common::files::create_private_dir(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let stamp = chrono::Utc::now().format("%Y-%m-%d-%H-%M-%S%.f");
        let file = self.dir.join(format!("{}-{stamp}.pem", self.prefix));
        common::files::write_private(&file, &[cert_pem, key_pem].concat())
            .map_err(io(format!("writing {}", file.display())))?;
        let link = self.current_path();
        let staged = self.dir.join(format!(".{}-current.pem.new", self.prefix));
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(file.file_name().expect("a file name"), &staged)
            .map_err(io(format!("linking {}", staged.display())))?;
        std::fs::rename(&staged, &link).map_err(io(format!("replacing {}", link.display())))?;
        self.prune(&file, previous.as_deref());
        Ok(link)
    }

    /// Removes this store's pairs other than `newest` and `previous`.
    fn prune(&self, newest: &Path, previous: Option<&Path>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let stamped = format!("{}-2", self.prefix);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let keep = Some(name.as_os_str()) == newest.file_name()
                || previous.is_some_and(|p| p.file_name() == Some(name.as_os_str()));
            if !keep && name.to_string_lossy().starts_with(&stamped) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// What a certificate request asks for.
#[derive(Clone, Debug)]
pub struct Template {
    pub signer: &'static str,
    pub node: String,
    pub usages: &'static [&'static str],
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Template {
    /// The kubelet's client certificate: system:node:NAME in system:nodes.
    pub fn client(node: &str) -> Template {
        Template {
            signer: CLIENT_SIGNER,
            node: node.to_owned(),
            usages: &["digital signature", "client auth"],
            dns_names: Vec::new(),
            ips: Vec::new(),
        }
    }

    /// The kubelet API's serving certificate for the node's names and addresses.
    pub fn serving(node: &str, dns_names: Vec<String>, ips: Vec<IpAddr>) -> Template {
        Template {
            signer: SERVING_SIGNER,
            node: node.to_owned(),
            usages: &["digital signature", "server auth"],
            dns_names,
            ips,
        }
    }
}

/// Asks for a certificate with a new key: creates the CertificateSigningRequest and waits up
/// to `timeout` for it to be approved and signed. Returns (certificate PEM, key PEM).
pub async fn request(
    client: &kube::Client,
    template: &Template,
    timeout: Duration,
) -> crate::Result<(Vec<u8>, Vec<u8>)> {
    let key = rcgen::KeyPair::generate().map_err(building("generating the key"))?;
    let mut params = rcgen::CertificateParams::new(template.dns_names.clone())
        .map_err(building("the certificate request"))?;
    params
        .subject_alt_names
        .extend(template.ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{}", template.node),
    );
    let pem = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(building("the certificate request"))?;
    let prefix = match template.signer {
        SERVING_SIGNER => "csr-",
        _ => "node-csr-",
    };
    let csr: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "metadata": { "generateName": prefix },
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(&pem),
            "signerName": template.signer,
            "usages": template.usages,
        },
    }))?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(|e| Error::from(e).context("creating the CertificateSigningRequest"))?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, signer = template.signer, "waiting for the certificate to be approved and signed");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
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
            tracing::info!(csr = %name, signer = template.signer, "certificate issued");
            return Ok((cert.0, key.serialize_pem().into_bytes()));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Certificate(format!(
                "the certificate request {name} was not signed within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// For `map_err`: building the key or the request failed (the same again would too).
fn building(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |e| Error::Invalid(format!("{what}: {e}"))
}

/// When to ask for the next certificate: at a random 70-90% of the current one's lifetime,
/// as upstream's manager, so a fleet of kubelets does not renew at once.
pub fn rotation_deadline(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0) as f64;
    not_before + (lifetime * (0.7 + 0.2 * jitter.clamp(0.0, 1.0))).round() as i64
}

/// What the manager needs to ask for the next certificate.
pub enum Subject {
    /// The client certificate, always the same subject.
    Client(Template),
    /// The serving certificate, for the names and addresses the Node has at the time.
    Serving { node: String },
}

/// Keeps one certificate fresh.
pub struct Manager {
    pub client: kube::Client,
    pub store: Store,
    pub cert: Arc<DynamicCert>,
    pub subject: Subject,
    /// False while `cert` is a stand-in (a self-signed serving certificate before the first
    /// one is issued): ask at once.
    pub issued: bool,
}

impl Manager {
    /// Rotates until dropped.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if self.issued {
                let (not_before, not_after) = self.cert.validity().unwrap_or((0, 0));
                let at = rotation_deadline(not_before, not_after, rand::random::<f64>());
                let wait = (at - chrono::Utc::now().timestamp()).max(0) as u64;
                tracing::info!(
                    store = %self.store.current_path().display(),
                    expires = not_after,
                    rotate_in_seconds = wait,
                    "certificate rotation scheduled"
                );
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            match self.rotate().await {
                Ok(()) => {
                    self.issued = true;
                    backoff = Duration::from_millis(250);
                }
                Err(e) => {
                    tracing::warn!(store = %self.store.current_path().display(), error = %e, retry_in = ?backoff, "certificate rotation failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5 * 60));
                    // Ask again at once on the next turn, whatever the deadline said.
                    self.issued = false;
                }
            }
        }
    }

    async fn rotate(&self) -> crate::Result<()> {
        let template = match &self.subject {
            Subject::Client(t) => t.clone(),
            Subject::Serving { node } => serving_template(&self.client, node).await?,
        };
        let (cert, key) = request(&self.client, &template, Duration::from_secs(15 * 60)).await?;
        self.store.save(&cert, &key)?;
        self.cert.set(&cert, &key).map_err(Error::component)?;
        tracing::info!(store = %self.store.current_path().display(), "rotated the certificate");
        Ok(())
    }
}

/// The serving certificate's names and addresses: those the Node reports (Hostname and
/// DNS names, InternalIP and ExternalIP), which the approver checks the request against.
async fn serving_template(client: &kube::Client, node: &str) -> crate::Result<Template> {
    let api: Api<Node> = Api::all(client.clone());
    let object = api.get(node).await?;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for a in object
        .status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
    {
        match a.type_.as_str() {
            "Hostname" | "InternalDNS" | "ExternalDNS" if !dns.contains(&a.address) => {
                dns.push(a.address)
            }
            "InternalIP" | "ExternalIP" => ips.extend(a.address.parse::<IpAddr>().ok()),
            _ => {}
        }
    }
    if dns.is_empty() && ips.is_empty() {
        return Err(Error::Certificate(format!(
            "node {node} reports no addresses yet"
        )));
    }
    Ok(Template::serving(node, dns, ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_falls_between_70_and_90_percent_of_the_lifetime() {
        assert_eq!(rotation_deadline(1000, 2000, 0.0), 1700);
        assert_eq!(rotation_deadline(1000, 2000, 1.0), 1900);
        assert_eq!(rotation_deadline(1000, 2000, 0.5), 1800);
    }

    #[test]
    fn the_store_links_the_newest_and_keeps_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::client(dir.path());
        assert!(store.load().is_none());
        for n in 1..=3 {
            std::thread::sleep(Duration::from_millis(2));
            store
                .save(format!("cert{n}\n").as_bytes(), b"key\n")
                .unwrap();
        }
        let link = store.save(b"cert4\n", b"key4\n").unwrap();
        assert_eq!(store.load().unwrap(), b"cert4\nkey4\n");
        let target = std::fs::read_link(&link).unwrap();
        assert!(target.to_str().unwrap().starts_with("kubelet-client-2"));
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 3, "the newest pair, the one before and the link");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&link).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's alone");
    }
}
