//! Real kubectl against kube-apiserver with the embedded store: the everyday workflows of
//! acceptance item 1, each asserting what kubectl prints.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{ApiServer, assert_contains_in_order};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/app.yaml");

fn apply_app(s: &ApiServer) {
    let out = s.ok(&["apply", "-f", APP]);
    assert_contains_in_order(
        &out,
        &[
            "namespace/demo created",
            "deployment.apps/web created",
            "service/web created",
            "configmap/cfg created",
        ],
    );
}

#[test]
fn apply_multi_document_then_change_it() {
    let s = ApiServer::start_https();
    apply_app(&s);
    let again = s.ok(&["apply", "-f", APP]);
    assert_contains_in_order(
        &again,
        &["namespace/demo unchanged", "deployment.apps/web unchanged"],
    );

    // A change to the image and a new env var goes out as a strategic merge patch.
    let changed = std::fs::read_to_string(APP)
        .unwrap()
        .replace("busybox:1.36", "busybox:1.37")
        .replace(
            "value: \"1\"",
            "value: \"1\"\n        - name: B\n          value: \"2\"",
        );
    // kubectl diff runs the patch as a server-side dry run: only the changed fields differ.
    let diff = s.kubectl_stdin(&["diff", "-f", "-"], Some(&changed));
    let diff = String::from_utf8_lossy(&diff.stdout).into_owned();
    assert!(
        diff.contains("-        image: busybox:1.36")
            && diff.contains("+        image: busybox:1.37"),
        "{diff}"
    );
    assert!(
        !diff.contains("resourceVersion"),
        "a dry run keeps the resourceVersion:\n{diff}"
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(&changed));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deployment.apps/web configured"));
    let image = s.ok(&["get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[*].name} {.metadata.generation}"]);
    assert_eq!(image, "busybox:1.37 A B 2");
}

#[test]
fn get_prints_tables_and_every_output_format() {
    let s = ApiServer::start();
    apply_app(&s);
    let table = s.ok(&["get", "deployments", "-n", "demo"]);
    assert_contains_in_order(
        &table,
        &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "web",
            "0/2",
            "0",
            "0",
        ],
    );
    let wide = s.ok(&["get", "deploy", "-n", "demo", "-o", "wide"]);
    assert_contains_in_order(
        &wide,
        &[
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
            "web",
            "busybox:1.36",
            "app=web",
        ],
    );
    let svc = s.ok(&["get", "svc", "-n", "demo"]);
    assert_contains_in_order(
        &svc,
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "PORT(S)",
            "web",
            "ClusterIP",
            "10.",
            "80/TCP",
        ],
    );
    let yaml = s.ok(&["get", "cm", "cfg", "-n", "demo", "-o", "yaml"]);
    assert_contains_in_order(
        &yaml,
        &[
            "apiVersion: v1",
            "data:",
            "key: value",
            "kind: ConfigMap",
            "resourceVersion:",
            "uid:",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "cm", "-n", "demo", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["data"]["key"], "value");
    assert_eq!(
        s.ok(&["get", "cm", "-n", "demo", "-o", "name"]).trim(),
        "configmap/cfg"
    );
    // kubectl pages lists (limit=500): across all namespaces too.
    let everywhere = s.ok(&["get", "svc", "-A", "--no-headers"]);
    assert_contains_in_order(
        &everywhere,
        &[
            "default",
            "kubernetes",
            "ClusterIP",
            "10.96.0.1",
            "demo",
            "web",
        ],
    );
    let all = s.ok(&["get", "all", "-n", "demo"]);
    assert_contains_in_order(&all, &["service/web", "deployment.apps/web"]);
    let namespaces = s.ok(&["get", "ns"]);
    assert_contains_in_order(
        &namespaces,
        &[
            "NAME",
            "STATUS",
            "AGE",
            "default",
            "Active",
            "demo",
            "kube-node-lease",
            "kube-public",
            "kube-system",
        ],
    );
    let missing = s.fails(&["get", "cm", "nope", "-n", "demo"]);
    assert!(
        missing.contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{missing}"
    );
}

#[test]
fn label_annotate_patch_and_replace() {
    let s = ApiServer::start();
    apply_app(&s);
    s.ok(&["label", "cm", "cfg", "-n", "demo", "tier=backend"]);
    s.ok(&["annotate", "cm", "cfg", "-n", "demo", "note=hello"]);
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "-n",
            "demo",
            "-l",
            "tier=backend",
            "-o",
            "name"
        ])
        .trim(),
        "configmap/cfg"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "-n",
            "demo",
            "-l",
            "tier!=backend",
            "-o",
            "name"
        ])
        .trim(),
        ""
    );
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"merged":"yes"}}"#,
    ]);
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "demo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/json","value":"yes"}]"#,
    ]);
    s.ok(&["patch", "deploy", "web", "-n", "demo", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:patched"}]}}}}"#]);
    let got = s.ok(&[
        "get",
        "cm",
        "cfg",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.note} {.data.merged} {.data.json}",
    ]);
    assert_eq!(got, "backend hello yes yes");
    let containers = s.ok(&["get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].command[0]}"]);
    assert_eq!(
        containers, "busybox:patched httpd",
        "a strategic patch merges containers by name"
    );

    let mut cm: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "cm", "cfg", "-n", "demo", "-o", "json"])).unwrap();
    cm["data"] = serde_json::json!({"replaced": "true"});
    let out = s.kubectl_stdin(&["replace", "-f", "-"], Some(&cm.to_string()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.ok(&["get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data}"]),
        r#"{"replaced":"true"}"#
    );
    // Replacing with the old resourceVersion again is a conflict.
    let out = s.kubectl_stdin(&["replace", "-f", "-"], Some(&cm.to_string()));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn scale_and_watch() {
    let s = ApiServer::start();
    apply_app(&s);
    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", &s.kubeconfig)
        .args(["get", "deploy", "-n", "demo", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the initial state");
    // Server-side Table rows, in the list and in the watch: NAME READY UP-TO-DATE AVAILABLE AGE.
    assert_eq!(
        first.split_whitespace().take(4).collect::<Vec<_>>(),
        ["web", "0/2", "0", "0"]
    );
    assert_eq!(
        s.ok(&["scale", "deploy", "web", "-n", "demo", "--replicas=5"])
            .trim(),
        "deployment.apps/web scaled"
    );
    let next = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the change after scaling");
    assert_eq!(
        next.split_whitespace().take(4).collect::<Vec<_>>(),
        ["web", "0/5", "0", "0"]
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn delete_orphan_and_background() {
    let s = ApiServer::start();
    apply_app(&s);
    // Orphan deletion adds the `orphan` finalizer; the garbage collector (controller-manager)
    // removes it after releasing the dependents, so kubectl is told not to wait for it here.
    let out = s.ok(&[
        "delete",
        "deploy",
        "web",
        "-n",
        "demo",
        "--cascade=orphan",
        "--wait=false",
    ]);
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    let held = s.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
    ]);
    assert!(
        held.starts_with(r#"["orphan"] "#) && held.len() > 12,
        "{held}"
    );
    let out = s.ok(&["delete", "svc", "web", "-n", "demo", "--cascade=background"]);
    assert_eq!(out.trim(), "service \"web\" deleted");
    assert_eq!(s.ok(&["get", "svc", "-n", "demo", "-o", "name"]).trim(), "");
    // Foreground deletion waits on `foregroundDeletion` the same way.
    s.ok(&[
        "delete",
        "cm",
        "cfg",
        "-n",
        "demo",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let held = s.ok(&[
        "get",
        "cm",
        "cfg",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.finalizers}",
    ]);
    assert_eq!(held, r#"["foregroundDeletion"]"#);
}

#[test]
fn typed_create_commands_send_protobuf() {
    let s = ApiServer::start();
    assert_eq!(
        s.ok(&["create", "namespace", "team"]).trim(),
        "namespace/team created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "configmap",
            "c",
            "-n",
            "team",
            "--from-literal=k=v"
        ])
        .trim(),
        "configmap/c created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "team",
            "--from-literal=p=secret"
        ])
        .trim(),
        "secret/s created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "deployment",
            "d",
            "-n",
            "team",
            "--image=busybox:1.36",
            "--replicas=3",
            "--port=8080"
        ])
        .trim(),
        "deployment.apps/d created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "service",
            "clusterip",
            "d",
            "-n",
            "team",
            "--tcp=80:8080"
        ])
        .trim(),
        "service/d created"
    );
    let got = s.ok(&["get", "deploy", "d", "-n", "team", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.type}"]);
    assert_eq!(got, "3 8080 RollingUpdate");
    assert_eq!(
        s.ok(&[
            "get",
            "secret",
            "s",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.p}"
        ]),
        "c2VjcmV0"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "d",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8080"
    );
    assert_contains_in_order(&s.ok(&["get", "ns", "team"]), &["team", "Active"]);
    // Inlined members (IngressRule's ingressRuleValue) and other groups decode too.
    s.ok(&[
        "create",
        "ingress",
        "ing",
        "-n",
        "team",
        "--rule=foo.com/bar=d:80",
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "ingress",
            "ing",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.rules[0].http.paths[0].backend.service.name}"
        ]),
        "d"
    );
    s.ok(&["create", "priorityclass", "high", "--value=1000"]);
    assert_contains_in_order(
        &s.ok(&["get", "pc"]),
        &[
            "high",
            "1000",
            "system-cluster-critical",
            "2000000000",
            "system-node-critical",
        ],
    );
}

#[test]
fn discovery_lists_what_is_served() {
    let s = ApiServer::start();
    let resources = s.ok(&["api-resources"]);
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "Deployment",
        "leases",
        "coordination.k8s.io/v1",
        "clusterrolebindings",
        "certificatesigningrequests",
        "csr",
    ] {
        assert!(
            resources.contains(line),
            "api-resources lacks {line}:\n{resources}"
        );
    }
    let explain = s.ok(&["explain", "deployment.spec.replicas"]);
    assert_contains_in_order(
        &explain,
        &[
            "KIND:",
            "Deployment",
            "VERSION:",
            "v1",
            "FIELD: replicas <integer>",
            "Number of desired pods",
        ],
    );
    let versions = s.ok(&["api-versions"]);
    assert_contains_in_order(
        &versions,
        &[
            "apps/v1",
            "batch/v1",
            "certificates.k8s.io/v1",
            "coordination.k8s.io/v1",
            "discovery.k8s.io/v1",
            "events.k8s.io/v1",
            "networking.k8s.io/v1",
            "policy/v1",
            "rbac.authorization.k8s.io/v1",
            "v1",
        ],
    );
}

#[test]
fn describe_shows_the_object() {
    let s = ApiServer::start();
    apply_app(&s);
    let out = s.ok(&["describe", "deployment", "web", "-n", "demo"]);
    assert_contains_in_order(
        &out,
        &[
            "Name:",
            "web",
            "Namespace:",
            "demo",
            "Selector:",
            "app=web",
            "Replicas:",
            "2 desired",
            "StrategyType:",
            "RollingUpdate",
            "Containers:",
            "busybox:1.36",
        ],
    );
    let out = s.ok(&["describe", "svc", "web", "-n", "demo"]);
    assert_contains_in_order(
        &out,
        &[
            "Name:",
            "web",
            "Type:",
            "ClusterIP",
            "IP:",
            "Port:",
            "80/TCP",
        ],
    );
}

#[test]
fn the_same_workflow_on_etcd() {
    let etcd = support::EtcdServer::start();
    let s = ApiServer::start_with(&["--etcd-servers", &format!("http://{}", etcd.endpoint)]);
    apply_app(&s);
    s.ok(&["scale", "deploy", "web", "-n", "demo", "--replicas=3"]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    s.ok(&["delete", "cm", "cfg", "-n", "demo"]);
    assert_eq!(s.ok(&["get", "cm", "-n", "demo", "-o", "name"]).trim(), "");
    // The objects live in etcd under /registry, readable with etcdctl as upstream's are.
    let out = etcd.value("/registry/apps/deployments/demo/web");
    let stored: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
}

/// A `kind: List` file: kubectl validates it against /openapi/v2, then creates each item.
#[test]
fn create_of_a_list_file_validates_and_creates_every_item() {
    let s = ApiServer::start();
    let list = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed, namespace: default}
  data: {a: "1"}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed, namespace: default}
  spec:
    replicas: 1
    selector: {matchLabels: {app: listed}}
    template:
      metadata: {labels: {app: listed}}
      spec: {containers: [{name: c, image: busybox}]}
"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(list));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("configmap/listed created")
            && stdout.contains("deployment.apps/listed created"),
        "{stdout}"
    );
    // The server still validates each item strictly.
    let bad = list
        .replace("data: {a: \"1\"}", "data: {a: \"1\"}\n  bogus: 1")
        .replace("listed", "other");
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field \"bogus\""),
        "{err}"
    );
}
