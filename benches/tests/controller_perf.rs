//! The controller-perf harness at a small scale: both measurements complete and report
//! sane numbers (the full-scale run is `cargo run --release -p benches --bin controller-perf`).

use benches::controller_perf::{deployment_convergence, pod_churn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_convergence_and_pod_churn_complete() {
    let c = deployment_convergence(60).await.unwrap();
    assert_eq!(c.pods, 60);
    assert!(
        c.first_phase_s > 0.0 && c.converged_s >= c.first_phase_s,
        "{c:?}"
    );
    let churn = pod_churn(100, 4).await.unwrap();
    assert_eq!(churn.pods, 100);
    assert!(churn.converged_s >= churn.first_phase_s, "{churn:?}");
}
