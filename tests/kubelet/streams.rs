//! The WebSocket stream protocols through the apiserver to the kubelet and a real containerd:
//! port-forward over v4.channel.k8s.io with several ports (a raw client and the Python
//! client) with upstream's refusals, and exec over v5.channel.k8s.io whose stdin ends
//! (a raw client and `kubectl exec -i`).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::support::{self, container_state, node};

fn running(p: &k8s_openapi::api::core::v1::Pod) -> Option<()> {
    container_state(p)?.state?.running.map(|_| ())
}

/// Opens a WebSocket to the apiserver's `path` offering `protocol`.
async fn open(
    n: &support::Node,
    path: &str,
    protocol: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let url = format!("{}{path}", n.api_url()).replacen("http", "ws", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The refusal a WebSocket handshake got: its code and its Status's message.
async fn refusal(n: &support::Node, path: &str) -> (u16, String) {
    match open(n, path, "v4.channel.k8s.io").await {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let status: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&body)));
            (
                response.status().as_u16(),
                status["message"].as_str().unwrap_or_default().to_owned(),
            )
        }
        other => panic!("expected a refusal for {path}, got {:?}", other.map(|_| ())),
    }
}

/// Waits until something listens on the host's `port` (the pods use the host's network).
async fn listening(port: u16) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_port_forward_carries_two_ports() {
    let mut n = node().await;
    n.serve_api();
    let (p1, p2) = (
        apiserver::testing::free_port(),
        apiserver::testing::free_port(),
    );
    let script = format!(
        "mkdir /w1 /w2; echo served on {p1} > /w1/index.html; echo served on {p2} > /w2/index.html; \
         httpd -p {p1} -h /w1; exec httpd -f -p {p2} -h /w2"
    );
    n.create(
        "web",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sh", "-c", script]}),
        json!({}),
    )
    .await;
    n.until("web", "Running", running).await;
    listening(p1).await;
    listening(p2).await;

    // A raw client: channels 0/1 are the first port's data and error, 2/3 the second's; the
    // first message on each is its port, little-endian.
    let path = format!("/api/v1/namespaces/default/pods/web/portforward?ports={p1},{p2}");
    let mut ws = open(&n, &path, "v4.channel.k8s.io").await.unwrap();
    let request = b"GET /index.html HTTP/1.0\r\n\r\n";
    for channel in [0u8, 2] {
        let mut message = vec![channel];
        message.extend_from_slice(request);
        ws.send(Message::binary(message)).await.unwrap();
    }
    let mut first: [Option<Vec<u8>>; 4] = Default::default();
    let mut data: [Vec<u8>; 2] = Default::default();
    let want = [
        format!("served on {p1}\n").into_bytes(),
        format!("served on {p2}\n").into_bytes(),
    ];
    let exchange = async {
        while !(data[0].ends_with(&want[0]) && data[1].ends_with(&want[1])) {
            let message = ws.next().await.expect("the session stays open").unwrap();
            let Message::Binary(bytes) = message else {
                continue;
            };
            let (channel, payload) = bytes.split_first().unwrap();
            let slot = &mut first[*channel as usize];
            if slot.is_none() {
                *slot = Some(payload.to_vec());
                continue;
            }
            assert!(
                channel % 2 == 0,
                "an error on channel {channel}: {payload:?}"
            );
            data[*channel as usize / 2].extend_from_slice(payload);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("answers through both ports: {data:?}"));
    for (channel, port) in [(0, p1), (1, p1), (2, p2), (3, p2)] {
        assert_eq!(
            first[channel].as_deref(),
            Some(&port.to_le_bytes()[..]),
            "channel {channel}"
        );
    }
    for d in &data {
        let text = String::from_utf8_lossy(d);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    }
    let _ = ws.close(None).await;

    // The Python client, which names its ports in `ports=`.
    n.kubectl(&["get", "pods"], None).await; // writes the kubeconfig
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kubelet/fixtures/portforward.py"
    );
    let python = tokio::process::Command::new(apiserver::testing::python())
        .arg(script)
        .arg(n.dir.path().join("kubeconfig"))
        .arg("web")
        .arg(p1.to_string())
        .arg(p2.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), python)
        .await
        .expect("the Python client finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        format!("{p1} HTTP/1.1 200 OK served on {p1}\n{p2} HTTP/1.1 200 OK served on {p2}\n")
    );

    // Upstream's refusals: the apiserver's decoding of `ports`, then the kubelet's checks.
    let base = "/api/v1/namespaces/default/pods/web/portforward";
    assert_eq!(
        refusal(&n, &format!("{base}?ports=http")).await,
        (
            400,
            "cannot convert to []int32: strconv.ParseUint: parsing \"http\": invalid syntax".into()
        )
    );
    assert_eq!(
        refusal(&n, &format!("{base}?ports=80,0")).await,
        (400, "port \"80,0\" must be > 0".into())
    );
    assert_eq!(
        refusal(&n, base).await,
        (400, "query parameter \"port\" is required".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_stdin_ends_over_websocket_v5() {
    let mut n = node().await;
    n.serve_api();
    n.create(
        "shell",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sleep", "3600"]}),
        json!({}),
    )
    .await;
    n.until("shell", "Running", running).await;

    // A raw v5 client: stdin, then the close signal for channel 0; `cat` ends, the rest of
    // the command runs (a large output, then an exit code), and the session closes.
    let command = "cat; head -c 300000 /dev/zero; echo err >&2; exit 5";
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("command", "sh"),
            ("command", "-c"),
            ("command", command),
            ("stdin", "true"),
            ("stdout", "true"),
            ("stderr", "true"),
        ])
        .finish();
    let path = format!("/api/v1/namespaces/default/pods/shell/exec?{query}");
    let mut ws = open(&n, &path, "v5.channel.k8s.io").await.unwrap();
    ws.send(Message::binary(b"\x00hi\n".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), Vec::new());
    let session = async {
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                Message::Binary(bytes) => {
                    let (channel, payload) = bytes.split_first().unwrap();
                    match channel {
                        1 => stdout.extend_from_slice(payload),
                        2 => stderr.extend_from_slice(payload),
                        3 => status.extend_from_slice(payload),
                        _ => {}
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), session)
        .await
        .expect("the exec ends once stdin is closed");
    assert!(stdout.starts_with(b"hi\n"), "{stdout:?}");
    assert_eq!(stdout.len(), 3 + 300_000);
    assert!(stdout[3..].iter().all(|b| *b == 0));
    assert_eq!(stderr, b"err\n");
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["message"], "5", "{status}");

    // A client that leaves without the close signal ends the process's stdin too.
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("command", "sh"),
            ("command", "-c"),
            ("command", "cat > /tmp/left; mv /tmp/left /tmp/left.done"),
            ("stdin", "true"),
            ("stdout", "true"),
        ])
        .finish();
    let path = format!("/api/v1/namespaces/default/pods/shell/exec?{query}");
    let mut ws = open(&n, &path, "v5.channel.k8s.io").await.unwrap();
    ws.send(Message::binary(b"\x00bye\n".to_vec()))
        .await
        .unwrap();
    ws.close(None).await.unwrap();
    drop(ws);
    n.kubectl(&["get", "pods"], None).await; // writes the kubeconfig
    let mut seen = String::new();
    for _ in 0..300 {
        let (ok, out, _) = n
            .kubectl(&["exec", "shell", "--", "cat", "/tmp/left.done"], None)
            .await;
        if ok {
            seen = out;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, "bye\n", "cat never saw the end of its stdin");

    // kubectl (v5 first): `echo hi | kubectl exec -i shell -- cat` prints hi and ends.
    let mut kubectl = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", n.dir.path().join("kubeconfig"))
        .args(["exec", "-i", "shell", "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = kubectl.stdin.take().unwrap();
        stdin.write_all(b"hi\n").await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(60), kubectl.wait_with_output())
        .await
        .expect("kubectl exec -i ends with its stdin")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}
