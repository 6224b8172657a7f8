//! Placements: a workload's pods scheduled one at a time, with a fixed seed for the
//! tie-breaks and one filter thread, so the node each pod lands on depends only on the
//! algorithm. tests/scheduler_perf.rs compares them with placements recorded before a
//! change: an optimisation of the scheduler must place every pod where the old code did.

use std::sync::Arc;

use rand::SeedableRng;
use scheduler::Scheduler;
use scheduler::cache::Snapshot;
use scheduler::client::NoopClient;
use scheduler::config::KubeSchedulerConfiguration;
use scheduler::framework::Registry;

use super::inprocess::admit;
use super::workload::{self, Op, Workload};

/// Why a workload cannot be placed deterministically, if it cannot.
pub fn unsupported(workload: &Workload) -> Option<&'static str> {
    if workload.ops.iter().any(|o| matches!(o, Op::Churn { .. })) {
        return Some("its churn runs on a timer");
    }
    if workload.name.starts_with("Preemption") {
        return Some("preemption picks its first candidate node at random (as upstream)");
    }
    None
}

/// Schedules `workload` at `scale` and returns `pod node` lines sorted by pod name (pods
/// left unscheduled are absent). Call inside a tokio runtime (bindings are tasks).
pub fn placements(workload: &Workload, scale: f64, seed: u64) -> anyhow::Result<Vec<String>> {
    if let Some(why) = unsupported(workload) {
        anyhow::bail!("{}: not deterministic: {why}", workload.name);
    }
    let mut config = KubeSchedulerConfiguration::default_config();
    config.parallelism = Some(1);
    let scheduler = Scheduler::new(
        &config,
        &Registry::in_tree(),
        Arc::new(NoopClient), // bindings succeed; the cache's assumption is what counts
        tokio::runtime::Handle::current(),
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut snapshot = Snapshot::default();
    let (mut nodes_total, mut pods_total) = (0, 0);
    for op in &workload.ops {
        match op {
            Op::CreateNodes {
                count_param,
                node_template_path,
                label_node_prepare_strategy,
            } => {
                let nodes = workload.nodes(
                    count_param,
                    node_template_path,
                    label_node_prepare_strategy.as_ref(),
                    scale,
                    nodes_total,
                )?;
                nodes_total += nodes.len();
                for node in nodes {
                    scheduler.on_node(Arc::new(node));
                }
            }
            Op::CreateNamespaces { prefix, count } => {
                let mut cache = scheduler.cache.lock();
                for i in 0..*count {
                    cache.set_namespace(&format!("{prefix}-{i}"), Some(Arc::default()));
                }
            }
            Op::CreatePods {
                count_param,
                pod_template_path,
                namespace,
                ..
            } => {
                let n = workload.count(count_param, scale)?;
                let ns = namespace.as_deref().unwrap_or("default");
                for pod in workload::pods(pod_template_path, n, pods_total, ns)? {
                    pods_total += 1;
                    scheduler.on_pod(Arc::new(admit(pod, pods_total)));
                }
                // Every pod this op made ready is scheduled before the next op.
                while scheduler.queue.pending().active > 0 {
                    let Some(info) = scheduler.queue.pop() else {
                        break;
                    };
                    scheduler.schedule_one(info, &mut snapshot, &mut rng);
                }
            }
            Op::Churn { .. } => unreachable!("refused above"),
        }
    }
    scheduler.cache.lock().update_snapshot(&mut snapshot);
    let mut lines: Vec<String> = snapshot
        .nodes
        .iter()
        .flat_map(|n| n.pods.iter().map(move |p| format!("{} {}", p.name, n.name)))
        .collect();
    lines.sort();
    scheduler.queue.close();
    Ok(lines)
}
