//! controller-perf: measures how fast kube-controller-manager's controllers converge (see
//! benches/src/controller_perf.rs) and writes target/controller-perf/results.json.

use std::path::PathBuf;

use benches::controller_perf::{deployment_convergence, pod_churn};
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Measures the controllers: a Deployment of --replicas pods converging, and --churn-pods pods in --groups ReplicaSets/Services all turning ready."
)]
struct Flags {
    /// Replicas of the DeploymentConvergence Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Pods in the PodChurn measurement.
    #[arg(long, default_value_t = 10_000)]
    churn_pods: usize,
    /// ReplicaSets (each behind its own Service) the churn pods are spread over.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Where results.json goes.
    #[arg(long, default_value = "target/controller-perf")]
    out: PathBuf,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    eprintln!("DeploymentConvergence: {} replicas", flags.replicas);
    let convergence = deployment_convergence(flags.replicas).await?;
    eprintln!(
        "PodChurn: {} pods in {} groups",
        flags.churn_pods, flags.groups
    );
    let churn = pod_churn(flags.churn_pods, flags.groups).await?;
    println!("| measurement | pods | first phase | converged | pods/s |");
    println!("| --- | --- | --- | --- | --- |");
    for m in [&convergence, &churn] {
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.0} |",
            m.name, m.pods, m.first_phase_s, m.converged_s, m.pods_per_second
        );
    }
    std::fs::create_dir_all(&flags.out)?;
    std::fs::write(
        flags.out.join("results.json"),
        serde_json::to_vec_pretty(&[convergence, churn])?,
    )?;
    Ok(())
}
