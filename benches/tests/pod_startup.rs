//! The pod-startup harness at a small scale with a real containerd: every pod starts and
//! the quantiles are ordered, and the runtime floor runs its pods (the full run is `cargo run
//! --release -p benches --bin pod-startup -- --floor`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_start_and_latencies_are_reported() {
    let r = benches::pod_startup::pod_startup(5, None).await.unwrap();
    assert_eq!(r.pods, 5);
    assert!(
        r.p50_s > 0.0 && r.p50_s <= r.p99_s && r.p99_s <= r.max_s,
        "{r:?}"
    );
    assert!(r.max_s <= r.all_running_s + 0.001, "{r:?}");
    // Upstream's SLO, with room for CI's load.
    assert!(r.p99_s < 15.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_floor_runs_every_pod_and_costs_cpu() {
    let f = benches::pod_startup::runtime_floor(3, &[1, 3])
        .await
        .unwrap();
    assert_eq!(f.pods, 3);
    assert!([1, 3].contains(&f.concurrency), "{f:?}");
    assert!(f.all_running_s > 0.0, "{f:?}");
    // Starting a sandbox and a container is runc, shims and namespaces: never free.
    assert!(f.runtime_cpu_ms_per_pod > 1.0, "{f:?}");
}
