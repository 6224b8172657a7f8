//! Pods through a real containerd and a real apiserver: run, log, exec, restart with
//! CrashLoopBackOff, image errors, graceful deletion with nothing left behind, and a kubelet
//! restart that adopts the running container.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use kubelet::cri::Cri;
use kubelet::pods::worker::PodRuntime;
use kubelet::testing::Containerd;
use serde_json::json;

struct Node {
    containerd: Containerd,
    _server: apiserver::server::InProcess,
    _dir: tempfile::TempDir,
    client: Client,
    runtime: Arc<PodRuntime>,
    kubelet: Option<tokio::task::JoinHandle<()>>,
}

async fn node() -> Node {
    let containerd = Containerd::start().await;
    containerd.import_test_images().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::server::spawn_in_process(apiserver::server::Config {
        data_dir: dir.path().join("data"),
        secure_port: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = Client::try_from(kube::Config::new(
        format!("http://{}", server.addr).parse().unwrap(),
    ))
    .unwrap();
    let cri = Cri::connect(&containerd.endpoint()).await.unwrap();
    let runtime = Arc::new(PodRuntime::new(
        cri,
        client.clone(),
        dir.path().join("logs"),
        "127.0.0.1".into(),
    ));
    let mut n = Node {
        containerd,
        _server: server,
        _dir: dir,
        client,
        runtime,
        kubelet: None,
    };
    n.start_kubelet();
    n
}

impl Node {
    fn start_kubelet(&mut self) {
        self.kubelet = Some(tokio::spawn(kubelet::pods::run(
            self.runtime.clone(),
            "node-a".into(),
        )));
    }

    fn stop_kubelet(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.abort();
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn create(&self, name: &str, container: serde_json::Value, extra: serde_json::Value) {
        let mut spec = json!({"nodeName": "node-a", "hostNetwork": true, "terminationGracePeriodSeconds": 1,
            "containers": [container]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    /// Waits until `check` accepts the pod; panics with the pod and containerd's log.
    async fn until<T>(&self, name: &str, what: &str, check: impl Fn(&Pod) -> Option<T>) -> T {
        let mut last = None;
        for _ in 0..400 {
            if let Some(p) = self.pods().get_opt(name).await.unwrap() {
                if let Some(v) = check(&p) {
                    return v;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}\n{}",
            last.map(|p| p.status),
            self.containerd
                .log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn container_state(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_logs_restarts_and_goes_away_cleanly() {
    let mut n = node().await;
    n.create("hello", json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hello; sleep 3600"]}), json!({})).await;
    let running = n
        .until("hello", "Running", |p| {
            let s = p.status.as_ref()?;
            (s.phase.as_deref() == Some("Running") && container_state(p)?.ready).then(|| p.clone())
        })
        .await;
    let status = running.status.clone().unwrap();
    assert_eq!(
        status.pod_ip.as_deref(),
        Some("127.0.0.1"),
        "host network: the node's address"
    );
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    let cs = container_state(&running).unwrap();
    let id = cs.container_id.clone().unwrap();
    assert!(id.starts_with("containerd://"));
    assert!(cs.state.unwrap().running.is_some());
    let log = n._dir.path().join(format!(
        "logs/default_hello_{}/main/0.log",
        running.metadata.uid.clone().unwrap()
    ));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stdout F hello"), "{text}");

    // A kubelet restart adopts the running container: same id, no restart.
    n.stop_kubelet();
    tokio::time::sleep(Duration::from_millis(300)).await;
    n.start_kubelet();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = container_state(&n.pods().get("hello").await.unwrap()).unwrap();
    assert_eq!(
        after.container_id.as_deref(),
        Some(id.as_str()),
        "container was not replaced"
    );
    assert_eq!(after.restart_count, 0);

    // Deleting stops it within its grace period and removes the sandbox.
    n.pods().delete("hello", &Default::default()).await.unwrap();
    for _ in 0..200 {
        if n.pods().get_opt("hello").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        n.pods().get_opt("hello").await.unwrap().is_none(),
        "the kubelet confirmed the deletion"
    );
    assert!(
        n.runtime.cri.list_pod_sandboxes().await.unwrap().is_empty(),
        "no sandbox left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_show_upstreams_reasons() {
    let n = node().await;
    n.create(
        "crash",
        json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 3"]}),
        json!({}),
    )
    .await;
    n.create(
        "never",
        json!({"name": "main", "image": "example.com/absent:1", "imagePullPolicy": "Never"}),
        json!({}),
    )
    .await;
    n.create(
        "pull",
        json!({"name": "main", "image": "example.com/absent:1"}),
        json!({}),
    )
    .await;
    n.create(
        "once",
        json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 2"]}),
        json!({"restartPolicy": "Never"}),
    )
    .await;

    let crash = n
        .until("crash", "CrashLoopBackOff", |p| {
            let c = container_state(p)?;
            let w = c.state.as_ref()?.waiting.as_ref()?;
            (w.reason.as_deref() == Some("CrashLoopBackOff")).then_some(c)
        })
        .await;
    assert!(
        crash.restart_count >= 1,
        "restarted before backing off: {crash:?}"
    );
    let last = crash.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));

    let w = n
        .until("never", "ErrImageNeverPull", |p| {
            container_state(p)?.state?.waiting
        })
        .await;
    assert_eq!(w.reason.as_deref(), Some("ErrImageNeverPull"));
    assert_eq!(
        w.message.as_deref(),
        Some("Container image \"example.com/absent:1\" is not present with pull policy of Never")
    );
    let reason = n
        .until("pull", "an image pull error", |p| {
            container_state(p)?
                .state?
                .waiting?
                .reason
                .filter(|r| r == "ImagePullBackOff" || r == "ErrImagePull")
        })
        .await;
    assert!(reason == "ErrImagePull" || reason == "ImagePullBackOff");
    let once = n
        .until("once", "Failed", |p| {
            (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then(|| p.clone())
        })
        .await;
    let t = container_state(&once)
        .unwrap()
        .state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
    assert_eq!(once.name_any(), "once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_restarts_and_readiness_gates_ready() {
    let n = node().await;
    // Alive for two seconds, then the liveness file goes: the container is restarted.
    n.create(
        "flaky",
        json!({"name": "main", "image": "busybox",
            "command": ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600"],
            "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 1}}),
        json!({}),
    )
    .await;
    // Ready only once the file exists, and an HTTP readiness probe on busybox httpd.
    let port = apiserver::testing::free_port();
    n.create(
        "slow",
        json!({"name": "main", "image": "busybox",
            "command": ["sh", "-c", format!("sleep 2; mkdir -p /www; echo ok > /www/index.html; httpd -f -p {port} -h /www")],
            "readinessProbe": {"httpGet": {"path": "/index.html", "port": port}, "periodSeconds": 1}}),
        json!({}),
    )
    .await;
    let not_ready = n
        .until("slow", "running but not ready", |p| {
            let c = container_state(p)?;
            (c.state.as_ref()?.running.is_some() && !c.ready).then_some(())
        })
        .await;
    assert_eq!(not_ready, ());
    let ready = n
        .until("slow", "Ready", |p| {
            let cond = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (cond.status == "True").then_some(cond)
        })
        .await;
    assert_eq!(ready.status, "True");
    let restarted = n
        .until("flaky", "a liveness restart", |p| {
            let c = container_state(p)?;
            (c.restart_count >= 1).then_some(c)
        })
        .await;
    assert!(
        restarted.last_state.unwrap().terminated.is_some(),
        "the killed run is lastState"
    );
}
