//! kube-scheduler's secure port as kubeadm configures it (--client-ca-file, the delegated
//! kubeconfigs being its own), against the secure apiserver: /healthz, /readyz and /livez
//! answer without credentials; /metrics is refused to system:anonymous (403) and to a bad
//! token (401), and answered to the groups system:masters (not asked) and system:monitoring
//! (a client certificate) and to a service-account token bound to the system:monitoring
//! ClusterRole (TokenReview, then SubjectAccessReview, as system:kube-scheduler).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_tests::{SecureApiServer, certificate, kubectl, kubectl_until};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (status, body) of a GET on the component's port, with a client certificate or token.
async fn get(
    port: u16,
    path: &str,
    cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    token: Option<&str>,
) -> (u16, String) {
    let client =
        common::tls::insecure_client_with_identity(cert.map(|(c, k)| (c.as_path(), k.as_path())))
            .expect("a client configuration");
    common::health::https_get(port, path, client, token)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedulers_secure_port_authenticates_and_authorizes_with_the_apiserver() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    let kubeconfig = server.kubeconfig("system:kube-scheduler", &[]);
    let port = apiserver::testing::free_port();
    let dir = server.dir.path().to_owned();
    let child = Command::new(cluster_tests::hosts::bin_dir().join("kube-scheduler"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--client-ca-file")
        .arg(server.pki.path("ca.crt"))
        .arg("--cert-dir")
        .arg(dir.join("scheduler-certs"))
        .args([
            "--secure-port",
            &port.to_string(),
            "--bind-address",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kube-scheduler");
    let _scheduler = Process(child);
    let mut healthz = None;
    for _ in 0..100 {
        let client = common::tls::insecure_client();
        if let Ok(answer) = common::health::https_get(port, "/healthz", client, None).await {
            healthz = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        healthz.expect("kube-scheduler serves HTTPS"),
        (200, "ok".into())
    );
    for path in ["/readyz", "/livez"] {
        assert_eq!(
            get(port, path, None, None).await,
            (200, "ok".into()),
            "{path}"
        );
    }

    // Anonymous: authenticated as system:anonymous, then denied by the apiserver.
    let (code, body) = get(port, "/metrics", None, None).await;
    assert_eq!(code, 403, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
    // A token the apiserver does not know: 401, even where anonymous would pass.
    for path in ["/metrics", "/healthz"] {
        let (code, body) = get(port, path, None, Some("not-a-token")).await;
        assert_eq!(code, 401, "{path}: {body}");
    }
    // Client certificates: a user without rights, the monitoring group, the masters.
    let certs = dir.join("clients");
    let alice = certificate(&server.pki, &certs, "alice", &["developers"]);
    let (code, body) = get(port, "/metrics", Some(&alice), None).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("User \\\"alice\\\" cannot get path"),
        "{body}"
    );
    let prometheus = certificate(&server.pki, &certs, "prometheus", &["system:monitoring"]);
    let (code, body) = get(port, "/metrics", Some(&prometheus), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("scheduler_"), "{body}");
    let root = certificate(&server.pki, &certs, "root", &["system:masters"]);
    assert_eq!(get(port, "/metrics", Some(&root), None).await.0, 200);
    // A certificate from another CA is refused, not anonymous.
    let other = cluster_tests::other_pki(&dir);
    let mallory = certificate(&other, &certs, "mallory", &["system:masters"]);
    assert_eq!(get(port, "/healthz", Some(&mallory), None).await.0, 401);

    // A service-account token bound to system:monitoring: TokenReview, SubjectAccessReview.
    for args in [
        &["create", "serviceaccount", "prometheus"][..],
        &[
            "create",
            "clusterrolebinding",
            "prometheus-monitoring",
            "--clusterrole=system:monitoring",
            "--serviceaccount=default:prometheus",
        ],
    ] {
        let (ok, _, err) = kubectl(&admin, args).await;
        assert!(ok, "{args:?}: {err}");
    }
    let (_, out, _) = kubectl_until(
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "/metrics",
            "--as=system:serviceaccount:default:prometheus",
        ],
        |_, out, _| out.trim() == "yes",
    )
    .await;
    assert_eq!(out.trim(), "yes");
    let (ok, token, err) = kubectl(&admin, &["create", "token", "prometheus"]).await;
    assert!(ok, "{err}");
    let (code, body) = get(port, "/metrics", None, Some(token.trim())).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("scheduler_"), "{body}");
    server.stop().await;
}
