//! Test support: a real etcd started as a child process on free loopback ports (stopped on
//! drop), in-process servers, kubectl and random requests for property tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod kms_plugin;
pub mod random_requests;

/// A free TCP port on 127.0.0.1 (closed again before it is returned).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One etcd member (Debian's etcd-server) serving on a free loopback port.
pub struct EtcdServer {
    child: Child,
    _dir: tempfile::TempDir,
    pub endpoint: String,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers; panics with etcd's output if it does not.
    /// A port taken between choosing it and etcd binding it (other tests pick ports too)
    /// means another try with new ports.
    pub fn start() -> EtcdServer {
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = Self::launch();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if log.contains("address already in use") => {
                    let _ = server.child.kill();
                    let _ = server.child.wait();
                    last = log;
                }
                Err(log) => panic!("etcd did not become ready on {}:\n{log}", server.endpoint),
            }
        }
        panic!("etcd found no free ports:\n{last}");
    }

    fn launch() -> EtcdServer {
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
        let child = Command::new(etcd_binary())
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .arg(format!("--initial-cluster=t={peer_url}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd (apt-get install etcd-server)");
        EtcdServer {
            child,
            _dir: dir,
            endpoint: format!("127.0.0.1:{client}"),
        }
    }

    /// Ok once etcd serves reads; its log if it exits or does not within 20 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let log = |s: &EtcdServer| {
            std::fs::read_to_string(s._dir.path().join("etcd.log")).unwrap_or_default()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(log(self));
            }
            // A range request answering means the member has a leader and serves reads.
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &self.endpoint, "get", "health-probe"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(log(self))
    }
}

impl EtcdServer {
    /// The raw value stored under `key`, read with etcdctl as an operator would.
    pub fn value(&self, key: &str) -> Vec<u8> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &self.endpoint,
                "get",
                key,
                "--print-value-only",
            ])
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "etcdctl get {key}: {out:?}");
        out.stdout
    }
}

fn etcd_binary() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "etcd".into())
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's python: $TETSU_PYTHON (set by scripts/test), else a venv made here under target/.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("TETSU_PYTHON") {
        return p.into();
    }
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv");
    let python = venv.join("bin/python");
    let ready = std::process::Command::new(&python)
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            std::process::Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .unwrap()
                .success()
        );
        let pip = venv.join("bin/pip");
        assert!(
            std::process::Command::new(pip)
                .args(["install", "-q", "kubernetes"])
                .status()
                .unwrap()
                .success()
        );
    }
    python
}

/// An in-process apiserver on plain HTTP with its data under `dir`, for tests.
pub async fn spawn(dir: &std::path::Path) -> crate::server::InProcess {
    spawn_with(dir, |_| {}).await
}

/// [`spawn`] with `configure` applied to the configuration first.
pub async fn spawn_with(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut crate::server::Config),
) -> crate::server::InProcess {
    let mut config = crate::server::Config {
        data_dir: dir.join("data"),
        secure_port: 0,
        ..Default::default()
    };
    configure(&mut config);
    crate::server::spawn_in_process(config)
        .await
        .expect("start an in-process apiserver")
}

/// The issuer of [`service_accounts`]' tokens (and so their default audience).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Makes `config` issue and accept service-account tokens (TokenRequest, TokenReview) and
/// run the ServiceAccount admission plugin, with a new signing key written under `dir`.
pub fn service_accounts(config: &mut crate::server::Config, dir: &std::path::Path) {
    let key = rcgen::KeyPair::generate().expect("a P-256 key");
    std::fs::create_dir_all(dir).expect("the key's directory");
    let path = dir.join("sa.key");
    std::fs::write(&path, key.serialize_pem()).expect("write the service-account key");
    config.auth.service_account_issuer = Some(ISSUER.into());
    config.auth.service_account_signing_key_file = Some(path);
    config.admission.service_account = true;
}

/// Writes a kubeconfig for `server` (no credentials: the test servers do not check them).
pub fn write_kubeconfig(path: &std::path::Path, server: &str) {
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: t\n  context: {{cluster: t, user: t, namespace: default}}\ncurrent-context: t\nusers:\n- name: t\n  user: {{}}\n"
    );
    std::fs::write(path, config).expect("write the kubeconfig");
}

/// Runs real kubectl with `kubeconfig`, feeding `stdin`: (success, stdout, stderr).
pub async fn kubectl(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env(
            "HOME",
            kubeconfig.parent().unwrap_or(std::path::Path::new("/tmp")),
        )
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("piped");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .await
            .expect("kubectl's stdin");
    }
    drop(input);
    let out = child.wait_with_output().await.expect("kubectl's output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A minimal HTTP/1.1 JSON client for tests and benches (plain HTTP to the insecure port).
pub mod http {
    use bytes::Bytes;
    use futures::StreamExt;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use serde_json::Value;

    /// A pooled client; cheap to clone.
    #[derive(Clone)]
    pub struct HttpClient {
        inner: Client<HttpConnector, Full<Bytes>>,
        base: String,
    }

    impl HttpClient {
        pub fn new(base: &str) -> HttpClient {
            let inner = Client::builder(TokioExecutor::new()).build_http();
            HttpClient {
                inner,
                base: base.trim_end_matches('/').to_owned(),
            }
        }

        /// Sends a request; answers the status code and the JSON body (Null when empty).
        pub async fn send(
            &self,
            method: &str,
            path: &str,
            content_type: &str,
            body: Option<&Value>,
        ) -> anyhow::Result<(u16, Value)> {
            let bytes = body
                .map(serde_json::to_vec)
                .transpose()?
                .unwrap_or_default();
            let req = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .header("accept", "application/json")
                .body(Full::new(Bytes::from(bytes)))?;
            let resp = self.inner.request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            let value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body)?
            };
            Ok((status, value))
        }

        /// Sends raw bytes as the body (for malformed input).
        pub async fn send_raw(
            &self,
            method: &str,
            path: &str,
            content_type: &str,
            body: Vec<u8>,
        ) -> anyhow::Result<(u16, Value)> {
            let req = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))?;
            let resp = self.inner.request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Ok((status, value))
        }

        /// GET of a non-JSON endpoint (/metrics, /healthz): status and body text.
        pub async fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
            let req = hyper::Request::builder()
                .uri(format!("{}{path}", self.base))
                .body(Full::new(Bytes::new()))?;
            let resp = self.inner.request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        }

        pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
            self.send("GET", path, "application/json", None).await
        }

        pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
            self.send("POST", path, "application/json", Some(body))
                .await
        }

        /// Opens a watch and yields its events (`{"type":..,"object":..}`) as they arrive.
        pub async fn watch(
            &self,
            path: &str,
        ) -> anyhow::Result<futures::stream::BoxStream<'static, Value>> {
            let req = hyper::Request::builder()
                .uri(format!("{}{path}", self.base))
                .body(Full::new(Bytes::new()))?;
            let resp = self.inner.request(req).await?;
            anyhow::ensure!(
                resp.status().is_success(),
                "watch answered {}",
                resp.status()
            );
            let frames = resp.into_body().into_data_stream();
            let lines = futures::stream::unfold(
                (frames, Vec::<u8>::new()),
                |(mut frames, mut buf)| async move {
                    loop {
                        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buf.drain(..=i).collect();
                            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                                return Some((v, (frames, buf)));
                            }
                            continue;
                        }
                        match frames.next().await {
                            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                            _ => return None,
                        }
                    }
                },
            );
            Ok(Box::pin(lines))
        }
    }
}
