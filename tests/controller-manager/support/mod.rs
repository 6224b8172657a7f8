//! A real kube-apiserver in this process (embedded store) with chosen controllers running
//! against it; the test plays the kubelet by writing pod status.

#![allow(dead_code)]

use std::time::Duration;

use controller_manager::controllers;
use controller_manager::runtime::Options;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

pub struct Cluster {
    pub server: apiserver::server::InProcess,
    pub dir: tempfile::TempDir,
    pub client: Client,
    pub url: String,
    pub controllers: Option<controller_manager::Running>,
}

/// An apiserver only.
pub async fn apiserver() -> Cluster {
    apiserver_with(|_| {}).await
}

/// An apiserver only, configured by `configure`.
pub async fn apiserver_with(configure: impl FnOnce(&mut apiserver::server::Config)) -> Cluster {
    let cluster_tests::LocalApiServer {
        server,
        dir,
        client,
        url,
    } = cluster_tests::LocalApiServer::start_with(configure).await;
    Cluster {
        server,
        dir,
        client,
        url,
        controllers: None,
    }
}

/// An apiserver with the named controllers running.
pub async fn cluster(names: &[&str]) -> Cluster {
    let mut c = apiserver().await;
    c.start_controllers(names).await;
    c
}

impl Cluster {
    pub async fn start_controllers(&mut self, names: &[&str]) {
        self.start_controllers_with(names, Options::default()).await
    }

    pub async fn start_controllers_with(&mut self, names: &[&str], options: Options) {
        let flags: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let enabled = controllers::enabled(&flags).unwrap();
        let running = controller_manager::start(self.client.clone(), options, &enabled)
            .await
            .unwrap();
        self.controllers = Some(running);
    }

    /// A kubeconfig for this apiserver (written on first use).
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("kubeconfig");
        if !path.exists() {
            let config = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: t, namespace: default}}\ncurrent-context: t\nusers:\n- name: t\n  user: {{token: tetsu-test}}\n",
                self.url
            );
            std::fs::write(&path, config).unwrap();
        }
        path
    }

    /// Runs real kubectl against this apiserver: (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .args(args)
            .output()
            .await
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and answers stdout; fails the test with stderr if kubectl fails.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {} failed:\n{out}\n{err}", args.join(" "));
        out
    }

    pub fn stop_controllers(&mut self) {
        self.controllers = None;
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Pods in `ns` matching `selector`, sorted by name, not counting terminating ones.
    pub async fn live_pods(&self, ns: &str, selector: &str) -> Vec<Pod> {
        let mut pods: Vec<Pod> = self
            .pods(ns)
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    /// Plays the kubelet: marks the pod Running and Ready (or not ready).
    pub async fn set_pod_ready(&self, ns: &str, name: &str, ready: bool) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let status = if ready { "True" } else { "False" };
        // A distinct address per pod, stable for its name.
        let h = name
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let ip = format!("10.244.{}.{}", h % 250, (h / 250) % 250 + 1);
        let patch = json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [
                {"type": "Ready", "status": status, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
            ],
        }});
        match self
            .pods(ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // The controllers may delete a pod between the harness's list and this write.
            Ok(_) => {}
            Err(e) if common::api_errors::is_not_found(&e) => {}
            Err(e) => panic!("marking {ns}/{name}: {e}"),
        }
    }

    /// Plays the kubelet for every pod matching `selector` that is not ready yet.
    pub async fn make_all_ready(&self, ns: &str, selector: &str) -> usize {
        let mut n = 0;
        for p in self.live_pods(ns, selector).await {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if !ready {
                self.set_pod_ready(ns, &p.name_any(), true).await;
                n += 1;
            }
        }
        n
    }

    /// Applies a YAML or JSON manifest with `kubectl apply`-like create semantics.
    pub async fn create(&self, manifest: serde_json::Value) -> serde_json::Value {
        let api_version = manifest["apiVersion"].as_str().unwrap().to_owned();
        let kind = manifest["kind"].as_str().unwrap();
        let ns = manifest["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let plural = format!("{}s", kind.to_lowercase());
        let base = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let namespaced = !matches!(
            kind,
            "Namespace" | "Node" | "PersistentVolume" | "CustomResourceDefinition"
        );
        let path = if namespaced {
            format!("{base}/namespaces/{ns}/{plural}")
        } else {
            format!("{base}/{plural}")
        };
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        self.client
            .request::<serde_json::Value>(req)
            .await
            .unwrap_or_else(|e| panic!("creating {kind}: {e}"))
    }
}

/// Polls `check` until it answers Some, or panics after `timeout` with `what`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    cluster_tests::until(what, timeout, check).await
}
