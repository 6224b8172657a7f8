//! pod-startup: pod startup latency on one real node (see benches/src/pod_startup.rs);
//! prints a Markdown row and writes target/pod-startup/results.json.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Measures pod startup latency on one real node (containerd + CNI): --pods busybox pods created in a row, p50/p99 from creation to Running."
)]
struct Flags {
    /// How many pods to create.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Where results.json goes.
    #[arg(long, default_value = "target/pod-startup")]
    out: PathBuf,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    eprintln!("creating {} pods on one node", flags.pods);
    let r = benches::pod_startup::pod_startup(flags.pods).await?;
    println!("| pods | p50 | p99 | max | all Running |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
        r.pods, r.p50_s, r.p99_s, r.max_s, r.all_running_s
    );
    std::fs::create_dir_all(&flags.out)?;
    let path = flags.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&r)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
