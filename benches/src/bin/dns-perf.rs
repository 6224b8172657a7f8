//! dns-perf: the cluster DNS server under dnsperf's load (see benches/src/dns_perf.rs);
//! prints a Markdown row and writes target/dns-perf/results.json.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Measures the cluster DNS server: --services Services with their slices written to an in-process apiserver and served by the kube-dns binary beside this one (cargo build --release -p dns -p benches), its memory read from its RSS, then dnsperf (apt-get install dnsperf) sending in-cluster queries for --seconds from --clients clients."
)]
struct Flags {
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Endpoints without hostnames (a Deployment's), instead of named as StatefulSet pods.
    #[arg(long)]
    no_hostnames: bool,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Where results.json goes.
    #[arg(long, default_value = "target/dns-perf")]
    out: PathBuf,
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    eprintln!(
        "{} services, dnsperf for {} s with {} clients",
        flags.services, flags.seconds, flags.clients
    );
    let r = benches::dns_perf::dns_perf(
        flags.services,
        !flags.no_hostnames,
        flags.seconds,
        flags.clients,
    )
    .await?;
    println!(
        "| services | kube-dns memory: watched / listed (zone) | per object | new Service answered: median / worst | queries/s | average latency (stddev) | probe p50 / p90 / p99 | lost |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {:.1} / {:.1} MiB ({:.1} MiB) | {:.0} B | {:.1} / {:.1} ms | {:.0} | {:.2} ms ({:.2} ms) | {:.2} / {:.2} / {:.2} ms | {} |",
        r.services,
        r.process_watched_mib,
        r.process_listed_mib,
        r.zone_mib,
        r.bytes_per_object,
        r.update_ms[0],
        r.update_ms[1],
        r.queries_per_second,
        r.average_latency_ms,
        r.latency_stddev_ms,
        r.probe_latency_ms[0],
        r.probe_latency_ms[1],
        r.probe_latency_ms[2],
        r.queries_lost
    );
    std::fs::create_dir_all(&flags.out)?;
    let path = flags.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&r)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
