//! scheduler-perf: runs upstream scheduler_perf's workloads against tetsu's scheduler and
//! writes results.json, results.md and throughput.svg. Each workload and mode runs in a
//! child process of its own, so one run's memory and threads never weigh on the next and
//! the peak RSS reported is that run's.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use benches::scheduler_perf::workload::Workload;
use benches::scheduler_perf::{Mode, Result as RunResult, Store, report, run};
use clap::Parser;
use scheduler::config::KubeSchedulerConfiguration;

#[derive(Parser)]
#[command(
    about = "Runs scheduler_perf workloads (benches/workloads/*.yaml) in-process and end-to-end and reports upstream's SchedulingThroughput metric beside upstream's floors."
)]
struct Flags {
    /// Workloads to run (file names without .yaml); all when none are given.
    workloads: Vec<String>,
    /// in-process, e2e (embedded store), e2e-etcd, all (those three), or processes /
    /// processes-etcd (kube-apiserver and kube-scheduler as their release binaries over TLS,
    /// built first with `cargo build --release -p apiserver -p scheduler`).
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
    /// Internal: run one workload in one mode here and print its result as JSON.
    #[arg(long, hide = true)]
    child: bool,
}

fn modes(mode: &str) -> anyhow::Result<Vec<(&'static str, Mode)>> {
    Ok(match mode {
        "in-process" => vec![("in-process", Mode::InProcess)],
        "e2e" => vec![("e2e", Mode::EndToEnd(Store::Sqlite))],
        "e2e-etcd" => vec![("e2e-etcd", Mode::EndToEnd(Store::Etcd))],
        "processes" => vec![("processes", Mode::Processes(Store::Sqlite))],
        "processes-etcd" => vec![("processes-etcd", Mode::Processes(Store::Etcd))],
        "all" => vec![
            ("in-process", Mode::InProcess),
            ("e2e", Mode::EndToEnd(Store::Sqlite)),
            ("e2e-etcd", Mode::EndToEnd(Store::Etcd)),
        ],
        other => anyhow::bail!(
            "--mode {other:?}: use in-process, e2e, e2e-etcd, all, processes or processes-etcd"
        ),
    })
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let workloads = if flags.workloads.is_empty() {
        Workload::all()?
    } else {
        flags
            .workloads
            .iter()
            .map(|w| Workload::load(w))
            .collect::<anyhow::Result<_>>()?
    };
    if flags.child {
        // The components' own logs, when asked for (they are silent otherwise).
        if std::env::var_os("RUST_LOG").is_some() {
            common::logging::init(0);
        }
        let mut config = match &flags.scheduler_config {
            Some(p) => KubeSchedulerConfiguration::load(p)?,
            None => KubeSchedulerConfiguration::default_config(),
        };
        if flags.parallelism.is_some() {
            config.parallelism = flags.parallelism;
        }
        let (_, mode) = modes(&flags.mode)?[0];
        if matches!(mode, Mode::Processes(_)) && flags.parallelism.is_some() {
            anyhow::bail!("--parallelism: set it in --scheduler-config for the processes modes");
        }
        let path = flags.scheduler_config.as_deref();
        let result = run(&workloads[0], mode, flags.scale, &config, path).await?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut results: Vec<RunResult> = Vec::new();
    for w in &workloads {
        for (name, _) in modes(&flags.mode)? {
            let mut cmd = Command::new(&exe);
            cmd.arg("--child").arg(&w.name).args(["--mode", name]);
            cmd.args(["--scale", &flags.scale.to_string()]);
            if let Some(p) = &flags.scheduler_config {
                cmd.arg("--scheduler-config").arg(p);
            }
            if let Some(p) = flags.parallelism {
                cmd.args(["--parallelism", &p.to_string()]);
            }
            let out = cmd.stderr(Stdio::inherit()).output()?;
            if !out.status.success() {
                anyhow::bail!("{} [{name}] failed ({})", w.name, out.status);
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().last().unwrap_or_default();
            results.push(serde_json::from_str(line)?);
            report::write(&flags.out, &results)?;
        }
    }
    println!("{}", report::markdown(&results));
    eprintln!("results in {}", flags.out.display());
    Ok(())
}
