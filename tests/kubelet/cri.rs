//! The CRI client against a real containerd: images built from busybox-static, a sandbox
//! and a container run, logged, exec'd into, stopped and removed.

use std::time::Duration;

use k8s_cri::v1 as cri;
use kubelet::cri::Cri;
use kubelet::testing::{BUSYBOX_IMAGE, Containerd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_container_through_cri() {
    let containerd = Containerd::start().await;
    let runtime = Cri::connect(&containerd.endpoint()).await.unwrap();
    let v = runtime.version().await.unwrap();
    assert_eq!(v.runtime_name, "containerd");
    containerd.import_test_images().unwrap();
    assert!(
        runtime.image_status(BUSYBOX_IMAGE).await.unwrap().is_some(),
        "imported image is visible to CRI"
    );

    let logs = containerd.dir.path().join("pods/default_hello");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "hello".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        // Host-network pods share the node's UTS namespace: no hostname of their own.
        hostname: String::new(),
        log_directory: logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (sandbox, container) = containerd
        .run_busybox(&runtime, sandbox_config, "echo hello; sleep 3600")
        .await;

    // The CRI log format: "<time> stdout F hello".
    let log_file = logs.join("c/0.log");
    let mut line = String::new();
    for _ in 0..100 {
        line = std::fs::read_to_string(&log_file).unwrap_or_default();
        if line.contains("hello") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(line.contains(" stdout F hello"), "log: {line:?}");

    let (code, out, _) = runtime
        .exec_sync(&container, &["ls", "/"], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(
        String::from_utf8_lossy(&out).lines().any(|l| l == "bin"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (code, _, _) = runtime
        .exec_sync(&container, &["sh", "-c", "exit 3"], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(code, 3, "exit codes come back");

    runtime
        .stop_container(&container, Duration::from_secs(1))
        .await
        .unwrap();
    let status = runtime.container_status(&container).await.unwrap();
    assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
    runtime.remove_container(&container).await.unwrap();
    runtime.stop_pod_sandbox(&sandbox).await.unwrap();
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    assert!(
        runtime.list_pod_sandboxes().await.unwrap().is_empty(),
        "no sandbox left behind"
    );
}
