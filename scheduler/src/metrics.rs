//! The scheduler's metrics, named as upstream's kube-scheduler names them.

use common::metrics::{Counter, Gauge, Histogram, exponential};

const ATTEMPT_BUCKETS: [f64; 20] = exponential(0.0001, 2.0);
const SLI_BUCKETS: [f64; 20] = exponential(0.01, 2.0);

pub static SCHEDULE_ATTEMPTS: Counter = Counter::new(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
    &["result", "profile"],
);

pub static ATTEMPT_DURATION: Histogram = Histogram::new(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
    &["result", "profile"],
    &ATTEMPT_BUCKETS,
);

pub static POD_SCHEDULING_SLI: Histogram = Histogram::new(
    "scheduler_pod_scheduling_sli_duration_seconds",
    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue until it is bound.",
    &["attempts"],
    &SLI_BUCKETS,
);

pub static PENDING_PODS: Gauge = Gauge::new(
    "scheduler_pending_pods",
    "Number of pending pods, by the queue type.",
    &["queue"],
);

pub static PREEMPTION_ATTEMPTS: Counter = Counter::new(
    "scheduler_preemption_attempts_total",
    "Total preemption attempts in the cluster till now",
    &[],
);

pub static PREEMPTION_VICTIMS: Histogram = Histogram::new(
    "scheduler_preemption_victims",
    "Number of selected preemption victims",
    &[],
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
);

pub static CACHE_SIZE: Gauge = Gauge::new(
    "scheduler_cache_size",
    "Number of nodes, pods, and assumed (bound) pods in the scheduler cache.",
    &["type"],
);

/// Every metric in Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    SCHEDULE_ATTEMPTS.render(&mut out);
    ATTEMPT_DURATION.render(&mut out);
    POD_SCHEDULING_SLI.render(&mut out);
    PENDING_PODS.render(&mut out);
    PREEMPTION_ATTEMPTS.render(&mut out);
    PREEMPTION_VICTIMS.render(&mut out);
    CACHE_SIZE.render(&mut out);
    out
}
