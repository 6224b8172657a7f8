//! A node for tests: a real containerd (with test images), a real in-process apiserver, and
//! the kubelet's pod workers between them.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kubelet::cri::Cri;
use kubelet::pods::worker::PodRuntime;
use kubelet::testing::Containerd;
use serde_json::json;

pub struct Node {
    pub containerd: Containerd,
    server: apiserver::server::InProcess,
    pub dir: tempfile::TempDir,
    pub client: Client,
    pub runtime: Arc<PodRuntime>,
    kubelet: Option<tokio::task::JoinHandle<()>>,
    /// Stops the kubelet API when dropped.
    api_stop: Option<tokio::sync::watch::Sender<bool>>,
}

pub async fn node() -> Node {
    node_on(Containerd::start().await).await
}

/// A node over the given containerd.
pub async fn node_on(containerd: Containerd) -> Node {
    node_with(containerd, |_, _| {}).await
}

/// A node whose apiserver issues service-account tokens and runs the ServiceAccount
/// admission plugin (no controller creates the `default` account: tests do).
pub async fn node_with_service_accounts() -> Node {
    let containerd = Containerd::start().await;
    node_with(containerd, apiserver::testing::service_accounts).await
}

/// A node over `containerd` whose apiserver's configuration `configure` changes (it gets the
/// node's directory).
pub async fn node_with(
    containerd: Containerd,
    configure: impl FnOnce(&mut apiserver::server::Config, &std::path::Path),
) -> Node {
    node_with_dns(containerd, configure, Default::default()).await
}

/// [`node_with`] whose pods resolve names as `dns` says.
pub async fn node_with_dns(
    containerd: Containerd,
    configure: impl FnOnce(&mut apiserver::server::Config, &std::path::Path),
    dns: kubelet::pods::dns::Settings,
) -> Node {
    containerd.import_test_images().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server =
        apiserver::testing::spawn_with(dir.path(), |c| configure(c, &dir.path().join("sa"))).await;
    let client = Client::try_from(kube::Config::new(
        format!("http://{}", server.addr).parse().unwrap(),
    ))
    .unwrap();
    let cri = Cri::connect(&containerd.endpoint()).await.unwrap();
    let runtime = Arc::new(
        PodRuntime::new(
            cri,
            client.clone(),
            dir.path().join("logs"),
            "127.0.0.1".into(),
        )
        .with_volume_resync(Duration::from_secs(2))
        .with_dns(dns),
    );
    let mut n = Node {
        containerd,
        server,
        dir,
        client,
        runtime,
        kubelet: None,
        api_stop: None,
    };
    n.start_kubelet();
    n
}

impl Node {
    pub fn start_kubelet(&mut self) {
        self.kubelet = Some(tokio::spawn(kubelet::pods::run(
            self.runtime.clone(),
            "node-a".into(),
        )));
    }

    /// Restarts the pod workers with static pods from `dir`, read every `every`.
    pub fn start_kubelet_with_static_pods(&mut self, dir: &std::path::Path, every: Duration) {
        self.stop_kubelet();
        let manifests = kubelet::pods::StaticPods {
            dir: dir.to_owned(),
            check_every: every,
        };
        self.kubelet = Some(tokio::spawn(kubelet::pods::run_with_static_pods(
            self.runtime.clone(),
            "node-a".into(),
            Some(manifests),
        )));
    }

    pub fn stop_kubelet(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.abort();
        }
    }

    /// Registers the Node (InternalIP 127.0.0.1) and serves the kubelet API on a free port,
    /// as the kubelet binary does; answers the port.
    pub fn serve_api(&mut self) -> u16 {
        let port = apiserver::testing::free_port();
        let cfg = kubelet::node::NodeConfig {
            name: "node-a".into(),
            node_ip: Some("127.0.0.1".into()),
            labels: Default::default(),
            runtime_version: "containerd://test".into(),
            kubelet_port: port.into(),
        };
        tokio::spawn(kubelet::node::run(
            self.client.clone(),
            cfg,
            kubelet::node::Machine::read(self.dir.path()),
            kubelet::node::Heartbeat::default(),
            Arc::new(|| Ok(())),
        ));
        let api = Arc::new(kubelet::server::Kubelet::new(
            self.runtime.clone(),
            "node-a".into(),
        ));
        let config = kubelet::server::ServeConfig {
            addr: ([127, 0, 0, 1], port).into(),
            tls_cert_file: None,
            tls_private_key_file: None,
            cert_dir: self.dir.path().join("pki"),
            names: vec!["node-a".into(), "127.0.0.1".into()],
            client_ca_file: None,
            rotated: None,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        self.api_stop = Some(stop);
        tokio::spawn(kubelet::server::serve(config, api, stopped));
        port
    }

    /// Runs real kubectl against this node's apiserver: (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let path = self.dir.path().join("kubeconfig");
        if !path.exists() {
            apiserver::testing::write_kubeconfig(&path, &self.server.url());
        }
        apiserver::testing::kubectl(&path, args, stdin).await
    }

    /// The apiserver's URL (plain HTTP, no authentication).
    pub fn api_url(&self) -> String {
        self.server.url()
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn create(&self, name: &str, container: serde_json::Value, extra: serde_json::Value) {
        let mut spec = json!({"nodeName": "node-a", "hostNetwork": true, "terminationGracePeriodSeconds": 1,
            "containers": [container]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    /// The message of the first event in "default" with `reason`, waiting up to 5 s; None
    /// if none came.
    pub async fn event_message(&self, reason: &str) -> Option<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        for _ in 0..100 {
            let list = events.list(&ListParams::default()).await.unwrap();
            let found = list
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
                .and_then(|e| e.message);
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits until `check` accepts the pod; panics with the pod and containerd's log.
    pub async fn until<T>(&self, name: &str, what: &str, check: impl Fn(&Pod) -> Option<T>) -> T {
        let mut last = None;
        for _ in 0..400 {
            if let Some(p) = self.pods().get_opt(name).await.unwrap() {
                if let Some(v) = check(&p) {
                    return v;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}\n{}",
            last.map(|p| p.status),
            self.containerd
                .log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

pub fn container_state(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}
