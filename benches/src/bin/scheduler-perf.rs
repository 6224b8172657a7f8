//! scheduler-perf: runs upstream scheduler_perf's workloads against tetsu's scheduler and
//! writes results.json, results.md and throughput.svg.

use std::path::PathBuf;

use benches::scheduler_perf::workload::Workload;
use benches::scheduler_perf::{Mode, Store, report, run};
use clap::Parser;
use scheduler::config::KubeSchedulerConfiguration;

#[derive(Parser)]
#[command(
    about = "Runs scheduler_perf workloads (benches/workloads/*.yaml) in-process and end-to-end and reports upstream's SchedulingThroughput metric beside upstream's floors."
)]
struct Flags {
    /// Workloads to run (file names without .yaml); all when none are given.
    workloads: Vec<String>,
    /// in-process, e2e (embedded store), e2e-etcd, or all (the three).
    #[arg(long, default_value = "all")]
    mode: String,
    /// Multiplies every node and pod count (0.1 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// A KubeSchedulerConfiguration file for the scheduler (default: the default profile).
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// Overrides the configuration's parallelism (threads for filter and score).
    #[arg(long)]
    parallelism: Option<i32>,
    /// Where results go.
    #[arg(long, default_value = "target/scheduler-perf")]
    out: PathBuf,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let modes = match flags.mode.as_str() {
        "in-process" => vec![Mode::InProcess],
        "e2e" => vec![Mode::EndToEnd(Store::Sqlite)],
        "e2e-etcd" => vec![Mode::EndToEnd(Store::Etcd)],
        "all" => vec![
            Mode::InProcess,
            Mode::EndToEnd(Store::Sqlite),
            Mode::EndToEnd(Store::Etcd),
        ],
        other => anyhow::bail!("--mode {other:?}: use in-process, e2e, e2e-etcd or all"),
    };
    let workloads = if flags.workloads.is_empty() {
        Workload::all()?
    } else {
        flags
            .workloads
            .iter()
            .map(|w| Workload::load(w))
            .collect::<anyhow::Result<_>>()?
    };
    let mut config = match &flags.scheduler_config {
        Some(p) => KubeSchedulerConfiguration::load(p)?,
        None => KubeSchedulerConfiguration::default_config(),
    };
    if flags.parallelism.is_some() {
        config.parallelism = flags.parallelism;
    }
    let mut results = Vec::new();
    for w in &workloads {
        for m in &modes {
            results.push(run(w, *m, flags.scale, &config).await?);
            report::write(&flags.out, &results)?;
        }
    }
    println!("{}", report::markdown(&results));
    eprintln!("results in {}", flags.out.display());
    Ok(())
}
