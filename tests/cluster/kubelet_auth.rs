//! The kubelet API secured as kubeadm secures it (--anonymous-auth=false, --client-ca-file,
//! --authentication-token-webhook, --authorization-mode Webhook) against the secure
//! apiserver: no credentials is 401, a certificate without rights 403 with upstream's words,
//! the apiserver's kubelet-client certificate and a bound service-account token pass. The
//! kubelet is the real one (`kubelet::run`) over a hollow runtime, its client the node's own
//! identity (system:node:NAME), which must be allowed its TokenReviews and
//! SubjectAccessReviews.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_tests::{SecureApiServer, certificate, kubectl, kubectl_until};
use kubelet::server::auth::{AuthConfig, Mode};

/// A kubelet API for node `name`, registered with the apiserver (InternalIP 127.0.0.1) and
/// secured as kubeadm configures it; answers its port.
async fn secured_kubelet(server: &SecureApiServer, name: &str) -> u16 {
    let kubeconfig = server.kubeconfig(&format!("system:node:{name}"), &["system:nodes"]);
    let dir = server.dir.path().join(name);
    let port = apiserver::testing::free_port();
    let config = kubelet::Config {
        runtime: kubelet::Runtime::Hollow,
        client_ca_file: Some(server.pki.path("ca.crt")),
        auth: AuthConfig {
            anonymous: false,
            token_webhook: true,
            mode: Mode::Webhook,
            ..AuthConfig::default()
        },
        ..kubelet::testing::config(name, kubeconfig, String::new(), &dir, port)
    };
    // Runs as long as the test.
    tokio::spawn(async move {
        let run = kubelet::run(config, std::future::pending());
        run.await.expect("the kubelet runs");
    });
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the kubelet API did not listen on {port}");
}

/// How a test calls the kubelet: a client certificate, a bearer token, or nothing.
#[derive(Clone, Copy)]
enum Credentials<'a> {
    None,
    Certificate(&'a Path, &'a Path),
    Token(&'a str),
}

/// `method` `path` on the kubelet at `port` (its self-signed certificate not verified), with
/// Python's urllib: (status code, body).
async fn call(port: u16, method: &str, path: &str, credentials: Credentials<'_>) -> (u16, String) {
    let script = "import ssl, sys, urllib.request, urllib.error\n\
ctx = ssl.create_default_context()\n\
ctx.check_hostname = False\n\
ctx.verify_mode = ssl.CERT_NONE\n\
if sys.argv[3]:\n    ctx.load_cert_chain(sys.argv[3], sys.argv[4])\n\
req = urllib.request.Request(sys.argv[2], method=sys.argv[1])\n\
if sys.argv[5]:\n    req.add_header('Authorization', 'Bearer ' + sys.argv[5])\n\
try:\n    r = urllib.request.urlopen(req, context=ctx); print(r.status); print(r.read().decode())\n\
except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
    let (cert, key, token) = match credentials {
        Credentials::None => (PathBuf::new(), PathBuf::new(), ""),
        Credentials::Certificate(c, k) => (c.to_owned(), k.to_owned(), ""),
        Credentials::Token(t) => (PathBuf::new(), PathBuf::new(), t),
    };
    let out = tokio::process::Command::new(apiserver::testing::python())
        .args(["-c", script, method])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .arg(cert)
        .arg(key)
        .arg(token)
        .output()
        .await
        .expect("run python");
    let (code, body) = cluster_tests::code_and_body(&out);
    (code, body.trim_end().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_api_refuses_anonymous_and_unauthorized_callers() {
    let server = SecureApiServer::start().await;
    let port = secured_kubelet(&server, "node-auth").await;

    // No credentials: 401 on every path, /healthz and unknown paths included (upstream's
    // kubelet filters everything on this port; its open health check is --healthz-port).
    for path in ["/pods", "/healthz", "/exec/default/p/c", "/no-such-path"] {
        let (code, body) = call(port, "GET", path, Credentials::None).await;
        assert_eq!((code, body.as_str()), (401, "Unauthorized"), "{path}");
    }
    // A bearer token the apiserver does not know, or a certificate from another CA: 401,
    // never anonymous.
    let (code, body) = call(port, "GET", "/pods", Credentials::Token("not-a-token")).await;
    assert_eq!((code, body.as_str()), (401, "Unauthorized"));
    let other = cluster_tests::other_pki(server.dir.path());
    let certs = server.dir.path().join("certs");
    let (cert, key) = certificate(&other, &certs, "mallory", &["system:masters"]);
    let (code, body) = call(port, "GET", "/pods", Credentials::Certificate(&cert, &key)).await;
    assert_eq!((code, body.as_str()), (401, "Unauthorized"));

    // A certificate from the cluster CA for a user with no rights: 403, upstream's words,
    // naming every subresource that was tried.
    let (cert, key) = certificate(&server.pki, &certs, "alice", &["developers"]);
    let alice = Credentials::Certificate(&cert, &key);
    let (code, body) = call(port, "GET", "/pods", alice).await;
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])"
        )
    );
    let (code, body) = call(port, "POST", "/exec/default/p/c?command=ls", alice).await;
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy])"
        )
    );
    let (code, body) = call(port, "GET", "/stats/summary", alice).await;
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[stats])"
        )
    );

    // nodes/stats granted to her group opens /stats, and only that.
    let admin = server.admin();
    let (ok, _, err) = kubectl(
        &admin,
        &[
            "create",
            "clusterrole",
            "node-stats",
            "--verb=get",
            "--resource=nodes/stats",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "developers-node-stats",
            "--clusterrole=node-stats",
            "--group=developers",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (_, out, _) = kubectl_until(
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "nodes",
            "--subresource=stats",
            "--as=alice",
            "--as-group=developers",
        ],
        |_, out, _| out.trim() == "yes",
    )
    .await;
    assert_eq!(out.trim(), "yes");
    // The earlier denial of /stats is cached for 30 s, as upstream caches it.
    let (code, _) = call(port, "GET", "/stats/summary", alice).await;
    assert_eq!(code, 403, "a denial is cached");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let (code, body) = call(port, "GET", "/stats/summary", alice).await;
    assert_eq!(code, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).expect("a stats Summary");
    assert_eq!(summary["node"]["nodeName"], "node-auth");
    let (code, _) = call(port, "GET", "/pods", alice).await;
    assert_eq!(code, 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_reaches_the_kubelet_with_its_client_certificate() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    // kubeadm init's bindings: kubeadm:cluster-admins (the apiserver-kubelet-client
    // certificate's group) is cluster-admin.
    let admin_client = common::client::client(Some(&admin))
        .await
        .expect("the admin client");
    kubeadm::bootstrap::rbac(&admin_client)
        .await
        .expect("kubeadm's bindings");
    let (_, out, _) = kubectl_until(
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "nodes",
            "--subresource=proxy",
            "--as=kube-apiserver-kubelet-client",
            "--as-group=kubeadm:cluster-admins",
        ],
        |_, out, _| out.trim() == "yes",
    )
    .await;
    assert_eq!(out.trim(), "yes");
    let port = secured_kubelet(&server, "node-proxied").await;

    // The certificate itself, presented directly.
    let (cert, key) = (
        server.pki.path("apiserver-kubelet-client.crt"),
        server.pki.path("apiserver-kubelet-client.key"),
    );
    let (code, body) = call(port, "GET", "/pods", Credentials::Certificate(&cert, &key)).await;
    assert_eq!(code, 200, "{body}");
    let pods: serde_json::Value = serde_json::from_str(&body).expect("a PodList");
    assert_eq!(pods["kind"], "PodList");

    // Through the apiserver: nodes/proxy, which dials the kubelet with that certificate.
    let (_, out, err) = kubectl_until(
        &admin,
        &["get", "--raw", "/api/v1/nodes/node-proxied/proxy/pods"],
        |ok, _, _| ok,
    )
    .await;
    let pods: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("a PodList: {out} {err}"));
    assert_eq!(pods["kind"], "PodList");
    let (ok, out, err) = kubectl(
        &admin,
        &["get", "--raw", "/api/v1/nodes/node-proxied/proxy/healthz"],
    )
    .await;
    assert!(ok && out.trim() == "ok", "{out} {err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_is_checked_with_a_token_review() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    for args in [
        &["create", "serviceaccount", "monitor"][..],
        &["create", "serviceaccount", "stranger"],
        &[
            "create",
            "clusterrole",
            "kubelet-proxy",
            "--verb=get",
            "--resource=nodes/proxy",
        ],
        &[
            "create",
            "clusterrolebinding",
            "monitor-kubelet-proxy",
            "--clusterrole=kubelet-proxy",
            "--serviceaccount=default:monitor",
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
            "nodes",
            "--subresource=proxy",
            "--as=system:serviceaccount:default:monitor",
        ],
        |_, out, _| out.trim() == "yes",
    )
    .await;
    assert_eq!(out.trim(), "yes");
    let port = secured_kubelet(&server, "node-tokens").await;

    // TokenRequest tokens (`kubectl create token`), checked by the kubelet with a
    // TokenReview as system:node:node-tokens.
    let (ok, token, err) = kubectl(&admin, &["create", "token", "monitor"]).await;
    assert!(ok, "{err}");
    let (code, body) = call(port, "GET", "/pods", Credentials::Token(token.trim())).await;
    assert_eq!(code, 200, "{body}");
    let pods: serde_json::Value = serde_json::from_str(&body).expect("a PodList");
    assert_eq!(pods["kind"], "PodList");
    // Only get was granted.
    let (code, body) = call(
        port,
        "POST",
        "/exec/default/p/c?command=ls",
        Credentials::Token(token.trim()),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=system:serviceaccount:default:monitor, verb=create, resource=nodes, subresource(s)=[proxy])"
        )
    );

    // A valid token of an account without the binding is authenticated, then forbidden.
    let (ok, token, err) = kubectl(&admin, &["create", "token", "stranger"]).await;
    assert!(ok, "{err}");
    let (code, body) = call(port, "GET", "/pods", Credentials::Token(token.trim())).await;
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=system:serviceaccount:default:stranger, verb=get, resource=nodes, subresource(s)=[pods proxy])"
        )
    );
    server.stop().await;
}
