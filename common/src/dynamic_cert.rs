//! A certificate and key that can change while TLS uses them, as upstream's
//! dynamiccertificates and client-go's certificate rotation: loaded from files and re-read
//! when they change (`kubeadm certs renew`), or set in memory (the kubelet's certificate
//! manager). rustls asks for the current pair at every handshake, as a server
//! ([`ResolvesServerCert`]) or a client ([`ResolvesClientCert`]); clients close their open
//! connections when it changes ([`DynamicCert::changes`]) so they authenticate anew.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureScheme, crypto::CryptoProvider};
use tokio::sync::watch;

use crate::error::{Context as _, invalid};

/// How often files are checked for a new pair (upstream's serving content checks each minute;
/// kept shorter so a renewal shows within seconds).
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// A certificate chain with its key, replaceable at any time.
pub struct DynamicCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files it came from and what they held when last read.
    source: Option<(PathBuf, PathBuf, Mutex<Vec<u8>>)>,
    /// Bumped on every change.
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for DynamicCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicCert")
            .field("source", &self.source.as_ref().map(|(c, k, _)| (c, k)))
            .finish()
    }
}

/// Parses PEM certificates (leaf first) and a PEM private key into a signing pair; the two
/// may come from one buffer (a kubelet's `kubelet-client-current.pem` holds both).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> crate::Result<CertifiedKey> {
    let certs = rustls_pemfile::certs(&mut &*cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .invalid(|| "parsing the certificate".to_owned())?;
    if certs.is_empty() {
        return Err(crate::Error::Invalid(
            "no certificate in the PEM data".into(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut &*key_pem)
        .invalid(|| "parsing the private key".to_owned())?
        .ok_or_else(|| crate::Error::Invalid("no private key in the PEM data".into()))?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid("loading the private key", e))?;
    let pair = CertifiedKey::new(certs, signing);
    pair.keys_match()
        .map_err(|e| invalid("the certificate and key do not match", e))?;
    Ok(pair)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pair(cert: &Path, key: &Path) -> crate::Result<(Vec<u8>, Vec<u8>)> {
    let c = std::fs::read(cert).io(|| format!("reading {}", cert.display()))?;
    let k = std::fs::read(key).io(|| format!("reading {}", key.display()))?;
    Ok((c, k))
}

impl DynamicCert {
    /// A pair held in memory; [`DynamicCert::set`] replaces it.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> crate::Result<Arc<DynamicCert>> {
        Ok(Arc::new(DynamicCert {
            current: RwLock::new(Arc::new(certified_key(cert_pem, key_pem)?)),
            source: None,
            generation: watch::Sender::new(0),
        }))
    }

    /// A pair read from `cert` and `key`, re-read every [`RELOAD_EVERY`] while a tokio
    /// runtime runs and the pair is in use; a change that does not parse is logged and the
    /// old pair kept.
    pub fn from_files(cert: &Path, key: &Path) -> crate::Result<Arc<DynamicCert>> {
        let (c, k) = read_pair(cert, key)?;
        let pair = certified_key(&c, &k).map_err(|e| {
            crate::Error::Invalid(format!("{} and {}: {e}", cert.display(), key.display()))
        })?;
        let this = Arc::new(DynamicCert {
            current: RwLock::new(Arc::new(pair)),
            source: Some((cert.to_owned(), key.to_owned(), Mutex::new([c, k].concat()))),
            generation: watch::Sender::new(0),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch_files(Arc::downgrade(&this)));
        }
        Ok(this)
    }

    /// The pair in use now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().clone()
    }

    /// Replaces the pair; connections made with the old one are told through
    /// [`DynamicCert::changes`].
    pub fn set(&self, cert_pem: &[u8], key_pem: &[u8]) -> crate::Result<()> {
        let pair = certified_key(cert_pem, key_pem)?;
        *self.current.write() = Arc::new(pair);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Re-reads the files; true when they changed and the new pair is in use.
    pub fn reload(&self) -> crate::Result<bool> {
        let Some((cert, key, seen)) = &self.source else {
            return Ok(false);
        };
        let (c, k) = read_pair(cert, key)?;
        let both = [c.as_slice(), k.as_slice()].concat();
        if *seen.lock() == both {
            return Ok(false);
        }
        self.set(&c, &k).map_err(|e| {
            crate::Error::Invalid(format!("{} and {}: {e}", cert.display(), key.display()))
        })?;
        *seen.lock() = both;
        tracing::info!(cert = %cert.display(), "loaded a changed certificate");
        Ok(true)
    }

    /// When the current certificate became valid and when it expires (Unix seconds).
    pub fn validity(&self) -> Option<(i64, i64)> {
        let current = self.current();
        let (_, leaf) = x509_parser::parse_x509_certificate(current.cert.first()?).ok()?;
        let v = leaf.validity();
        Some((v.not_before.timestamp(), v.not_after.timestamp()))
    }

    /// A receiver that sees every change from now on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// Re-reads the files of `cert` until nothing else holds it.
async fn watch_files(cert: Weak<DynamicCert>) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let Some(cert) = cert.upgrade() else { return };
        if let Err(e) = cert.reload() {
            tracing::warn!(error = %e, "the certificate files changed but cannot be used; keeping the old pair");
        }
    }
}

impl ResolvesServerCert for DynamicCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for DynamicCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[tokio::test]
    async fn files_are_reloaded_when_they_change_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("a.crt"), dir.path().join("a.key"));
        let (c1, k1) = pair("one");
        std::fs::write(&cert, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        let dynamic = DynamicCert::from_files(&cert, &key).unwrap();
        let first = dynamic.current().cert[0].clone();
        let changes = dynamic.changes();
        assert!(
            !dynamic.reload().unwrap(),
            "unchanged files are not a change"
        );

        let (c2, k2) = pair("two");
        std::fs::write(&cert, &c2).unwrap();
        std::fs::write(&key, &k2).unwrap();
        assert!(dynamic.reload().unwrap());
        assert_ne!(dynamic.current().cert[0], first);
        assert!(changes.has_changed().unwrap(), "clients hear of the change");

        // A key that does not match the certificate leaves the good pair in place.
        std::fs::write(&key, &k1).unwrap();
        let error = dynamic.reload().unwrap_err().to_string();
        assert!(error.contains("do not match"), "{error}");
        let second = rustls_pemfile::certs(&mut c2.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(dynamic.current().cert[0], second);
    }

    #[test]
    fn one_pem_may_hold_the_certificate_and_the_key() {
        let (c, k) = pair("node");
        let both = format!("{c}{k}");
        certified_key(both.as_bytes(), both.as_bytes()).unwrap();
        assert!(certified_key(c.as_bytes(), c.as_bytes()).is_err());
    }
}
