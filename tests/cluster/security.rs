//! Security as a user meets it through real kubectl: anonymous requests, users without
//! bindings, RBAC grants and `kubectl auth can-i`, the Node authorizer's limits on kubelets,
//! service-account and bootstrap tokens, and client certificates from another CA.

use cluster_tests::{ISSUER, SecureApiServer, kubectl, kubectl_until};

fn pod_using_secret(name: &str, node: &str, secret: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
            "spec": {{"nodeName": "{node}", "containers": [{{"name": "c", "image": "busybox",
            "env": [{{"name": "S", "valueFrom": {{"secretKeyRef": {{"name": "{secret}", "key": "k"}}}}}}]}}]}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_get_what_their_identity_and_bindings_allow() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();

    // Anonymous: health and version are public; resources are 401.
    let (code, body) = server.anonymous_get("/version").await;
    assert!(code == 200 && body.contains("gitVersion"), "{code} {body}");
    let (code, body) = server.anonymous_get("/healthz").await;
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = server
        .anonymous_get("/api/v1/namespaces/default/pods")
        .await;
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["reason"], "Unauthorized");
    // Discovery is for authenticated users only (system:discovery), as upstream.
    let (code, _) = server.anonymous_get("/apis").await;
    assert_eq!(code, 403);
    let bogus = server.token_kubeconfig("bogus", "not-a-token");
    let (ok, _, err) = kubectl(&bogus, &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains("error: You must be logged in to the server"),
        "{err}"
    );

    // A user with no bindings is forbidden, with upstream's message.
    let bob = server.kubeconfig("bob", &["developers"]);
    let (ok, _, err) = kubectl(&bob, &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    let (_, out, _) = kubectl(&bob, &["auth", "can-i", "list", "pods"]).await;
    assert_eq!(out.trim(), "no");
    let (ok, out, err) = kubectl(&bob, &["auth", "whoami", "-o", "json"]).await;
    assert!(ok, "{err}");
    let who: serde_json::Value = serde_json::from_str(&out).expect("SelfSubjectReview JSON");
    assert_eq!(who["status"]["userInfo"]["username"], "bob");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!(["developers", "system:authenticated"])
    );

    // The super-admin grants the group view in default: reads work, writes do not.
    let (ok, _, err) = kubectl(
        &admin,
        &[
            "create",
            "rolebinding",
            "dev-view",
            "--clusterrole=view",
            "--group=developers",
            "-n",
            "default",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (_, out, _) = kubectl_until(&bob, &["auth", "can-i", "list", "pods"], |_, out, _| {
        out.trim() == "yes"
    })
    .await;
    assert_eq!(
        out.trim(),
        "yes",
        "the aggregated view role grants list pods"
    );
    let (ok, _, err) = kubectl(&bob, &["get", "pods"]).await;
    assert!(ok, "{err}");
    let (_, out, _) = kubectl(&bob, &["auth", "can-i", "create", "deployments"]).await;
    assert_eq!(out.trim(), "no");
    let (_, out, _) = kubectl(
        &bob,
        &["auth", "can-i", "list", "pods", "-n", "kube-system"],
    )
    .await;
    assert_eq!(out.trim(), "no");
    let (ok, _, err) = kubectl(&bob, &["create", "configmap", "x", "--from-literal=a=b"]).await;
    assert!(
        !ok && err
            .contains(r#"configmaps is forbidden: User "bob" cannot create resource "configmaps""#),
        "{err}"
    );

    // The Python client with bob's certificate: allowed where bound, 403 elsewhere.
    let script = "import sys\nfrom kubernetes import client, config\n\
config.load_kube_config(config_file=sys.argv[1])\nv1 = client.CoreV1Api()\n\
print(len(v1.list_namespaced_pod('default').items))\n\
try:\n    v1.list_namespaced_pod('kube-system')\nexcept client.exceptions.ApiException as e:\n    print(e.status, e.reason)\n";
    let out = tokio::process::Command::new(apiserver::testing::python())
        .args(["-c", script])
        .arg(&bob)
        .output()
        .await
        .expect("run python");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0\n403 Forbidden\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The super-admin may act as bob; bob may not act as anyone.
    let (_, out, _) = kubectl(
        &admin,
        &[
            "auth",
            "can-i",
            "create",
            "configmaps",
            "--as=bob",
            "--as-group=developers",
        ],
    )
    .await;
    assert_eq!(out.trim(), "no");
    let (_, out, _) = kubectl(
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "pods",
            "--as=bob",
            "--as-group=developers",
        ],
    )
    .await;
    assert_eq!(out.trim(), "yes");
    let (ok, _, err) = kubectl(&bob, &["get", "pods", "--as=kubernetes-super-admin"]).await;
    assert!(
        !ok && err.contains(r#"users "kubernetes-super-admin" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );

    // A certificate from another CA is refused, whatever it claims.
    let ca = std::fs::read_to_string(server.pki.path("ca.crt")).unwrap();
    let mallory = cluster_tests::foreign_kubeconfig(server.dir.path(), &server.url, &ca);
    let (ok, _, err) = kubectl(&mallory, &["get", "namespaces"]).await;
    assert!(!ok);
    assert!(err.contains("You must be logged in to the server"), "{err}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelets_read_only_the_secrets_of_their_pods() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    for secret in ["s1", "s2"] {
        let (ok, _, err) = kubectl(
            &admin,
            &["create", "secret", "generic", secret, "--from-literal=k=v"],
        )
        .await;
        assert!(ok, "{err}");
    }
    for (pod, node, secret) in [("p1", "n1", "s1"), ("p2", "n2", "s2")] {
        let manifest = pod_using_secret(pod, node, secret);
        let (ok, _, err) =
            apiserver::testing::kubectl(&admin, &["create", "-f", "-"], Some(&manifest)).await;
        assert!(ok, "{err}");
    }
    let n1 = server.kubeconfig("system:node:n1", &["system:nodes"]);
    let (ok, out, err) =
        kubectl_until(&n1, &["get", "secret", "s1", "-o", "name"], |ok, _, _| ok).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "secret/s1");
    let (ok, _, err) = kubectl(&n1, &["get", "secret", "s2"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"secrets "s2" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#),
        "{err}"
    );
    let (ok, _, err) = kubectl(&n1, &["get", "secrets"]).await;
    assert!(!ok && err.contains("(Forbidden)"), "{err}");
    // A kubelet reads the pods bound to it (listed with its spec.nodeName selector, as
    // upstream's AuthorizeNodeWithSelectors) and writes its own Node, not another's.
    let (ok, out, err) = kubectl(
        &n1,
        &[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=n1",
            "-o",
            "name",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "pod/p1");
    let (ok, _, err) = kubectl(&n1, &["get", "pods"]).await;
    assert!(
        !ok && err.contains("can only list/watch pods with spec.nodeName field selector"),
        "{err}"
    );
    let (ok, _, err) = kubectl(&n1, &["get", "pod", "p2"]).await;
    assert!(
        !ok && err.contains("no relationship found between node 'n1'"),
        "{err}"
    );
    for node in ["n1", "n2"] {
        let node =
            format!(r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "{node}"}}}}"#);
        let (ok, _, err) =
            apiserver::testing::kubectl(&admin, &["create", "-f", "-"], Some(&node)).await;
        assert!(ok, "{err}");
    }
    let (ok, _, err) = kubectl(&n1, &["label", "node", "n1", "a=b"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl(&n1, &["label", "node", "n2", "a=b"]).await;
    assert!(!ok && err.contains("(Forbidden)"), "{err}");

    // The kubelet's own client (kube-rs over rustls with its certificate): its Lease, not
    // another node's.
    use k8s_openapi::api::coordination::v1::Lease;
    let client = common::client::client(Some(&n1)).await.expect("a client");
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "kube-node-lease");
    for (name, allowed) in [("n1", true), ("n2", false)] {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "spec": {"holderIdentity": name},
        }))
        .unwrap();
        let result = leases.create(&Default::default(), &lease).await;
        match (allowed, result) {
            (true, Ok(_)) => {}
            (false, Err(kube::Error::Api(status))) => assert_eq!(status.code, 403),
            (_, other) => panic!("lease {name}: {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_for_signature_audience_expiry_and_owner() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    let (ok, _, err) = kubectl(&admin, &["create", "serviceaccount", "builder"]).await;
    assert!(ok, "{err}");
    let (ok, token, err) =
        kubectl_until(&admin, &["create", "token", "builder"], |ok, _, _| ok).await;
    assert!(ok, "{err}");
    let sa = server.token_kubeconfig("builder", token.trim());
    let (ok, out, err) = kubectl(
        &sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "system:serviceaccount:default:builder");
    let (_, out, _) = kubectl(&sa, &["auth", "can-i", "list", "pods"]).await;
    assert_eq!(out.trim(), "no");

    // Another audience, an expired token, a forged signature: all 401.
    let (ok, other_audience, err) = kubectl(
        &admin,
        &["create", "token", "builder", "--audience", "vault"],
    )
    .await;
    assert!(ok, "{err}");
    let tokens = apiserver::auth::tokens::ServiceAccountTokens::load(
        Some(&server.pki.path("sa.key")),
        &[],
        ISSUER.into(),
        vec![],
    )
    .unwrap();
    let (_, uid, _) = kubectl(
        &admin,
        &["get", "sa", "builder", "-o", "jsonpath={.metadata.uid}"],
    )
    .await;
    let binding = apiserver::auth::tokens::Binding {
        namespace: "default",
        service_account: ("builder", uid.trim()),
        pod: None,
        node: None,
    };
    let (expired, _) = tokens.issue(&binding, &[ISSUER.into()], -60).unwrap();
    let (fresh, _) = tokens.issue(&binding, &[ISSUER.into()], 600).unwrap();
    let forged = format!("{}AAAA", &fresh[..fresh.len() - 4]);
    for (name, token) in [
        ("audience", other_audience.trim()),
        ("expired", &expired),
        ("forged", &forged),
    ] {
        let config = server.token_kubeconfig(name, token);
        let (ok, _, err) = kubectl(&config, &["get", "pods"]).await;
        assert!(
            !ok && err.contains("You must be logged in to the server"),
            "{name}: {err}"
        );
    }
    let config = server.token_kubeconfig("fresh", &fresh);
    let (ok, _, err) = kubectl(&config, &["auth", "whoami"]).await;
    assert!(ok, "{err}");
    // A deleted service account's tokens stop working.
    let (ok, _, err) = kubectl(&admin, &["delete", "serviceaccount", "builder"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl_until(&sa, &["auth", "whoami"], |ok, _, _| !ok).await;
    assert!(
        !ok && err.contains("You must be logged in to the server"),
        "{err}"
    );

    // Bootstrap tokens: valid until their expiration.
    for (id, expiration) in [
        ("abcdef", "2099-01-01T00:00:00Z"),
        ("zzzzzz", "2001-01-01T00:00:00Z"),
    ] {
        let secret = format!(
            r#"{{"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                "metadata": {{"name": "bootstrap-token-{id}", "namespace": "kube-system"}},
                "stringData": {{"token-id": "{id}", "token-secret": "0123456789abcdef",
                    "expiration": "{expiration}", "usage-bootstrap-authentication": "true",
                    "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}}}}"#
        );
        let (ok, _, err) =
            apiserver::testing::kubectl(&admin, &["create", "-f", "-"], Some(&secret)).await;
        assert!(ok, "{err}");
    }
    let joiner = server.token_kubeconfig("joiner", "abcdef.0123456789abcdef");
    let (ok, out, err) =
        kubectl_until(&joiner, &["auth", "whoami", "-o", "json"], |ok, _, _| ok).await;
    assert!(ok, "{err}");
    let who: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!([
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ])
    );
    // As kubeadm binds it, the joining kubelet may ask for its certificate; the server
    // records who asked.
    let (ok, _, err) = kubectl(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "kubeadm:kubelet-bootstrap",
            "--clusterrole=system:node-bootstrapper",
            "--group=system:bootstrappers:kubeadm:default-node-token",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:n1");
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    use base64::Engine;
    let csr = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "node-csr-n1"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(request),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
            "username": "someone-else",
        },
    });
    let (ok, _, err) = kubectl_until(
        &joiner,
        &["auth", "can-i", "create", "certificatesigningrequests"],
        |_, out, _| out.trim() == "yes",
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) =
        apiserver::testing::kubectl(&joiner, &["create", "-f", "-"], Some(&csr.to_string())).await;
    assert!(ok, "{err}");
    let (_, out, _) = kubectl(
        &admin,
        &[
            "get",
            "csr",
            "node-csr-n1",
            "-o",
            "jsonpath={.spec.username}",
        ],
    )
    .await;
    assert_eq!(out, "system:bootstrap:abcdef");

    let expired = server.token_kubeconfig("expired-join", "zzzzzz.0123456789abcdef");
    let (ok, _, err) = kubectl(&expired, &["auth", "whoami"]).await;
    assert!(
        !ok && err.contains("You must be logged in to the server"),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_may_read_cluster_info_when_rbac_allows_and_nothing_else() {
    let server = SecureApiServer::start().await;
    let admin = server.admin();
    for (name, data) in [("cluster-info", "kubeconfig=k"), ("other", "a=b")] {
        let (ok, _, err) = kubectl(
            &admin,
            &[
                "create",
                "configmap",
                name,
                "-n",
                "kube-public",
                &format!("--from-literal={data}"),
            ],
        )
        .await;
        assert!(ok, "{err}");
    }
    let cluster_info = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

    // kubeadm join's discovery read reaches RBAC as system:anonymous: no Role, 403.
    let (code, body) = server.anonymous_get(cluster_info).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\""#),
        "{body}"
    );

    // kubeadm's Role and RoleBinding allow it.
    let grants: [&[&str]; 2] = [
        &[
            "create",
            "role",
            "kubeadm:bootstrap-signer-clusterinfo",
            "-n",
            "kube-public",
            "--verb=get",
            "--resource=configmaps",
            "--resource-name=cluster-info",
        ],
        &[
            "create",
            "rolebinding",
            "kubeadm:bootstrap-signer-clusterinfo",
            "-n",
            "kube-public",
            "--role=kubeadm:bootstrap-signer-clusterinfo",
            "--user=system:anonymous",
        ],
    ];
    for args in grants {
        let (ok, _, err) = kubectl(&admin, args).await;
        assert!(ok, "{err}");
    }
    let mut last = (0, String::new());
    for _ in 0..50 {
        last = server.anonymous_get(cluster_info).await;
        if last.0 != 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, body) = last;
    assert_eq!(code, 200, "{body}");
    let cm: serde_json::Value = serde_json::from_str(&body).expect("a ConfigMap");
    assert_eq!(cm["data"]["kubeconfig"], "k");

    // Anything else without credentials is still 401: another ConfigMap, a list or watch of
    // cluster-info, a write.
    for path in [
        "/api/v1/namespaces/kube-public/configmaps/other",
        "/api/v1/namespaces/kube-public/configmaps",
        "/api/v1/namespaces/kube-public/configmaps?fieldSelector=metadata.name%3Dcluster-info",
        "/api/v1/namespaces/kube-public/configmaps/cluster-info?watch=true",
        "/api/v1/watch/namespaces/kube-public/configmaps/cluster-info",
    ] {
        let (code, body) = server.anonymous_get(path).await;
        assert_eq!(code, 401, "{path}: {body}");
    }
    server.stop().await;
}
