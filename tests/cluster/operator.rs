//! An operator on a kubeadm cluster: a CustomResourceDefinition and a custom resource applied
//! with `kubectl apply --server-side`, a controller written with kube-rs's runtime (here, in
//! the test) that reconciles each Widget into a Deployment it owns, and the garbage collector
//! deleting the Deployment with its Widget.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::json;

use cluster_tests::hosts::Network;
use cluster_tests::until;

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              observedGeneration: {type: integer}
";

fn widget(replicas: u32) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: shop\n  namespace: default\nspec:\n  replicas: {replicas}\n"
    )
}

async fn kubectl(admin: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = apiserver::testing::kubectl(admin, args, stdin).await;
    assert!(ok, "kubectl {}: {out}{err}", args.join(" "));
    out
}

struct Operator {
    deployments: Api<Deployment>,
    widgets: Api<DynamicObject>,
}

/// The Widget's Deployment, owned by it, applied by the operator's field manager; then the
/// Widget's status.
async fn reconcile(w: Arc<DynamicObject>, op: Arc<Operator>) -> Result<Action, kube::Error> {
    let name = w.metadata.name.clone().unwrap_or_default();
    let replicas = w.data["spec"]["replicas"].as_i64().unwrap_or(1);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "example.com/v1", "kind": "Widget", "name": name,
            "uid": w.metadata.uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"widget": name}},
            "template": {"metadata": {"labels": {"widget": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}}
    }))
    .expect("a Deployment");
    let params = PatchParams::apply("widget-operator").force();
    op.deployments
        .patch(&name, &params, &Patch::Apply(deployment))
        .await?;
    let status = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "status": {"observedGeneration": w.metadata.generation}});
    op.widgets
        .patch_status(&name, &params, &Patch::Apply(status))
        .await?;
    Ok(Action::await_change())
}

fn retry(_: Arc<DynamicObject>, _: &kube::Error, _: Arc<Operator>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reconciles_a_custom_resource_into_a_deployment_collected_with_it() {
    let mut net = Network::create();
    let cp = net.add_host("cp", 2);
    let (ok, out, err) = net.init(cp, &[]);
    assert!(ok, "kubeadm init failed:\n{out}\n{err}");
    let admin = net.hosts[cp].data_dir.join("admin.conf");

    let applied = kubectl(&admin, &["apply", "--server-side", "-f", "-"], Some(CRD)).await;
    assert!(applied.contains("serverside-applied"), "{applied}");
    kubectl(
        &admin,
        &[
            "wait",
            "--for=condition=established",
            "crd/widgets.example.com",
            "--timeout=30s",
        ],
        None,
    )
    .await;

    let kubeconfig = kube::config::Kubeconfig::read_from(&admin).expect("admin.conf");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a client configuration");
    let client = kube::Client::try_from(config).expect("a client");
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let operator = Arc::new(Operator {
        deployments: deployments.clone(),
        widgets: widgets.clone(),
    });
    let controller = tokio::spawn(
        Controller::new_with(
            widgets.clone(),
            watcher::Config::default(),
            resource.clone(),
        )
        .owns(deployments.clone(), watcher::Config::default())
        .run(reconcile, retry, operator)
        .for_each(|_| async {}),
    );

    let applied = kubectl(
        &admin,
        &["apply", "--server-side", "-f", "-"],
        Some(&widget(2)),
    )
    .await;
    assert!(
        applied.contains("widget.example.com/shop serverside-applied"),
        "{applied}"
    );
    until(
        "the Deployment's two pods ready",
        Duration::from_secs(120),
        || async {
            let d = deployments.get_opt("shop").await.ok()??;
            let ready = d.status?.ready_replicas.unwrap_or(0);
            (ready == 2).then_some(())
        },
    )
    .await;
    let owner = kubectl(
        &admin,
        &[
            "get",
            "deploy",
            "shop",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        ],
        None,
    )
    .await;
    assert_eq!(owner, "Widget/shop");
    until(
        "the Widget's status observed",
        Duration::from_secs(30),
        || async {
            let w = widgets.get("shop").await.ok()?;
            (w.data["status"]["observedGeneration"] == 1).then_some(())
        },
    )
    .await;

    // A change to the Widget reaches the Deployment.
    kubectl(
        &admin,
        &["apply", "--server-side", "-f", "-"],
        Some(&widget(3)),
    )
    .await;
    until("three replicas wanted", Duration::from_secs(30), || async {
        let d = deployments.get("shop").await.ok()?;
        (d.spec?.replicas == Some(3)).then_some(())
    })
    .await;

    // Deleting the Widget collects its Deployment and the pods.
    kubectl(&admin, &["delete", "widget", "shop"], None).await;
    until(
        "the Deployment and its pods collected",
        Duration::from_secs(120),
        || async {
            let gone = deployments.get_opt("shop").await.ok()?.is_none();
            let pods = kubectl(
                &admin,
                &["get", "pods", "-l", "widget=shop", "-o", "name"],
                None,
            )
            .await;
            (gone && pods.trim().is_empty()).then_some(())
        },
    )
    .await;
    controller.abort();
}
