//! HTTPS serving: rustls with HTTP/1.1 and HTTP/2 (ALPN), from --tls-cert-file and
//! --tls-private-key-file, or a self-signed certificate kept under --data-dir as upstream
//! generates one when none is given; client certificates are checked against --client-ca-file.

use std::path::PathBuf;

use common::tls::TlsServer;

use crate::server::Config;

/// The self-signed serving certificate under the data dir, made on first start.
fn self_signed(config: &Config) -> crate::Result<(PathBuf, PathBuf)> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ];
    names.extend(common::tls::hostname());
    Ok(common::tls::self_signed(
        &config.data_dir.join("certificates"),
        "apiserver",
        names,
    )?)
}

/// The serving configuration; with --client-ca-file, clients may present certificates.
pub fn server(config: &Config) -> crate::Result<TlsServer> {
    let (cert, key) = match (&config.tls_cert_file, &config.tls_private_key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => self_signed(config)?,
        _ => {
            return Err(crate::Error::Invalid(
                "--tls-cert-file and --tls-private-key-file must be given together".into(),
            ));
        }
    };
    let client_ca = config
        .auth
        .client_ca_file
        .as_deref()
        .map(common::tls::ClientCa::load)
        .transpose()?;
    Ok(common::tls::server(&cert, &key, client_ca)?)
}
