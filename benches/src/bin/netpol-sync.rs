//! netpol-sync: NetworkPolicy enforcement's cost on a node (see benches/src/netpol_sync.rs);
//! prints a Markdown table and writes target/netpol-sync/results.json.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Measures the NetworkPolicy agent's nftables syncs: a full sync of --policies policies over --pods pods (--local-pods of them on the measured node), one pod's label changing, one policy added, and the first packet of a new connection between two real pods with and without the policies (needs root: it runs in network namespaces of its own)."
)]
struct Flags {
    #[arg(long, default_value_t = 1000)]
    policies: usize,
    #[arg(long, default_value_t = 5000)]
    pods: usize,
    /// Pods of the cluster on the measured node.
    #[arg(long, default_value_t = 100)]
    local_pods: usize,
    /// Label changes to time (the median is reported).
    #[arg(long, default_value_t = 9)]
    runs: usize,
    /// Where results.json goes.
    #[arg(long, default_value = "target/netpol-sync")]
    out: PathBuf,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    eprintln!(
        "syncing {} policies over {} pods ({} on the node)",
        flags.policies, flags.pods, flags.local_pods
    );
    let r =
        benches::netpol_sync::netpol_sync(flags.policies, flags.pods, flags.local_pods, flags.runs)
            .await?;
    println!(
        "| policies x pods (on the node) | rules | full sync | one pod relabelled | one policy added | first packet (handshake p50 / p99) without, with policies |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} x {} ({}) | {} | {:.0} ms ({} statements) | {:.1} ms ({} statements; rendering {:.1} ms) | {:.1} ms ({} statements) | {:.0} / {:.0} µs, {:.0} / {:.0} µs |",
        r.policies,
        r.pods,
        r.local_pods,
        r.rules,
        r.full_sync_ms,
        r.full_sync_ops,
        r.one_label_ms,
        r.one_label_ops,
        r.one_label_render_ms,
        r.one_policy_added_ms,
        r.one_policy_added_ops,
        r.handshake_without_policies_us[0],
        r.handshake_without_policies_us[1],
        r.handshake_with_policies_us[0],
        r.handshake_with_policies_us[1],
    );
    std::fs::create_dir_all(&flags.out)?;
    let path = flags.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&r)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
