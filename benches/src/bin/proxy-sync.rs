//! proxy-sync: kube-proxy sync cost with many Services (see benches/src/proxy_sync.rs);
//! prints a Markdown row and writes target/proxy-sync/results.json.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Measures kube-proxy's nftables sync: a full sync of --services Services with --endpoints endpoints each, then one endpoint changing, then one Service added (needs root: it runs in a network namespace of its own)."
)]
struct Flags {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// One-endpoint changes to time (the median is reported).
    #[arg(long, default_value_t = 9)]
    runs: usize,
    /// Where results.json goes.
    #[arg(long, default_value = "target/proxy-sync")]
    out: PathBuf,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    eprintln!(
        "syncing {} services x {} endpoints",
        flags.services, flags.endpoints
    );
    let r = benches::proxy_sync::proxy_sync(flags.services, flags.endpoints, flags.runs).await?;
    println!(
        "| services x endpoints | rules | full sync | one endpoint changes | one service added |"
    );
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {} x {} | {} | {:.1} ms | {:.1} ms ({} nft statements) | {:.1} ms ({} statements) |",
        r.services,
        r.endpoints_per_service,
        r.rules,
        r.full_sync_ms,
        r.one_endpoint_ms,
        r.one_endpoint_ops,
        r.one_service_added_ms,
        r.one_service_added_ops
    );
    std::fs::create_dir_all(&flags.out)?;
    let path = flags.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&r)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
