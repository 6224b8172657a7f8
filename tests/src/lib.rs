//! Support for the tests that start more than one component (every component's integration
//! tests live here, so no component crate depends on another): the workspace's binaries, a
//! secure control plane set up as `kubeadm init` sets it up (the cluster PKI, client
//! certificates, service-account keys, RBAC and Node authorization), kubeconfigs for any
//! identity, and real kubectl.

pub mod hosts;
pub mod netpol_model;

use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver::auth::{AuthConfig, Mode};
use kubeadm::pki::{Pki, PkiConfig};

/// An apiserver in this process on a loopback port (its trusted plain listener) with its data
/// in a directory of its own: where every component's integration test starts.
pub struct LocalApiServer {
    pub server: apiserver::server::InProcess,
    pub dir: tempfile::TempDir,
    pub client: kube::Client,
    pub url: String,
}

impl LocalApiServer {
    pub async fn start() -> LocalApiServer {
        LocalApiServer::start_with(|_| {}).await
    }

    /// [`LocalApiServer::start`] with `configure`'s changes to the configuration.
    pub async fn start_with(
        configure: impl FnOnce(&mut apiserver::server::Config),
    ) -> LocalApiServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = apiserver::server::Config {
            data_dir: dir.path().join("data"),
            secure_port: 0,
            ..Default::default()
        };
        configure(&mut config);
        let server = apiserver::server::spawn_in_process(config).await.unwrap();
        let url = server.url();
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        LocalApiServer {
            server,
            dir,
            client,
            url,
        }
    }
}

/// The leaf certificate (DER) the TLS server at `addr` presents (not verified).
pub async fn served_certificate(addr: &str) -> Option<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("kubernetes").ok()?;
    let tls = tokio_rustls::TlsConnector::from(common::tls::insecure_client())
        .connect(name, tcp)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
}

/// The path of the workspace's binary `name` (kube-scheduler, kubelet, ...).
pub fn bin(name: &str) -> PathBuf {
    hosts::bin_dir().join(name)
}

/// The issuer of the test cluster's service-account tokens.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A kube-apiserver on HTTPS with kubeadm's PKI and authorization modes, in this process; it
/// dials kubelets with kubeadm's apiserver-kubelet-client certificate.
pub struct SecureApiServer {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub pki: Pki,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<apiserver::Result<()>>>,
}

impl SecureApiServer {
    /// Creates the PKI under a new directory and starts the server (Node,RBAC, client
    /// certificates, bootstrap tokens, service-account tokens) on a free port.
    pub async fn start() -> SecureApiServer {
        Self::start_with(|_| {}).await
    }

    /// [`SecureApiServer::start`] with `configure` applied to the server's configuration.
    pub async fn start_with(
        configure: impl FnOnce(&mut apiserver::server::Config),
    ) -> SecureApiServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pki = Pki::new(&dir.path().join("pki"));
        pki.create(&PkiConfig {
            node_name: "localhost".into(),
            advertise_address: "127.0.0.1".parse().expect("an address"),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            extra_sans: vec!["127.0.0.1".into()],
        })
        .expect("create the PKI");
        let port = apiserver::testing::free_port();
        let config = apiserver::server::Config {
            bind_address: "127.0.0.1".parse().expect("an address"),
            secure_port: port,
            data_dir: dir.path().join("data"),
            tls_cert_file: Some(pki.path("apiserver.crt")),
            tls_private_key_file: Some(pki.path("apiserver.key")),
            advertise_address: Some("127.0.0.1".parse().expect("an address")),
            auth: AuthConfig {
                client_ca_file: Some(pki.path("ca.crt")),
                enable_bootstrap_token_auth: true,
                authorization_modes: vec![Mode::Node, Mode::Rbac],
                service_account_issuer: Some(ISSUER.into()),
                service_account_key_files: vec![pki.path("sa.pub")],
                service_account_signing_key_file: Some(pki.path("sa.key")),
                ..AuthConfig::default()
            },
            kubelet_client_certificate: Some(pki.path("apiserver-kubelet-client.crt")),
            kubelet_client_key: Some(pki.path("apiserver-kubelet-client.key")),
            ..Default::default()
        };
        let mut config = config;
        configure(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(apiserver::server::run(config, async move {
            let _ = stopped.await;
        }));
        let server = SecureApiServer {
            url: format!("https://127.0.0.1:{port}"),
            dir,
            pki,
            stop: Some(stop),
            task: Some(task),
        };
        let admin = server.admin();
        let mut last = String::new();
        for _ in 0..100 {
            let (ok, out, err) = kubectl(&admin, &["get", "--raw", "/healthz"]).await;
            if ok && out.trim() == "ok" {
                return server;
            }
            if server.task.as_ref().is_some_and(|t| t.is_finished()) {
                let task = server.task.expect("checked");
                panic!("the secure apiserver stopped: {:?}", task.await);
            }
            last = err;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the secure apiserver did not become healthy: {last}");
    }

    /// A kubeconfig for `user` in `groups`, with a client certificate signed by the cluster CA.
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let file = format!("{}.conf", user.replace(':', "_"));
        kubeadm::kubeconfig::write(
            &self.pki,
            &self.dir.path().join("kubeconfigs"),
            &file,
            &self.url,
            user,
            groups,
        )
        .expect("write a kubeconfig")
    }

    /// The super-admin (system:masters).
    pub fn admin(&self) -> PathBuf {
        self.kubeconfig("kubernetes-super-admin", &["system:masters"])
    }

    /// GET `path` without credentials: (status code, body).
    pub async fn anonymous_get(&self, path: &str) -> (u16, String) {
        anonymous_get(&self.pki.path("ca.crt"), &format!("{}{path}", self.url)).await
    }

    /// A kubeconfig with a bearer token.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        self.kubeconfig_with_user(name, &format!("{{token: {token}}}"))
    }

    fn kubeconfig_with_user(&self, name: &str, user: &str) -> PathBuf {
        let ca = self.pki.path("ca.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: default}}\ncurrent-context: c\nusers:\n- name: u\n  user: {user}\n",
            self.url,
            ca.display()
        );
        let dir = self.dir.path().join("kubeconfigs");
        std::fs::create_dir_all(&dir).expect("the kubeconfig directory");
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, text).expect("write a kubeconfig");
        path
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// A client certificate and key for `user` in `groups`, signed by `pki`'s CA, as files.
pub fn certificate(
    pki: &kubeadm::pki::Pki,
    dir: &Path,
    user: &str,
    groups: &[&str],
) -> (PathBuf, PathBuf) {
    let signed = pki
        .sign(user, groups, &[], kubeadm::pki::Usage::Client)
        .expect("sign a client certificate");
    std::fs::create_dir_all(dir).expect("the certificate directory");
    let (cert, key) = (
        dir.join(format!("{user}.crt")),
        dir.join(format!("{user}.key")),
    );
    std::fs::write(&cert, signed.cert_pem).expect("write the certificate");
    std::fs::write(&key, signed.key_pem).expect("write the key");
    (cert, key)
}

/// Runs real kubectl with `kubeconfig`: (success, stdout, stderr).
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    apiserver::testing::kubectl(kubeconfig, args, None).await
}

/// Runs kubectl until `check` accepts its output (RBAC changes reach the authorizer through
/// the watch cache, a moment after the write), at most 5 s; answers the last output.
pub async fn kubectl_until(
    kubeconfig: &Path,
    args: &[&str],
    check: impl Fn(bool, &str, &str) -> bool,
) -> (bool, String, String) {
    let mut last = (false, String::new(), String::new());
    for _ in 0..50 {
        last = kubectl(kubeconfig, args).await;
        if check(last.0, &last.1, &last.2) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// GET `url` without credentials (Python's urllib trusting `ca`; kubectl would prompt for
/// a password): (status code, body).
pub async fn anonymous_get(ca: &Path, url: &str) -> (u16, String) {
    let script = "import ssl, sys, urllib.request, urllib.error\n\
ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
try:\n    r = urllib.request.urlopen(sys.argv[2], context=ctx); print(r.status); print(r.read().decode())\n\
except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
    let out = tokio::process::Command::new(apiserver::testing::python())
        .args(["-c", script])
        .arg(ca)
        .arg(url)
        .output()
        .await
        .expect("run python");
    code_and_body(&out)
}

/// What the tests' Python HTTP snippets print: the status code on the first line, then the
/// body.
pub fn code_and_body(out: &std::process::Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, body) = text.split_once('\n').unwrap_or((&text, ""));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python: {text} {}", String::from_utf8_lossy(&out.stderr)));
    (code, body.to_owned())
}

/// Polls `check` until it answers, for at most `limit`: every 25 ms at first, backing off to
/// every half second, so quick conditions are seen at once and slow ones cost little.
pub async fn until<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(25);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// A PKI of its own under `dir/other-pki`: certificates a cluster must not trust.
pub fn other_pki(dir: &Path) -> Pki {
    let other = Pki::new(&dir.join("other-pki"));
    other
        .create(&PkiConfig {
            node_name: "elsewhere".into(),
            advertise_address: "127.0.0.1".parse().expect("an address"),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            extra_sans: vec![],
        })
        .expect("another PKI");
    other
}

/// A kubeconfig for `server` (trusting `ca_pem`) whose client certificate claims
/// system:masters but comes from a CA of its own, which the cluster must refuse.
pub fn foreign_kubeconfig(dir: &Path, server: &str, ca_pem: &str) -> PathBuf {
    let other = other_pki(dir);
    let forged = other
        .sign(
            "mallory",
            &["system:masters"],
            &[],
            kubeadm::pki::Usage::Client,
        )
        .expect("a certificate from the other CA");
    let path = dir.join("mallory.conf");
    let text =
        kubeadm::kubeconfig::render(server, ca_pem, "mallory", &forged.cert_pem, &forged.key_pem);
    std::fs::write(&path, text).expect("write mallory.conf");
    path
}

/// A client that sends requests exactly as written (any method, path, query, content type and
/// body) as one identity, for the adversarial tests.
pub struct RawClient(kube::Client);

impl SecureApiServer {
    /// A raw client for `user` in `groups`, with a client certificate of the cluster CA.
    pub async fn raw_client(&self, user: &str, groups: &[&str]) -> RawClient {
        let path = self.kubeconfig(user, groups);
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read a kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("a client configuration");
        RawClient(kube::Client::try_from(config).expect("a client"))
    }
}

impl RawClient {
    /// Sends one request: (status code, body as text).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, String) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(kube::client::Body::from(body))
            .expect("a request");
        let response = self.0.send(request).await.expect("an answer");
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .expect("the body");
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.send("GET", path, "application/json", Vec::new()).await
    }

    /// Sends `body` as JSON: (status code, answer as JSON, or Null when it is not JSON).
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let (code, text) = self.json_text(method, path, body).await;
        (code, serde_json::from_str(&text).unwrap_or_default())
    }

    /// Sends `body` as JSON: (status code, answer text), as polling helpers compare them.
    pub async fn json_text(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, String) {
        self.send(
            method,
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    /// POSTs `body` and insists on 201 Created.
    pub async fn create(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (code, answer) = self.json("POST", path, &body).await;
        assert_eq!(code, 201, "POST {path}: {answer}");
        answer
    }
}
