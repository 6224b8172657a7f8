//! Server-side apply through real kubectl and kube-rs: ownership recorded in managedFields,
//! conflicts with another manager answered 409 with upstream's message, --force-conflicts,
//! removal of fields no longer applied, keyed-list merges, the move from client-side apply,
//! dry runs, and custom resources.

use crate::support;

use serde_json::{Value, json};
use support::ApiServer;

const CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: default
data:
  a: \"1\"
  b: \"2\"
";

fn apply_ssa(s: &ApiServer, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    s.kubectl_stdin(&args, Some(yaml))
}

fn json_of(s: &ApiServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&s.ok(&args)).unwrap()
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_owned(),
                e["operation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn ownership_conflicts_force_and_removal() {
    let s = ApiServer::start();
    let out = apply_ssa(&s, CM, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configmap/cfg serverside-applied"));
    let cm = json_of(&s, &["get", "cm", "cfg"]);
    assert_eq!(managers(&cm), [("kubectl".into(), "Apply".into())]);
    assert_eq!(
        cm["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    // Another manager changes a: it owns it now.
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"9"}}"#,
        "--field-manager=editor",
    ]);
    let cm = json_of(&s, &["get", "cm", "cfg"]);
    assert_eq!(
        managers(&cm),
        [
            ("kubectl".into(), "Apply".into()),
            ("editor".into(), "Update".into())
        ]
    );

    // Applying the old value conflicts, with upstream's message; the same value would not.
    let out = apply_ssa(&s, CM, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "editor" using v1: .data.a"#),
        "{err}"
    );
    let same = CM.replace("a: \"1\"", "a: \"9\"");
    let out = apply_ssa(&s, &same, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Forced, the field is taken back.
    let out = apply_ssa(&s, CM, &["--force-conflicts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json_of(&s, &["get", "cm", "cfg"]);
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(managers(&cm), [("kubectl".into(), "Apply".into())]);

    // A field no longer applied goes, when nobody else owns it.
    let fewer = CM.replace("  b: \"2\"\n", "");
    let out = apply_ssa(&s, &fewer, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json_of(&s, &["get", "cm", "cfg"]);
    assert_eq!(cm["data"], json!({"a": "1"}));

    // A dry run changes nothing; kubectl diff --server-side shows the change.
    let more = CM.replace("b: \"2\"", "b: \"3\"");
    let out = apply_ssa(&s, &more, &["--dry-run=server"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json_of(&s, &["get", "cm", "cfg"])["data"],
        json!({"a": "1"})
    );
    let diff = s.kubectl_stdin(&["diff", "--server-side", "-f", "-"], Some(&more));
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.contains("+  b: \"3\""), "{diff}");
}

#[test]
fn keyed_lists_merge_by_key_and_keep_what_others_own() {
    let s = ApiServer::start();
    let deploy = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: busybox:1
        ports:
        - containerPort: 80
";
    let out = apply_ssa(&s, deploy, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another manager adds an env var to the container and a second container.
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"X","value":"1"}]},{"name":"side","image":"busybox:2"}]}}}}"#;
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=strategic",
        "-p",
        patch,
        "--field-manager=other",
    ]);
    // Re-applied with a new image: the image changes, the other manager's env and container stay.
    let newer = deploy.replace("busybox:1", "busybox:3");
    let out = apply_ssa(&s, &newer, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = json_of(&s, &["get", "deploy", "web"]);
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "busybox:3");
    assert_eq!(containers[0]["env"], json!([{"name": "X", "value": "1"}]));
    assert_eq!(containers[1]["name"], "side");
    let ports = &d["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"app\"}"]["f:ports"];
    assert!(
        ports
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some(),
        "ports keyed by containerPort and protocol: {ports}"
    );
}

#[test]
fn client_side_apply_moves_to_server_side_apply() {
    let s = ApiServer::start();
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(CM));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json_of(&s, &["get", "cm", "cfg"]);
    assert_eq!(
        managers(&cm),
        [("kubectl-client-side-apply".into(), "Update".into())]
    );
    // kubectl moves the client-side manager's fields to its apply, then applies: b goes.
    let fewer = CM.replace("  b: \"2\"\n", "");
    let out = apply_ssa(&s, &fewer, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json_of(&s, &["get", "cm", "cfg"]);
    assert_eq!(cm["data"], json!({"a": "1"}));
    assert!(
        managers(&cm).contains(&("kubectl".into(), "Apply".into())),
        "{:?}",
        managers(&cm)
    );
}

#[test]
fn an_apply_needs_a_field_manager_and_force_needs_an_apply() {
    let s = ApiServer::start();
    let raw = |content_type: &str, query: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "PATCH",
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
                &format!("{}/api/v1/namespaces/default/configmaps/x{query}", s.url()),
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let missing = raw("application/apply-patch+yaml", "");
    assert_eq!(missing["code"], 422);
    assert_eq!(
        missing["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let forced = raw("application/merge-patch+json", "?force=true");
    assert_eq!(forced["code"], 422, "{forced}");
    assert!(
        forced["message"]
            .as_str()
            .unwrap()
            .contains("force: Forbidden: may not be specified for non-apply patch")
    );
    let created = raw("application/apply-patch+yaml", "?fieldManager=m");
    assert_eq!(created["metadata"]["name"], "x", "{created}");
}

#[tokio::test]
async fn kube_rs_patch_apply_creates_updates_and_applies_status() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, Patch, PatchParams};
    let s = ApiServer::start();
    let client = kube::Client::try_from(kube::Config::new(s.url().parse().unwrap())).unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    let desired = |replicas: i32| -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "op"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "op"}},
                "template": {"metadata": {"labels": {"app": "op"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap()
    };
    let params = PatchParams::apply("operator");
    let created = deployments
        .patch("op", &params, &Patch::Apply(desired(1)))
        .await
        .unwrap();
    assert_eq!(created.spec.unwrap().replicas, Some(1));
    let updated = deployments
        .patch("op", &params, &Patch::Apply(desired(3)))
        .await
        .unwrap();
    assert_eq!(updated.spec.unwrap().replicas, Some(3));
    let status =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"observedGeneration": 2}});
    let with_status = deployments
        .patch_status("op", &params, &Patch::Apply(status))
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().observed_generation, Some(2));
    let entries = with_status.metadata.managed_fields.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.manager.as_deref() == Some("operator")
                && e.subresource.as_deref() == Some("status")),
        "{entries:?}"
    );
}

/// An apply that would create the object takes the right to create, not only to patch.
#[test]
fn an_apply_that_creates_needs_the_right_to_create() {
    let files = tempfile::tempdir().unwrap();
    let tokens = files.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "tetsu-test,alice,alice-uid,\"devs\"\nadmin-token,admin,admin-uid,\"system:masters\"\n",
    )
    .unwrap();
    let s = ApiServer::start_https_with(&[
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--authorization-mode",
        "RBAC",
    ]);
    let admin = |args: &[&str]| {
        let mut all = vec!["--token=admin-token"];
        all.extend_from_slice(args);
        s.ok(&all)
    };
    admin(&[
        "create",
        "role",
        "patcher",
        "--verb=get,patch",
        "--resource=configmaps",
    ]);
    admin(&[
        "create",
        "rolebinding",
        "patcher",
        "--role=patcher",
        "--user=alice",
    ]);
    // Once alice's role is in force (it may take the authorizer a moment), her apply of a
    // new object is refused for want of `create`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s
        .kubectl(&["get", "cm", "kube-root-ca.crt-none", "--ignore-not-found"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "alice never got her role"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = apply_ssa(&s, CM, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(r#"User "alice" cannot create resource "configmaps" in API group "" in the namespace "default""#),
        "{err}"
    );
    // Positive control: once the object exists, her apply (a patch) goes through.
    admin(&["create", "configmap", "cfg", "--from-literal=a=0"]);
    let out = apply_ssa(&s, CM, &["--force-conflicts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]), "1");
}
