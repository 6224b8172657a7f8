//! The controller-manager's metrics, under client-go's workqueue names so that dashboards
//! built for upstream read them unchanged.

use common::metrics::{Counter, Gauge, Histogram};

const DURATION_BUCKETS: &[f64] = &[
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0,
];

pub static QUEUE_DEPTH: Gauge =
    Gauge::new("workqueue_depth", "Current depth of workqueue", &["name"]);
pub static QUEUE_ADDS: Counter = Counter::new(
    "workqueue_adds_total",
    "Total number of adds handled by workqueue",
    &["name"],
);
pub static QUEUE_RETRIES: Counter = Counter::new(
    "workqueue_retries_total",
    "Total number of retries handled by workqueue",
    &["name"],
);
pub static QUEUE_DURATION: Histogram = Histogram::new(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    &["name"],
    DURATION_BUCKETS,
);
pub static WORK_DURATION: Histogram = Histogram::new(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    &["name"],
    DURATION_BUCKETS,
);
pub static SYNC_ERRORS: Counter = Counter::new(
    "controller_sync_errors_total",
    "Syncs that failed and were retried, by controller",
    &["controller"],
);
pub static LEADER: Gauge = Gauge::new(
    "leader_election_master_status",
    "Whether this process holds the leader lease (1) or not (0)",
    &["name"],
);

/// The Prometheus text of every family.
pub fn render() -> String {
    let mut out = String::new();
    QUEUE_DEPTH.render(&mut out);
    QUEUE_ADDS.render(&mut out);
    QUEUE_RETRIES.render(&mut out);
    QUEUE_DURATION.render(&mut out);
    WORK_DURATION.render(&mut out);
    SYNC_ERRORS.render(&mut out);
    LEADER.render(&mut out);
    out
}
