//! Pods through a real containerd and a real apiserver: run, log, exec, restart with
//! CrashLoopBackOff, image errors, graceful deletion with nothing left behind, and a kubelet
//! restart that adopts the running container.

use crate::support;

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use support::{container_state, node};

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
    let log = n.dir.path().join(format!(
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
        "nobin",
        json!({"name": "main", "image": "busybox", "command": ["/no/such/binary"]}),
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

    // A command that does not exist: the start fails (StartError, 128), then the back-off.
    let (reason, message) = n
        .until("nobin", "RunContainerError or CrashLoopBackOff", |p| {
            let c = container_state(p)?;
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.clone()?;
            (reason == "RunContainerError" || reason == "CrashLoopBackOff")
                .then(|| (reason, format!("{:?} {:?}", w.message, c.last_state)))
        })
        .await;
    assert!(message.contains("no such file"), "{reason}: {message}");
    // Three seconds later it has not been retried more than the back-off allows.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let nobin = n.pods().get("nobin").await.unwrap();
    let c = container_state(&nobin).unwrap();
    assert!(c.restart_count <= 2, "restarted without back-off: {c:?}");
    if let Some(last) = c.last_state.and_then(|s| s.terminated) {
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (128, Some("StartError"))
        );
    }

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_from_configmaps_and_secrets_and_memory_limits() {
    let n = node().await;
    let post = |v: serde_json::Value| {
        let client = n.client.clone();
        async move {
            let kind = v["kind"].as_str().unwrap().to_owned();
            let path = if kind == "ConfigMap" {
                "configmaps"
            } else {
                "secrets"
            };
            let req = http_request(&format!("/api/v1/namespaces/default/{path}"), &v);
            client.request::<serde_json::Value>(req).await.unwrap();
        }
    };
    post(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"MODE": "fast"}})).await;
    post(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}})).await;
    n.create(
        "env",
        json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "echo $MODE $TOKEN $POD; sleep 3600"],
            "envFrom": [{"configMapRef": {"name": "cfg"}}],
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
        json!({}),
    )
    .await;
    n.create(
        "noconfig",
        json!({"name": "main", "image": "busybox", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}),
        json!({}),
    )
    .await;
    n.create(
        "hog",
        json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "x=$(yes | head -c 100000000); sleep 60"],
            "resources": {"limits": {"memory": "20Mi"}}}),
        json!({"restartPolicy": "Never"}),
    )
    .await;
    let pod = n
        .until("env", "Running", |p| {
            container_state(p)?.state?.running.map(|_| p.clone())
        })
        .await;
    let log = n.dir.path().join(format!(
        "logs/default_env_{}/main/0.log",
        pod.metadata.uid.clone().unwrap()
    ));
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.contains("stdout F fast s3cret env"), "{text}");
    let w = n
        .until("noconfig", "CreateContainerConfigError", |p| {
            container_state(p)?.state?.waiting
        })
        .await;
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(w.message.as_deref(), Some("configmap \"absent\" not found"));
    let t = n
        .until("hog", "OOMKilled", |p| {
            (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(())?;
            container_state(p)?.state?.terminated
        })
        .await;
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"), "{t:?}");
    assert_eq!(t.exit_code, 137);
}

fn http_request(path: &str, body: &serde_json::Value) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_before_the_app() {
    let n = node().await;
    n.create(
        "staged",
        json!({"name": "main", "image": "busybox", "command": ["sleep", "3600"]}),
        json!({"initContainers": [
            {"name": "first", "image": "busybox", "command": ["sh", "-c", "sleep 1"]},
            {"name": "second", "image": "busybox", "command": ["true"]}]}),
    )
    .await;
    n.create(
        "blocked",
        json!({"name": "main", "image": "busybox", "command": ["sleep", "3600"]}),
        json!({"restartPolicy": "Never", "initContainers": [{"name": "check", "image": "busybox", "command": ["sh", "-c", "exit 1"]}]}),
    )
    .await;
    // While the first init container runs, the app waits and the pod is not initialized.
    let waiting = n
        .until("staged", "PodInitializing", |p| {
            let s = p.status.as_ref()?;
            let app = s
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .waiting
                .clone()?;
            let init = s
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Initialized")?
                .clone();
            (app.reason.as_deref() == Some("PodInitializing")).then_some(init)
        })
        .await;
    assert_eq!(waiting.status, "False");
    assert_eq!(waiting.reason.as_deref(), Some("ContainersNotInitialized"));
    let running = n
        .until("staged", "Running after both init containers", |p| {
            (p.status.as_ref()?.phase.as_deref() == Some("Running") && container_state(p)?.ready)
                .then(|| p.clone())
        })
        .await;
    let inits = running.status.unwrap().init_container_statuses.unwrap();
    for s in &inits {
        let t = s.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (t.exit_code, t.reason.as_deref()),
            (0, Some("Completed")),
            "{}",
            s.name
        );
    }
    let failed = n
        .until("blocked", "Failed", |p| {
            (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then(|| p.clone())
        })
        .await;
    let s = failed.status.unwrap();
    let init = s.init_container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((init.exit_code, init.reason.as_deref()), (1, Some("Error")));
    let app = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(
        app.reason.as_deref(),
        Some("PodInitializing"),
        "the app never started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_readiness_follows_the_health_service() {
    use tonic_health::ServingStatus;
    // A real gRPC health server on the host; the pod shares the host's network.
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let n = node().await;
    n.create(
        "grpc",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["sleep", "3600"],
               "readinessProbe": {"grpc": {"port": port, "service": "shop"}, "periodSeconds": 1}}),
        json!({}),
    )
    .await;
    let ready = |want: bool| {
        move |p: &k8s_openapi::api::core::v1::Pod| (container_state(p)?.ready == want).then_some(())
    };
    n.until("grpc", "Ready through the gRPC probe", ready(true))
        .await;
    reporter
        .set_service_status("shop", ServingStatus::NotServing)
        .await;
    n.until("grpc", "not Ready once NOT_SERVING", ready(false))
        .await;
    reporter
        .set_service_status("shop", ServingStatus::Serving)
        .await;
    n.until("grpc", "Ready again", ready(true)).await;
}

/// Watches the pod until it is deleted; answers the last state a watcher saw before the
/// DELETED event.
async fn last_state_before_deletion(
    n: &support::Node,
    name: &str,
) -> k8s_openapi::api::core::v1::Pod {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};
    let pod = n.pods().get(name).await.unwrap();
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(120);
    let mut events = n
        .pods()
        .watch(&wp, &pod.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    let mut last = pod;
    let watch = async {
        while let Some(e) = events.try_next().await.unwrap() {
            match e {
                WatchEvent::Modified(p) => last = p,
                WatchEvent::Deleted(_) => return,
                _ => {}
            }
        }
        panic!(
            "the watch ended before the pod was deleted: {:#?}",
            last.status
        );
    };
    n.pods().delete(name, &Default::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), watch)
        .await
        .expect("the pod was deleted");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_running_reports_its_final_status() {
    let n = node().await;
    // PID 1 of a container ignores SIGTERM: sleep is killed (137) at the end of the grace
    // period. The shell traps SIGTERM and exits 0.
    n.create(
        "killed",
        json!({"name": "main", "image": "busybox", "command": ["sleep", "3600"]}),
        json!({}),
    )
    .await;
    n.create(
        "obliging",
        json!({"name": "main", "image": "busybox",
               "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}),
        json!({"terminationGracePeriodSeconds": 30}),
    )
    .await;
    for name in ["killed", "obliging"] {
        n.until(name, "Running", |p| container_state(p)?.ready.then_some(()))
            .await;
    }
    let (killed, obliging) = tokio::join!(
        last_state_before_deletion(&n, "killed"),
        last_state_before_deletion(&n, "obliging")
    );
    for (pod, phase, exit, ready_reason) in [
        (killed, "Failed", 137, "ContainersNotReady"),
        (obliging, "Succeeded", 0, "PodCompleted"),
    ] {
        let name = pod.name_any();
        let status = pod.status.clone().unwrap();
        assert_eq!(status.phase.as_deref(), Some(phase), "{name}: {status:#?}");
        let c = container_state(&pod).unwrap();
        assert!(!c.ready, "{name}: {c:#?}");
        let t = c.state.and_then(|s| s.terminated).expect("terminated");
        assert_eq!(t.exit_code, exit, "{name}: {t:#?}");
        assert!(t.finished_at.is_some(), "{name}: {t:#?}");
        for type_ in ["Ready", "ContainersReady"] {
            let cond = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == type_)
                .unwrap();
            assert_eq!(
                (cond.status.as_str(), cond.reason.as_deref()),
                ("False", Some(ready_reason)),
                "{name}: {type_}"
            );
        }
    }
    assert!(
        n.runtime.cri.list_pod_sandboxes().await.unwrap().is_empty(),
        "no sandbox left behind"
    );
}

/// A pod's RuntimeClass picks the runtime handler its sandbox runs with (upstream's runtime
/// class manager); a handler the runtime does not have fails the sandbox with an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_classes_choose_the_sandbox_handler() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    use kube::api::{Api, PostParams};
    let n = node().await;
    let classes: Api<RuntimeClass> = Api::all(n.client.clone());
    for (name, handler) in [("plain", "runc"), ("ghost", "no-such-runtime")] {
        let class: RuntimeClass = serde_json::from_value(json!({
            "metadata": {"name": name}, "handler": handler}))
        .unwrap();
        classes
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
    }
    // Admission looks the class up in the watch cache: wait until lists show both.
    for _ in 0..200 {
        if classes.list(&Default::default()).await.unwrap().items.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sleeper = json!({"name": "main", "image": "busybox", "command": ["sleep", "3600"]});
    n.create(
        "plain",
        sleeper.clone(),
        json!({"runtimeClassName": "plain"}),
    )
    .await;
    n.until("plain", "Running", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let sandboxes = n.runtime.cri.list_pod_sandboxes().await.unwrap();
    assert!(
        sandboxes.iter().any(|s| s.runtime_handler == "runc"),
        "{sandboxes:?}"
    );
    n.create("ghost", sleeper, json!({"runtimeClassName": "ghost"}))
        .await;
    let message = n
        .event_message("FailedCreatePodSandBox")
        .await
        .expect("a FailedCreatePodSandBox event");
    assert!(
        message.starts_with("Failed to create pod sandbox: ")
            && message.contains("no-such-runtime"),
        "{message}"
    );
}
