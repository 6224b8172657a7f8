//! The scheduler: the scheduling cycle (one pod at a time on a dedicated thread: snapshot,
//! PreFilter, Filter, PostFilter, Score, Reserve, Permit, assume) and the binding cycle
//! (asynchronous: PreBind, Bind, PostBind), plus the handlers that feed the cache and the
//! queue from the cluster's pods and nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;

use crate::cache::{Cache, Snapshot};
use crate::config::{DEFAULT_SCHEDULER_NAME, KubeSchedulerConfiguration};
use crate::framework::runtime::{Diagnosis, select_host};
use crate::framework::{
    ActionType, ClusterClient, Code, CycleState, EventResource, Framework, Handle, PodInfo,
    Registry, Status,
};
use crate::metrics;
use crate::queue::{QueuedPodInfo, SchedulingQueue};

/// A scheduler: its profiles, cache and queue.
pub struct Scheduler {
    pub cache: Mutex<Cache>,
    pub queue: SchedulingQueue,
    pub profiles: HashMap<String, Arc<Framework>>,
    pub client: Arc<dyn ClusterClient>,
    runtime: tokio::runtime::Handle,
    next_start: AtomicUsize,
}

/// Threads for filter and score: the configured parallelism, at most the cores we have.
fn pool(parallelism: Option<i32>) -> crate::Result<Arc<rayon::ThreadPool>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (parallelism.unwrap_or(16).max(1) as usize).min(cores);
    Ok(Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sched-worker-{i}"))
            .build()?,
    ))
}

impl Scheduler {
    /// Builds every profile of `config`. Binding cycles run on `runtime`.
    pub fn new(
        config: &KubeSchedulerConfiguration,
        registry: &Registry,
        client: Arc<dyn ClusterClient>,
        runtime: tokio::runtime::Handle,
    ) -> crate::Result<Arc<Scheduler>> {
        let handle = Arc::new(Handle {
            client: client.clone(),
        });
        let pool = pool(config.parallelism)?;
        let mut profiles = HashMap::new();
        let defaults = [crate::config::Profile::default()];
        let list = if config.profiles.is_empty() {
            &defaults[..]
        } else {
            &config.profiles[..]
        };
        for p in list {
            let fw = Framework::new(
                p,
                registry,
                handle.clone(),
                config.percentage_of_nodes_to_score.unwrap_or(0),
                pool.clone(),
            )
            .map_err(|e| crate::Error::Invalid(format!("profile {:?}: {e}", p.scheduler_name())))?;
            profiles.insert(p.scheduler_name().to_owned(), Arc::new(fw));
        }
        let queue = SchedulingQueue::new(
            profiles.clone(),
            Duration::from_secs(config.pod_initial_backoff_seconds.unwrap_or(1)),
            Duration::from_secs(config.pod_max_backoff_seconds.unwrap_or(10)),
        );
        Ok(Arc::new(Scheduler {
            cache: Mutex::new(Cache::new()),
            queue,
            profiles,
            client,
            runtime,
            next_start: AtomicUsize::new(0),
        }))
    }

    /// Whether one of our profiles schedules this pod.
    pub fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(DEFAULT_SCHEDULER_NAME);
        self.profiles.contains_key(name)
    }

    /// Runs scheduling cycles until the queue is closed (call on a dedicated thread).
    pub fn run(self: &Arc<Self>) {
        let mut snapshot = Snapshot::default();
        let mut rng = rand::rng();
        while let Some(info) = self.queue.pop() {
            self.schedule_one(info, &mut snapshot, &mut rng);
        }
    }

    /// One scheduling cycle for one pod.
    pub fn schedule_one(
        self: &Arc<Self>,
        info: QueuedPodInfo,
        snapshot: &mut Snapshot,
        rng: &mut impl rand::Rng,
    ) {
        let start = Instant::now();
        let pod = info.pod.clone();
        let Some(fw) = self.profiles.get(
            pod.spec()
                .scheduler_name
                .as_deref()
                .unwrap_or(DEFAULT_SCHEDULER_NAME),
        ) else {
            self.queue.done(&pod.uid);
            return;
        };
        if pod.is_terminating() || self.cache.lock().is_assumed(&pod.uid) {
            self.queue.done(&pod.uid);
            return;
        }
        self.cache.lock().update_snapshot(snapshot);
        snapshot.nominated = self.queue.nominated_pods(&pod.uid, pod.priority);
        let mut state = CycleState::default();
        let num_nodes = snapshot.nodes.len();

        let (result, status) = fw.run_pre_filter(&mut state, &pod, snapshot);
        let mut diagnosis = Diagnosis::default();
        if !status.is_success() {
            if status.code == Code::Error {
                return self.fail(fw, info, &status.message(), true, start);
            }
            diagnosis.pre_filter_msg = status.message();
            diagnosis.unschedulable_plugins.insert(status.plugin);
            // Every node was rejected by PreFilter.
            for i in 0..num_nodes {
                diagnosis.node_to_status.push((i, status.clone()));
            }
            return self.unschedulable(fw, info, &state, snapshot, diagnosis, start);
        }
        let candidates: Option<Vec<usize>> = result.map(|names| {
            let mut v: Vec<usize> = names.iter().filter_map(|n| snapshot.index_of(n)).collect();
            v.sort_unstable();
            v
        });
        // A pod that preempted goes back to its nominated node if that node fits now.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .and_then(|n| snapshot.index_of(n))
            .filter(|&i| {
                let node = &snapshot.nodes[i];
                let with = snapshot.with_nominated(node);
                fw.run_filter(&state, &pod, with.as_ref().unwrap_or(node))
                    .is_success()
            });
        let feasible = match nominated {
            Some(i) => vec![i],
            None => {
                let n = candidates.as_ref().map_or(num_nodes, Vec::len);
                let begin = if n == 0 {
                    0
                } else {
                    self.next_start.load(Ordering::Relaxed) % n
                };
                let (feasible, processed) = fw.find_feasible(
                    &state,
                    &pod,
                    snapshot,
                    candidates.as_deref(),
                    begin,
                    &mut diagnosis,
                );
                if n > 0 {
                    self.next_start
                        .store((begin + processed) % n, Ordering::Relaxed);
                }
                feasible
            }
        };
        if feasible.is_empty() {
            if let Some(c) = &candidates {
                // Nodes PreFilter ruled out count as rejected by it.
                let seen: std::collections::HashSet<usize> = c.iter().copied().collect();
                for i in (0..num_nodes).filter(|i| !seen.contains(i)) {
                    diagnosis.node_to_status.push((
                        i,
                        Status::unresolvable("node(s) didn't satisfy plugin(s) PreFilter result"),
                    ));
                }
            }
            return self.unschedulable(fw, info, &state, snapshot, diagnosis, start);
        }
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            match fw.prioritize(&mut state, &pod, snapshot, &feasible) {
                Ok(scores) => select_host(&scores, rng).expect("feasible nodes"),
                Err(s) => return self.fail(fw, info, &s.message(), true, start),
            }
        };
        let node = snapshot.nodes[chosen].name.clone();
        // Assume: the next cycle sees the pod on the node before the API does.
        let assumed = Arc::new(pod.bound_to(&node));
        self.cache.lock().assume_pod(assumed.clone());
        let s = fw.run_reserve(&mut state, &assumed, &node);
        if !s.is_success() {
            self.cache.lock().forget_pod(&pod.uid);
            return self.fail(fw, info, &s.message(), s.code == Code::Error, start);
        }
        let (s, wait) = fw.run_permit(&mut state, &assumed, &node);
        if !s.is_success() && s.code != Code::Wait {
            fw.run_unreserve(&mut state, &assumed, &node);
            self.cache.lock().forget_pod(&pod.uid);
            return self.fail(fw, info, &s.message(), s.code == Code::Error, start);
        }
        let this = self.clone();
        let fw = fw.clone();
        self.runtime.spawn(async move {
            if s.code == Code::Wait {
                // No in-tree plugin waits; a waiting pod is allowed when its timeout passes.
                tokio::time::sleep(wait).await;
            }
            this.bind(fw, info, assumed, node, state, start).await;
        });
    }

    /// The binding cycle.
    async fn bind(
        self: Arc<Self>,
        fw: Arc<Framework>,
        info: QueuedPodInfo,
        assumed: Arc<PodInfo>,
        node: String,
        mut state: CycleState,
        start: Instant,
    ) {
        let mut status = fw.run_pre_bind(&assumed, &node).await;
        if status.is_success() {
            status = fw.run_bind(&assumed, &node).await;
        }
        if !status.is_success() {
            fw.run_unreserve(&mut state, &assumed, &node);
            self.cache.lock().forget_pod(&assumed.uid);
            self.queue.on_event(EventResource::Pod, ActionType::Delete);
            let msg = format!("Binding rejected: {}", status.message());
            return self.fail(&fw, info, &msg, true, start);
        }
        self.cache.lock().finish_binding(&assumed.uid);
        fw.run_post_bind(&assumed, &node);
        self.queue.done(&assumed.uid);
        let profile = fw.scheduler_name.as_str();
        metrics::SCHEDULE_ATTEMPTS.inc(&["scheduled", profile]);
        metrics::ATTEMPT_DURATION.observe(&["scheduled", profile], start.elapsed().as_secs_f64());
        let attempts = info.attempts.min(16).to_string();
        metrics::POD_SCHEDULING_SLI.observe(&[&attempts], info.initial.elapsed().as_secs_f64());
        self.client.record_event(
            &assumed,
            false,
            "Scheduled",
            "Binding",
            format!(
                "Successfully assigned {}/{} to {node}",
                assumed.namespace, assumed.name
            ),
        );
    }

    /// No node fits: try PostFilter (preemption), then report the FitError.
    fn unschedulable(
        self: &Arc<Self>,
        fw: &Arc<Framework>,
        mut info: QueuedPodInfo,
        state: &CycleState,
        snapshot: &Snapshot,
        mut diagnosis: Diagnosis,
        start: Instant,
    ) {
        let pod = info.pod.clone();
        let unresolvable_everywhere = diagnosis
            .node_to_status
            .iter()
            .all(|(_, s)| s.code == Code::UnschedulableAndUnresolvable);
        if fw.has_post_filter() && !snapshot.nodes.is_empty() && !unresolvable_everywhere {
            metrics::PREEMPTION_ATTEMPTS.inc(&[]);
            let (result, status) = fw.run_post_filter(state, &pod, snapshot, &diagnosis);
            if let Some(r) = result {
                metrics::PREEMPTION_VICTIMS.observe(&[], r.victims.len() as f64);
                self.queue.nominate(&pod, &r.nominated_node);
                let client = self.client.clone();
                let pod = pod.clone();
                self.runtime.spawn(async move {
                    if let Err(e) = client.nominate(&pod, &r.nominated_node).await {
                        tracing::warn!(pod = %pod.key(), error = %e, "setting nominatedNodeName failed");
                    }
                    for v in &r.victims {
                        client.record_event(
                            v,
                            false,
                            "Preempted",
                            "Preempting",
                            format!("Preempted by pod {} on node {}", pod.uid, r.nominated_node),
                        );
                        if let Err(e) = client.delete_pod(v).await {
                            tracing::warn!(victim = %v.key(), error = %e, "deleting a preemption victim failed");
                        }
                    }
                });
            } else if !status.message().is_empty() {
                diagnosis.post_filter_msg = status.message();
            }
        } else if fw.has_post_filter() && !snapshot.nodes.is_empty() {
            let n = snapshot.nodes.len();
            diagnosis.post_filter_msg = format!(
                "preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
            );
        }
        info.unschedulable_plugins = diagnosis.unschedulable_plugins.clone();
        let msg = diagnosis.message(snapshot.nodes.len());
        self.fail(fw, info, &msg, false, start);
    }

    /// Reports a failed attempt and puts the pod back in the queue.
    fn fail(
        self: &Arc<Self>,
        fw: &Framework,
        info: QueuedPodInfo,
        message: &str,
        error: bool,
        start: Instant,
    ) {
        let profile = fw.scheduler_name.as_str();
        let result = if error { "error" } else { "unschedulable" };
        metrics::SCHEDULE_ATTEMPTS.inc(&[result, profile]);
        metrics::ATTEMPT_DURATION.observe(&[result, profile], start.elapsed().as_secs_f64());
        let pod = info.pod.clone();
        tracing::debug!(pod = %pod.key(), %message, "unable to schedule pod");
        self.queue.add_unschedulable(info, error);
        self.client.record_event(
            &pod,
            true,
            "FailedScheduling",
            "Scheduling",
            message.to_owned(),
        );
        let same = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message));
        if !same {
            let client = self.client.clone();
            let reason = if error {
                "SchedulerError"
            } else {
                "Unschedulable"
            };
            let message = message.to_owned();
            self.runtime.spawn(async move {
                if let Err(e) = client.mark_unschedulable(&pod, reason, &message).await {
                    tracing::debug!(pod = %pod.key(), error = %e, "updating the PodScheduled condition failed");
                }
            });
        }
    }

    // ---- what the informers report ----

    /// A pod was added or changed in the cluster.
    pub fn on_pod(&self, pod: Arc<Pod>) {
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        let info = Arc::new(PodInfo::new(pod.clone()));
        if bound {
            if finished {
                // Terminal pods hold no resources.
                self.on_pod_deleted(&info.uid);
                return;
            }
            self.queue.delete(&info.uid);
            let known = self.cache.lock().pod(&info.uid).is_some();
            self.cache.lock().add_pod(info);
            self.queue.on_event(
                EventResource::Pod,
                if known {
                    ActionType::Update
                } else {
                    ActionType::Add
                },
            );
        } else if self.responsible_for(&pod) && !finished {
            if info.is_terminating() {
                self.queue.delete(&info.uid);
            } else if self.queue.contains(&info.uid) {
                self.queue.update(info);
            } else if !self.cache.lock().is_assumed(&info.uid) {
                self.queue.add(info);
            }
        }
    }

    pub fn on_pod_deleted(&self, uid: &str) {
        self.queue.delete(uid);
        let had = self.cache.lock().pod(uid).is_some();
        if had {
            self.cache.lock().remove_pod(uid);
            self.queue.on_event(EventResource::Pod, ActionType::Delete);
        }
    }

    pub fn on_node(&self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut cache = self.cache.lock();
        let before = cache.node_count();
        cache.add_node(node);
        let added = cache.node_count() > before;
        drop(cache);
        let _ = name;
        self.queue.on_event(
            EventResource::Node,
            if added {
                ActionType::Add
            } else {
                ActionType::Update
            },
        );
    }

    pub fn on_node_deleted(&self, name: &str) {
        self.cache.lock().remove_node(name);
        self.queue.on_event(EventResource::Node, ActionType::Delete);
    }

    /// Refreshes the gauges that are read from state (queue lengths, cache size).
    pub fn update_gauges(&self) {
        let p = self.queue.pending();
        metrics::PENDING_PODS.set(&["active"], p.active as f64);
        metrics::PENDING_PODS.set(&["backoff"], p.backoff as f64);
        metrics::PENDING_PODS.set(&["unschedulable"], p.unschedulable as f64);
        metrics::PENDING_PODS.set(&["gated"], p.gated as f64);
        let c = self.cache.lock();
        metrics::CACHE_SIZE.set(&["nodes"], c.node_count() as f64);
        metrics::CACHE_SIZE.set(&["pods"], c.pod_count() as f64);
    }
}
