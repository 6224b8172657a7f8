//! End-to-end mode: a real kube-apiserver (embedded store, or a real etcd) and the
//! scheduler as its API client, both in this process as upstream's scheduler_perf runs
//! them, or both as their own binaries over TLS as a cluster runs them
//! ([`super::processes`]). Nodes and pods are created through the API; bindings are
//! counted from a watch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use parking_lot::Mutex;
use scheduler::config::KubeSchedulerConfiguration;

use super::processes::{Processes, ServerCounters};
use super::workload::ChurnObject;
use super::{Driver, Store};
use crate::Latencies;

/// Requests in flight while creating objects: "as fast as the client can".
const CONCURRENCY: usize = 64;

pub struct EndToEnd {
    /// The first field, so the servers stop before their directory goes.
    servers: Servers,
    _dir: tempfile::TempDir,
    client: Client,
    bound: Arc<AtomicUsize>,
    created: Arc<Mutex<HashMap<String, Instant>>>,
    latencies: Arc<Mutex<Latencies>>,
    watch: tokio::task::JoinHandle<()>,
}

impl EndToEnd {
    pub async fn start(
        store: Store,
        config: &KubeSchedulerConfiguration,
    ) -> anyhow::Result<EndToEnd> {
        let dir = tempfile::tempdir()?;
        let etcd = (store == Store::Etcd).then(apiserver::testing::EtcdServer::start);
        let server_config = apiserver::server::Config {
            data_dir: dir.path().to_owned(),
            secure_port: 0,
            etcd_servers: etcd.iter().map(|e| e.endpoint.clone()).collect(),
            ..Default::default()
        };
        let server = apiserver::server::spawn_in_process(server_config).await?;
        let url = format!("http://{}", server.addr).parse()?;
        let client = Client::try_from(kube::Config::new(url))?;
        Self::priority_class(&client).await?;
        // kube-scheduler as its binary runs it, without leader election or health server.
        let kubeconfig = dir.path().join("scheduler.kubeconfig");
        apiserver::testing::write_kubeconfig(&kubeconfig, &format!("http://{}", server.addr));
        let config = scheduler::testing::config(kubeconfig, config.clone());
        let scheduler = common::component::InProcess::spawn(|stop| scheduler::run(config, stop));
        let servers = Servers::InProcess {
            scheduler: Some(scheduler),
            server: Some(server),
            _etcd: etcd,
        };
        Ok(Self::watching(servers, dir, client))
    }

    /// The apiserver and the scheduler as their binaries ([`super::processes`]); this
    /// process is their client over HTTPS.
    pub async fn start_processes(
        store: Store,
        scheduler_config: Option<&std::path::Path>,
    ) -> anyhow::Result<EndToEnd> {
        let dir = tempfile::tempdir()?;
        let processes = Processes::start(dir.path(), store, scheduler_config).await?;
        let client = common::client::client(Some(&processes.kubeconfig)).await?;
        Self::priority_class(&client).await?;
        Ok(Self::watching(Servers::Processes(processes), dir, client))
    }

    /// The workloads' PriorityClass.
    async fn priority_class(client: &Client) -> anyhow::Result<()> {
        let pc: PriorityClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "perf-high"}, "value": 10,
        }))?;
        Api::<PriorityClass>::all(client.clone())
            .create(&PostParams::default(), &pc)
            .await?;
        Ok(())
    }

    /// Starts counting bindings and their latencies.
    fn watching(servers: Servers, dir: tempfile::TempDir, client: Client) -> EndToEnd {
        // Count bindings as a watcher sees them (upstream's harness counts scheduled pods).
        let bound = Arc::new(AtomicUsize::new(0));
        let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let latencies: Arc<Mutex<Latencies>> = Arc::default();
        let (b, c, l) = (bound.clone(), created.clone(), latencies.clone());
        let pods: Api<Pod> = Api::all(client.clone());
        let watch = tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
            while let Some(e) = events.next().await {
                let (watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = (match e {
                    Ok(e) => e,
                    Err(_) => continue,
                }) else {
                    continue;
                };
                let on_node = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let uid = p.metadata.uid.clone().unwrap_or_default();
                if on_node && seen.insert(uid) {
                    let key = format!(
                        "{}/{}",
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        p.metadata.name.as_deref().unwrap_or("")
                    );
                    if let Some(t) = c.lock().remove(&key) {
                        l.lock().push(t.elapsed());
                    }
                    b.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        EndToEnd {
            servers,
            _dir: dir,
            client,
            bound,
            created,
            latencies,
            watch,
        }
    }
}

/// Where the apiserver and the scheduler run.
enum Servers {
    /// In this process (stopped in `stop`).
    InProcess {
        server: Option<apiserver::server::InProcess>,
        scheduler: Option<common::component::InProcess>,
        _etcd: Option<apiserver::testing::EtcdServer>,
    },
    /// As child processes.
    Processes(Processes),
}

#[async_trait]
impl Driver for EndToEnd {
    async fn create_namespace(&mut self, name: &str) -> anyhow::Result<()> {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(())
    }

    async fn create_nodes(&mut self, nodes: Vec<Node>) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        futures::stream::iter(nodes)
            .map(|n| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &n).await.map(|_| ()) }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn create_pods(&mut self, pods: Vec<Pod>) -> anyhow::Result<()> {
        let client = self.client.clone();
        let created = self.created.clone();
        futures::stream::iter(pods)
            .map(|p| {
                let ns = p
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let key = format!("{ns}/{}", p.metadata.name.as_deref().unwrap_or(""));
                created.lock().insert(key, Instant::now());
                async move { api.create(&PostParams::default(), &p).await.map(|_| ()) }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn churn(&mut self, object: &ChurnObject, seq: usize) -> anyhow::Result<()> {
        let pp = PostParams::default();
        let dp = DeleteParams::default();
        match object {
            ChurnObject::Node(n) => {
                let api: Api<Node> = Api::all(self.client.clone());
                let _ = api
                    .delete(&format!("churn-node-{}", seq.wrapping_sub(1)), &dp)
                    .await;
                let mut n = (**n).clone();
                n.metadata.generate_name = None;
                n.metadata.name = Some(format!("churn-node-{seq}"));
                api.create(&pp, &n).await?;
            }
            ChurnObject::Pod(p) => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
                let _ = api
                    .delete(&format!("churn-pod-{}", seq.wrapping_sub(1)), &dp)
                    .await;
                let mut p = (**p).clone();
                p.metadata.generate_name = None;
                p.metadata.name = Some(format!("churn-pod-{seq}"));
                api.create(&pp, &p).await?;
            }
            ChurnObject::Service(s) => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
                let _ = api
                    .delete(&format!("churn-service-{}", seq.wrapping_sub(1)), &dp)
                    .await;
                let mut s = (**s).clone();
                s.metadata.generate_name = None;
                s.metadata.name = Some(format!("churn-service-{seq}"));
                api.create(&pp, &s).await?;
            }
        }
        Ok(())
    }

    fn bound(&self) -> Arc<AtomicUsize> {
        self.bound.clone()
    }

    fn take_latencies(&mut self) -> Latencies {
        std::mem::take(&mut *self.latencies.lock())
    }

    fn cpu_seconds(&self) -> f64 {
        match &self.servers {
            Servers::InProcess { .. } => crate::cpu_seconds(),
            Servers::Processes(p) => crate::cpu_seconds() + p.cpu_seconds(),
        }
    }

    async fn server_counters(&mut self) -> anyhow::Result<Option<ServerCounters>> {
        let Servers::Processes(p) = &self.servers else {
            return Ok(None);
        };
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let metrics = self.client.request_text(request).await?;
        Ok(Some(p.counters(&metrics)))
    }

    async fn stop(mut self: Box<Self>) {
        self.watch.abort();
        if let Servers::InProcess {
            server, scheduler, ..
        } = &mut self.servers
        {
            if let Some(s) = scheduler.take()
                && let Err(e) = s.stop().await
            {
                eprintln!("kube-scheduler: {e:#}");
            }
            drop(server.take());
        }
    }
}
