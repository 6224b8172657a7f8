//! Admission as upstream's: ResourceQuota refuses what would exceed a quota (and parallel
//! creates never overshoot it), LimitRanger defaults and bounds pods and claims, and
//! NamespaceLifecycle keeps the system namespaces. Messages are upstream's, as kubectl prints
//! them. No controller runs here: the tests write the quota status the controller would.

use std::sync::Arc;

use apiserver::testing::http::HttpClient;
use serde_json::{Value, json};

const NS: &str = "/api/v1/namespaces/default";

async fn server() -> (tempfile::TempDir, apiserver::server::InProcess, HttpClient) {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |_| {}).await;
    let client = HttpClient::new(&server.url());
    (dir, server, client)
}

/// Creates a quota with `hard` and gives it the status the quota controller would: the same
/// hard limits, and `used`.
async fn quota(client: &HttpClient, name: &str, spec: Value, used: Value) {
    let q = json!({"metadata": {"name": name}, "spec": spec});
    let (code, created) = client
        .post(&format!("{NS}/resourcequotas"), &q)
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let mut with_status = created.clone();
    with_status["status"] = json!({"hard": spec["hard"], "used": used});
    set_status(client, &with_status).await;
}

/// Writes a quota's status, then waits until lists (served from the watch cache, which
/// admission reads too) show it.
async fn set_status(client: &HttpClient, quota: &Value) {
    let name = quota["metadata"]["name"].as_str().unwrap();
    let path = format!("{NS}/resourcequotas/{name}/status");
    let (code, body) = client
        .send("PUT", &path, "application/json", Some(quota))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = client.get(&format!("{NS}/resourcequotas")).await.unwrap();
        let cached = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["metadata"]["name"] == name)
            .map(|q| q["status"].clone());
        if cached.as_ref() == Some(&quota["status"]) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cache never showed {quota}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn used(client: &HttpClient, name: &str) -> Value {
    let (code, q) = client
        .get(&format!("{NS}/resourcequotas/{name}"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{q}");
    q["status"]["used"].clone()
}

fn pod(name: &str, resources: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "resources": resources}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_never_overshoot_a_quota() {
    let (_dir, _server, client) = server().await;
    quota(
        &client,
        "objects",
        json!({"hard": {"configmaps": "5", "count/secrets": "3"}}),
        json!({"configmaps": "0", "count/secrets": "0"}),
    )
    .await;
    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (kind, plural) = if i % 2 == 0 {
                ("ConfigMap", "configmaps")
            } else {
                ("Secret", "secrets")
            };
            let obj = json!({"kind": kind, "metadata": {"name": format!("o{i}")}});
            client.post(&format!("{NS}/{plural}"), &obj).await.unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (code, body) = t.await.unwrap();
        match code {
            201 => created += 1,
            403 => {
                let message = body["message"].as_str().unwrap();
                assert!(
                    message.contains("is forbidden: exceeded quota: objects, requested: "),
                    "{message}"
                );
                assert_eq!(body["reason"], "Forbidden");
            }
            other => panic!("{other}: {body}"),
        }
    }
    let count = |plural: &'static str| {
        let client = client.clone();
        async move {
            let (_, list) = client.get(&format!("{NS}/{plural}")).await.unwrap();
            list["items"].as_array().unwrap().len()
        }
    };
    let (configmaps, secrets) = (count("configmaps").await, count("secrets").await);
    // Twelve of each were sent: exactly as many as fit were admitted, none beyond.
    assert_eq!((configmaps, secrets), (5, 3));
    assert_eq!(created, configmaps + secrets);
    // The quota's usage counts exactly what was admitted.
    let u = used(&client, "objects").await;
    assert_eq!(u["configmaps"], configmaps.to_string());
    assert_eq!(u["count/secrets"], secrets.to_string());
    // Once full, the quota refuses with upstream's message.
    let cm = json!({"metadata": {"name": "one-too-many"}});
    let (code, body) = client.post(&format!("{NS}/configmaps"), &cm).await.unwrap();
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "configmaps \"one-too-many\" is forbidden: exceeded quota: objects, requested: \
         configmaps=1, used: configmaps=5, limited: configmaps=5"
    );
    // A dry run is checked but charges nothing.
    let (code, _) = client
        .post(
            &format!("{NS}/secrets?dryRun=All"),
            &json!({"metadata": {"name": "dry"}}),
        )
        .await
        .unwrap();
    let before = used(&client, "objects").await;
    assert!(code == 201 || code == 403);
    assert_eq!(before["count/secrets"], secrets.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_quotas_count_compute_resources_within_their_scopes() {
    let (_dir, _server, client) = server().await;
    quota(
        &client,
        "compute",
        json!({"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi"}}),
        json!({"pods": "0", "requests.cpu": "0", "limits.memory": "0"}),
    )
    .await;
    quota(
        &client,
        "best-effort",
        json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}),
        json!({"pods": "0"}),
    )
    .await;
    let fits = pod(
        "a",
        json!({"requests": {"cpu": "600m"}, "limits": {"memory": "512Mi"}}),
    );
    let (code, body) = client.post(&format!("{NS}/pods"), &fits).await.unwrap();
    assert_eq!(code, 201, "{body}");
    let u = used(&client, "compute").await;
    assert_eq!(
        u,
        json!({"pods": "1", "requests.cpu": "600m", "limits.memory": "512Mi"})
    );
    // A Burstable pod is outside the BestEffort quota's scope.
    assert_eq!(used(&client, "best-effort").await, json!({"pods": "0"}));
    let over = pod(
        "b",
        json!({"requests": {"cpu": "500m"}, "limits": {"memory": "512Mi"}}),
    );
    let (code, body) = client.post(&format!("{NS}/pods"), &over).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"b\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, \
         used: requests.cpu=600m, limited: requests.cpu=1"
    );
    // A quota on requests.cpu needs every container to say it.
    let (code, body) = client
        .post(
            &format!("{NS}/pods"),
            &pod("c", json!({"limits": {"memory": "1Mi"}})),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"c\" is forbidden: failed quota: compute: must specify requests.cpu for: c"
    );
    // A quota the controller has not yet counted refuses until it has.
    let q = json!({"metadata": {"name": "fresh"}, "spec": {"hard": {"services": "1"}}});
    let (code, created) = client
        .post(&format!("{NS}/resourcequotas"), &q)
        .await
        .unwrap();
    assert_eq!(code, 201);
    let mut status = created.clone();
    status["status"] = json!({"hard": {"services": "1"}});
    set_status(&client, &status).await;
    let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    let (code, body) = client.post(&format!("{NS}/services"), &svc).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "services \"s\" is forbidden: status unknown for quota: fresh, resources: services"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_bound_pods_and_claims() {
    let (_dir, _server, client) = server().await;
    let lr = json!({"metadata": {"name": "limits"}, "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
         "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "50m"}},
        {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}}]}});
    let (code, body) = client
        .post(&format!("{NS}/limitranges"), &lr)
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    // Admission reads the watch cache, as lists do: wait until they show it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.get(&format!("{NS}/limitranges")).await.unwrap().1["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the LimitRange never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (code, created) = client
        .post(
            &format!("{NS}/pods"),
            &pod("d", json!({"limits": {"memory": "256Mi"}})),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"},
               "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(
        created["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
    );
    let (code, body) = client
        .post(
            &format!("{NS}/pods"),
            &pod("e", json!({"limits": {"cpu": "2", "memory": "2Gi"}})),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"e\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, \
         maximum memory usage per Container is 1Gi, but limit is 2Gi]"
    );
    let claim = |size: &str| {
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}}}})
    };
    let (code, body) = client
        .post(&format!("{NS}/persistentvolumeclaims"), &claim("5Gi"))
        .await
        .unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "persistentvolumeclaims \"data\" is forbidden: maximum storage usage per \
         PersistentVolumeClaim is 2Gi, but request is 5Gi"
    );
    let (code, body) = client
        .post(&format!("{NS}/persistentvolumeclaims"), &claim("1Gi"))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_namespaces_may_not_be_deleted() {
    let (_dir, _server, client) = server().await;
    for ns in ["default", "kube-system", "kube-public"] {
        let (code, body) = client
            .send(
                "DELETE",
                &format!("/api/v1/namespaces/{ns}"),
                "application/json",
                None,
            )
            .await
            .unwrap();
        assert_eq!(code, 403, "{body}");
        assert_eq!(
            body["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
    }
    let (code, body) = client
        .post(
            "/api/v1/namespaces/nowhere/configmaps",
            &json!({"metadata": {"name": "x"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["message"], "namespaces \"nowhere\" not found");
}

/// Waits until a list of `path` (served from the watch cache, as admission reads) holds
/// `name`.
async fn until_listed(client: &HttpClient, path: &str, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = client.get(path).await.unwrap();
        if list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["metadata"]["name"] == name)
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{name} never listed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_classes_give_pods_their_overhead_and_scheduling() {
    let (_dir, _server, client) = server().await;
    let classes = "/apis/node.k8s.io/v1/runtimeclasses";
    let class = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "sandboxed"}, "handler": "runsc",
        "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
        "scheduling": {"nodeSelector": {"sandbox": "gvisor"},
                       "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}]}});
    let (code, body) = client.post(classes, &class).await.unwrap();
    assert_eq!(code, 201, "{body}");
    until_listed(&client, classes, "sandboxed").await;
    let with_class = |name: &str, extra: Value| {
        let mut p = pod(name, json!({}));
        p["spec"]["runtimeClassName"] = json!("sandboxed");
        for (k, v) in extra.as_object().unwrap() {
            p["spec"][k] = v.clone();
        }
        p
    };
    let (code, created) = client
        .post(&format!("{NS}/pods"), &with_class("r1", json!({})))
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["overhead"],
        json!({"cpu": "250m", "memory": "120Mi"})
    );
    assert_eq!(
        created["spec"]["nodeSelector"],
        json!({"sandbox": "gvisor"})
    );
    assert!(
        created["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "sandbox"),
        "{created}"
    );
    let refused = [
        (
            with_class("r2", json!({"nodeSelector": {"sandbox": "kata"}})),
            "conflict: runtimeClass.scheduling.nodeSelector[sandbox] = gvisor; \
             pod.spec.nodeSelector[sandbox] = kata",
        ),
        (
            with_class("r3", json!({"overhead": {"cpu": "1"}})),
            "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead",
        ),
    ];
    for (p, why) in refused {
        let (code, body) = client.post(&format!("{NS}/pods"), &p).await.unwrap();
        assert_eq!(code, 403, "{body}");
        assert!(body["message"].as_str().unwrap().ends_with(why), "{body}");
    }
    let mut unknown = pod("r4", json!({}));
    unknown["spec"]["runtimeClassName"] = json!("nope");
    let (code, body) = client.post(&format!("{NS}/pods"), &unknown).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"r4\" is forbidden: pod rejected: RuntimeClass \"nope\" not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_ingresses_get_the_default_class() {
    let (_dir, _server, client) = server().await;
    let storage = "/apis/storage.k8s.io/v1/storageclasses";
    for (name, default) in [("slow", false), ("fast", true)] {
        let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": {
                "storageclass.kubernetes.io/is-default-class": default.to_string()}},
            "provisioner": "example.com/nfs"});
        let (code, body) = client.post(storage, &class).await.unwrap();
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["reclaimPolicy"], "Delete");
    }
    until_listed(&client, storage, "fast").await;
    let claim = |name: &str, class: Option<&str>| {
        let mut c = json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    };
    let claims = format!("{NS}/persistentvolumeclaims");
    let (_, a) = client.post(&claims, &claim("a", None)).await.unwrap();
    assert_eq!(a["spec"]["storageClassName"], "fast", "{a}");
    let (_, b) = client.post(&claims, &claim("b", Some(""))).await.unwrap();
    assert_eq!(
        b["spec"]["storageClassName"], "",
        "an empty class asks for none"
    );
    let (_, c) = client
        .post(&claims, &claim("c", Some("slow")))
        .await
        .unwrap();
    assert_eq!(c["spec"]["storageClassName"], "slow");

    let classes = "/apis/networking.k8s.io/v1/ingressclasses";
    let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx", "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx"}});
    let (code, body) = client.post(classes, &class).await.unwrap();
    assert_eq!(code, 201, "{body}");
    until_listed(&client, classes, "nginx").await;
    let ingress = json!({"metadata": {"name": "web"}, "spec": {"defaultBackend": {
        "service": {"name": "web", "port": {"number": 80}}}}});
    let (code, created) = client
        .post(
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            &ingress,
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["ingressClassName"], "nginx");
    // upstream's validation of the class objects themselves.
    let bad = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "bad"}, "spec": {"controller": "no-domain"}});
    let (code, body) = client.post(classes, &bad).await.unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains(
        "spec.controller: Invalid value: \"no-domain\": must be a domain-prefixed path (such as \"acme.io/foo\")"
    ), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_volumes_are_created_protected() {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.admission.storage_object_in_use_protection = true;
    })
    .await;
    let client = HttpClient::new(&server.url());
    let claim = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}});
    let (code, created) = client
        .post(&format!("{NS}/persistentvolumeclaims"), &claim)
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    let volume = json!({"metadata": {"name": "vol"}, "spec": {"capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/vol"}}});
    let (code, created) = client
        .post("/api/v1/persistentvolumes", &volume)
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_grow_only_when_bound_and_their_class_allows_it() {
    let (_dir, _server, client) = server().await;
    let classes = "/apis/storage.k8s.io/v1/storageclasses";
    for (name, expandable) in [("elastic", true), ("fixed", false)] {
        let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": "example.com/nfs",
            "allowVolumeExpansion": expandable});
        let (code, body) = client.post(classes, &class).await.unwrap();
        assert_eq!(code, 201, "{body}");
    }
    until_listed(&client, classes, "fixed").await;
    let claims = format!("{NS}/persistentvolumeclaims");
    let grow = |mut claim: Value, size: &str| {
        claim["spec"]["resources"]["requests"]["storage"] = json!(size);
        claim
    };
    for (name, class, why) in [
        ("a", "elastic", None),
        (
            "b",
            "fixed",
            Some(
                "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
            ),
        ),
    ] {
        let claim = json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
            "storageClassName": class, "resources": {"requests": {"storage": "1Gi"}}}});
        let (code, created) = client.post(&claims, &claim).await.unwrap();
        assert_eq!(code, 201, "{created}");
        let path = format!("{claims}/{name}");
        // Unbound: no claim grows.
        let (code, body) = client
            .send(
                "PUT",
                &path,
                "application/json",
                Some(&grow(created.clone(), "2Gi")),
            )
            .await
            .unwrap();
        assert_eq!(code, 403, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .ends_with("Only bound persistent volume claims can be expanded"),
            "{body}"
        );
        let mut bound = created.clone();
        bound["status"] = json!({"phase": "Bound"});
        let (code, bound) = client
            .send(
                "PUT",
                &format!("{path}/status"),
                "application/json",
                Some(&bound),
            )
            .await
            .unwrap();
        assert_eq!(code, 200, "{bound}");
        let (code, body) = client
            .send("PUT", &path, "application/json", Some(&grow(bound, "2Gi")))
            .await
            .unwrap();
        match why {
            None => assert_eq!(code, 200, "{body}"),
            Some(why) => {
                assert_eq!(code, 403, "{body}");
                assert!(body["message"].as_str().unwrap().ends_with(why), "{body}");
            }
        }
    }
}
