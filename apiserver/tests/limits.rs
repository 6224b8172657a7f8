//! Connections and load (issue #14, items 6 and 7) against real listeners and servers: half-sent
//! requests are disconnected, in-flight limits answer 429 with Retry-After (masters and probes
//! still pass), --request-timeout answers 504, a watcher that reads nothing is closed, and the
//! data dir, database and keys are owner-only whatever the umask.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use apiserver::conn::Timeouts;
use apiserver::server::Config;
use apiserver::testing::http::HttpClient;
use serde_json::json;
use support::free_port;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Generous: these tests must pass on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(90);

/// Reads until the peer closes (EOF or an error); None if it has not within PATIENCE.
async fn read_until_closed(io: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| out)
}

async fn wait_listening(port: u16) {
    tokio::time::timeout(PATIENCE, async {
        while TcpStream::connect((LOCALHOST, port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server listens");
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(common::tls::insecure_client())
}

async fn tls_connect(port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tls_connector()
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_connections_are_closed_on_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, secure) = (free_port(), free_port());
    let config = Config {
        data_dir: dir.path().join("data"),
        bind_address: LOCALHOST,
        secure_port: secure,
        insecure_port: Some(plain),
        advertise_address: Some(LOCALHOST),
        timeouts: Timeouts {
            header_read: Duration::from_secs(2),
            idle: Duration::from_secs(4),
        },
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(apiserver::server::run(config, async {
        let _ = stopped.await;
    }));
    wait_listening(plain).await;
    wait_listening(secure).await;

    // Positive control: whole requests are answered on both listeners.
    let whole = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut tcp = TcpStream::connect((LOCALHOST, plain)).await.unwrap();
    tcp.write_all(whole).await.unwrap();
    let answer = read_until_closed(&mut tcp).await.expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let mut tls = tls_connect(secure).await;
    tls.write_all(whole).await.unwrap();
    let answer = read_until_closed(&mut tls).await.expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // Half a request, then nothing.
    let half = b"GET / HTTP/1.1\r\nHost: x\r\n";
    let mut tcp = TcpStream::connect((LOCALHOST, plain)).await.unwrap();
    tcp.write_all(half).await.unwrap();
    assert!(
        read_until_closed(&mut tcp).await.is_some(),
        "plain: a half-sent request kept its connection"
    );
    let mut tls = tls_connect(secure).await;
    tls.write_all(half).await.unwrap();
    assert!(
        read_until_closed(&mut tls).await.is_some(),
        "TLS: a half-sent request kept its connection"
    );
    // Nothing at all: no bytes on the plain port, no handshake or no request on the TLS one.
    let mut silent = TcpStream::connect((LOCALHOST, plain)).await.unwrap();
    assert!(
        read_until_closed(&mut silent).await.is_some(),
        "plain: silent"
    );
    let mut silent = TcpStream::connect((LOCALHOST, secure)).await.unwrap();
    assert!(
        read_until_closed(&mut silent).await.is_some(),
        "TLS: no handshake"
    );
    let mut silent = tls_connect(secure).await;
    assert!(
        read_until_closed(&mut silent).await.is_some(),
        "TLS: no request"
    );
    // A keep-alive connection is closed once idle.
    let mut idle = TcpStream::connect((LOCALHOST, plain)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle).await.expect("idle closed");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    // An HTTP/2 connection too, once it has no stream open.
    let tcp = TcpStream::connect((LOCALHOST, plain)).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(
            hyper::Request::get(format!("http://127.0.0.1:{plain}/healthz"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .expect("an h2 answer");
    assert_eq!(response.status(), 200);
    drop(response);
    tokio::time::timeout(PATIENCE, connection)
        .await
        .expect("an idle h2 connection is closed")
        .unwrap()
        .ok();

    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

/// Sends the head of a POST of `length` bytes as `user` (impersonated by the trusted loopback
/// user) with only the first byte of its body: the handler waits for the rest.
async fn slow_post(addr: std::net::SocketAddr, user: Option<&str>) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let impersonate = user
        .map(|u| format!("Impersonate-User: {u}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n{impersonate}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

/// A whole request over a new connection: the status line and headers, then the body.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: &str,
) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let impersonate = user
        .map(|u| format!("Impersonate-User: {u}\r\n"))
        .unwrap_or_default();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{impersonate}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(text.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut tcp).await.expect("an answer");
    String::from_utf8_lossy(&answer).into_owned()
}

fn configmap(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string()
}

/// The value of `series` in /metrics.
async fn metric(client: &HttpClient, series: &str) -> Option<f64> {
    let (_, text) = client.get_text("/metrics").await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// Waits until /metrics has a line starting with `series` whose value is at least `at_least`.
async fn until_metric(client: &HttpClient, series: &str, at_least: f64) {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            if metric(client, series).await.is_some_and(|v| v >= at_least) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "{series} did not reach {at_least}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_requests_beyond_the_limit_get_429_but_masters_and_probes_pass() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.max_mutating_requests_inflight = 2;
        c.max_requests_inflight = 1;
    })
    .await;
    let client = HttpClient::new(&server.url());
    // Positive control: under the limit, alice's requests pass.
    let created = request(
        server.addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("alice"),
        &configmap("first"),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");

    let slow = [
        slow_post(server.addr, Some("alice")).await,
        slow_post(server.addr, Some("alice")).await,
    ];
    until_metric(
        &client,
        "apiserver_current_inflight_requests{request_kind=\"mutating\"}",
        2.0,
    )
    .await;
    let refused = request(
        server.addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("alice"),
        &configmap("second"),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{refused}"
    );
    assert!(
        refused.ends_with("Too many requests, please try again later.\n"),
        "{refused}"
    );
    // The loopback user is in system:masters; reads have their own slots; probes pass.
    let masters = request(
        server.addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        None,
        &configmap("third"),
    )
    .await;
    assert!(masters.starts_with("HTTP/1.1 201"), "{masters}");
    let read = request(
        server.addr,
        "GET",
        "/api/v1/namespaces/default/configmaps/first",
        Some("alice"),
        "",
    )
    .await;
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    let probe = request(server.addr, "GET", "/readyz", Some("alice"), "").await;
    assert!(probe.starts_with("HTTP/1.1 200"), "{probe}");

    // Gone slow clients free their slots.
    drop(slow);
    let created = tokio::time::timeout(PATIENCE, async {
        loop {
            let answer = request(
                server.addr,
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some("alice"),
                &configmap("fourth"),
            )
            .await;
            if !answer.starts_with("HTTP/1.1 429") {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("slots are freed");
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_request_timeout_gets_504() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.request_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = slow_post(server.addr, Some("alice")).await;
    // The connection closes too: the body that never came ends with the deadline.
    let answer = read_until_closed(&mut slow).await.expect("an answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let status: serde_json::Value = serde_json::from_str(body).expect("a Status");
    assert_eq!(status["reason"], "Timeout", "{status}");
    assert_eq!(status["code"], 504, "{status}");
    assert_eq!(
        status["message"],
        "Timeout: request did not complete within requested timeout - context deadline exceeded"
    );
    // Positive control: a quick request is answered.
    let client = HttpClient::new(&server.url());
    let (code, _) = client
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "quick"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_reads_nothing_is_closed() {
    /// Enough to fill the socket buffers and the queue on any machine.
    const AT_MOST: usize = 800;
    const TERMINATED: &str = "apiserver_terminated_watchers_total{resource=\"configmaps\"}";
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = HttpClient::new(&server.url());
    let mut watch = TcpStream::connect(server.addr).await.unwrap();
    watch
        .write_all(b"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // 250 KiB events until the watcher is closed: more than the socket buffers and the
    // watcher's queue hold.
    let data = "x".repeat(250 * 1024);
    let mut objects = 0;
    while objects < AT_MOST {
        if objects % 16 == 0 && metric(&client, TERMINATED).await.is_some_and(|v| v >= 1.0) {
            break;
        }
        let i = objects;
        objects += 1;
        let (code, body) = client
            .post(
                "/api/v1/namespaces/default/configmaps",
                &json!({"metadata": {"name": format!("big-{i}")}, "data": {"d": data}}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    until_metric(&client, TERMINATED, 1.0).await;
    // Its stream ended early: the server did not keep every event for it.
    let received = read_until_closed(&mut watch)
        .await
        .expect("the watch ended");
    let events = received
        .windows(b"\"type\":\"ADDED\"".len())
        .filter(|w| *w == b"\"type\":\"ADDED\"")
        .count();
    assert!(
        events < objects,
        "a watcher that read nothing got all {events} events"
    );
    // Positive control: a watcher that reads keeps up.
    let mut reading = client
        .watch("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=60")
        .await
        .unwrap();
    let mut seen = 0;
    while seen < objects {
        let event = tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut reading))
            .await
            .expect("events keep coming")
            .expect("the watch stays open");
        if event["type"] == "ADDED" {
            seen += 1;
        }
    }
    server.stop();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// kube-apiserver run under umask 000; killed on drop.
struct Umask000(std::process::Child);

impl Umask000 {
    fn start(data: &Path, port: u16) -> Umask000 {
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_kube-apiserver"))
            .arg("--data-dir")
            .arg(data)
            .args(["--bind-address", "127.0.0.1", "--secure-port"])
            .arg(port.to_string())
            .args(["--advertise-address", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start kube-apiserver");
        Umask000(child)
    }
}

impl Drop for Umask000 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_database_and_keys_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("state.db");
    let files = [
        db.clone(),
        data.join("state.db-wal"),
        data.join("state.db-shm"),
        data.join("certificates/apiserver.key"),
    ];
    let port = free_port();
    let server = Umask000::start(&data, port);
    wait_listening(port).await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("certificates")), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    drop(server);

    // Files an older version left open to others are narrowed when the server starts.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in &files {
        if f.exists() {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
    let port = free_port();
    let _server = Umask000::start(&data, port);
    wait_listening(port).await;
    assert_eq!(mode(&data), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}
