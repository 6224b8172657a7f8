//! Namespace deletion and the default ServiceAccount, with real kubectl.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::{cluster, eventually};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_contents_then_the_namespace() {
    let c = cluster(&["namespace", "serviceaccount", "deployment", "replicaset"]).await;
    c.kubectl_ok(&["create", "namespace", "team"]).await;
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team");
    eventually("the default ServiceAccount", T, || async {
        sas.get_opt("default").await.unwrap().map(|_| ())
    })
    .await;
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ])
    .await;
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "secret",
        "generic",
        "token",
        "--from-literal=t=x",
    ])
    .await;
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ])
    .await;
    eventually("2 pods", T, || async {
        (c.live_pods("team", "app=web").await.len() == 2).then_some(())
    })
    .await;
    // A finalizer holds one object: the namespace waits for it and says so.
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "team");
    c.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "team", "finalizers": ["example.com/hold"]}}))
        .await;
    c.kubectl_ok(&["delete", "namespace", "team", "--wait=false"])
        .await;
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let message = eventually("NamespaceFinalizersRemaining", T, || async {
        let ns = namespaces.get_opt("team").await.unwrap()?;
        let status = ns.status?;
        assert_eq!(status.phase.as_deref(), Some("Terminating"));
        let cond = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "NamespaceFinalizersRemaining")?;
        (cond.status == "True").then_some(cond.message.unwrap())
    })
    .await;
    assert_eq!(
        message,
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    c.kubectl_ok(&["wait", "--for=delete", "namespace/team", "--timeout=30s"])
        .await;
    let (ok, _, err) = c.kubectl(&["get", "namespace", "team"]).await;
    assert!(
        !ok && err.contains("namespaces \"team\" not found"),
        "{err}"
    );
}
