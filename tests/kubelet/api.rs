//! The kubelet API through the apiserver, with real kubectl and a real containerd:
//! `kubectl logs` (tail, timestamps, follow to the container's end), `kubectl exec` with
//! its output and exit code, upstream's errors, and nodes/proxy to /pods, /stats/summary
//! and /metrics.

use crate::support;

use serde_json::json;
use support::{container_state, node};

fn running(p: &k8s_openapi::api::core::v1::Pod) -> Option<()> {
    container_state(p)?.state?.running.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_logs_and_exec_reach_the_container() {
    let mut n = node().await;
    n.serve_api();
    n.create(
        "hello",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sh", "-c", "echo hello; echo world; sleep 3600"]}),
        json!({}),
    )
    .await;
    n.until("hello", "Running", running).await;

    let (ok, out, err) = n.kubectl(&["logs", "hello"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out, "hello\nworld\n");
    let (ok, out, _) = n.kubectl(&["logs", "hello", "--tail=1"], None).await;
    assert!(ok);
    assert_eq!(out, "world\n");
    let (ok, out, _) = n.kubectl(&["logs", "hello", "--timestamps"], None).await;
    assert!(ok);
    let first = out.lines().next().unwrap();
    let (time, text) = first.split_once(' ').unwrap();
    assert_eq!(text, "hello");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{first}"
    );

    let (ok, out, err) = n.kubectl(&["exec", "hello", "--", "ls", "/"], None).await;
    assert!(ok, "{err}");
    let listing: Vec<&str> = out.lines().collect();
    for dir in ["bin", "dev", "etc", "proc"] {
        assert!(listing.contains(&dir), "{dir} missing from {listing:?}");
    }
    let out = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", n.dir.path().join("kubeconfig"))
        .args([
            "exec",
            "hello",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("err\n"),
        "{out:?}"
    );
    // A terminal: kubectl exec -it under a pseudo-terminal (script(1)) gets one inside.
    let out = tokio::process::Command::new("script")
        .env("KUBECONFIG", n.dir.path().join("kubeconfig"))
        .args([
            "-qec",
            "kubectl exec -it hello -- sh -c 'tty; exit 4'",
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
    let (ok, out, err) = n.kubectl(&["describe", "node", "node-a"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("Ready") && out.contains("hello"), "{out}");
    // stdin reaches the process.
    let (ok, out, err) = n
        .kubectl(
            &["exec", "-i", "hello", "--", "head", "-n1"],
            Some("typed\n"),
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "typed\n");

    // The Python client: its log call and its exec over WebSocket v4.channel.k8s.io.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/kubelet/fixtures/logs_exec.py");
    let out = tokio::process::Command::new(apiserver::testing::python())
        .arg(script)
        .arg(n.dir.path().join("kubeconfig"))
        .arg("hello")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "log: world\nexec: from-python\nexit: 7\n");

    // Upstream's refusals, as kubectl prints them.
    let (ok, _, err) = n.kubectl(&["logs", "hello", "-c", "nope"], None).await;
    assert!(!ok);
    assert!(
        err.contains("container nope is not valid for pod hello"),
        "{err}"
    );
    let (ok, _, err) = n.kubectl(&["logs", "missing"], None).await;
    assert!(!ok);
    assert!(err.contains("pods \"missing\" not found"), "{err}");
    let (ok, _, err) = n
        .kubectl(&["exec", "hello", "-c", "nope", "--", "ls"], None)
        .await;
    assert!(!ok);
    assert!(
        err.contains("container nope is not valid for pod hello"),
        "{err}"
    );

    // nodes/proxy reaches the kubelet's own endpoints.
    let (ok, out, err) = n
        .kubectl(&["get", "--raw", "/api/v1/nodes/node-a/proxy/pods"], None)
        .await;
    assert!(ok, "{err}");
    let pods: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pods["kind"], "PodList");
    assert_eq!(pods["items"][0]["metadata"]["name"], "hello");
    let (ok, out, err) = n
        .kubectl(
            &["get", "--raw", "/api/v1/nodes/node-a/proxy/stats/summary"],
            None,
        )
        .await;
    assert!(ok, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["node"]["nodeName"], "node-a");
    let hello = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "hello")
        .expect("hello's stats");
    assert!(
        hello["containers"][0]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (ok, out, _) = n
        .kubectl(
            &["get", "--raw", "/api/v1/nodes/node-a/proxy/metrics"],
            None,
        )
        .await;
    assert!(ok);
    assert!(
        out.contains("kubelet_running_containers{container_state=\"running\"} 1"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_logs_follow_ends_with_the_container() {
    let mut n = node().await;
    n.serve_api();
    n.create(
        "ticker",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sh", "-c", "echo one; sleep 2; echo two"]}),
        json!({"restartPolicy": "Never"}),
    )
    .await;
    n.until("ticker", "Running", running).await;
    let started = std::time::Instant::now();
    let (ok, out, err) = n.kubectl(&["logs", "-f", "ticker"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out, "one\ntwo\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A completed pod keeps its logs (its exited container stays until the pod is deleted).
    n.until("ticker", "Succeeded", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (ok, out, err) = n.kubectl(&["logs", "ticker"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out, "one\ntwo\n");
    // A container that has not started yet is reported as upstream does.
    n.create(
        "absent",
        json!({"name": "c", "image": "no-such-image", "imagePullPolicy": "Never"}),
        json!({}),
    )
    .await;
    n.until("absent", "ErrImageNeverPull", |p| {
        (container_state(p)?.state?.waiting?.reason? == "ErrImageNeverPull").then_some(())
    })
    .await;
    let (ok, _, err) = n.kubectl(&["logs", "absent"], None).await;
    assert!(!ok);
    assert!(
        err.contains("container \"c\" in pod \"absent\" is waiting to start: ErrImageNeverPull"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_port_forward_reaches_the_pod() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut n = node().await;
    n.serve_api();
    let pod_port = apiserver::testing::free_port();
    n.create(
        "web",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sh", "-c", format!("mkdir /www; echo forwarded > /www/index.html; exec httpd -f -p {pod_port} -h /www")]}),
        json!({}),
    )
    .await;
    n.until("web", "Running", running).await;
    n.kubectl(&["get", "pods"], None).await; // writes the kubeconfig
    let local = apiserver::testing::free_port();
    let mut pf = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", n.dir.path().join("kubeconfig"))
        .args(["port-forward", "pod/web", &format!("{local}:{pod_port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(pf.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("kubectl port-forward starts")
        .unwrap()
        .unwrap_or_default();
    assert!(first.starts_with("Forwarding from 127.0.0.1"), "{first}");
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_string(&mut answer),
    )
    .await
    .expect("an answer through the forwarded port")
    .unwrap();
    assert!(
        answer.lines().next().unwrap().ends_with(" 200 OK"),
        "{answer}"
    );
    assert!(answer.ends_with("forwarded\n"), "{answer}");
    pf.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_attach_reaches_the_container_stdio() {
    let mut n = node().await;
    n.serve_api();
    n.create(
        "reader",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never", "stdin": true,
               "command": ["sh", "-c", "read line; echo got $line; sleep 1"]}),
        json!({"restartPolicy": "Never"}),
    )
    .await;
    n.until("reader", "Running", running).await;
    let (ok, out, err) = n
        .kubectl(&["attach", "-i", "reader", "-c", "c"], Some("hello\n"))
        .await;
    assert!(ok, "{err}");
    assert!(out.contains("got hello"), "{out}");
    let (ok, logs, _) = n.kubectl(&["logs", "reader"], None).await;
    assert!(ok);
    assert_eq!(logs, "got hello\n");
}

/// Each policy's /etc/resolv.conf as the pod sees it (containerd writes the search line
/// first, then the servers and options).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_resolv_conf_follows_their_dns_policy_and_hosts_their_aliases() {
    use kubelet::pods::dns::{ResolvConf, Settings};
    let dns = Settings {
        cluster_dns: vec!["10.96.0.10".parse().unwrap()],
        cluster_domain: "cluster.local".into(),
        host: Some(ResolvConf::parse(
            "search corp.example\nnameserver 192.0.2.53\noptions edns0\n",
        )),
    };
    let containerd = kubelet::testing::Containerd::start().await;
    let mut n = support::node_with_dns(containerd, |_, _| {}, dns).await;
    n.serve_api();
    let cat = |name: &str| {
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sh", "-c", format!("cat /etc/resolv.conf; echo {name}; sleep 3600")]})
    };
    let cases = [
        (
            "cluster",
            json!({"dnsPolicy": "ClusterFirstWithHostNet"}),
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n",
        ),
        (
            "host",
            json!({"dnsPolicy": "Default"}),
            "search corp.example\nnameserver 192.0.2.53\noptions edns0\n",
        ),
        (
            "own",
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.1"],
                "searches": ["my.example"], "options": [{"name": "ndots", "value": "2"}]}}),
            "search my.example\nnameserver 192.0.2.1\noptions ndots:2\n",
        ),
    ];
    for (name, extra, _) in &cases {
        n.create(name, cat(name), extra.clone()).await;
    }
    for (name, _, want) in &cases {
        n.until(name, "Running", running).await;
        let mut logs = String::new();
        for _ in 0..50 {
            let (ok, text, _) = n.kubectl(&["logs", name], None).await;
            if ok && text.ends_with(&format!("{name}\n")) {
                logs = text;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(logs, format!("{want}{name}\n"), "{name}");
    }

    // A host-network pod's /etc/hosts is the node's with the pod's aliases added.
    n.create(
        "aliased",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sh", "-c", "cat /etc/hosts; echo end; sleep 3600"]}),
        json!({"hostAliases": [{"ip": "192.0.2.1", "hostnames": ["foo.local", "bar.local"]}]}),
    )
    .await;
    n.until("aliased", "Running", running).await;
    let mut hosts = String::new();
    for _ in 0..50 {
        let (ok, text, _) = n.kubectl(&["logs", "aliased"], None).await;
        if ok && text.ends_with("end\n") {
            hosts = text;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let node = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(
        hosts.starts_with(&format!(
            "# Kubernetes-managed hosts file (host network).\n{node}"
        )),
        "{hosts}"
    );
    assert!(
        hosts.ends_with("# Entries added by HostAliases.\n192.0.2.1\tfoo.local\tbar.local\nend\n"),
        "{hosts}"
    );
}
