//! TLS for the components: serving certificates (given, or self-signed and kept on disk as
//! upstream generates one when none is given), client certificates checked against a CA
//! (`--client-ca-file`), the HTTPS accept loop (HTTP/1.1 and h2, protocol upgrades allowed),
//! and the client configuration the apiserver dials kubelets with (with its client
//! certificate, when it has one).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::dynamic_cert::DynamicCert;
use crate::error::{Context as _, Error, invalid};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Layer;

pub fn read_certs(path: &Path) -> crate::Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).io(|| format!("reading {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .invalid(|| format!("parsing certificates in {}", path.display()))?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

pub fn read_key(path: &Path) -> crate::Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).io(|| format!("reading {}", path.display()))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .invalid(|| format!("parsing the private key in {}", path.display()))?
        .ok_or_else(|| Error::Invalid(format!("no private key in {}", path.display())))
}

/// `dir/<stem>.crt` and `dir/<stem>.key`: a self-signed serving certificate for `names`,
/// written once and reused afterwards.
pub fn self_signed(
    dir: &Path,
    stem: &str,
    names: Vec<String>,
) -> crate::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    if cert.exists() && key.exists() {
        // Kept by an older version maybe with a wider mode: the key is the owner's alone.
        crate::files::restrict(&key, crate::files::PRIVATE_FILE)
            .io(|| format!("restricting {}", key.display()))?;
        return Ok((cert, key));
    }
    crate::files::create_private_dir(dir).io(|| format!("creating {}", dir.display()))?;
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| invalid("generating a self-signed certificate", e))?;
    crate::files::write_private(&key, generated.signing_key.serialize_pem().as_bytes())
        .io(|| format!("writing {}", key.display()))?;
    std::fs::write(&cert, generated.cert.pem()).io(|| format!("writing {}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed serving certificate");
    Ok((cert, key))
}

/// The machine's hostname, for certificate names.
pub fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// A TLS acceptor serving `cert` and `key`, offering h2 and HTTP/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> crate::Result<TlsAcceptor> {
    Ok(server(cert, key, None)?.acceptor)
}

/// Client certificates signed by the CAs of `--client-ca-file`.
pub struct ClientCa {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCa {
    pub fn load(path: &Path) -> crate::Result<ClientCa> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| invalid(format_args!("a CA certificate in {}", path.display()), e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(format_args!("client CAs from {}", path.display()), e))?;
        Ok(ClientCa { verifier })
    }

    /// Checks a presented chain and reads the identity in its subject.
    pub fn identify(&self, chain: &[CertificateDer<'_>]) -> PeerIdentity {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return PeerIdentity::Rejected("no client certificate".into());
        };
        if let Err(e) = self
            .verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            return PeerIdentity::Rejected(format!("verifying certificate: {e}"));
        }
        match subject(leaf) {
            Ok((user, groups, not_after)) => PeerIdentity::Verified {
                user,
                groups,
                not_after,
            },
            Err(e) => PeerIdentity::Rejected(e),
        }
    }
}

/// Who a TLS client proved to be with its certificate, as upstream's x509 authenticator reads
/// it: the subject's CommonName is the user, each Organization a group. Inserted into every
/// request of a connection that presented a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerIdentity {
    Verified {
        user: String,
        groups: Vec<String>,
        /// When the certificate expires (Unix seconds): a connection may outlive it.
        not_after: i64,
    },
    /// A certificate was presented but not signed by a client CA (or expired): the request
    /// must be refused, not treated as anonymous.
    Rejected(String),
}

impl PeerIdentity {
    /// The user and groups for a request arriving now, or why the certificate is refused.
    /// Checked per request, as upstream's x509 authenticator does: a connection opened with a
    /// certificate that has since expired authenticates nothing.
    pub fn now(&self) -> Result<(&str, &[String]), String> {
        match self {
            PeerIdentity::Verified {
                user,
                groups,
                not_after,
            } => {
                let now = UnixTime::now().as_secs() as i64;
                if now > *not_after {
                    return Err(format!(
                        "verifying certificate: the certificate expired at {not_after} (now {now})"
                    ));
                }
                Ok((user, groups))
            }
            PeerIdentity::Rejected(why) => Err(why.clone()),
        }
    }
}

fn subject(der: &CertificateDer<'_>) -> Result<(String, Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("parsing the client certificate: {e}"))?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or("the client certificate has no CommonName")?
        .to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Ok((user, groups, cert.validity().not_after.timestamp()))
}

/// A serving TLS configuration: the acceptor and, when client certificates are requested,
/// the CAs they are checked against.
#[derive(Clone)]
pub struct TlsServer {
    pub acceptor: TlsAcceptor,
    pub client_ca: Option<Arc<ClientCa>>,
}

/// Serves `cert` and `key`, re-read when the files change (`kubeadm certs renew`); with
/// `client_ca`, asks clients for a certificate (optional).
pub fn server(cert: &Path, key: &Path, client_ca: Option<ClientCa>) -> crate::Result<TlsServer> {
    server_with(DynamicCert::from_files(cert, key)?, client_ca)
}

/// Serves whatever pair `cert` holds at each handshake (the kubelet's rotated certificate).
pub fn server_with(
    cert: Arc<DynamicCert>,
    client_ca: Option<ClientCa>,
) -> crate::Result<TlsServer> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let client_ca = client_ca.map(Arc::new);
    let builder = match &client_ca {
        Some(ca) => builder.with_client_cert_verifier(Arc::new(AnyClientCertificate {
            provider,
            ca: ca.clone(),
        })),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsServer {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        client_ca,
    })
}

/// Asks for a client certificate and checks only that the client holds its key; the chain is
/// checked after the handshake ([`ClientCa::identify`]), so a certificate from another CA is
/// answered with 401 Unauthorized, as upstream does, instead of a failed handshake.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
    ca: Arc<ClientCa>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCa")
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.verifier.root_hint_subjects()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The next connection of `listener`, or None once `stop` turns true. A failed accept (out
/// of descriptors, say) is logged and retried after a moment rather than ending the server.
pub async fn accept(
    listener: &TcpListener,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stopped(stop) => return None,
        }
    }
}

/// Accepts TLS connections until `stop` turns true, then lets open connections finish. With
/// client CAs, each request of a connection that presented a certificate carries its
/// [`PeerIdentity`] as an extension.
pub async fn serve(
    listener: TcpListener,
    tls: impl Into<TlsServer>,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    let TlsServer {
        acceptor,
        client_ca,
    } = tls.into();
    let graceful = GracefulShutdown::new();
    loop {
        let Some((tcp, peer)) = accept(&listener, &mut stop).await else {
            break;
        };
        let acceptor = acceptor.clone();
        let client_ca = client_ca.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let identity = match (&client_ca, tls.get_ref().1.peer_certificates()) {
                (Some(ca), Some(chain)) => Some(ca.identify(chain)),
                _ => None,
            };
            let service = TowerToHyperService::new(axum::Extension(identity).layer(app));
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

impl From<TlsAcceptor> for TlsServer {
    fn from(acceptor: TlsAcceptor) -> TlsServer {
        TlsServer {
            acceptor,
            client_ca: None,
        }
    }
}

/// A client configuration that accepts any server certificate: upstream's apiserver dials
/// kubelets this way unless --kubelet-certificate-authority is given (kubelets serve
/// self-signed certificates by default). HTTP/1.1 only, so upgrades can be spliced.
pub fn insecure_client() -> Arc<rustls::ClientConfig> {
    insecure_client_with_identity(None).expect("no client certificate to read")
}

/// [`insecure_client`], presenting the client certificate `(cert, key)` when given: the
/// apiserver's --kubelet-client-certificate and --kubelet-client-key, which kubelets with a
/// --client-ca-file authenticate it by.
pub fn insecure_client_with_identity(
    identity: Option<(&Path, &Path)>,
) -> crate::Result<Arc<rustls::ClientConfig>> {
    client_config(None, identity)
}

/// A client configuration (HTTP/1.1 only, so upgrades can be spliced) that checks servers'
/// certificates against the CAs in `ca` for the name or address dialed (the apiserver's
/// --kubelet-certificate-authority), or accepts any without it, and presents `(cert, key)`
/// when given, re-read when the files change.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> crate::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| {
                    invalid(format_args!("a CA certificate in {}", path.display()), e)
                })?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    };
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_cert_resolver(DynamicCert::from_files(cert, key)?),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether the TLS server at `addr` completes a handshake with `config`, its certificate
/// checked for the address dialed.
pub async fn handshake_succeeds(
    config: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .is_ok()
}

/// A verifier that accepts any server certificate (insecure-skip-tls-verify).
pub fn any_server_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(AnyCertificate(Arc::new(
        rustls::crypto::ring::default_provider(),
    )))
}

/// Skips the certificate chain check; signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_that_expired_after_the_handshake_authenticates_nothing() {
        let now = UnixTime::now().as_secs() as i64;
        let identity = |not_after| PeerIdentity::Verified {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            not_after,
        };
        let valid = identity(now + 60);
        let (user, groups) = valid.now().unwrap();
        assert_eq!(
            (user, groups),
            ("system:node:n1", &["system:nodes".to_owned()][..])
        );
        let error = identity(now - 1).now().unwrap_err();
        assert!(error.contains("expired"), "{error}");
        let rejected = PeerIdentity::Rejected("unknown authority".into());
        assert_eq!(rejected.now().unwrap_err(), "unknown authority");
    }
}
