//! Static pods with a real containerd: a manifest in the directory runs as `<name>-<node>`
//! with a mirror pod in the API owned by the Node and carrying its status; `kubectl logs`
//! reaches it; deleting the mirror pod brings it back without restarting the container;
//! removing the manifest stops the pod and removes the mirror.

use crate::support;

use std::time::Duration;

use kube::api::ListParams;
use support::node;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_pods_run_from_manifests_with_mirror_pods() {
    let mut n = node().await;
    n.serve_api();
    let manifests = n.dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {tier: static}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicy: Never\n    command: [sh, -c, 'echo static; sleep 3600']\n",
    )
    .unwrap();
    std::fs::write(manifests.join(".hidden.yaml"), "not: a pod").unwrap();
    n.start_kubelet_with_static_pods(&manifests, Duration::from_millis(500));

    let mirror = n
        .until("web-node-a", "a Running mirror pod", |p| {
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then(|| p.clone())
        })
        .await;
    let annotations = mirror.metadata.annotations.clone().unwrap();
    assert!(annotations.contains_key("kubernetes.io/config.mirror"));
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    let owner = &mirror.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "node-a")
    );
    let (ok, out, err) = n.kubectl(&["logs", "web-node-a"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out, "static\n");
    let containers = n.runtime.cri.list_containers().await.unwrap();
    assert_eq!(containers.len(), 1);

    // Deleting the mirror pod does not touch the static pod: the mirror comes back.
    let (ok, _, err) = n
        .kubectl(&["delete", "pod", "web-node-a", "--wait=false"], None)
        .await;
    assert!(ok, "{err}");
    let old_uid = mirror.metadata.uid.clone();
    n.until("web-node-a", "a new mirror pod", |p| {
        (p.metadata.uid != old_uid && p.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    let after = n.runtime.cri.list_containers().await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, containers[0].id, "the container was restarted");

    // Removing the manifest stops the pod and removes its mirror.
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    for _ in 0..200 {
        let gone = n
            .pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            && n.runtime.cri.list_pod_sandboxes().await.unwrap().is_empty();
        if gone {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the static pod or its mirror outlived the manifest");
}
