//! Volumes and security contexts with a real containerd: emptyDir, hostPath, configMap,
//! secret, downwardAPI and projected content as the container sees it (through kubectl
//! exec), ConfigMap changes reaching a running pod, read-only content, users and groups,
//! a read-only root filesystem, runAsNonRoot, FailedMount for a missing ConfigMap, the
//! preStop hook, and no volume files left after the pod is gone.

use crate::support;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{container_state, node};

fn running(p: &k8s_openapi::api::core::v1::Pod) -> Option<()> {
    let s = p.status.as_ref()?;
    (s.phase.as_deref() == Some("Running")
        && s.container_statuses.iter().flatten().all(|c| c.ready))
    .then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_and_security_contexts_as_the_container_sees_them() {
    let mut n = node().await;
    n.serve_api();
    let cms: Api<ConfigMap> = Api::namespaced(n.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(n.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "cfg"}, "data": {"a": "alpha", "b": "beta"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let host_dir = n.dir.path().join("host-data");

    let app = json!({"name": "app", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo from-pod > /scratch/x; echo on-host > /host/y; sleep 3600"],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /host/prestop"]}}},
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "host", "mountPath": "/host"},
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "sec", "mountPath": "/etc/sec"},
            {"name": "info", "mountPath": "/etc/podinfo"},
            {"name": "all", "mountPath": "/etc/all"},
            {"name": "scratch", "mountPath": "/sub", "subPath": "deeper"}]});
    let secure = json!({"name": "secure", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sleep", "3600"],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "readOnlyRootFilesystem": true,
                            "allowPrivilegeEscalation": false},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]});
    n.create("vols", app.clone(), json!({
        "containers": [app, secure],
        "securityContext": {"fsGroup": 2000},
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "all", "projected": {"sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "cfg/a"}]}},
                {"secret": {"name": "sec"}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}]
    }))
    .await;
    n.until("vols", "Running and ready", running).await;
    let exec = |container: &'static str, script: &'static str| {
        let n = &n;
        async move {
            let (ok, out, err) = n
                .kubectl(
                    &["exec", "vols", "-c", container, "--", "sh", "-c", script],
                    None,
                )
                .await;
            assert!(ok, "{script}: {err}");
            out
        }
    };
    assert_eq!(exec("app", "cat /scratch/x").await, "from-pod\n");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("y")).unwrap(),
        "on-host\n"
    );
    assert_eq!(exec("app", "cat /etc/cfg/a /etc/cfg/b").await, "alphabeta");
    assert_eq!(
        exec("app", "cat /etc/sec/token; stat -c ' %a' /etc/sec/token").await,
        "s3cret 400\n"
    );
    assert_eq!(exec("app", "cat /etc/podinfo/name").await, "vols");
    assert_eq!(
        exec("app", "cat /etc/all/cfg/a /etc/all/token /etc/all/ns").await,
        "alphas3cretdefault"
    );
    assert_eq!(
        exec("app", "test -d /scratch/deeper && echo sub").await,
        "sub\n"
    );
    assert_eq!(
        exec("app", "touch /etc/cfg/new 2>/dev/null || echo read-only").await,
        "read-only\n"
    );
    // The same emptyDir is shared by both containers.
    assert_eq!(exec("secure", "cat /scratch/x").await, "from-pod\n");
    assert_eq!(exec("secure", "id -u; id -g").await, "1000\n3000\n");
    assert!(
        exec("secure", "id -G")
            .await
            .split_whitespace()
            .any(|g| g == "2000")
    );
    assert_eq!(
        exec("secure", "touch /x 2>/dev/null || echo read-only").await,
        "read-only\n"
    );

    // A changed ConfigMap reaches the running pod when its volumes are set up again (every
    // 2 s in these tests, a minute by default).
    let patch = json!({"data": {"a": "changed"}});
    cms.patch(
        "cfg",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let mut seen = String::new();
    for _ in 0..60 {
        seen = exec("app", "cat /etc/cfg/a").await;
        if seen == "changed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "changed");

    // Deleting the pod leaves no volume files on the node; hostPath content stays.
    let uid = n.pods().get("vols").await.unwrap().metadata.uid.unwrap();
    let pod_dir = n.runtime.root_dir.join("pods").join(&uid);
    assert!(pod_dir.exists());
    n.pods().delete("vols", &Default::default()).await.unwrap();
    for _ in 0..200 {
        if n.pods().get_opt("vols").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!pod_dir.exists(), "{} left behind", pod_dir.display());
    assert!(host_dir.join("y").exists());
    // The preStop hook ran before the container was stopped.
    assert_eq!(
        std::fs::read_to_string(host_dir.join("prestop")).unwrap(),
        "stopping\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_configmap_holds_the_pod_in_container_creating() {
    let n = node().await;
    n.create(
        "waits",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["sleep", "3600"],
               "volumeMounts": [{"name": "v", "mountPath": "/v"}]}),
        json!({"volumes": [{"name": "v", "configMap": {"name": "later"}}]}),
    )
    .await;
    n.until("waits", "ContainerCreating", |p| {
        (container_state(p)?.state?.waiting?.reason? == "ContainerCreating").then_some(())
    })
    .await;
    let message = n.event_message("FailedMount").await;
    assert_eq!(
        message.as_deref(),
        Some("MountVolume.SetUp failed for volume \"v\" : configmap \"later\" not found")
    );
    let cms: Api<ConfigMap> = Api::namespaced(n.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "later"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    n.until("waits", "Running once the ConfigMap exists", running)
        .await;

    // runAsNonRoot with an image that runs as root is refused before the container exists.
    n.create(
        "rootless",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["sleep", "3600"],
               "securityContext": {"runAsNonRoot": true}}),
        json!({}),
    )
    .await;
    let waiting = n
        .until("rootless", "CreateContainerConfigError", |p| {
            let w = container_state(p)?.state?.waiting?;
            (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w)
        })
        .await;
    assert!(
        waiting
            .message
            .unwrap()
            .starts_with("container has runAsNonRoot and image will run as root"),
    );
}
