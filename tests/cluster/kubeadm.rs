//! The whole cluster as a user gets it: `kubeadm init` on a "host" (a network namespace),
//! then the everyday workflows with real kubectl: a Deployment rolled out, exposed as a
//! Service and reached from another pod, logs, exec, scaling, a rolling update, namespace
//! deletion; then `kubeadm reset` leaves nothing behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use cluster_tests::hosts::Network;
use cluster_tests::until;

async fn kubectl(admin: &Path, args: &[&str]) -> (bool, String, String) {
    apiserver::testing::kubectl(admin, args, None).await
}

async fn kubectl_ok(admin: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(admin, args).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    out
}

async fn apply(admin: &Path, manifest: &str) {
    let (ok, out, err) =
        apiserver::testing::kubectl(admin, &["apply", "-f", "-"], Some(manifest)).await;
    assert!(ok, "kubectl apply: {out}{err}");
}

fn web(replicas: u32, version: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "web", "namespace": "demo"}},
  "spec": {{"replicas": {replicas}, "selector": {{"matchLabels": {{"app": "web"}}}},
    "strategy": {{"rollingUpdate": {{"maxSurge": 1, "maxUnavailable": 0}}}},
    "template": {{"metadata": {{"labels": {{"app": "web"}}}},
      "spec": {{"terminationGracePeriodSeconds": 1, "containers": [{{
        "name": "httpd", "image": "busybox",
        "command": ["sh", "-c", "mkdir -p /www && echo {version} $(hostname) > /www/index.html && echo serving {version} && exec httpd -f -p 80 -h /www"],
        "readinessProbe": {{"httpGet": {{"path": "/", "port": 80}}, "periodSeconds": 1}}}}]}}}}}}}}"#
    )
}

const CLIENT: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "demo"},
  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "client", "image": "busybox", "command": ["sleep", "3600"]}]}}"#;

const TOOL: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tool", "namespace": "demo"},
  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "tool", "image": "example.com/tool:1",
    "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}}"#;

/// Fetches the Service from the client pod `tries` times: the answers seen.
async fn answers(admin: &Path, ip: &str, tries: usize) -> BTreeSet<String> {
    let url = format!("http://{ip}/");
    let mut seen = BTreeSet::new();
    for _ in 0..tries {
        let (ok, out, _) = kubectl(
            admin,
            &[
                "exec", "-n", "demo", "client", "--", "timeout", "5", "wget", "-qO-", &url,
            ],
        )
        .await;
        // An empty output counts as no answer: seen once in a full run under load (exit 0,
        // no bytes), which this test of Service routing does not judge; the exec streams
        // have their own tests.
        if ok && !out.trim().is_empty() {
            seen.insert(out.trim().to_owned());
        }
    }
    seen
}

/// `kubectl rollout status` of the web Deployment: what it printed.
async fn rollout_web(admin: &Path) -> String {
    kubectl_ok(
        admin,
        &[
            "rollout",
            "status",
            "-n",
            "demo",
            "deployment/web",
            "--timeout=180s",
        ],
    )
    .await
}

async fn web_pods(admin: &Path) -> usize {
    kubectl_ok(
        admin,
        &["get", "pods", "-n", "demo", "-l", "app=web", "-o", "name"],
    )
    .await
    .lines()
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_init_brings_up_a_cluster_that_runs_workloads_and_reset_removes_it() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let data_dir = net.hosts[cp].data_dir.display().to_string();
    let ip = net.hosts[cp].ip.clone();
    let (ok, out, err) = net.init(cp, &[]);
    assert!(
        ok,
        "kubeadm init failed:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    assert!(
        out.contains("Your Kubernetes control-plane has initialized successfully!"),
        "{out}"
    );
    assert!(
        out.contains(&format!("kubeadm join {ip}:6443 --token ")),
        "{out}"
    );
    assert!(
        out.contains("--discovery-token-ca-cert-hash sha256:"),
        "{out}"
    );
    let admin = net.hosts[cp].data_dir.join("admin.conf");

    // The node is Ready; admin.conf is an ordinary user bound to cluster-admin.
    let nodes = kubectl_ok(&admin, &["get", "nodes"]).await;
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("cp ") && l.contains(" Ready ")),
        "{nodes}"
    );
    let who = kubectl_ok(
        &admin,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert_eq!(who, "kubernetes-admin");

    // A Deployment of three, rolled out.
    kubectl_ok(&admin, &["create", "namespace", "demo"]).await;
    apply(&admin, &web(3, "v1")).await;
    let rollout = rollout_web(&admin).await;
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    assert_eq!(web_pods(&admin).await, 3);

    // Exposed as a Service and reached from another pod by ClusterIP, over several pods.
    kubectl_ok(
        &admin,
        &["expose", "-n", "demo", "deployment/web", "--port", "80"],
    )
    .await;
    apply(&admin, CLIENT).await;
    kubectl_ok(
        &admin,
        &[
            "wait",
            "-n",
            "demo",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=120s",
        ],
    )
    .await;
    let svc_ip = kubectl_ok(
        &admin,
        &[
            "get",
            "svc",
            "-n",
            "demo",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
    .await;
    let seen = until(
        "the Service to answer from two pods",
        Duration::from_secs(60),
        async || {
            let seen = answers(&admin, &svc_ip, 12).await;
            (seen.len() >= 2).then_some(seen)
        },
    )
    .await;
    assert!(seen.iter().all(|a| a.starts_with("v1 web-")), "{seen:?}");

    // Logs and exec.
    let logs = kubectl_ok(&admin, &["logs", "-n", "demo", "deployment/web"]).await;
    assert!(logs.contains("serving v1"), "{logs}");
    let listing = kubectl_ok(&admin, &["exec", "-n", "demo", "client", "--", "ls", "/"]).await;
    assert!(listing.lines().any(|l| l == "bin"), "{listing}");
    let (ok, _, _) = kubectl(
        &admin,
        &["exec", "-n", "demo", "client", "--", "sh", "-c", "exit 3"],
    )
    .await;
    assert!(!ok);

    // The cluster is secure: no credentials is 401, a user of the cluster CA without
    // bindings is 403, a certificate from another CA is 401.
    let ca = net.hosts[cp].data_dir.join("pki/ca.crt");
    let (code, _) =
        cluster_tests::anonymous_get(&ca, &format!("https://{ip}:6443/api/v1/pods")).await;
    assert_eq!(code, 401);
    let pki = kubeadm::pki::Pki::new(&net.hosts[cp].data_dir.join("pki"));
    let kubeconfigs = tempfile::tempdir().unwrap();
    let server = format!("https://{ip}:6443");
    let alice = kubeadm::kubeconfig::write(
        &pki,
        kubeconfigs.path(),
        "alice.conf",
        &server,
        "alice",
        &[],
    )
    .unwrap();
    let (ok, _, err) = kubectl(&alice, &["get", "pods", "-n", "demo"]).await;
    assert!(
        !ok && err.contains("Forbidden") && err.contains("\"alice\""),
        "{err}"
    );
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let mallory_conf = cluster_tests::foreign_kubeconfig(kubeconfigs.path(), &server, &ca_pem);
    let (ok, _, err) = kubectl(&mallory_conf, &["get", "pods"]).await;
    assert!(!ok && err.contains("Unauthorized"), "{err}");

    // An image built with `kubeadm images import` runs without a registry.
    let (ok, out, err) = net.kubeadm(
        cp,
        &[
            "images",
            "import",
            "example.com/tool:1",
            "--data-dir",
            &data_dir,
        ],
    );
    assert!(ok, "kubeadm images import: {out}{err}");
    apply(&admin, TOOL).await;
    kubectl_ok(
        &admin,
        &[
            "wait",
            "-n",
            "demo",
            "--for=condition=Ready",
            "pod/tool",
            "--timeout=120s",
        ],
    )
    .await;

    // A component that crashes is restarted by the supervisor.
    let pid_file = net.hosts[cp].data_dir.join("pids/kube-scheduler");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    until(
        "the scheduler restarted",
        Duration::from_secs(30),
        async || {
            let now = std::fs::read_to_string(&pid_file).ok()?;
            (now != pid && Path::new(&format!("/proc/{}", now.trim())).exists()).then_some(())
        },
    )
    .await;

    // Scale to five (the restarted scheduler places them) and back to three.
    kubectl_ok(
        &admin,
        &["scale", "-n", "demo", "deployment/web", "--replicas=5"],
    )
    .await;
    rollout_web(&admin).await;
    assert_eq!(web_pods(&admin).await, 5);
    kubectl_ok(
        &admin,
        &["scale", "-n", "demo", "deployment/web", "--replicas=3"],
    )
    .await;
    until("three web pods", Duration::from_secs(60), async || {
        (web_pods(&admin).await == 3).then_some(())
    })
    .await;

    // A rolling update to a changed command: every answer comes from the new pods.
    apply(&admin, &web(3, "v2")).await;
    rollout_web(&admin).await;
    until("only v2 answers", Duration::from_secs(60), async || {
        let seen = answers(&admin, &svc_ip, 6).await;
        (!seen.is_empty() && seen.iter().all(|a| a.starts_with("v2 "))).then_some(())
    })
    .await;

    // Stopped (SIGTERM to the supervisor) and brought back by init on the same data dir:
    // the same cluster with its data, the running containers adopted.
    let before = kubectl_ok(
        &admin,
        &[
            "get",
            "pods",
            "-n",
            "demo",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[0].containerID}",
        ],
    )
    .await;
    let supervisor = std::fs::read_to_string(net.hosts[cp].data_dir.join("kubeadm.pid")).unwrap();
    let supervisor = supervisor.trim().to_owned();
    std::process::Command::new("kill")
        .args(["-TERM", &supervisor])
        .status()
        .unwrap();
    until(
        "the supervisor to stop",
        Duration::from_secs(90),
        async || (!Path::new(&format!("/proc/{supervisor}")).exists()).then_some(()),
    )
    .await;
    let (ok, _, _) = kubectl(&admin, &["get", "nodes"]).await;
    assert!(
        !ok,
        "the apiserver still answers after its supervisor stopped"
    );
    let (ok, out, err) = net.kubeadm(cp, &["init", "--data-dir", &data_dir]);
    assert!(
        ok,
        "kubeadm init again:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    assert!(out.contains("Found a cluster"), "{out}");
    rollout_web(&admin).await;
    assert_eq!(
        kubectl_ok(
            &admin,
            &[
                "get",
                "pods",
                "-n",
                "demo",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].status.containerStatuses[0].containerID}"
            ]
        )
        .await,
        before,
        "containers were restarted"
    );
    let seen = answers(&admin, &svc_ip, 3).await;
    assert!(seen.iter().any(|a| a.starts_with("v2 ")), "{seen:?}");

    // Deleting the namespace takes everything in it.
    kubectl_ok(&admin, &["delete", "namespace", "demo", "--timeout=180s"]).await;
    let (ok, _, err) = kubectl(&admin, &["get", "namespace", "demo"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    // Only the cluster's own (the DNS addon in kube-system) remain.
    let pods = kubectl_ok(
        &admin,
        &[
            "get",
            "pods",
            "-A",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}"#,
        ],
    )
    .await;
    let left: Vec<&str> = pods
        .lines()
        .filter(|p| !p.starts_with("kube-system/"))
        .collect();
    assert!(left.is_empty(), "{pods}");

    // Reset leaves no process, table, bridge or file behind.
    let (ok, out, err) = net.kubeadm(cp, &["reset", "-f", "--data-dir", &data_dir]);
    assert!(ok, "kubeadm reset: {out}{err}");
    assert!(!net.hosts[cp].data_dir.exists());
    let tables = net.on_host(cp, &["nft", "list", "tables"]);
    assert!(String::from_utf8_lossy(&tables.stdout).trim().is_empty());
    let links = net.on_host(cp, &["ip", "-o", "link"]);
    assert!(!String::from_utf8_lossy(&links.stdout).contains("cni0"));
    let procs = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let procs = String::from_utf8_lossy(&procs.stdout);
    assert!(!procs.contains(&data_dir), "left running:\n{procs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_init_with_etcd_servers_stores_the_cluster_in_etcd() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let data_dir = net.hosts[cp].data_dir.display().to_string();
    // etcd on the host's own loopback (its network namespace), as an operator would run it.
    let etcd_dir = net.dir.path().join("etcd");
    let mut etcd = std::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", net.hosts[cp].netns))
        .args(["etcd", "--name", "t", "--data-dir"])
        .arg(&etcd_dir)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:2379",
            "--advertise-client-urls",
            "http://127.0.0.1:2379",
            "--listen-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-cluster",
            "t=http://127.0.0.1:2380",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start etcd (apt-get install etcd-server)");
    let (ok, out, err) = net.init(cp, &["--etcd-servers", "http://127.0.0.1:2379"]);
    let admin = net.hosts[cp].data_dir.join("admin.conf");
    let stored = if ok {
        kubectl_ok(
            &admin,
            &["create", "configmap", "in-etcd", "--from-literal=a=b"],
        )
        .await;
        let got = net.on_host(
            cp,
            &[
                "env",
                "ETCDCTL_API=3",
                "etcdctl",
                "--endpoints=127.0.0.1:2379",
                "get",
                "--print-value-only",
                "/registry/configmaps/default/in-etcd",
            ],
        );
        String::from_utf8_lossy(&got.stdout).into_owned()
    } else {
        String::new()
    };
    let embedded = net.hosts[cp].data_dir.join("apiserver/state.db").exists();
    let (reset, _, _) = net.kubeadm(cp, &["reset", "-f", "--data-dir", &data_dir]);
    let _ = etcd.kill();
    let _ = etcd.wait();
    assert!(
        ok,
        "kubeadm init --etcd-servers:\n{out}\n{err}\n{}",
        net.log(cp, "kube-apiserver")
    );
    assert!(stored.contains("\"in-etcd\""), "etcd holds: {stored}");
    assert!(!embedded, "the embedded store was used too");
    assert!(reset);
}

/// The certificates' notBefore (Unix seconds), by check-expiration's name.
fn not_befores(data_dir: &Path) -> Vec<(&'static str, i64)> {
    kubeadm::certs::LEAVES
        .iter()
        .map(|leaf| {
            let pem = kubeadm::certs::read_leaf(data_dir, leaf)
                .unwrap()
                .unwrap_or_else(|| panic!("{} missing", leaf.name));
            (
                leaf.name,
                kubeadm::certs::validity(&pem).unwrap().not_before,
            )
        })
        .collect()
}

/// `kubeadm certs check-expiration` tabulates what init wrote (a year for leaves, ten for
/// the CA), `kubeadm certs renew all` re-issues every leaf while the cluster keeps
/// answering, and `kubeadm reset` asks first: "n" keeps everything, -f removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_certs_check_expiration_renew_and_reset_confirmation() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let dir = net.hosts[cp].data_dir.clone();
    let data_dir = dir.display().to_string();
    let (ok, out, err) = net.init(cp, &[]);
    assert!(
        ok,
        "kubeadm init:\n{out}\n{err}\n{}",
        net.log(cp, "kubeadm")
    );
    let admin = dir.join("admin.conf");

    let (ok, out, err) = net.kubeadm(cp, &["certs", "check-expiration", "--data-dir", &data_dir]);
    assert!(ok, "check-expiration: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED",
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines[1..7]
        .iter()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        names,
        [
            "admin.conf",
            "apiserver",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "scheduler.conf",
            "super-admin.conf"
        ],
        "{out}"
    );
    for r in &rows {
        // A year, less the time since init; the CA's own; kubeadm holds its key.
        assert!(matches!(r[2], "364d" | "365d" | "1y"), "{out}");
        assert_eq!(&r[3..], ["ca", "no"], "{out}");
    }
    assert_eq!(lines[7], "", "{out}");
    assert_eq!(
        lines[8],
        "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED",
        "{out}"
    );
    let ca: Vec<&str> = lines[9].split_whitespace().collect();
    assert_eq!(ca[0], "ca", "{out}");
    assert!(matches!(ca[6], "9y" | "10y"), "{out}");
    assert_eq!(ca[7], "no", "{out}");
    assert_eq!(lines.len(), 10, "{out}");

    // Renewal: a new notBefore (seconds resolution, so a second must have passed since
    // init signed them), everything still answering with the renewed admin.conf.
    let before = not_befores(&dir);
    let latest = before.iter().map(|(_, nb)| *nb).max().unwrap();
    until(
        "a second to pass since the certificates were signed",
        Duration::from_secs(10),
        async || (chrono::Utc::now().timestamp() > latest + 300 + 1).then_some(()),
    )
    .await;
    let (ok, out, err) = net.kubeadm(cp, &["certs", "renew", "all", "--data-dir", &data_dir]);
    assert!(ok, "renew all: {out}{err}");
    for leaf in kubeadm::certs::LEAVES {
        assert!(
            out.contains(&format!("{} renewed\n", leaf.long_name)),
            "{out}"
        );
    }
    assert!(
        out.trim_end()
            .ends_with(&kubeadm::certs::restarted_message(&[
                "kube-controller-manager",
                "kube-scheduler"
            ])),
        "{out}"
    );
    let after = not_befores(&dir);
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        assert!(new > old, "{name}: notBefore {old} -> {new}");
    }
    for conf in ["admin.conf", "super-admin.conf", "scheduler.conf"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(conf))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{conf}");
    }
    until(
        "the apiserver to answer with the renewed admin.conf",
        Duration::from_secs(60),
        async || {
            let (ok, out, _) = kubectl(&admin, &["get", "nodes", "-o", "name"]).await;
            (ok && out.contains("node/cp")).then_some(())
        },
    )
    .await;
    // The apiserver serves its renewed certificate without a restart; the controller-manager
    // and scheduler, restarted by the supervisor, schedule and run a new pod.
    let renewed = std::fs::read(dir.join("pki/apiserver.crt")).unwrap();
    let renewed = x509_parser::pem::parse_x509_pem(&renewed)
        .unwrap()
        .1
        .contents;
    let addr = format!("{}:6443", net.hosts[cp].ip);
    until(
        "the apiserver to serve its renewed certificate",
        Duration::from_secs(30),
        async || (cluster_tests::served_certificate(&addr).await? == renewed).then_some(()),
    )
    .await;
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "after-renew"},
      "spec": {"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}"#;
    let (ok, out, err) =
        apiserver::testing::kubectl(&admin, &["apply", "-f", "-"], Some(pod)).await;
    assert!(ok, "{out}{err}");
    until(
        "a pod scheduled and running after the renewal",
        Duration::from_secs(90),
        async || {
            let out = kubectl_ok(
                &admin,
                &[
                    "get",
                    "pod",
                    "after-renew",
                    "-o",
                    "jsonpath={.status.phase}",
                ],
            )
            .await;
            (out == "Running").then_some(())
        },
    )
    .await;
    let (ok, _, err) = net.kubeadm(
        cp,
        &["certs", "renew", "etcd-server", "--data-dir", &data_dir],
    );
    assert!(!ok && err.contains("unknown certificate"), "{err}");

    // Reset asks; anything but yes keeps the node.
    let (ok, out, err) = net.kubeadm_with_input(cp, &["reset", "--data-dir", &data_dir], "n\n");
    assert!(!ok, "reset went ahead on \"n\": {out}{err}");
    assert!(
        out.contains("[reset] Are you sure you want to proceed? [y/N]: "),
        "{out}"
    );
    assert!(err.contains("aborted reset operation"), "{err}");
    assert!(admin.exists() && dir.join("pki/ca.key").exists());
    kubectl_ok(&admin, &["get", "nodes"]).await;

    let (ok, out, err) = net.kubeadm(cp, &["reset", "-f", "--data-dir", &data_dir]);
    assert!(ok, "kubeadm reset -f: {out}{err}");
    assert!(!out.contains("Are you sure"), "{out}");
    assert!(!dir.exists());
}
