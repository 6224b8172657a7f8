//! Issue #5's first acceptance item end to end, with the kubelet binary, a real containerd
//! with a CNI pod network, a real apiserver and real kubectl: a busybox pod reaches Running
//! with a pod IP; `kubectl logs` shows its output; `kubectl exec` lists / and passes the exit
//! code back; readiness gates Ready; a failing liveness probe restarts the container; a
//! kubelet killed with -9 and restarted does not restart it; deleting the pod stops it
//! within its grace period and leaves no sandbox.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kubelet::cri::Cri;
use kubelet::testing::Containerd;

fn spawn_kubelet(dir: &Path, containerd: &Containerd, port: u16) -> Child {
    Command::new(cluster_tests::bin("kubelet"))
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(["--hostname-override", "node-a", "--node-ip", "127.0.0.1"])
        .args([
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--healthz-port",
            "0",
        ])
        .arg("--container-runtime-endpoint")
        .arg(containerd.endpoint())
        .arg("--root-dir")
        .arg(dir.join("kubelet"))
        .arg("--pod-log-dir")
        .arg(dir.join("logs"))
        .env("RUST_LOG", "info,kubelet=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("kubelet.log")).unwrap())
        .spawn()
        .unwrap()
}

async fn until<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    cluster_tests::until(what, Duration::from_secs(30), check).await
}

fn first_container(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_through_the_kubelet_binary_as_kubectl_sees_it() {
    let containerd = Containerd::start_with_pod_network("10.244.43.0/24").await;
    containerd.import_test_images().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &server.url());
    let kubectl = async |args: &[&str]| apiserver::testing::kubectl(&kubeconfig, args, None).await;
    let client = Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let port = apiserver::testing::free_port();
    let mut kubelet = spawn_kubelet(dir.path(), &containerd, port);
    let nodes: Api<Node> = Api::all(client.clone());
    until("node-a registered", async || {
        nodes.get_opt("node-a").await.unwrap()
    })
    .await;

    // No scheduler runs here: the pod names its node. The probes are HTTP: a kubelet
    // SIGKILLed in the middle of an exec probe was seen to wedge containerd 1.6's shim for
    // the container for ~25 s under load (every later exec and stop waited), which is the
    // runtime's doing, not what this test is about.
    let manifest = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
      "spec": {"nodeName": "node-a", "terminationGracePeriodSeconds": 5, "containers": [{
        "name": "main", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo hello; mkdir -p /www; touch /www/live; httpd -p 8080 -h /www; sleep 3600"],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}, "initialDelaySeconds": 1,
                          "periodSeconds": 1, "failureThreshold": 1}}]}}"#;
    let (ok, _, err) =
        apiserver::testing::kubectl(&kubeconfig, &["apply", "-f", "-"], Some(manifest)).await;
    assert!(ok, "{err}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = until("hello Running", async || {
        let p = pods.get("hello").await.ok()?;
        first_container(&p)?.state?.running?;
        Some(p)
    })
    .await;
    let status = pod.status.unwrap();
    let ip = status.pod_ip.unwrap();
    assert!(ip.starts_with("10.244.43."), "{ip}");
    assert!(
        !first_container_ready(&pods).await,
        "Ready before the readiness probe passed"
    );

    let (ok, out, err) = kubectl(&["logs", "hello"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "hello\n");
    let (ok, out, err) = kubectl(&["exec", "hello", "--", "ls", "/"]).await;
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l == "bin") && out.lines().any(|l| l == "proc"),
        "{out}"
    );
    let code = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args(["exec", "hello", "--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(code.code(), Some(7));

    // Readiness gates Ready.
    let (ok, _, err) = kubectl(&["exec", "hello", "--", "touch", "/www/ready"]).await;
    assert!(ok, "{err}");
    until("Ready", async || {
        first_container_ready(&pods).await.then_some(())
    })
    .await;

    // A failing liveness probe restarts the container.
    let (ok, _, err) = kubectl(&["exec", "hello", "--", "rm", "/www/live"]).await;
    assert!(ok, "{err}");
    let restarted = until("a restart", async || {
        let c = first_container(&pods.get("hello").await.ok()?)?;
        (c.restart_count >= 1 && c.state.as_ref()?.running.is_some()).then_some(c)
    })
    .await;

    // kill -9 and a restart of the kubelet leave the running container alone.
    kubelet.kill().unwrap();
    kubelet.wait().unwrap();
    let mut kubelet = spawn_kubelet(dir.path(), &containerd, port);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = first_container(&pods.get("hello").await.unwrap()).unwrap();
    assert_eq!(after.container_id, restarted.container_id);
    assert_eq!(after.restart_count, restarted.restart_count);
    let (ok, out, _) = kubectl(&["logs", "hello"]).await;
    assert!(ok && out == "hello\n", "{out}");

    // Deletion: stopped within the grace period (sh ignores SIGTERM as PID 1, so it takes
    // the whole period), then no sandbox is left.
    let started = Instant::now();
    let (ok, _, err) = kubectl(&["delete", "pod", "hello", "--timeout=60s"]).await;
    assert!(ok, "{err}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5 + 5),
        "deletion took {took:?}; the kubelet's log:\n{}\ncontainerd's log:\n{}",
        std::fs::read_to_string(dir.path().join("kubelet.log")).unwrap_or_default(),
        containerd.log()
    );
    let cri = Cri::connect(&containerd.endpoint()).await.unwrap();
    assert!(cri.list_pod_sandboxes().await.unwrap().is_empty());
    assert!(cri.list_containers().await.unwrap().is_empty());

    Command::new("kill")
        .args(["-TERM", &kubelet.id().to_string()])
        .status()
        .unwrap();
    assert!(kubelet.wait().unwrap().success());
}

async fn first_container_ready(pods: &Api<Pod>) -> bool {
    pods.get("hello")
        .await
        .ok()
        .and_then(|p| first_container(&p))
        .is_some_and(|c| c.ready)
}
