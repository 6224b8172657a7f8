//! What every controller runs on: shared informers, work queues, the worker loop,
//! expectations, pod creation and deletion, and the context handed to each controller
//! when it starts.

pub mod discovery;
pub mod expectations;
pub mod informer;
pub mod metrics;
pub mod pod_control;
pub mod queue;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use common::events::Recorder;

pub use informer::{Change, Informer, SharedInformers, key_of, split_key};
pub use pod_control::PodControl;
pub use queue::WorkQueue;
pub use worker::{Reconcile, run_workers};

/// Settings from the command line that controllers read (upstream's flag names).
#[derive(Clone, Debug)]
pub struct Options {
    pub concurrent_deployment_syncs: usize,
    pub concurrent_replicaset_syncs: usize,
    pub concurrent_rc_syncs: usize,
    pub concurrent_namespace_syncs: usize,
    pub concurrent_gc_syncs: usize,
    pub concurrent_endpoint_syncs: usize,
    pub concurrent_service_endpoint_syncs: usize,
    pub concurrent_serviceaccount_syncs: usize,
    pub concurrent_job_syncs: usize,
    pub concurrent_cron_job_syncs: usize,
    /// The Job controller's first retry delay after a pod failure (doubles per failure).
    pub job_backoff_base: Duration,
    /// Pods a ReplicaSet creates or deletes in one sync (upstream's burstReplicas).
    pub burst_replicas: usize,
    /// Node IPAM: allocate spec.podCIDR from `cluster_cidr` in /`node_cidr_mask_size` blocks.
    pub allocate_node_cidrs: bool,
    pub cluster_cidr: Option<String>,
    pub node_cidr_mask_size: u8,
    /// Node lifecycle: how often nodes are checked, and how long a node may go without
    /// renewing its Lease or status before it is marked unknown.
    pub node_monitor_period: Duration,
    pub node_monitor_grace_period: Duration,
    /// Pod GC: terminated pods kept before the oldest are deleted (0 turns that off), and
    /// how often it runs.
    pub terminated_pod_gc_threshold: usize,
    pub pod_gc_period: Duration,
    /// How long a pod's node must have been missing before the pod is deleted.
    pub pod_gc_quarantine: Duration,
    /// csrsigning: the CA that signs approved CSRs, and the longest validity it grants.
    pub cluster_signing_cert_file: Option<std::path::PathBuf>,
    pub cluster_signing_key_file: Option<std::path::PathBuf>,
    pub cluster_signing_duration: Duration,
    /// root-ca-cert-publisher: the CA published to every namespace as kube-root-ca.crt.
    pub root_ca_file: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrent_deployment_syncs: 5,
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_namespace_syncs: 10,
            concurrent_gc_syncs: 20,
            concurrent_endpoint_syncs: 5,
            concurrent_service_endpoint_syncs: 5,
            concurrent_serviceaccount_syncs: 1,
            concurrent_job_syncs: 5,
            concurrent_cron_job_syncs: 5,
            job_backoff_base: Duration::from_secs(10),
            burst_replicas: 500,
            allocate_node_cidrs: false,
            cluster_cidr: None,
            node_cidr_mask_size: 24,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            terminated_pod_gc_threshold: 12500,
            pod_gc_period: Duration::from_secs(20),
            pod_gc_quarantine: Duration::from_secs(40),
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(365 * 24 * 3600),
            root_ca_file: None,
        }
    }
}

/// What a controller gets when it starts.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub informers: Arc<SharedInformers>,
    pub options: Arc<Options>,
}

impl Context {
    /// An event recorder reporting as `component` (e.g. "deployment-controller").
    pub fn recorder(&self, component: &str) -> Arc<Recorder> {
        Recorder::new(self.client.clone(), component)
    }
}

/// How long to wait before looking at an object again, or no requeue.
pub type Requeue = Option<Duration>;
