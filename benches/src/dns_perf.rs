//! dns-perf: the cluster DNS server under load (issue #20), against CoreDNS's own scaling
//! figures. N Services (every tenth headless) with a slice of three ready endpoints each, in
//! 100 namespaces, are written to an in-process apiserver and served by the real kube-dns
//! binary (beside this one: `cargo build --release -p dns -p benches`). Memory is the
//! process's RSS against the same binary serving an empty cluster, fed by the watch and by a
//! list; the zone alone is also loaded into this process and measured. dnsperf (Debian's
//! package) then sends queries from a file of in-cluster names for a fixed time: A for
//! ClusterIP and headless Services, SRV for named ports, and names that do not exist.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dns::testing::{NAMESPACES, namespace, service, slice};
use dns::zone::Zone;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, serde::Serialize)]
pub struct Result {
    pub services: usize,
    /// Objects in CoreDNS's memory formula: the Services and their endpoints' pods.
    pub objects: usize,
    /// Resident memory the zone alone added to this process, in MiB.
    pub zone_mib: f64,
    /// Resident memory the objects added to a kube-dns process, in MiB: fed one by one by
    /// its watch, and listed at its start.
    pub process_watched_mib: f64,
    pub process_listed_mib: f64,
    /// The larger of the two, per object, in bytes (CoreDNS: about 1,000).
    pub bytes_per_object: f64,
    /// From writing a new Service to the apiserver to kube-dns answering its name: the
    /// median and the worst of 20, in ms.
    pub update_ms: [f64; 2],
    pub queries_per_second: f64,
    pub average_latency_ms: f64,
    pub latency_stddev_ms: f64,
    /// A probe's latencies while dnsperf runs (one query at a time, every millisecond):
    /// 50th, 90th and 99th percentiles in ms.
    pub probe_latency_ms: [f64; 3],
    pub queries_lost: u64,
    pub seconds: u64,
}

/// Resident memory of process `pid` ("self" for this one), in bytes.
fn rss(pid: &str) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
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

/// A kube-dns process serving on loopback, stopped when dropped.
struct KubeDns {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl KubeDns {
    /// Starts the binary beside this one and waits until it has listed the cluster.
    async fn start(kubeconfig: &Path) -> anyhow::Result<KubeDns> {
        let exe = std::env::current_exe()?.with_file_name("kube-dns");
        anyhow::ensure!(
            exe.exists(),
            "{} is missing: cargo build --release -p dns -p benches",
            exe.display()
        );
        let free = || apiserver::testing::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{}", free()).parse()?;
        let ready: SocketAddr = format!("127.0.0.1:{}", free()).parse()?;
        let child = tokio::process::Command::new(&exe)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--dns-bind-address", &addr.to_string()])
            .args(["--ready-bind-address", &ready.to_string()])
            .args(["--resolv-conf", "", "--health-bind-address", ""])
            .args(["--metrics-bind-address", ""])
            .kill_on_drop(true)
            .spawn()?;
        let started = std::time::Instant::now();
        while !answers_ready(ready).await {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "kube-dns did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(KubeDns { child, addr })
    }

    /// Its resident memory once allocations have settled, in bytes.
    async fn rss(&self) -> u64 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss(&self.child.id().unwrap_or_default().to_string())
    }
}

/// Whether /ready at `addr` answers 200.
async fn answers_ready(addr: SocketAddr) -> bool {
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut answer = [0u8; 12];
    conn.write_all(b"GET /ready HTTP/1.0\r\n\r\n").await.is_ok()
        && conn.read_exact(&mut answer).await.is_ok()
        && answer.ends_with(b" 200")
}

/// The API of `object`'s kind in its namespace.
fn namespaced<K>(client: &kube::Client, object: &K) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(
        client.clone(),
        object.meta().namespace.as_deref().unwrap_or_default(),
    )
}

/// Writes `objects` through `client`, many at a time.
async fn create_all<K>(api: impl Fn(&K) -> Api<K>, objects: &[K]) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut writes = futures::stream::iter(objects)
        .map(|o| {
            let api = api(o);
            async move { api.create(&PostParams::default(), o).await }
        })
        .buffer_unordered(64);
    while let Some(written) = writes.next().await {
        written?;
    }
    Ok(())
}

/// Waits until `dns` answers the last Service's name and, if it is headless with hostnames,
/// one of its endpoints' names: the watch has delivered everything written before.
async fn wait_for_last(dns: SocketAddr, services: usize) -> anyhow::Result<()> {
    let mut client = dns::testing::udp_client(dns);
    let i = services - 1;
    let name = format!("svc-{i}.ns-{}.svc.cluster.local.", i % NAMESPACES);
    let started = std::time::Instant::now();
    loop {
        let asked = dns::testing::ask(&mut client, &name, hickory_proto::rr::RecordType::A);
        if let Ok(answer) = tokio::time::timeout(Duration::from_secs(1), asked).await
            && !answer.answers.is_empty()
        {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "kube-dns never answered {name}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes 20 new Services, one at a time, and times each from the write's start to the
/// first answer for its name (asked every half millisecond): [median, worst] in ms.
async fn update_latency(client: &kube::Client, dns: SocketAddr) -> anyhow::Result<[f64; 2]> {
    let mut asker = dns::testing::udp_client(dns);
    let mut took = Vec::new();
    for n in 0..20 {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "ns-0", "name": format!("fresh-{n}")},
            "spec": {"clusterIP": format!("10.100.0.{}", n + 1), "ports": [{"name": "http", "port": 80}]},
        }))?;
        let name = format!("fresh-{n}.ns-0.svc.cluster.local.");
        let started = std::time::Instant::now();
        namespaced(client, &service)
            .create(&PostParams::default(), &service)
            .await?;
        loop {
            let asked = dns::testing::ask(&mut asker, &name, hickory_proto::rr::RecordType::A);
            if !asked.await.answers.is_empty() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "kube-dns never answered {name}"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok([took[took.len() / 2], took[took.len() - 1]])
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
    let before = rss("self");
    let mut zone = Zone::new("cluster.local", 30)?;
    for n in 0..NAMESPACES {
        zone.namespace_changed(&namespace(n));
    }
    for (service, slice) in &objects {
        zone.service_changed(service);
        zone.slice_changed(slice);
    }
    let zone_mib = mib(rss("self").saturating_sub(before));
    drop(zone);

    // The same objects through an apiserver into kube-dns processes.
    let dir = tempfile::tempdir()?;
    let apiserver = apiserver::testing::spawn(dir.path()).await;
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver::testing::write_kubeconfig(&kubeconfig, &apiserver.url());
    let client = kube::Client::try_from(kube::Config::new(apiserver.url().parse()?))?;
    let namespaces: Vec<Namespace> = (0..NAMESPACES).map(namespace).collect();
    create_all(|_| Api::all(client.clone()), &namespaces).await?;
    let watched = KubeDns::start(&kubeconfig).await?;
    let empty = watched.rss().await;
    eprintln!("kube-dns serving an empty cluster: {:.1} MiB", mib(empty));
    let (services_written, slices): (Vec<Service>, Vec<EndpointSlice>) =
        objects.into_iter().unzip();
    create_all(|s| namespaced(&client, s), &services_written).await?;
    create_all(|s| namespaced(&client, s), &slices).await?;
    drop((services_written, slices));
    wait_for_last(watched.addr, services).await?;
    let process_watched_mib = mib(watched.rss().await.saturating_sub(empty));
    drop(watched);
    let server = KubeDns::start(&kubeconfig).await?;
    let process_listed_mib = mib(server.rss().await.saturating_sub(empty));
    let objects_counted = services * 4;
    let bytes_per_object =
        process_watched_mib.max(process_listed_mib) * 1024.0 * 1024.0 / objects_counted as f64;
    let update_ms = update_latency(&client, server.addr).await?;

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
    drop(server);
    drop(apiserver);
    let lost = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries lost:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(Result {
        services,
        objects: objects_counted,
        zone_mib,
        process_watched_mib,
        process_listed_mib,
        bytes_per_object,
        update_ms,
        queries_per_second: summary(&text, "Queries per second:")
            .ok_or_else(|| anyhow::anyhow!("no rate in dnsperf's output: {text}"))?,
        average_latency_ms: summary(&text, "Average Latency (s):").unwrap_or(0.0) * 1000.0,
        latency_stddev_ms: summary(&text, "Latency StdDev (s):").unwrap_or(0.0) * 1000.0,
        probe_latency_ms,
        queries_lost: lost,
        seconds,
    })
}
