//! The kubelet binary: `kubelet images import` into a real containerd, and the node agent
//! registering a Node against a real apiserver with /healthz answering.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use kubelet::cri::Cri;
use kubelet::testing::Containerd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_images_registers_the_node_and_serves_healthz() {
    let containerd = Containerd::start().await;
    let out = Command::new(cluster_tests::bin("kubelet"))
        .args(["images", "import", "example.com/tools:1", "--address"])
        .arg(&containerd.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runtime = Cri::connect(&containerd.endpoint()).await.unwrap();
    assert!(
        runtime
            .image_status("example.com/tools:1")
            .await
            .unwrap()
            .is_some()
    );

    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let kubeconfig = dir.path().join("kubelet.conf");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let port = apiserver::testing::free_port();
    let api_port = apiserver::testing::free_port();
    let mut child = Command::new(cluster_tests::bin("kubelet"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--hostname-override",
            "node-a",
            "--node-ip",
            "10.1.2.3",
            "--healthz-port",
            &port.to_string(),
            "--address",
            "127.0.0.1",
            "--port",
            &api_port.to_string(),
        ])
        .arg("--container-runtime-endpoint")
        .arg(containerd.endpoint())
        .arg("--root-dir")
        .arg(dir.path().join("kubelet"))
        .arg("--pod-log-dir")
        .arg(dir.path().join("logs"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = Client::try_from(kube::Config::new(
        format!("http://{}", server.addr).parse().unwrap(),
    ))
    .unwrap();
    let nodes: Api<Node> = Api::all(client);
    let mut registered = None;
    for _ in 0..200 {
        if let Some(n) = nodes.get_opt("node-a").await.unwrap()
            && n.status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .is_some()
        {
            registered = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let node = registered.expect("node-a registered");
    let info = node.status.unwrap().node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{}",
        info.container_runtime_version
    );
    let health = http_get(port, "/healthz").await;
    assert_eq!(health.as_deref(), Some("ok"));
    // The kubelet API: HTTPS with a self-signed certificate kept under --root-dir/pki.
    assert!(dir.path().join("kubelet/pki/kubelet.crt").exists());
    let url: http::Uri = format!("https://127.0.0.1:{api_port}/healthz")
        .parse()
        .unwrap();
    let request = http::Request::get("/healthz")
        .body(axum::body::Body::empty())
        .unwrap();
    let answer = common::proxy::forward(request, &url, Some(common::tls::insecure_client()))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body = axum::body::to_bytes(answer.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"ok");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// GET over a plain TCP connection; the body, if the answer is 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..100 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.ok()?;
            return out.starts_with("HTTP/1.1 200").then(|| {
                out.split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_owned())
                    .unwrap_or_default()
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
