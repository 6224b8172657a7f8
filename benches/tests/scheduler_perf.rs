//! The scheduler-perf harness works in both modes: SchedulingBasic at a tiny size
//! produces upstream's throughput metric, every measured pod bound.

use benches::scheduler_perf::workload::Workload;
use benches::scheduler_perf::{Mode, Store, report, run};

async fn check(mode: Mode) {
    let w = Workload::load("SchedulingBasic").unwrap();
    // 5000 nodes, 1000 + 10000 pods scaled to 50 nodes, 10 + 100 pods.
    let config = scheduler::config::KubeSchedulerConfiguration::default_config();
    let r = run(&w, mode, 0.01, &config).await.unwrap();
    assert_eq!((r.nodes, r.measured_pods), (50, 100));
    assert!(!r.samples.is_empty(), "{r:?}");
    assert!(r.average > 0.0 && r.overall > 0.0, "{r:?}");
    assert!(r.perc50 <= r.perc99, "{r:?}");
    assert!(r.latency_p50_ms <= r.latency_p99_ms, "{r:?}");
    let table = report::markdown(std::slice::from_ref(&r));
    assert!(
        table.contains("| SchedulingBasic |") && table.contains("| 680 |"),
        "{table}"
    );
    assert!(report::svg(&[r]).contains("<polyline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_basic_in_process() {
    check(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_basic_end_to_end() {
    check(Mode::EndToEnd(Store::Sqlite)).await;
}
