//! Attacks on an apiserver configured as kubeadm configures it (client certificates,
//! Node,RBAC, service-account and bootstrap tokens), one group per hole of issue #14, each
//! with upstream's expected answer and a positive control: the same identity doing what it may,
//! so that a server refusing everything cannot pass.

use base64::Engine;
use cluster_tests::{RawClient, SecureApiServer};
use serde_json::{Value, json};

/// The value every Secret of these tests holds; no answer to an attacker may contain it.
const SECRET: &str = "the-crown-jewels";

fn secret_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(SECRET)
}

fn assert_no_leak(what: &str, body: &str) {
    assert!(
        !body.contains(&secret_b64()) && !body.contains(SECRET),
        "{what} leaked a secret: {body}"
    );
}

async fn namespace(admin: &RawClient, name: &str) {
    admin
        .create(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await;
}

async fn secret(admin: &RawClient, ns: &str, name: &str) {
    secret_holding(admin, ns, name, SECRET).await;
}

async fn secret_holding(admin: &RawClient, ns: &str, name: &str, value: &str) {
    let value = base64::engine::general_purpose::STANDARD.encode(value);
    admin
        .create(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                   "data": {"k": value}}),
        )
        .await;
}

/// A RoleBinding `name` of the `role_kind` `role` to the user `user`.
fn role_binding(name: &str, role_kind: &str, role: &str, user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

/// Binds `user` to a role: a ClusterRole `role` in `namespace` (a RoleBinding), or cluster-wide
/// when `namespace` is empty.
async fn bind(admin: &RawClient, namespace: &str, name: &str, role: &str, user: &str) {
    let mut binding = role_binding(name, "ClusterRole", role, user);
    let path = if namespace.is_empty() {
        binding["kind"] = json!("ClusterRoleBinding");
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_owned()
    } else {
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings")
    };
    admin.create(&path, binding).await;
}

async fn cluster_role(admin: &RawClient, name: &str, rules: Value) {
    admin
        .create(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": name}, "rules": rules}),
        )
        .await;
}

/// Retries `f` until it answers `code` (RBAC follows the watch cache), returning the last answer.
async fn eventually<F, Fut>(code: u16, mut f: F) -> (u16, String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, String)>,
{
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = f().await;
        if last.0 == code {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

fn continue_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("a list");
    v["metadata"]["continue"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn token(v: Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Item 1: a continue token continues only the list it was issued for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_tokens_cannot_reach_other_lists() {
    let server = SecureApiServer::start().await;
    let admin = server.raw_client("admin", &["system:masters"]).await;
    for ns in ["a", "b"] {
        namespace(&admin, ns).await;
        secret(&admin, ns, "s").await;
        for sa in ["sa1", "sa2", "sa3"] {
            admin
                .create(
                    &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}),
                )
                .await;
        }
    }
    bind(&admin, "a", "viewer", "view", "viewer").await;
    let viewer = server.raw_client("viewer", &[]).await;
    let list = "/api/v1/namespaces/a/serviceaccounts?limit=1";

    // Positive control: paging through the list the token came from works.
    let (code, first) = eventually(200, || viewer.get(list)).await;
    assert_eq!(code, 200, "{first}");
    let next = continue_of(&first);
    assert!(!next.is_empty(), "{first}");
    let (code, second) = viewer.get(&format!("{list}&continue={next}")).await;
    assert_eq!(code, 200, "{second}");
    assert!(second.contains("sa2"), "{second}");

    // Forged tokens: climbing out of the prefix, an absolute key, the old format.
    let rv: Value = serde_json::from_str(&first).unwrap();
    let rv: i64 = rv["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let forged = [
        token(
            json!({"v": "meta.k8s.io/v1", "rv": rv, "start": "../../secrets/", "list": "/serviceaccounts/a/"}),
        ),
        token(
            json!({"v": "meta.k8s.io/v1", "rv": rv, "start": "/registry/secrets/", "list": "/serviceaccounts/a/"}),
        ),
        base64::engine::general_purpose::URL_SAFE
            .encode(json!({"rv": rv, "start": "/registry/secrets/"}).to_string()),
        token(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": "sa2\u{0}"})),
        token(json!({"v": "meta.k8s.io/v2", "rv": rv, "start": "sa2"})),
        "not-base64!".to_owned(),
    ];
    for t in &forged {
        let (code, body) = viewer.get(&format!("{list}&continue={t}")).await;
        assert_eq!(code, 400, "token {t}: {body}");
        let status: Value = serde_json::from_str(&body).expect("a Status");
        assert_eq!(status["reason"], "BadRequest");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("continue key is not valid"),
            "{body}"
        );
        assert_no_leak("a forged continue token", &body);
    }

    // A real token, but of another list: another namespace, another resource, all namespaces.
    let (_, admin_page) = admin
        .get("/api/v1/namespaces/b/serviceaccounts?limit=1")
        .await;
    let other_ns = continue_of(&admin_page);
    let (code, body) = viewer.get(&format!("{list}&continue={other_ns}")).await;
    assert_eq!(code, 400, "{body}");
    for path in [
        "/api/v1/namespaces/a/configmaps?limit=1",
        "/api/v1/namespaces/a/secrets?limit=1",
        "/api/v1/serviceaccounts?limit=1",
    ] {
        let (code, body) = admin.get(&format!("{path}&continue={next}")).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert_no_leak(path, &body);
    }
    // With a token, resourceVersion is refused, as upstream.
    let (code, body) = viewer
        .get(&format!("{list}&continue={next}&resourceVersion=5"))
        .await;
    assert_eq!(code, 400, "{body}");
    server.stop().await;
}

/// Item 2: RBAC escalation prevention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_writers_cannot_grant_what_they_do_not_hold() {
    let server = SecureApiServer::start().await;
    let admin = server.raw_client("admin", &["system:masters"]).await;
    namespace(&admin, "a").await;
    secret(&admin, "a", "s").await;
    // The binder may write every RBAC object, and nothing else.
    cluster_role(
        &admin,
        "rbac-writer",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"],
                "verbs": ["create", "update", "patch", "get", "list"]}]),
    )
    .await;
    bind(&admin, "", "binder-writes-rbac", "rbac-writer", "binder").await;
    let binder = server.raw_client("binder", &["team"]).await;
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    // Wait until the binder's grant is in force, so a 403 below is the escalation check's.
    let roles = format!("{rbac}/clusterroles");
    let (code, body) = eventually(200, || binder.get(&roles)).await;
    assert_eq!(code, 200, "{body}");

    let mut crb_to_admin = role_binding("me-admin", "ClusterRole", "cluster-admin", "binder");
    crb_to_admin["kind"] = json!("ClusterRoleBinding");
    let bindings = format!("{rbac}/clusterrolebindings");
    let (code, body) = eventually(403, || binder.json_text("POST", &bindings, &crb_to_admin)).await;
    assert_eq!(code, 403, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "Forbidden");
    assert!(
        status["message"].as_str().unwrap().starts_with(
            "clusterrolebindings.rbac.authorization.k8s.io \"me-admin\" is forbidden: user \"binder\" (groups=[\"team\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"
        ),
        "{body}"
    );
    // A RoleBinding to admin in a namespace, a Role reading Secrets, an aggregating ClusterRole.
    let rb_admin = role_binding("me-ns-admin", "ClusterRole", "admin", "binder");
    let (code, body) = binder
        .json(
            "POST",
            &format!("{rbac}/namespaces/a/rolebindings"),
            &rb_admin,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.to_string().contains("not currently held"), "{body}");
    let secret_reader = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]});
    let (code, body) = binder
        .json(
            "POST",
            &format!("{rbac}/namespaces/a/roles"),
            &secret_reader,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.to_string()
            .contains(r#"{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"#),
        "{body}"
    );
    let aggregating = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "gatherer"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}, "rules": []});
    let (code, body) = binder
        .json("POST", &format!("{rbac}/clusterroles"), &aggregating)
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.to_string()
            .contains("must have cluster-admin privileges to use the aggregationRule"),
        "{body}"
    );

    // Positive controls: what the binder holds it may grant, and bind itself to.
    let own = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "rbac-lister"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["list"]}]});
    let (code, body) = binder
        .json("POST", &format!("{rbac}/namespaces/a/roles"), &own)
        .await;
    assert_eq!(code, 201, "{body}");
    // Updating it to add Secrets is refused too; a patch the same way.
    let mut grown = body.clone();
    grown["rules"][0]["resources"] = json!(["roles", "secrets"]);
    let (code, answer) = binder
        .json(
            "PUT",
            &format!("{rbac}/namespaces/a/roles/rbac-lister"),
            &grown,
        )
        .await;
    assert_eq!(code, 403, "{answer}");
    let patch = json!([{"op": "add", "path": "/rules/0/resources/-", "value": "secrets"}]);
    let (code, answer) = binder
        .send(
            "PATCH",
            &format!("{rbac}/namespaces/a/roles/rbac-lister"),
            "application/json-patch+json",
            patch.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 403, "{answer}");
    let bind_own = role_binding("lister", "Role", "rbac-lister", "binder");
    let (code, body) = binder
        .json(
            "POST",
            &format!("{rbac}/namespaces/a/rolebindings"),
            &bind_own,
        )
        .await;
    assert_eq!(code, 201, "{body}");

    // `bind` on one ClusterRole lets the binder bind exactly that one; `escalate` on roles lets
    // it write any Role.
    cluster_role(
        &admin,
        "may-bind-view",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                "verbs": ["bind"], "resourceNames": ["view"]},
               {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                "verbs": ["escalate"]}]),
    )
    .await;
    bind(&admin, "", "binder-binds-view", "may-bind-view", "binder").await;
    let mut view = rb_admin.clone();
    view["metadata"]["name"] = json!("me-view");
    view["roleRef"]["name"] = json!("view");
    let rolebindings = format!("{rbac}/namespaces/a/rolebindings");
    let (code, body) = eventually(201, || binder.json_text("POST", &rolebindings, &view)).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = binder
        .json(
            "POST",
            &format!("{rbac}/namespaces/a/rolebindings"),
            &rb_admin,
        )
        .await;
    assert_eq!(
        code, 403,
        "binding admin still needs its permissions: {body}"
    );
    let (code, body) = binder
        .json(
            "POST",
            &format!("{rbac}/namespaces/a/roles"),
            &secret_reader,
        )
        .await;
    assert_eq!(code, 201, "escalate allows it: {body}");
    // Removing the aggregationRule of admin (which would empty every namespace admin's
    // grant) needs cluster-admin too.
    let emptied = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "admin"}, "rules": []});
    let (code, body) = binder
        .json("PUT", &format!("{rbac}/clusterroles/admin"), &emptied)
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.to_string()
            .contains("must have cluster-admin privileges to use the aggregationRule"),
        "{body}"
    );
    // Adding oneself to an existing binding of admin, by update or by patch.
    admin
        .create(
            &format!("{rbac}/namespaces/a/rolebindings"),
            role_binding("admins", "ClusterRole", "admin", "alice"),
        )
        .await;
    let mut joined = role_binding("admins", "ClusterRole", "admin", "alice");
    joined["subjects"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "binder"}));
    let (code, body) = binder
        .json(
            "PUT",
            &format!("{rbac}/namespaces/a/rolebindings/admins"),
            &joined,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.to_string().contains("not currently held"), "{body}");
    let (code, body) = binder
        .send(
            "PATCH",
            &format!("{rbac}/namespaces/a/rolebindings/admins"),
            "application/merge-patch+json",
            json!({"subjects": joined["subjects"]})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not currently held"), "{body}");
    // A Role whose rules multiply out to millions of permissions is refused at once.
    let many: Vec<String> = (0..1000).map(|i| format!("g{i}.example.com")).collect();
    // (A ClusterRole: by now the binder may `escalate` Roles, which skips the check.)
    let huge = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "huge"},
        "rules": [{"apiGroups": many, "resources": many, "verbs": ["get", "list"]}]});
    let started = std::time::Instant::now();
    let (code, body) = binder
        .json("POST", &format!("{rbac}/clusterroles"), &huge)
        .await;
    let body = body.to_string();
    assert_eq!(code, 422, "{}", &body[..body.len().min(500)]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // The binder never gained the Secret.
    let (code, body) = binder.get("/api/v1/namespaces/a/secrets/s").await;
    assert_eq!(code, 403, "{body}");
    assert_no_leak("the binder", &body);
    server.stop().await;
}

/// Item 3: odd requests are authorized as what they are served as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_are_served_as_they_were_authorized() {
    let server = SecureApiServer::start().await;
    let admin = server.raw_client("admin", &["system:masters"]).await;
    namespace(&admin, "a").await;
    secret_holding(&admin, "a", "s1", "s1-may-be-read").await;
    secret(&admin, "a", "s2").await;
    // One user may read exactly one Secret, by name.
    cluster_role(
        &admin,
        "read-s1",
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"],
                "resourceNames": ["s1"]}]),
    )
    .await;
    bind(&admin, "a", "one-secret", "read-s1", "one").await;
    let one = server.raw_client("one", &[]).await;
    let base = "/api/v1/namespaces/a/secrets";
    let s1 = format!("{base}/s1");
    let (code, body) = eventually(200, || one.get(&s1)).await;
    assert_eq!(code, 200, "positive control: {body}");

    // (request, expected code, whether s1 may be in the answer)
    let cases: &[(&str, u16)] = &[
        ("/s1", 200),
        ("/s2", 403),
        ("?fieldSelector=metadata.name%3Ds1", 200),
        ("?fieldSelector=metadata.name%3Ds1&fieldSelector=", 200),
        ("?fieldSelector=&fieldSelector=metadata.name%3Ds1", 403),
        ("?fieldSelector=metadata.name%3Ds1,metadata.name%3Ds2", 200),
        (
            "?fieldSelector=metadata.name%3Ds1&watch=false&watch=true",
            200,
        ),
        ("?fieldSelector=metadata.name%3D..", 403),
        ("/s1/", 200),
        ("//s1", 403),
        ("/s2/..", 403),
        ("/s1%2F..%2Fs2", 403),
        ("/S1", 403),
        ("", 403),
        ("?limit=1&continue=", 403),
    ];
    for (suffix, want) in cases {
        let path = format!("{base}{suffix}");
        let (code, body) = one.get(&path).await;
        assert_eq!(code, *want, "GET {path}: {body}");
        // Only s1 may ever come back; s2 is never in any answer.
        assert_no_leak(&path, &body);
        if code == 200 && suffix.starts_with('?') {
            let list: Value = serde_json::from_str(&body).unwrap();
            let names: Vec<&str> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap())
                .collect();
            assert!(names.iter().all(|n| *n == "s1"), "GET {path}: {names:?}");
        }
    }
    // Methods: lower-case ones are no verb at all (they once passed as a discovery path and
    // reached the kubelet); a stream needs `create` whatever the method.
    admin
        .create(
            "/api/v1/namespaces/a/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await;
    cluster_role(
        &admin,
        "get-exec",
        json!([{"apiGroups": [""], "resources": ["pods", "pods/exec", "pods/attach"], "verbs": ["get"]}]),
    )
    .await;
    bind(&admin, "a", "get-exec", "get-exec", "getter").await;
    let getter = server.raw_client("getter", &[]).await;
    let pod = "/api/v1/namespaces/a/pods/p";
    let (code, body) = eventually(200, || getter.get(pod)).await;
    assert_eq!(code, 200, "positive control: {body}");
    for method in ["GET", "HEAD", "POST", "get", "Get", "OPTIONS"] {
        for sub in ["exec?command=sh&stdout=1", "attach?stdout=1"] {
            let (code, body) = getter
                .send(
                    method,
                    &format!("{pod}/{sub}"),
                    "application/json",
                    Vec::new(),
                )
                .await;
            assert!(code == 403 || code == 405, "{method} {sub}: {code} {body}");
        }
        let (code, body) = one
            .send(
                method,
                "/api/v1/nodes/n1/proxy/pods",
                "application/json",
                Vec::new(),
            )
            .await;
        assert!(
            code == 403 || code == 405,
            "{method} nodes/proxy: {code} {body}"
        );
    }
    let (code, body) = one
        .send(
            "POST",
            "/api/v1/watch/namespaces/a/secrets",
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert!(
        code == 403 || code == 405,
        "POST to a watch path: {code} {body}"
    );

    // Paths the authorizer reads one way must not be served another way.
    for path in [
        "/api/v1/namespaces/a/pods//status",
        "/api/v1/namespaces//secrets",
        "/api/v1/secrets",
        "/api/v1/namespaces/a/namespaces/a",
        "/api/v1/watch/namespaces/a/secrets",
        "/API/v1/namespaces/a/secrets",
    ] {
        let (code, body) = one.get(path).await;
        assert!(
            code == 403 || code == 404,
            "GET {path} answered {code}: {body}"
        );
        assert_no_leak(path, &body);
    }
    server.stop().await;
}

/// Item 4: NodeRestriction and the Node authorizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_touches_only_what_is_its_own() {
    let server = SecureApiServer::start().await;
    let admin = server.raw_client("admin", &["system:masters"]).await;
    let n1 = server.raw_client("system:node:n1", &["system:nodes"]).await;
    for ns in ["a", "b"] {
        namespace(&admin, ns).await;
    }
    secret(&admin, "a", "used").await;
    secret(&admin, "b", "topsecret").await;
    for ns in ["a", "b"] {
        admin
            .create(
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
            )
            .await;
    }
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let n1_node = n1.create("/api/v1/nodes", node("n1")).await;
    admin.create("/api/v1/nodes", node("n2")).await;
    let pod = |name: &str, node: &str, secret: Option<&str>| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(s) = secret {
            p["spec"]["volumes"] = json!([{"name": "v", "secret": {"secretName": s}}]);
        }
        p
    };
    let on_n1 = admin
        .create(
            "/api/v1/namespaces/a/pods",
            pod("on-n1", "n1", Some("used")),
        )
        .await;
    let on_n2 = admin
        .create("/api/v1/namespaces/a/pods", pod("on-n2", "n2", None))
        .await;

    // Positive control: the Secret of a pod on n1 is readable by n1.
    let (code, body) = eventually(200, || n1.get("/api/v1/namespaces/a/secrets/used")).await;
    assert_eq!(code, 200, "{body}");

    // Reads: its own pods and its own Node only (upstream's AuthorizeNodeWithSelectors).
    let (code, body) = n1
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("on-n1") && !body.contains("on-n2"), "{body}");
    for (path, message) in [
        (
            "/api/v1/pods",
            "can only list/watch pods with spec.nodeName field selector",
        ),
        (
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2",
            "can only list/watch pods with spec.nodeName field selector",
        ),
        (
            "/api/v1/namespaces/a/pods/on-n2",
            "no relationship found between node 'n1' and this object",
        ),
        (
            "/api/v1/nodes",
            "node 'n1' cannot read all nodes, only its own Node object",
        ),
        (
            "/api/v1/nodes/n2",
            "node 'n1' cannot read 'n2', only its own Node object",
        ),
    ] {
        let (code, body) = n1.get(path).await;
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains(message), "{path}: {body}");
    }
    for path in ["/api/v1/namespaces/a/pods/on-n1", "/api/v1/nodes/n1"] {
        let (code, body) = n1.get(path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }

    // Creating a pod that mounts another namespace's Secret, to read it through the graph.
    let (code, body) = n1
        .json(
            "POST",
            "/api/v1/namespaces/b/pods",
            &pod("thief", "n1", Some("topsecret")),
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"thief\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
    );
    let mut mirror = pod("thief", "n1", Some("topsecret"));
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    let (code, body) = n1.json("POST", "/api/v1/namespaces/b/pods", &mirror).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("node \"n1\" can not create pods that reference secrets"),
        "{body}"
    );
    let (code, body) = n1.get("/api/v1/namespaces/b/secrets/topsecret").await;
    assert_eq!(code, 403, "{body}");
    assert_no_leak("the node", &body);
    // A projected token or another node's name are refused too; a plain mirror pod is not.
    let mut projected = pod("m", "n1", None);
    projected["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    projected["spec"]["volumes"] = json!([{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}]);
    let (code, body) = n1
        .json("POST", "/api/v1/namespaces/b/pods", &projected)
        .await;
    assert_eq!(code, 403, "{body}");
    let mut elsewhere = pod("m", "n2", None);
    elsewhere["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    let (code, body) = n1
        .json("POST", "/api/v1/namespaces/b/pods", &elsewhere)
        .await;
    assert_eq!(code, 403, "{body}");
    let mut plain = pod("m", "n1", None);
    plain["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    let (code, body) = n1.json("POST", "/api/v1/namespaces/b/pods", &plain).await;
    assert_eq!(code, 201, "a plain mirror pod: {body}");
    // Owned by its Node, as the kubelet writes them: the uid must be the Node's.
    for (uid, code) in [
        ("not-the-uid", 403),
        (n1_node["metadata"]["uid"].as_str().unwrap(), 201),
    ] {
        let mut owned = plain.clone();
        owned["metadata"]["name"] = json!(format!("owned-{code}"));
        owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
            "name": "n1", "uid": uid, "controller": true}]);
        let (got, body) = n1.json("POST", "/api/v1/namespaces/b/pods", &owned).await;
        assert_eq!(got, code, "{uid}: {body}");
    }

    // Status, delete and eviction only of its own pods.
    let mut status = on_n2.clone();
    status["status"] = json!({"phase": "Failed"});
    let (code, body) = n1
        .json("PUT", "/api/v1/namespaces/a/pods/on-n2/status", &status)
        .await;
    assert_eq!(code, 403, "{body}");
    let mut own_status = on_n1.clone();
    own_status["status"] = json!({"phase": "Running"});
    let (code, body) = n1
        .json("PUT", "/api/v1/namespaces/a/pods/on-n1/status", &own_status)
        .await;
    assert_eq!(code, 200, "own pod's status: {body}");
    let (code, body) = n1
        .json("DELETE", "/api/v1/namespaces/a/pods/on-n2", &json!({}))
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("can only delete pods with spec.nodeName set to itself"),
        "{body}"
    );
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "on-n2", "namespace": "a"}});
    let (code, body) = n1
        .json(
            "POST",
            "/api/v1/namespaces/a/pods/on-n2/eviction",
            &eviction,
        )
        .await;
    assert_eq!(code, 403, "{body}");

    // Its own Node: no restricted labels, no taint changes; its own labels are fine.
    let patch = |labels: Value| json!({"metadata": {"labels": labels}});
    for label in [
        "node-restriction.kubernetes.io/trusted",
        "node-role.kubernetes.io/control-plane",
    ] {
        let (code, body) = n1
            .send(
                "PATCH",
                "/api/v1/nodes/n1",
                "application/merge-patch+json",
                patch(json!({label: "true"})).to_string().into_bytes(),
            )
            .await;
        assert_eq!(code, 403, "{label}: {body}");
    }
    let (code, body) = n1
        .send(
            "PATCH",
            "/api/v1/nodes/n1",
            "application/merge-patch+json",
            json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("is not allowed to modify taints"), "{body}");
    let (code, body) = n1
        .send(
            "PATCH",
            "/api/v1/nodes/n1",
            "application/merge-patch+json",
            patch(json!({"example.com/disk": "ssd", "kubernetes.io/arch": "amd64"}))
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(code, 200, "kubelet labels: {body}");
    let (code, body) = n1
        .send(
            "PATCH",
            "/api/v1/nodes/n2",
            "application/merge-patch+json",
            patch(json!({"x": "y"})).to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 403, "another node: {body}");

    // A new node cannot register with labels that steer workloads to it, nor a CSR in another
    // node's name.
    let n3 = server.raw_client("system:node:n3", &["system:nodes"]).await;
    let mut steered = node("n3");
    steered["metadata"]["labels"] = json!({"node-role.kubernetes.io/control-plane": ""});
    let (code, body) = n3.json("POST", "/api/v1/nodes", &steered).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("node \"n3\" is not allowed to set the following labels: node-role.kubernetes.io/control-plane"),
        "{body}"
    );
    for (cn, code) in [("system:node:n2", 403), ("system:node:n1", 201)] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"],
                     "request": base64::engine::general_purpose::STANDARD.encode(pem)}});
        let (got, body) = n1
            .json(
                "POST",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                &csr,
            )
            .await;
        assert_eq!(got, code, "{cn}: {body}");
        if code == 403 {
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .ends_with("can only create a node CSR with CN=system:node:n1"),
                "{body}"
            );
        }
    }

    // Tokens only bound to a pod on its node, uid included.
    let tokens = "/api/v1/namespaces/a/serviceaccounts/default/token";
    let request = |bound: Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"audiences": [cluster_tests::ISSUER], "boundObjectRef": bound}})
    };
    let bound = |pod: &Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
               "uid": pod["metadata"]["uid"]})
    };
    for (what, body, message) in [
        (
            "unbound",
            request(Value::Null),
            "node requested token not bound to a pod",
        ),
        (
            "another node's pod",
            request(bound(&on_n2)),
            "node requested token bound to a pod scheduled on a different node",
        ),
        (
            "no uid",
            request(json!({"apiVersion": "v1", "kind": "Pod", "name": "on-n1"})),
            "node requested token with a pod binding without a uid",
        ),
    ] {
        let (code, answer) = n1.json("POST", tokens, &body).await;
        assert_eq!(code, 403, "{what}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().ends_with(message),
            "{what}: {answer}"
        );
    }
    let (code, answer) = n1.json("POST", tokens, &request(bound(&on_n1))).await;
    assert_eq!(code, 201, "a token bound to its own pod: {answer}");
    assert!(answer["status"]["token"].is_string());
    server.stop().await;
}

/// Item 5: no request costs unbounded time or memory; each answer is upstream's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_refused_quickly() {
    let server = SecureApiServer::start().await;
    let user = server.raw_client("editor", &[]).await;
    let admin = server.raw_client("admin", &["system:masters"]).await;
    bind(&admin, "default", "editor", "edit", "editor").await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                     "data": {"x": "y".repeat(1000)}});
    let (code, body) = eventually(201, || user.json_text("POST", cms, &big)).await;
    assert_eq!(code, 201, "{body}");
    let started = std::time::Instant::now();

    // A 1 KB patch of doubling copies: refused at 3 MiB of copies.
    let mut ops = vec![json!({"op": "add", "path": "/data/d", "value": "y"})];
    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    ops.push(json!({"op": "copy", "from": "/data", "path": "/metadata/annotations/a"}));
    for i in 0..30 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/a{i}")}));
    }
    let patch = Value::Array(ops).to_string();
    assert!(patch.len() < 3000);
    let (code, body) = user
        .send(
            "PATCH",
            &format!("{cms}/c"),
            "application/json-patch+json",
            patch.into_bytes(),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("accumulated size increase of copy"), "{body}");

    // Too many operations: 413 with upstream's message.
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"}))
        .collect();
    let (code, body) = user
        .send(
            "PATCH",
            &format!("{cms}/c"),
            "application/json-patch+json",
            Value::Array(ops).to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("The allowed maximum operations in a JSON patch is 10000, got 10001"),
        "{body}"
    );

    // Nesting: JSON past its depth limit, YAML past 10,000 levels.
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let (code, body) = user
        .send("POST", cms, "application/json", deep.clone().into_bytes())
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = user
        .send(
            "POST",
            cms,
            "application/yaml",
            format!("a: {deep}").into_bytes(),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    // A body over 3 MiB: 413.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                     "data": {"x": "y".repeat(3 * 1024 * 1024 + 1)}});
    let (code, body) = user.json("POST", cms, &big).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "hostile bodies took {:?}",
        started.elapsed()
    );

    // TokenRequest lifetimes as upstream bounds them.
    admin
        .create(
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}),
        )
        .await;
    let tokens = "/api/v1/namespaces/default/serviceaccounts/robot/token";
    for (seconds, code, message) in [
        (
            599i64,
            422,
            "may not specify a duration less than 10 minutes",
        ),
        (
            (1i64 << 32) + 1,
            422,
            "may not specify a duration larger than 2^32 seconds",
        ),
        (600, 201, ""),
    ] {
        let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {"expirationSeconds": seconds}});
        // The account is looked up in the watch cache, which may trail its create a moment.
        let (got, body) = eventually(code, || admin.json_text("POST", tokens, &request)).await;
        assert_eq!(got, code, "{seconds}: {body}");
        assert!(body.to_string().contains(message), "{body}");
    }
    // The server is still healthy and serves the positive control.
    let (code, body) = user.get(&format!("{cms}/c")).await;
    assert_eq!(code, 200, "{body}");
    server.stop().await;
}

/// Items 6, 7 and 8: connections that never send a request are closed, files at rest are
/// private, and every kind is validated (NetworkPolicy as the issue found it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_files_and_objects_are_kept_in_bounds() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncReadExt;
    let server = SecureApiServer::start_with(|config| {
        config.timeouts.header_read = std::time::Duration::from_secs(2);
    })
    .await;
    let admin = server.raw_client("admin", &["system:masters"]).await;

    // A connection that opens and then says nothing (no TLS handshake) is closed.
    let addr = server.url.trim_start_matches("https://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), silent.read(&mut buf))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Positive control: a whole request is served.
    let (code, body) = admin.get("/api/v1/namespaces/default").await;
    assert_eq!(code, 200, "{body}");

    // Files at rest: the data dir 0700, the database 0600.
    let data = server.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("state.db")), 0o600);

    // NetworkPolicy: a /33 CIDR, port 99999 and policyType Sideways, one 422 with three causes.
    let bad = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "np"},
        "spec": {"podSelector": {}, "policyTypes": ["Sideways"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}],
                              "ports": [{"port": 99999}]}]}});
    let policies = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let (code, body) = admin.json("POST", policies, &bad).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 3, "{body}");
    // Positive control: the same policy, well-formed, is stored.
    let mut good = bad.clone();
    good["spec"]["policyTypes"] = json!(["Ingress"]);
    good["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] = json!("10.0.0.0/16");
    good["spec"]["ingress"][0]["ports"][0]["port"] = json!(8080);
    let (code, body) = admin.json("POST", policies, &good).await;
    assert_eq!(code, 201, "{body}");
    server.stop().await;
}

/// A CSR for `signer` whose subject is CN=`cn`, O=`org`.
fn csr(name: &str, signer: &str, cn: &str, org: &str) -> Value {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"signerName": signer, "usages": ["digital signature", "client auth"],
                 "request": base64::engine::general_purpose::STANDARD.encode(pem)}})
}

/// Issue #18's certificate plugins: approving or signing a CSR takes the `approve` or `sign`
/// verb on its signer, not only update on the subresource, and no client certificate for the
/// apiserver may claim system:masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_approved_and_signed_only_by_their_signers_holders() {
    let server = SecureApiServer::start().await;
    let admin = server.raw_client("admin", &["system:masters"]).await;
    let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    cluster_role(
        &admin,
        "csr-updater",
        json!([{"apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests", "certificatesigningrequests/approval",
                              "certificatesigningrequests/status"],
                "verbs": ["get", "list", "update"]}]),
    )
    .await;
    bind(
        &admin,
        "",
        "approver-updates-csrs",
        "csr-updater",
        "approver",
    )
    .await;
    let approver = server.raw_client("approver", &["team"]).await;
    let (code, body) = admin
        .json("POST", csrs, &csr("c1", "example.com/widgets", "w", "team"))
        .await;
    assert_eq!(code, 201, "{body}");
    let c1 = format!("{csrs}/c1");
    let approval = format!("{c1}/approval");
    let (code, current) = eventually(200, || approver.get(&c1)).await;
    assert_eq!(code, 200, "{current}");
    let mut approved: Value = serde_json::from_str(&current).unwrap();
    approved["status"]["conditions"] = json!([{"type": "Approved", "status": "True",
        "reason": "Test", "message": "approved in a test"}]);
    let (code, body) = approver.json("PUT", &approval, &approved).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"c1\" is forbidden: user not \
         permitted to approve requests with signerName \"example.com/widgets\""
    );
    // Naming another signer in the body changes nothing: the stored one decides.
    let mut forged = approved.clone();
    forged["spec"]["signerName"] = json!("kubernetes.io/legacy-unknown");
    let (code, _) = approver.json("PUT", &approval, &forged).await;
    assert_eq!(code, 403);
    // Signing needs `sign` on the signer likewise.
    let mut signed: Value = serde_json::from_str(&current).unwrap();
    signed["status"]["certificate"] = json!("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==");
    let (code, body) = approver.json("PUT", &format!("{c1}/status"), &signed).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().ends_with(
            "user not permitted to sign requests with signerName \"example.com/widgets\""
        ),
        "{body}"
    );
    // Positive control: `approve` on the signer's domain wildcard lets the approval through.
    cluster_role(
        &admin,
        "widget-approver",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                "resourceNames": ["example.com/*"], "verbs": ["approve"]}]),
    )
    .await;
    bind(
        &admin,
        "",
        "approver-approves-widgets",
        "widget-approver",
        "approver",
    )
    .await;
    let (code, body) = eventually(200, || approver.json_text("PUT", &approval, &approved)).await;
    assert_eq!(code, 200, "{body}");
    let approved_now: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(approved_now["status"]["conditions"][0]["type"], "Approved");

    // Not even system:masters may ask the apiserver-client signer for system:masters.
    let masters = csr(
        "c2",
        "kubernetes.io/kube-apiserver-client",
        "me",
        "system:masters",
    );
    let (code, body) = admin.json("POST", csrs, &masters).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"c2\" is forbidden: use of \
         kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
    );
    let ordinary = csr(
        "c3",
        "kubernetes.io/kube-apiserver-client",
        "me",
        "developers",
    );
    let (code, body) = admin.json("POST", csrs, &ordinary).await;
    assert_eq!(code, 201, "{body}");
}
