//! The PKI and kubeconfigs as clients see them: a TLS handshake verifies the apiserver's
//! certificate against the cluster CA for each name clients use (and refuses another CA
//! and a wrong name); real kubectl reads admin.conf and talks HTTPS to a server holding the
//! apiserver certificate; client certificates carry upstream's users and groups.

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;

use kubeadm::kubeconfig;
use kubeadm::pki::{Pki, PkiConfig};
use rustls::pki_types::ServerName;

fn config() -> PkiConfig {
    PkiConfig {
        node_name: "cp-1".into(),
        advertise_address: "127.0.0.1".parse().unwrap(),
        service_cidr: "10.96.0.0/12".into(),
        dns_domain: "cluster.local".into(),
        extra_sans: vec![],
    }
}

/// Serves the apiserver certificate on a loopback port; answers the port.
async fn serve_apiserver_cert(pki: &Pki) -> (u16, tokio::sync::watch::Sender<bool>) {
    let acceptor =
        common::tls::acceptor(&pki.path("apiserver.crt"), &pki.path("apiserver.key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(common::tls::serve(listener, acceptor, app, stopped));
    (port, stop)
}

/// A TLS handshake to `port` trusting only `ca`, expecting the server to be `name`.
async fn handshake(port: u16, ca: &std::path::Path, name: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in common::tls::read_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = match name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(name.to_owned()).unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn subject(pem_file: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(pem_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_trust_the_apiserver_through_the_cluster_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let written = pki.create(&config()).unwrap();
    // The CA, apiserver, kubelet-client and service-account pairs, and the encryption config.
    assert_eq!(written.len(), 9, "{written:?}");
    // Running again keeps what exists.
    assert!(pki.create(&config()).unwrap().is_empty());
    let key_mode = std::fs::metadata(pki.path("ca.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );

    let (port, _stop) = serve_apiserver_cert(&pki).await;
    let ca = pki.path("ca.crt");
    for name in [
        "kubernetes",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "cp-1",
        "10.96.0.1",
        "127.0.0.1",
    ] {
        handshake(port, &ca, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = handshake(port, &ca, "other.example").await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    let other = Pki::new(&dir.path().join("other"));
    other.create(&config()).unwrap();
    // Another cluster's CA (same subject, other key) does not vouch for this server.
    let err = handshake(port, &other.path("ca.crt"), "kubernetes")
        .await
        .unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");

    // kubectl reads admin.conf and verifies the server with its CA.
    let confs = dir.path().join("conf");
    let server = format!("https://127.0.0.1:{port}");
    let paths = kubeconfig::write_all(&pki, &confs, &server, "cp-1").unwrap();
    assert_eq!(paths.len(), 5);
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(confs.join("admin.conf"))
        .args(["get", "--raw", "/healthz"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(confs.join("super-admin.conf"))
        .args([
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.client-certificate-data}",
        ])
        .output()
        .unwrap();
    use base64::Engine;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(out.stdout)
        .unwrap();
    let cert_file = dir.path().join("super-admin.crt");
    std::fs::write(&cert_file, cert).unwrap();
    assert_eq!(
        subject(&cert_file),
        "subject=CN=kubernetes-super-admin,O=system:masters"
    );
    assert_eq!(
        subject(&pki.path("apiserver-kubelet-client.crt")),
        "subject=CN=kube-apiserver-kubelet-client,O=kubeadm:cluster-admins"
    );
}

/// The join command's --discovery-token-ca-cert-hash is what upstream's docs compute with
/// openssl: the SHA-256 of the CA's public key in DER.
#[test]
fn the_ca_cert_hash_matches_openssls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.create(&config()).unwrap();
    let ca = pki.path("ca.crt");
    let script = format!(
        "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | sha256sum",
        ca.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success());
    let expected = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let ours = kubeadm::token::ca_cert_hash(&std::fs::read_to_string(&ca).unwrap()).unwrap();
    assert_eq!(ours, format!("sha256:{expected}"));
}
