//! The pod-startup harness at a small scale with a real containerd: every pod starts and
//! the quantiles are ordered (the full run is `cargo run --release -p benches --bin pod-startup`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_start_and_latencies_are_reported() {
    let r = benches::pod_startup::pod_startup(5).await.unwrap();
    assert_eq!(r.pods, 5);
    assert!(
        r.p50_s > 0.0 && r.p50_s <= r.p99_s && r.p99_s <= r.max_s,
        "{r:?}"
    );
    assert!(r.max_s <= r.all_running_s + 0.001, "{r:?}");
    // Upstream's SLO, with room for CI's load.
    assert!(r.p99_s < 15.0, "{r:?}");
}
