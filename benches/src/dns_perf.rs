//! dns-perf: the cluster DNS server under load (issue #20), against CoreDNS's own scaling
//! figures. A zone of N Services (every tenth headless, with three ready endpoints) in 100
//! namespaces is loaded straight into the server (the memory it takes is read from the
//! process's RSS), the server listens on loopback, and dnsperf (Debian's package) sends
//! queries from a file of in-cluster names for a fixed time: A for ClusterIP and headless
//! Services, SRV for named ports, and names that do not exist.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dns::server::{Handler, Running};
use dns::zone::Zone;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::RwLock;
use serde_json::json;

const NAMESPACES: usize = 100;

#[derive(Debug, serde::Serialize)]
pub struct Result {
    pub services: usize,
    /// Resident memory the zone added, in MiB.
    pub zone_mib: f64,
    pub queries_per_second: f64,
    pub average_latency_ms: f64,
    pub latency_stddev_ms: f64,
    /// A probe's latencies while dnsperf runs (one query at a time, every millisecond):
    /// 50th, 90th and 99th percentiles in ms.
    pub probe_latency_ms: [f64; 3],
    pub queries_lost: u64,
    pub seconds: u64,
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn service(i: usize) -> Service {
    let headless = i.is_multiple_of(10);
    let ip = if headless {
        "None".to_owned()
    } else {
        format!("10.96.{}.{}", i / 250, i % 250 + 1)
    };
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % NAMESPACES), "name": format!("svc-{i}")},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
    }))
    .unwrap()
}

/// A Service's slice of three ready endpoints; with `hostnames`, named as StatefulSet pods
/// are (else as a Deployment's, by address only).
fn slice(i: usize, hostnames: bool) -> EndpointSlice {
    let endpoints: Vec<_> = (0..3)
        .map(|e| {
            let n = i * 3 + e;
            let mut endpoint =
                json!({"addresses": [format!("10.244.{}.{}", n / 250, n % 250 + 1)]});
            if hostnames {
                endpoint["hostname"] = json!(format!("pod-{e}"));
            }
            endpoint
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % NAMESPACES), "name": format!("svc-{i}-1"),
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))
    .unwrap()
}

/// The value after `label` on one of dnsperf's summary lines.
fn summary(output: &str, label: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub async fn dns_perf(
    services: usize,
    hostnames: bool,
    seconds: u64,
    clients: usize,
) -> anyhow::Result<Result> {
    // The objects first, so that the memory measured is the zone's.
    let objects: Vec<(Service, EndpointSlice)> = (0..services)
        .map(|i| (service(i), slice(i, hostnames)))
        .collect();
    let before = rss();
    let mut zone = Zone::new("cluster.local", 30)?;
    for n in 0..NAMESPACES {
        zone.namespace_changed(&serde_json::from_value(
            json!({"metadata": {"name": format!("ns-{n}")}}),
        )?);
    }
    for (service, slice) in &objects {
        zone.service_changed(service);
        zone.slice_changed(slice);
    }
    let zone_mib = (rss().saturating_sub(before)) as f64 / (1024.0 * 1024.0);
    drop(objects);
    let zone = Arc::new(RwLock::new(zone));
    let server = Running::start(
        Handler::new(zone, None, Arc::new(AtomicBool::new(true))),
        "127.0.0.1:0".parse::<SocketAddr>()?,
    )
    .await?;

    // The queries: mostly Service addresses, some SRV, endpoint names and names that do not
    // exist, as a pod's resolver asks (its search list makes NXDOMAINs common).
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("queries");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    for q in 0..20_000 {
        let i = (q * 7919) % services;
        let ns = i % NAMESPACES;
        match q % 10 {
            0 => writeln!(out, "_http._tcp.svc-{i}.ns-{ns}.svc.cluster.local SRV")?,
            1 => writeln!(
                out,
                "svc-{i}.ns-{ns}.svc.cluster.local.ns-{ns}.svc.cluster.local A"
            )?,
            2 if hostnames && i.is_multiple_of(10) => {
                writeln!(out, "pod-1.svc-{i}.ns-{ns}.svc.cluster.local A")?
            }
            _ => writeln!(out, "svc-{i}.ns-{ns}.svc.cluster.local A")?,
        }
    }
    out.flush()?;
    drop(out);
    let port = server.addr.port().to_string();
    // The latency a pod sees while dnsperf loads the server: one question at a time.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let done = done.clone();
        let addr = server.addr;
        tokio::spawn(async move {
            let mut client = dns::testing::udp_client(addr);
            let mut took = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let i = (took.len() * 7919) % services;
                let name = format!("svc-{i}.ns-{}.svc.cluster.local.", i % NAMESPACES);
                let started = std::time::Instant::now();
                let asked = dns::testing::ask(&mut client, &name, hickory_proto::rr::RecordType::A);
                if tokio::time::timeout(std::time::Duration::from_secs(1), asked)
                    .await
                    .is_ok()
                {
                    took.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            took
        })
    };
    let output = tokio::process::Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port, "-d"])
        .arg(&file)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            &clients.to_string(),
            "-q",
            "500",
        ])
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running dnsperf (apt-get install dnsperf): {e}"))?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut took = probe.await?;
    took.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        took.get(((took.len() as f64 * p) as usize).min(took.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let probe_latency_ms = [percentile(0.5), percentile(0.9), percentile(0.99)];
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "dnsperf failed: {text}");
    server.shutdown().await;
    let lost = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries lost:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(Result {
        services,
        zone_mib,
        queries_per_second: summary(&text, "Queries per second:")
            .ok_or_else(|| anyhow::anyhow!("no rate in dnsperf's output: {text}"))?,
        average_latency_ms: summary(&text, "Average Latency (s):").unwrap_or(0.0) * 1000.0,
        latency_stddev_ms: summary(&text, "Latency StdDev (s):").unwrap_or(0.0) * 1000.0,
        probe_latency_ms,
        queries_lost: lost,
        seconds,
    })
}
