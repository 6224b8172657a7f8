//! What an official client's own test suite found (issue #15), against a cluster `kubeadm init`
//! made: the Python client's typed DELETE answers, error bytes, WebSocket port-forward with two
//! ports and a deleted pod's final status (fixtures/client_suite.py); `kubectl exec -i` whose
//! stdin ends; a Job deleted while its pod runs; then a leak check: no pod left Terminating, no
//! finalizer whose owner is gone, a Secret in no store file but its creation and read in the
//! audit log, and after `kubeadm reset` with pods running no process, network namespace or
//! runc state of theirs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use cluster_tests::hosts::Network;
use cluster_tests::until;
use serde_json::Value;

async fn kubectl(admin: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    apiserver::testing::kubectl(admin, args, stdin).await
}

async fn kubectl_ok(admin: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(admin, args, None).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    out
}

async fn kubectl_json(admin: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl_ok(admin, &all).await).expect("kubectl's JSON")
}

const CLIENT: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "suite"},
  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "client", "image": "busybox", "command": ["sleep", "3600"]}]}}"#;

const JOB: &str = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "long", "namespace": "suite"},
  "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
    "containers": [{"name": "long", "image": "busybox", "command": ["sleep", "3600"]}]}}}}"#;

/// A container of the node, as its runtime knows it.
struct Task {
    id: String,
    pid: u32,
    /// The process's start time (field 22 of /proc/PID/stat), so a reused pid is not mistaken.
    started: String,
    netns: u64,
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19).map(str::to_owned)
}

/// The running tasks of containerd's k8s.io namespace on the host whose data dir is `data_dir`.
fn tasks(data_dir: &Path) -> Vec<Task> {
    let socket = data_dir.join("containerd/containerd.sock");
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "tasks", "ls"])
        .output()
        .expect("run ctr");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let id = f.next()?.to_owned();
            let pid: u32 = f.next()?.parse().ok()?;
            (f.next()? == "RUNNING").then_some(())?;
            Some(Task {
                id,
                pid,
                started: start_time(pid)?,
                netns: std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino(),
            })
        })
        .collect()
}

/// The named network namespaces of this machine whose namespace is one of `inodes`.
fn named_netns(inodes: &[u64]) -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| inodes.contains(&m.ino())))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Pods still Terminating, and objects whose finalizer waits on an owner that is gone.
async fn leaks(admin: &Path) -> Vec<String> {
    const OWNERS: [&str; 7] = [
        "jobs",
        "replicasets",
        "deployments",
        "daemonsets",
        "statefulsets",
        "nodes",
        "cronjobs",
    ];
    let mut objects = Vec::new();
    let mut uids = std::collections::HashSet::new();
    for kind in OWNERS
        .iter()
        .chain(&["services", "pods", "endpointslices", "controllerrevisions"])
    {
        for item in kubectl_json(admin, &["get", kind, "-A"]).await["items"]
            .as_array()
            .unwrap()
        {
            uids.insert(item["metadata"]["uid"].as_str().unwrap_or("").to_owned());
            objects.push((*kind, item.clone()));
        }
    }
    let mut found = Vec::new();
    for (kind, object) in objects {
        let m = &object["metadata"];
        let name = format!("{kind} {}/{}", m["namespace"], m["name"]);
        if kind == "pods" && m.get("deletionTimestamp").is_some() {
            found.push(format!("{name} is Terminating"));
        }
        let finalized = m["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        let orphaned = m["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| !uids.contains(o["uid"].as_str().unwrap_or("")));
        if finalized && orphaned {
            found.push(format!(
                "{name} keeps finalizers {} for a gone owner",
                m["finalizers"]
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_official_clients_expectations_hold_and_reset_leaves_no_pod_behind() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let data_dir = net.hosts[cp].data_dir.clone();
    let (ok, out, err) = net.init(cp, &[]);
    assert!(
        ok,
        "kubeadm init failed:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    let admin = data_dir.join("admin.conf");
    kubectl_ok(&admin, &["create", "namespace", "suite"]).await;

    // The Python client: typed DELETE answers, error bytes, port-forward, final status.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cluster/fixtures/client_suite.py"
    );
    let py = tokio::process::Command::new(apiserver::testing::python())
        .arg(script)
        .arg(&admin)
        .arg("suite")
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success() && stdout.contains("OK"),
        "the Python client's checks failed:\n{stdout}\n{}\n--- kubelet ---\n{}",
        String::from_utf8_lossy(&py.stderr),
        net.log(cp, "kubelet")
    );

    // `kubectl exec -i` (WebSocket v5): the command sees stdin end and the exec finishes.
    kubectl(&admin, &["apply", "-f", "-"], Some(CLIENT)).await;
    kubectl_ok(
        &admin,
        &[
            "wait",
            "-n",
            "suite",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=180s",
        ],
    )
    .await;
    let exec = tokio::time::timeout(
        Duration::from_secs(60),
        kubectl(
            &admin,
            &["exec", "-i", "-n", "suite", "client", "--", "cat"],
            Some("hi\nthere\n"),
        ),
    )
    .await
    .expect("kubectl exec -i did not end when its stdin did");
    assert!(exec.0, "{exec:?}");
    assert_eq!(exec.1, "hi\nthere\n");

    // A Job deleted while its pod runs takes the pod with it (the tracking finalizer goes).
    kubectl(&admin, &["apply", "-f", "-"], Some(JOB)).await;
    until(
        "the Job's pod to run",
        Duration::from_secs(180),
        async || {
            let pods = kubectl_json(
                &admin,
                &["get", "pods", "-n", "suite", "-l", "job-name=long"],
            )
            .await;
            (pods["items"][0]["status"]["phase"] == "Running").then_some(())
        },
    )
    .await;
    kubectl_ok(&admin, &["delete", "job", "-n", "suite", "long"]).await;
    until("the Job's pod to go", Duration::from_secs(60), async || {
        let names = kubectl_ok(
            &admin,
            &[
                "get",
                "pods",
                "-n",
                "suite",
                "-l",
                "job-name=long",
                "-o",
                "name",
            ],
        )
        .await;
        names.trim().is_empty().then_some(())
    })
    .await;

    // Nothing is left Terminating, no finalizer outlives its owner.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = leaks(&admin).await;
        if found.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "leaked: {found:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // kubeadm turns encryption at rest on: a Secret's value is in no file of the store.
    let value = "tetsu-at-rest-7f3a9c";
    kubectl_ok(
        &admin,
        &[
            "create",
            "secret",
            "generic",
            "-n",
            "suite",
            "hidden",
            &format!("--from-literal=k={value}"),
        ],
    )
    .await;
    let read = kubectl_ok(
        &admin,
        &[
            "get",
            "secret",
            "-n",
            "suite",
            "hidden",
            "-o",
            "jsonpath={.data.k}",
        ],
    )
    .await;
    let encoded = "dGV0c3UtYXQtcmVzdC03ZjNhOWM=";
    assert_eq!(read, encoded, "the API reads the Secret back");
    let mut files = vec![data_dir.join("apiserver")];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        scanned += bytes.len();
        for needle in [value, encoded] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the Secret in plain text",
                path.display()
            );
        }
    }
    assert!(scanned > 0, "no store files under {}", data_dir.display());
    // kubeadm turns auditing on: the Secret's creation and its read are logged with their
    // user, at Metadata (its value never reaches the log).
    let log = data_dir.join("audit/audit.log");
    let secret_events = until(
        "the Secret's events in the audit log",
        Duration::from_secs(30),
        async || {
            let events: Vec<Value> = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|e: &Value| {
                    e["objectRef"]["resource"] == "secrets" && e["objectRef"]["name"] == "hidden"
                })
                .collect();
            let verbs: Vec<&str> = events.iter().filter_map(|e| e["verb"].as_str()).collect();
            (verbs.contains(&"create") && verbs.contains(&"get")).then_some(events)
        },
    )
    .await;
    for event in &secret_events {
        assert_eq!(event["level"], "Metadata", "{event}");
        assert_eq!(event["user"]["username"], "kubernetes-admin", "{event}");
        assert!(!event.to_string().contains(encoded), "{event}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(encoded) && !text.contains(value),
        "the audit log holds the Secret"
    );

    // PodSecurity: a namespace labelled restricted refuses a privileged pod, and kubectl
    // shows every reason; a compliant pod is admitted.
    kubectl_ok(&admin, &["create", "namespace", "locked"]).await;
    kubectl_ok(
        &admin,
        &[
            "label",
            "namespace",
            "locked",
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    )
    .await;
    // Pods need the namespace's default service account (its controller makes it).
    until(
        "the locked namespace's service account",
        Duration::from_secs(30),
        async || {
            let (ok, _, _) = kubectl(
                &admin,
                &["get", "serviceaccount", "default", "-n", "locked"],
                None,
            )
            .await;
            ok.then_some(())
        },
    )
    .await;
    let privileged = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 "securityContext": {"privileged": true}}]}}"#;
    let (ok, _, err) = kubectl(
        &admin,
        &["apply", "-n", "locked", "-f", "-"],
        Some(privileged),
    )
    .await;
    assert!(
        !ok,
        "a privileged pod was admitted in a restricted namespace"
    );
    assert!(
        err.contains("Error from server (Forbidden)")
            && err.contains("violates PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true)")
            && err.contains("runAsNonRoot != true"),
        "{err}"
    );
    let compliant = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tidy"},
        "spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "c", "image": "busybox", "command": ["true"],
                                 "securityContext": {"allowPrivilegeEscalation": false,
                                                     "capabilities": {"drop": ["ALL"]}}}]}}"#;
    let (ok, _, err) = kubectl(
        &admin,
        &["apply", "-n", "locked", "-f", "-"],
        Some(compliant),
    )
    .await;
    assert!(ok, "{err}");

    // `kubeadm reset` while pods run: none of their processes, network namespaces or runc
    // state survive.
    let running = tasks(&data_dir);
    assert!(
        running.len() >= 2,
        "the client pod's sandbox and container should run: {} tasks",
        running.len()
    );
    let inodes: Vec<u64> = running.iter().map(|t| t.netns).collect();
    let named = named_netns(&inodes);
    assert!(
        !named.is_empty(),
        "the pods' network namespaces are not named under /var/run/netns"
    );
    let (ok, out, err) = net.kubeadm(
        cp,
        &["reset", "-f", "--data-dir", &data_dir.display().to_string()],
    );
    assert!(ok, "kubeadm reset: {out}{err}");
    for t in &running {
        assert_ne!(
            start_time(t.pid).as_deref(),
            Some(t.started.as_str()),
            "container {} (pid {}) survived reset:\n{out}",
            t.id,
            t.pid
        );
        let state = Path::new("/run/containerd/runc/k8s.io").join(&t.id);
        assert!(
            !state.exists(),
            "runc state {} survived reset:\n{out}",
            state.display()
        );
    }
    let survivors: Vec<&String> = named
        .iter()
        .filter(|n| Path::new("/var/run/netns").join(n).exists())
        .collect();
    assert!(
        survivors.is_empty(),
        "network namespaces survived reset: {survivors:?}\n{out}"
    );
}
