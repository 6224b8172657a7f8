//! pod-startup: pod startup latency on one real node (see benches/src/pod_startup.rs);
//! prints Markdown rows and writes target/pod-startup/results.json.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Measures pod startup latency on one real node (containerd + CNI): --pods busybox pods created in a row or at --rate per second, p50/p99 from creation to Running; --floor first measures the runtime alone."
)]
struct Flags {
    /// How many pods to create.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Pods created per second (default: one after another, as fast as the API answers).
    #[arg(long)]
    rate: Option<f64>,
    /// First run the same pods straight through the CRI (no kubelet, no apiserver) at 1, 2
    /// and 4 per core at once, and report the fastest as the machine's floor.
    #[arg(long)]
    floor: bool,
    /// Where results.json goes.
    #[arg(long, default_value = "target/pod-startup")]
    out: PathBuf,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let floor = if flags.floor {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        eprintln!("running {} pods through the CRI alone", flags.pods);
        let f =
            benches::pod_startup::runtime_floor(flags.pods, &[cores, 2 * cores, 4 * cores]).await?;
        println!("| floor: pods | at once | all running | runtime CPU per pod |");
        println!("| --- | --- | --- | --- |");
        println!(
            "| {} | {} | {:.2} s | {:.0} ms |\n",
            f.pods, f.concurrency, f.all_running_s, f.runtime_cpu_ms_per_pod
        );
        Some(f)
    } else {
        None
    };
    let how = flags
        .rate
        .map_or_else(|| "in a row".to_owned(), |r| format!("at {r}/s"));
    eprintln!("creating {} pods on one node {how}", flags.pods);
    let r = benches::pod_startup::pod_startup(flags.pods, flags.rate).await?;
    println!(
        "| pods | created | p50 | p99 | max | all Running | vs floor | machine CPU per pod | kubelet+apiserver CPU per pod | machine CPU, all running |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let ratio = floor.as_ref().map_or(String::new(), |f| {
        format!("{:.2}x", r.all_running_s / f.all_running_s)
    });
    println!(
        "| {} | {how} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {ratio} | {:.0} ms | {:.0} ms | {:.1}% |",
        r.pods,
        r.p50_s,
        r.p99_s,
        r.max_s,
        r.all_running_s,
        r.machine_cpu_ms_per_pod,
        r.process_cpu_ms_per_pod,
        r.steady_machine_cpu_percent
    );
    std::fs::create_dir_all(&flags.out)?;
    let path = flags.out.join("results.json");
    let json = serde_json::json!({"floor": floor, "startup": r});
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
