//! EndpointSlices and Endpoints follow pods' readiness and termination.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{Cluster, cluster, eventually};

const T: Duration = Duration::from_secs(30);

async fn pod(c: &Cluster, name: &str, ip: &str, ready: bool) {
    c.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx",
            "ports": [{"name": "http", "containerPort": 8080}]}]}}))
        .await;
    set_status(c, name, ip, ready).await;
}

async fn set_status(c: &Cluster, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status}]}});
    c.pods("default")
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// (ip, ready, serving, terminating) per endpoint of the Service's slices, sorted.
async fn slice_view(c: &Cluster) -> Vec<(String, bool, bool, bool)> {
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let slices = api
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items;
    let mut out: Vec<_> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = e.conditions.clone().unwrap();
            (
                e.addresses[0].clone(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pod_readiness_and_termination() {
    let c = cluster(&["endpoint", "endpointslice"]).await;
    c.create(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
        .await;
    // No pods yet: one empty slice.
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let empty = eventually("a placeholder slice", T, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .unwrap()
            .items;
        (list.len() == 1).then(|| list[0].clone())
    })
    .await;
    assert!(empty.endpoints.is_empty());
    assert_eq!(
        empty.metadata.labels.unwrap()["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );

    pod(&c, "a", "10.244.1.5", true).await;
    pod(&c, "b", "10.244.2.7", true).await;
    eventually("two ready endpoints", T, || async {
        (slice_view(&c).await
            == [
                ("10.244.1.5".into(), true, true, false),
                ("10.244.2.7".into(), true, true, false),
            ])
        .then_some(())
    })
    .await;
    let list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items;
    let s = list.iter().find(|s| !s.endpoints.is_empty()).unwrap();
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port),
        (Some("http"), Some(8080)),
        "named targetPort"
    );
    assert_eq!(s.endpoints[0].node_name.as_deref(), Some("node-1"));

    // b turns unready; a starts terminating (bound pods get a grace period).
    set_status(&c, "b", "10.244.2.7", false).await;
    c.pods("default")
        .delete("a", &Default::default())
        .await
        .unwrap();
    eventually("a terminating, b unready", T, || async {
        (slice_view(&c).await
            == [
                ("10.244.1.5".into(), false, true, true),
                ("10.244.2.7".into(), false, false, false),
            ])
        .then_some(())
    })
    .await;

    // Endpoints: terminating pods left out, unready ones under notReadyAddresses.
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    eventually("Endpoints with b not ready", T, || async {
        let e = eps.get_opt("web").await.unwrap()?;
        let subsets = e.subsets?;
        let s = &subsets[0];
        let not_ready: Vec<_> = s
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| a.ip.clone())
            .collect();
        (s.addresses.is_none() && not_ready == ["10.244.2.7"] && s.ports.as_ref()?[0].port == 8080)
            .then_some(())
    })
    .await;
    set_status(&c, "b", "10.244.2.7", true).await;
    eventually("Endpoints with b ready", T, || async {
        let e = eps.get_opt("web").await.unwrap()?;
        let s = &e.subsets?[0];
        (s.addresses
            .as_ref()?
            .iter()
            .map(|a| a.ip.as_str())
            .collect::<Vec<_>>()
            == ["10.244.2.7"])
        .then_some(())
    })
    .await;

    // kubectl sees them too.
    let out = c.kubectl_ok(&["get", "endpoints", "web"]).await;
    assert!(out.contains("10.244.2.7:8080"), "{out}");
}
