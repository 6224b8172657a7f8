//! Kubelet TLS bootstrapping as `kubeadm join` drives it: a bootstrap token, kubeadm's two
//! bindings, the controller-manager's csrapproving and csrsigning, and a kubelet that comes
//! up with its own certificate (system:node:NAME) under Node,RBAC authorization.

use std::time::Duration;

use cluster_tests::{SecureApiServer, kubectl, kubectl_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_gets_its_certificate_with_a_bootstrap_token_and_registers() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    let token_secret = r#"{"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}}"#;
    let (ok, _, err) =
        apiserver::testing::kubectl(&admin, &["create", "-f", "-"], Some(token_secret)).await;
    assert!(ok, "{err}");
    let group = "--group=system:bootstrappers:kubeadm:default-node-token";
    for (binding, role) in [
        ("kubeadm:kubelet-bootstrap", "system:node-bootstrapper"),
        (
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        ),
    ] {
        let role = format!("--clusterrole={role}");
        let (ok, _, err) = kubectl(
            &admin,
            &["create", "clusterrolebinding", binding, &role, group],
        )
        .await;
        assert!(ok, "{err}");
    }
    let manager = common::client::client(Some(&admin)).await.unwrap();
    let flags = ["csrapproving".to_owned(), "csrsigning".to_owned()];
    let enabled = controller_manager::controllers::enabled(&flags).unwrap();
    let options = controller_manager::runtime::Options {
        cluster_signing_cert_file: Some(server.pki.path("ca.crt")),
        cluster_signing_key_file: Some(server.pki.path("ca.key")),
        ..Default::default()
    };
    let _controllers = controller_manager::start(manager, options, &enabled)
        .await
        .unwrap();

    // The kubelet's side: bootstrap credentials in, its own kubeconfig out.
    let bootstrap = server.token_kubeconfig("bootstrap-kubelet", "abcdef.0123456789abcdef");
    let kubeconfig = server.dir.path().join("kubelet/kubelet.conf");
    let cert_dir = server.dir.path().join("kubelet/pki");
    // The bindings reach the authorizer through the watch cache: wait until they apply.
    let (_, out, _) = kubectl_until(
        &bootstrap,
        &["auth", "can-i", "create", "certificatesigningrequests"],
        |_, out, _| out.trim() == "yes",
    )
    .await;
    assert_eq!(out.trim(), "yes");
    kubelet::bootstrap::ensure_kubeconfig(
        &kubeconfig,
        &bootstrap,
        "worker0",
        &cert_dir,
        Duration::from_secs(30),
    )
    .await
    .expect("a signed client certificate");
    let (ok, out, err) = kubectl(&kubeconfig, &["auth", "whoami", "-o", "json"]).await;
    assert!(ok, "{err}");
    let who: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "system:node:worker0");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!(["system:nodes", "system:authenticated"])
    );
    let (_, out, _) = kubectl(
        &admin,
        &["get", "csr", "-o", "jsonpath={.items[0].spec.username}"],
    )
    .await;
    assert_eq!(out, "system:bootstrap:abcdef");

    // A (hollow) kubelet with that kubeconfig registers its Node and keeps its Lease.
    let client = common::client::client(Some(&kubeconfig)).await.unwrap();
    let mut config = kubelet::hollow::HollowConfig::new(1);
    config.name_prefix = "worker".into();
    let node = tokio::spawn(kubelet::hollow::run(vec![client], config));
    let (ok, out, err) = kubectl_until(
        &admin,
        &[
            "get",
            "node",
            "worker0",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ],
        |ok, out, _| ok && out == "True",
    )
    .await;
    assert!(ok && out == "True", "{out} {err}");
    let (ok, out, err) = kubectl_until(
        &admin,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "worker0",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        |ok, _, _| ok,
    )
    .await;
    assert!(ok && out == "worker0", "{out} {err}");
    node.abort();
    server.stop().await;
}
