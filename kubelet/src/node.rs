//! The node: registers the Node object (capacity and allocatable from the host, labels,
//! addresses, nodeInfo, conditions), renews the node's Lease in kube-node-lease every 10 s,
//! and posts status when it changes and at least every 5 minutes, as upstream's kubelet
//! does. The node lifecycle controller marks the node Unknown when both go quiet.

use common::api_errors::is_already_exists;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const KUBELET_VERSION: &str = "v1.33.0";
/// Upstream's defaults: --max-pods 110, eviction-hard memory.available<100Mi and
/// nodefs.available<10% (subtracted from allocatable).
pub const MAX_PODS: i64 = 110;
const EVICTION_MEMORY: u64 = 100 << 20;

/// What the host has, read once at start.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub machine_id: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Machine {
    /// Reads /proc, /etc/os-release and the filesystem holding `root_dir`.
    pub fn read(root_dir: &Path) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let storage = rustix::fs::statvfs(if root_dir.exists() {
            root_dir
        } else {
            Path::new("/")
        })
        .map(|s| s.f_blocks * s.f_frsize)
        .unwrap_or(0);
        let os_image = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "Linux".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_kib * 1024,
            ephemeral_storage_bytes: storage,
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image,
        }
    }
}

/// How this node presents itself.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub node_ip: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// "containerd://1.6.20", from the runtime's Version.
    pub runtime_version: String,
    pub kubelet_port: i32,
}

fn kib(bytes: u64) -> Quantity {
    Quantity(format!("{}Ki", bytes / 1024))
}

/// capacity and allocatable, as upstream computes them with its default reservations.
pub fn resources(m: &Machine) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".into(), Quantity(m.cpus.to_string()));
    capacity.insert("memory".into(), kib(m.memory_bytes));
    capacity.insert("ephemeral-storage".into(), kib(m.ephemeral_storage_bytes));
    capacity.insert("pods".into(), Quantity(MAX_PODS.to_string()));
    capacity.insert("hugepages-1Gi".into(), Quantity("0".into()));
    capacity.insert("hugepages-2Mi".into(), Quantity("0".into()));
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "memory".into(),
        kib(m.memory_bytes.saturating_sub(EVICTION_MEMORY)),
    );
    // nodefs.available<10%: an exact byte count, as upstream prints it.
    allocatable.insert(
        "ephemeral-storage".into(),
        Quantity((m.ephemeral_storage_bytes / 10 * 9).to_string()),
    );
    (capacity, allocatable)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The conditions a healthy kubelet posts; Ready follows the runtime's health.
pub fn conditions(
    runtime_ready: Result<(), String>,
    previous: Option<&[NodeCondition]>,
) -> Vec<NodeCondition> {
    let (ready, reason, message) = match runtime_ready {
        Ok(()) => (
            "True",
            "KubeletReady",
            "kubelet is posting ready status".to_owned(),
        ),
        Err(why) => ("False", "KubeletNotReady", why),
    };
    let rows = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available".to_owned(),
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure".to_owned(),
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available".to_owned(),
        ),
        ("Ready", ready, reason, message),
    ];
    rows.into_iter()
        .map(|(t, status, reason, message)| {
            // The transition time stays until the status changes.
            let transition = previous
                .and_then(|p| p.iter().find(|c| c.type_ == t && c.status == status))
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(now);
            NodeCondition {
                type_: t.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_heartbeat_time: Some(now()),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// The Node object to register.
pub fn node_object(cfg: &NodeConfig, m: &Machine, runtime_ready: Result<(), String>) -> Node {
    let (capacity, allocatable) = resources(m);
    let mut labels = cfg.labels.clone();
    for (k, v) in [
        ("kubernetes.io/hostname", cfg.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ] {
        labels.insert(k.into(), v.into());
    }
    let mut addresses = Vec::new();
    if let Some(ip) = &cfg.node_ip {
        addresses.push(json!({"type": "InternalIP", "address": ip}));
    }
    addresses.push(json!({"type": "Hostname", "address": cfg.name}));
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": cfg.name, "labels": labels, "annotations": {
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "addresses": addresses,
            "conditions": conditions(runtime_ready, None),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
            "nodeInfo": {
                "machineID": m.machine_id, "systemUUID": m.machine_id, "bootID": m.boot_id,
                "kernelVersion": m.kernel_version, "osImage": m.os_image,
                "containerRuntimeVersion": cfg.runtime_version,
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    }))
    .expect("a valid Node")
}

/// Registers the node, or takes over an existing Node of this name (a restart): its labels
/// are merged and its status replaced. Answers the stored Node.
pub async fn register(client: &kube::Client, node: &Node) -> crate::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.name_any();
    let stored = match api.create(&PostParams::default(), node).await {
        Ok(n) => {
            tracing::info!(node = %name, "successfully registered node");
            n
        }
        Err(e) if is_already_exists(&e) => {
            let patch = json!({"metadata": {"labels": node.metadata.labels}});
            let n = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %name, "node already registered; updating it");
            n
        }
        Err(e) => {
            return Err(crate::Error::from(e)
                .context(format!("unable to register node {name:?} with API server")));
        }
    };
    // Status is a subresource: the create above did not store it.
    let mut with_status = stored.clone();
    with_status.status = node.status.clone();
    Ok(api
        .replace_status(&name, &PostParams::default(), &with_status)
        .await?)
}

/// Creates or renews the node's Lease; the Node owns it so it goes with the Node.
pub async fn renew_lease(
    client: &kube::Client,
    node: &Node,
    duration_seconds: i32,
) -> crate::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let name = node.name_any();
    let renew = MicroTime(k8s_openapi::jiff::Timestamp::now());
    match api.get_opt(&name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(renew);
            spec.holder_identity = Some(name.clone());
            spec.lease_duration_seconds = Some(duration_seconds);
            api.replace(&name, &PostParams::default(), &lease).await?;
        }
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_seconds, "renewTime": renew},
            }))?;
            api.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// How often the heartbeats run (upstream: lease every 10 s, status checked every 10 s and
/// posted when changed or every 5 minutes).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    pub lease_renew: Duration,
    pub lease_duration_seconds: i32,
    pub status_check: Duration,
    pub status_report: Duration,
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat {
            lease_renew: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_check: Duration::from_secs(10),
            status_report: Duration::from_secs(300),
        }
    }
}

/// Registers the node, then renews its Lease and posts its status until dropped. Errors
/// (apiserver away) are logged and retried: the kubelet keeps its node alive through them.
pub async fn run(
    client: kube::Client,
    cfg: NodeConfig,
    machine: Machine,
    heartbeat: Heartbeat,
    runtime_health: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
) {
    let node = loop {
        match register(&client, &node_object(&cfg, &machine, runtime_health())).await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!("{e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let lease = {
        let (client, node) = (client.clone(), node.clone());
        async move {
            let mut tick = tokio::time::interval(heartbeat.lease_renew);
            loop {
                tick.tick().await;
                if let Err(e) = renew_lease(&client, &node, heartbeat.lease_duration_seconds).await
                {
                    tracing::warn!(error = %e, "failed to renew the node lease");
                }
            }
        }
    };
    let status = async move {
        let api: Api<Node> = Api::all(client.clone());
        let mut last_report = Instant::now();
        let mut last_ready = runtime_health().is_ok();
        let mut tick = tokio::time::interval(heartbeat.status_check);
        loop {
            tick.tick().await;
            let health = runtime_health();
            let changed = health.is_ok() != last_ready;
            if !changed && last_report.elapsed() < heartbeat.status_report {
                continue;
            }
            last_ready = health.is_ok();
            let result = async {
                let mut current = api.get(&cfg.name).await?;
                let previous = current.status.as_ref().and_then(|s| s.conditions.clone());
                let status = current.status.get_or_insert_with(Default::default);
                status.conditions = Some(conditions(health, previous.as_deref()));
                api.replace_status(&cfg.name, &PostParams::default(), &current)
                    .await?;
                Ok::<_, crate::Error>(())
            }
            .await;
            match result {
                Ok(()) => last_report = Instant::now(),
                Err(e) => tracing::warn!(error = %e, "failed to update node status"),
            }
        }
    };
    tokio::join!(lease, status);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_bytes: 24684096 * 1024,
            ephemeral_storage_bytes: 100 << 30,
            machine_id: "m".into(),
            boot_id: "b".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        }
    }

    #[test]
    fn allocatable_subtracts_upstreams_eviction_thresholds() {
        let (cap, alloc) = resources(&machine());
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "24684096Ki");
        assert_eq!(alloc["memory"].0, format!("{}Ki", 24684096 - 102400));
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(
            alloc["ephemeral-storage"].0,
            ((100u64 << 30) / 10 * 9).to_string()
        );
    }

    #[test]
    fn ready_follows_the_runtime_and_keeps_transition_times() {
        let up = conditions(Ok(()), None);
        let ready = up.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        let down = conditions(Err("container runtime is down".into()), Some(&up));
        let ready = down.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.message.as_deref(), Some("container runtime is down"));
        let mem = down.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        let mem_before = up.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.last_transition_time, mem_before.last_transition_time);
    }
}
