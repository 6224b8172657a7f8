//! `kubeadm reset`'s removal of the pods against a real containerd: the node's containerd
//! stopped as the supervisor stops it (its shims and containers run on), then reset ends
//! every pod process and removes the pods' network namespaces and runc state.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use k8s_cri::v1 as cri;
use kubelet::cri::Cri;
use kubelet::testing::Containerd;

/// The /var/run/netns/cni-* entries bound to one of `inodes`.
fn pod_namespaces(inodes: &[u64]) -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cni-"))
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| inodes.contains(&m.ino())))
        .map(|e| e.path().display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_leaves_no_pod_process_network_namespace_or_runc_state() {
    run_a_pod_then_reset("10.244.61.0/24", true).await;
}

/// A runtime that never answers (here: does not start) leaves the pods to reset's own
/// means, and reset says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_ends_the_pods_of_a_runtime_that_does_not_answer() {
    run_a_pod_then_reset("10.244.62.0/24", false).await;
}

async fn run_a_pod_then_reset(subnet: &str, runtime_answers: bool) {
    let mut containerd = Containerd::start_with_pod_network(subnet).await;
    containerd.import_test_images().unwrap();
    let runtime = Cri::connect(&containerd.endpoint()).await.unwrap();
    let logs = containerd.dir.path().join("pods/default_web");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "uid-web".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    // A child of the container's init too: nothing below the shim may survive.
    let (sandbox, container) = containerd
        .run_busybox(&runtime, sandbox_config, "sleep 3600 & sleep 3600")
        .await;
    drop(runtime);

    // What the pod has on the node: processes, a network namespace, runc state.
    let mut procs = Vec::new();
    for _ in 0..600 {
        procs = kubelet::containerd::pod_processes(&containerd.socket);
        // pause, and the two sleeps (sh execs the last).
        if procs.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(procs.len() >= 3, "the pod's processes: {procs:?}");
    let inodes: Vec<u64> = procs.iter().filter_map(|p| p.net_namespace()).collect();
    let namespaces = pod_namespaces(&inodes);
    assert_eq!(namespaces.len(), 1, "the sandbox's network namespace");
    let runc_state = |id: &str| {
        std::path::Path::new(kubeadm::reset::RUNC_ROOT)
            .join("k8s.io")
            .join(id)
    };
    assert!(runc_state(&container).exists() && runc_state(&sandbox).exists());

    // The supervisor stopped containerd: the pod runs on under its shim.
    containerd.stop_daemon().await;
    assert!(
        procs.iter().all(|p| p.alive()),
        "the pod outlives containerd"
    );

    let log = containerd.dir.path().join("containerd-reset.log");
    if runtime_answers {
        kubeadm::reset::remove_pods_of(containerd.command(), &containerd.socket, &log)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    } else {
        let err = kubeadm::reset::remove_pods_of(
            std::process::Command::new("false"),
            &containerd.socket,
            &log,
        )
        .await
        .expect_err("the runtime's failure is reported");
        assert!(format!("{err:#}").contains("containerd exited"), "{err:#}");
    }
    let alive: Vec<_> = procs.iter().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "pod processes left running: {alive:?}");
    assert!(
        kubelet::containerd::shims(&containerd.socket).is_empty(),
        "no shim left"
    );
    assert_eq!(pod_namespaces(&inodes), Vec::<String>::new(), "netns left");
    for n in &namespaces {
        assert!(!std::path::Path::new(n).exists(), "{n} left");
    }
    assert!(
        !runc_state(&container).exists() && !runc_state(&sandbox).exists(),
        "runc state left"
    );
}
