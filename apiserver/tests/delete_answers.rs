//! DELETE's answers checked against upstream v1.33's OpenAPI document: for every served resource,
//! the kind of the answer (the deleted object or a Status) and its HTTP code, from
//! fixtures/delete_answers_v1.33.txt.

use std::collections::HashMap;

use apiserver::registry::{BUILTIN, ResourceInfo};
use apiserver::testing::http::HttpClient;
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("fixtures/delete_answers_v1.33.txt");
const NAME: &str = "delete-answer";

/// (apiVersion, plural) -> the kind upstream declares for DELETE's 200 and 202 answers.
fn upstream_answers() -> HashMap<(String, String), String> {
    FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "fixture line {l:?}");
            ((f[0].to_owned(), f[1].to_owned()), f[2].to_owned())
        })
        .collect()
}

fn pod_template() -> Value {
    json!({"metadata": {"labels": {"app": "a"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}})
}

/// A minimal valid object of `r` (name and type fields added by the caller); None for a kind
/// the test does not know yet, which fails it.
fn minimal(r: &ResourceInfo) -> Option<Value> {
    let selector = json!({"matchLabels": {"app": "a"}});
    let job_template = json!({"metadata": {}, "spec": {"template": {"spec": {
        "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}});
    let csr = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQgotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K";
    Some(match (r.group.as_str(), r.plural.as_str()) {
        ("", "namespaces" | "nodes" | "endpoints" | "configmaps" | "secrets")
        | ("", "serviceaccounts")
        | ("rbac.authorization.k8s.io", "clusterroles")
        | ("coordination.k8s.io", "leases") => json!({}),
        ("", "pods") => json!({"spec": pod_template()["spec"]}),
        ("", "services") => json!({"spec": {"ports": [{"port": 80}]}}),
        ("", "events") => json!({
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Why", "message": "m", "type": "Normal"}),
        ("", "limitranges") => {
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}})
        }
        ("", "resourcequotas") => json!({"spec": {"hard": {"configmaps": "100"}}}),
        ("", "replicationcontrollers") => json!({"spec": {
            "selector": {"app": "a"}, "template": pod_template()}}),
        ("", "persistentvolumes") => json!({"spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/delete-answer"}}}),
        ("", "persistentvolumeclaims") => json!({"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ("apps", "deployments" | "replicasets" | "daemonsets") => {
            json!({"spec": {"selector": selector, "template": pod_template()}})
        }
        ("apps", "statefulsets") => json!({"spec": {
            "selector": selector, "serviceName": "s", "template": pod_template()}}),
        ("apps", "controllerrevisions") => json!({"revision": 1, "data": {}}),
        ("batch", "jobs") => json!({"spec": job_template["spec"]}),
        ("batch", "cronjobs") => {
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": job_template}})
        }
        ("discovery.k8s.io", "endpointslices") => json!({"addressType": "IPv4", "endpoints": []}),
        ("events.k8s.io", "events") => json!({
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/c",
            "reportingInstance": "c-1", "action": "Act", "reason": "Why", "type": "Normal"}),
        ("policy", "poddisruptionbudgets") => json!({"spec": {"minAvailable": 1}}),
        ("networking.k8s.io", "networkpolicies") => json!({"spec": {"podSelector": {}}}),
        ("networking.k8s.io", "ingresses") => json!({"spec": {"defaultBackend": {
            "service": {"name": "s", "port": {"number": 80}}}}}),
        ("rbac.authorization.k8s.io", "roles") => json!({"rules": []}),
        ("rbac.authorization.k8s.io", "rolebindings") => json!({"roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => json!({"roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}}),
        ("scheduling.k8s.io", "priorityclasses") => json!({"value": 1000}),
        ("node.k8s.io", "runtimeclasses") => json!({"handler": "runc"}),
        ("storage.k8s.io", "storageclasses") => json!({"provisioner": "example.com/p"}),
        ("networking.k8s.io", "ingressclasses") => json!({"spec": {"controller": "example.com/c"}}),
        ("apiextensions.k8s.io", "customresourcedefinitions") => json!({"spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "answers", "kind": "Answer"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
        ("certificates.k8s.io", "certificatesigningrequests") => json!({"spec": {
            "request": csr, "signerName": "example.com/signer",
            "usages": ["digital signature"]}}),
        _ => return None,
    })
}

/// The name of the test's object: a definition's is its plural and group.
fn object_name(r: &ResourceInfo) -> &'static str {
    match r.plural.as_str() {
        "customresourcedefinitions" => "answers.example.com",
        _ => NAME,
    }
}

fn collection_path(r: &ResourceInfo) -> String {
    let root = if r.group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{}", r.api_version())
    };
    if r.namespaced {
        format!("{root}/namespaces/default/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    }
}

/// The schema our OpenAPI document declares for `op`'s answer with `code` on `path`.
fn declared(doc: &Value, path: &str, op: &str, code: &str) -> String {
    doc["paths"][path][op]["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{op} {path} declares no {code} answer"))
        .rsplit('.')
        .next()
        .unwrap()
        .to_owned()
}

/// The OpenAPI template of a path: the namespace as `{namespace}`.
fn template(path: &str) -> String {
    path.replace("/namespaces/default/", "/namespaces/{namespace}/")
}

#[tokio::test]
async fn every_served_resource_answers_delete_as_upstream_declares() {
    let upstream = upstream_answers();
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = HttpClient::new(&server.url());
    for r in BUILTIN.iter() {
        let key = (r.api_version(), r.plural.to_owned());
        let expected = upstream.get(&key).unwrap_or_else(|| {
            panic!("{r:?} is served but missing from fixtures/delete_answers_v1.33.txt")
        });
        assert_eq!(
            r.delete_answer_kind(),
            expected,
            "{r:?}: the kind the table declares"
        );

        // Our OpenAPI document declares what upstream's does.
        let gv = if r.group.is_empty() {
            "api/v1".to_owned()
        } else {
            format!("apis/{}", r.api_version())
        };
        let (code, doc) = client.get(&format!("/openapi/v3/{gv}")).await.unwrap();
        assert_eq!(code, 200, "{doc}");
        let collection = collection_path(r);
        let name = object_name(r);
        let item = format!("{collection}/{name}");
        let item_template = format!("{}/{{name}}", template(&collection));
        for answer in ["200", "202"] {
            assert_eq!(
                &declared(&doc, &item_template, "delete", answer),
                expected,
                "{r:?}: our OpenAPI's DELETE {answer}"
            );
        }
        assert_eq!(
            declared(&doc, &template(&collection), "delete", "200"),
            "Status",
            "{r:?}: our OpenAPI's deletecollection"
        );

        let mut body =
            minimal(r).unwrap_or_else(|| panic!("{r:?}: the test has no minimal object"));
        body["apiVersion"] = json!(r.api_version());
        body["kind"] = json!(r.kind);
        body["metadata"] = json!({"name": name});
        let (code, created) = client.post(&collection, &body).await.unwrap();
        assert_eq!(code, 201, "{r:?}: create: {created}");
        let uid = created["metadata"]["uid"].clone();
        // Finalizers put by admission (pv-protection and the like) would keep the object:
        // drop them so the delete is immediate, except a namespace's, which it never is.
        if created["metadata"]["finalizers"].is_array() {
            let patch = json!({"metadata": {"finalizers": null}});
            let (code, out) = client
                .send("PATCH", &item, "application/merge-patch+json", Some(&patch))
                .await
                .unwrap();
            assert_eq!(code, 200, "{r:?}: {out}");
        }

        let (code, answer) = client.send("DELETE", &item, "", None).await.unwrap();
        assert_eq!(code, 200, "{r:?}: {answer}");
        let (gone, _) = client.get(&item).await.unwrap();
        // A definition's controller may finish its deletion before the GET: what the
        // answer says decides which case this is.
        let pending = answer["metadata"]["deletionTimestamp"].is_string();
        if !pending {
            assert_eq!(gone, 404, "{r:?}");
            assert_eq!(&answer["kind"], expected, "{r:?}: {answer}");
            if expected == "Status" {
                assert_eq!(answer["status"], "Success", "{answer}");
                let mut details = json!({"name": name, "kind": r.plural, "uid": uid});
                if !r.group.is_empty() {
                    // omitempty upstream
                    details["group"] = json!(r.group);
                }
                assert_eq!(answer["details"], details, "{r:?}");
            } else {
                assert_eq!(answer["metadata"]["uid"], uid, "{r:?}: {answer}");
            }
        } else {
            // Not removed at once (a namespace, a definition): upstream answers with the
            // updated object, whatever its storage returns on removal.
            assert_eq!(answer["kind"], r.kind, "{r:?}: {answer}");
            assert!(
                answer["metadata"]["deletionTimestamp"].is_string(),
                "{r:?}: {answer}"
            );
        }
    }
    server.stop();
}

/// 202 only when the object stays (a finalizer) and the client sent orphanDependents=false;
/// the answer is then the object, even for kinds whose removal answers a Status.
#[tokio::test]
async fn a_delayed_delete_asked_to_cascade_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = HttpClient::new(&server.url());
    let cms = "/api/v1/namespaces/default/configmaps";
    let cm = |name: &str, finalizers: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "finalizers": finalizers}})
    };
    let (code, _) = client
        .post(cms, &cm("kept", json!(["example.com/keep"])))
        .await
        .unwrap();
    assert_eq!(code, 201);
    let cascade = format!("{cms}/kept?orphanDependents=false");
    for _ in 0..2 {
        // The first marks it terminating, the second changes nothing: both are 202.
        let (code, answer) = client.send("DELETE", &cascade, "", None).await.unwrap();
        assert_eq!(code, 202, "{answer}");
        assert_eq!(answer["kind"], "ConfigMap", "{answer}");
        assert!(
            answer["metadata"]["deletionTimestamp"].is_string(),
            "{answer}"
        );
    }
    let (code, answer) = client
        .send("DELETE", &format!("{cms}/kept"), "", None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["kind"], "ConfigMap", "{answer}");

    // Removed at once: 200 and the Status, orphanDependents=false or not.
    let (code, _) = client.post(cms, &cm("gone", json!([]))).await.unwrap();
    assert_eq!(code, 201);
    let (code, answer) = client
        .send(
            "DELETE",
            &format!("{cms}/gone?orphanDependents=false"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["kind"], "Status", "{answer}");
    server.stop();
}

/// deletecollection answers with the list of the objects selected (upstream's
/// Store.DeleteCollection), though the OpenAPI document declares a Status.
#[tokio::test]
async fn deletecollection_answers_the_deleted_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn(dir.path()).await;
    let client = HttpClient::new(&server.url());
    let cms = "/api/v1/namespaces/default/configmaps";
    for name in ["a", "b", "c"] {
        let app = if name == "c" { "other" } else { "x" };
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "labels": {"app": app}}});
        let (code, _) = client.post(cms, &cm).await.unwrap();
        assert_eq!(code, 201);
    }
    let (code, answer) = client
        .send("DELETE", &format!("{cms}?labelSelector=app%3Dx"), "", None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["kind"], "ConfigMapList", "{answer}");
    let names: Vec<&str> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    for (name, code) in [("a", 404), ("b", 404), ("c", 200)] {
        let (got, _) = client.get(&format!("{cms}/{name}")).await.unwrap();
        assert_eq!(got, code, "{name}");
    }
    server.stop();
}
