//! kube-rs, the Rust client tetsu's other components use, against kube-apiserver: typed CRUD,
//! selectors, patches and its watcher in both list-then-watch and streaming-list modes.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::json;
use support::ApiServer;

fn cm(name: &str, team: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"team": team}},
        "data": {"k": "v"},
    }))
    .unwrap()
}

async fn client(s: &ApiServer) -> Client {
    Client::try_from(Config::new(s.url().parse().unwrap())).unwrap()
}

#[tokio::test]
async fn kube_rs_crud_selectors_and_patches() {
    let s = ApiServer::start();
    let cms: Api<ConfigMap> = Api::namespaced(client(&s).await, "default");
    let created = cms
        .create(&PostParams::default(), &cm("a", "blue"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    cms.create(&PostParams::default(), &cm("b", "red"))
        .await
        .unwrap();
    let blue = cms
        .list(&ListParams::default().labels("team=blue"))
        .await
        .unwrap();
    assert_eq!(
        blue.items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let page = cms.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.metadata.continue_.is_some());

    let patched = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["m"], "1");
    let patched = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"extra": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["extra"], "x");
    let mut stale = created.clone();
    stale.data = Some([("k".to_owned(), "new".to_owned())].into());
    let err = cms
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    cms.delete("b", &DeleteParams::default()).await.unwrap();
    let missing = cms.get("b").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing:?}"
    );
}

/// Runs kube-rs's watcher until it has seen the initial list and then `later` being created.
async fn watch_sees_later_objects(config: watcher::Config) {
    let s = ApiServer::start();
    let cms: Api<ConfigMap> = Api::namespaced(client(&s).await, "default");
    cms.create(&PostParams::default(), &cm("before", "x"))
        .await
        .unwrap();
    let mut stream = watcher(cms.clone(), config).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(c) => initial.push(c.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert!(initial.contains(&"before".to_owned()), "{initial:?}");
    cms.create(&PostParams::default(), &cm("later", "x"))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(c) if c.metadata.name.as_deref() == Some("later") => return,
            _ => {}
        }
    }
}

#[tokio::test]
async fn kube_rs_watcher_list_then_watch() {
    watch_sees_later_objects(watcher::Config::default()).await;
}

#[tokio::test]
async fn kube_rs_watcher_streaming_list() {
    watch_sees_later_objects(watcher::Config::default().streaming_lists()).await;
}

/// An operator's first steps through kube-rs: define a kind, wait until it is established,
/// find it by discovery, and follow its objects with the watcher while they are created,
/// defaulted by the schema, given a status and deleted.
#[tokio::test]
async fn kube_rs_defines_a_kind_and_watches_its_objects() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DynamicObject, GroupVersionKind};
    use kube::runtime::WatchStreamExt;
    use kube::runtime::wait::{await_condition, conditions};

    let s = ApiServer::start();
    let client = client(&s).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "color": {"type": "string", "default": "red"}}},
                        "status": {"type": "object", "properties": {
                            "ready": {"type": "boolean"}}}}}}}]},
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = await_condition(
        crds.clone(),
        "widgets.example.com",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(20), established)
        .await
        .expect("established in time")
        .unwrap();

    let discovery = kube::discovery::Discovery::new(client.clone())
        .filter(&["example.com"])
        .run()
        .await
        .unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("the kind is discovered");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut events = watcher(widgets.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();

    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 2},
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.data["spec"], json!({"size": 2, "color": "red"}));

    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    let updated = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(updated.data["status"]["ready"], true);

    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    assert!(widgets.get_opt("w").await.unwrap().is_none());
}
