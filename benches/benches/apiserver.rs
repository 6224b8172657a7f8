//! The store and API server benchmark (../shared/BENCHMARKS.md section 2), run on demand:
//! `cargo bench -p benches --bench apiserver`. Both backends are measured in one run (the
//! embedded SQLite store and a real etcd started here), so their ratio is honest. Set
//! BENCH_SCALE (default 1.0) to shrink every size, e.g. 0.05 for a smoke run. BENCH_AUDIT=1
//! runs only the audit cost comparison (pod creates without auditing and with a Metadata
//! policy for every request written to a log file).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::server::{Config, spawn_in_process};
use apiserver::storage::{Store, etcd::EtcdStore, sqlite::SqliteStore};
use apiserver::testing::{EtcdServer, http::HttpClient};
use benches::{Latencies, Row, cpu_seconds, report, rss_mib};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

fn per_sec(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64())
}

const CONCURRENCY: usize = 32;

async fn store_bench(backend: &'static str, store: Arc<dyn Store>) -> Vec<Row> {
    let mut rows = Vec::new();
    let value = Bytes::from(vec![b'x'; 256]);

    let n = scaled(2000);
    let t = Instant::now();
    for i in 0..n {
        store
            .create(&format!("/seq/{i}"), value.clone())
            .await
            .unwrap();
    }
    rows.push(Row {
        what: "writes, 1 client, 256 B".into(),
        backend,
        value: per_sec(n, t.elapsed()),
    });

    let each = scaled(20_000) / CONCURRENCY;
    let t = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|c| {
            let (store, value) = (store.clone(), value.clone());
            tokio::spawn(async move {
                for i in 0..each {
                    store
                        .create(&format!("/par/{c}/{i}"), value.clone())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rows.push(Row {
        what: format!("writes, {CONCURRENCY} clients"),
        backend,
        value: per_sec(each * CONCURRENCY, t.elapsed()),
    });

    let t = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    assert!(store.get(&format!("/par/{c}/{i}")).await.unwrap().is_some());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rows.push(Row {
        what: format!("reads, {CONCURRENCY} clients"),
        backend,
        value: per_sec(each * CONCURRENCY, t.elapsed()),
    });

    // Watch delivery: time from a write's acknowledgement to its event at a watcher.
    let n = scaled(2000);
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/watch/", start).await.unwrap();
    let acked: Arc<parking_lot_free::Map> = Arc::new(parking_lot_free::Map::default());
    let writer = {
        let (store, acked, value) = (store.clone(), acked.clone(), value.clone());
        tokio::spawn(async move {
            for i in 0..n {
                let kv = store
                    .create(&format!("/watch/{i}"), value.clone())
                    .await
                    .unwrap();
                acked.insert(kv.mod_revision, Instant::now());
            }
        })
    };
    let mut latencies = Latencies::default();
    let mut received = Vec::with_capacity(n);
    for _ in 0..n {
        let event = watch.next().await.unwrap().unwrap();
        received.push((event.revision(), Instant::now()));
    }
    writer.await.unwrap();
    for (rev, at) in received {
        if let Some(sent) = acked.get(rev) {
            latencies.push(at.saturating_duration_since(sent));
        }
    }
    rows.push(Row {
        what: "watch delivery after ack, p50 / p99".into(),
        backend,
        value: format!(
            "{:.2} ms / {:.2} ms",
            latencies.quantile_ms(0.5),
            latencies.quantile_ms(0.99)
        ),
    });
    rows
}

/// A tiny map of revision -> time shared between the writer and the measuring loop.
mod parking_lot_free {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    pub struct Map(Mutex<HashMap<i64, Instant>>);

    impl Map {
        pub fn insert(&self, k: i64, v: Instant) {
            self.0.lock().unwrap().insert(k, v);
        }
        pub fn get(&self, k: i64) -> Option<Instant> {
            self.0.lock().unwrap().get(&k).copied()
        }
    }
}

fn pod(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "bench" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox:1.36", "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] },
    })
}

async fn create_pods(client: &HttpClient, ns: &str, prefix: &str, n: usize) -> Latencies {
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let per = n.div_ceil(CONCURRENCY);
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|c| {
            let (client, path, prefix) = (client.clone(), path.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut lat = Latencies::default();
                for i in 0..per {
                    let t = Instant::now();
                    let (code, body) = client
                        .post(&path, &pod(&format!("{prefix}-{c}-{i}")))
                        .await
                        .unwrap();
                    assert_eq!(code, 201, "{body}");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Latencies::default();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

async fn api_bench(backend: &'static str, config: Config) -> Vec<Row> {
    let mut rows = Vec::new();
    let rss_before = rss_mib();
    let server = spawn_in_process(config).await.unwrap();
    let client = HttpClient::new(&server.url());
    for ns in ["bench", "fan"] {
        let (code, _) = client
            .post(
                "/api/v1/namespaces",
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201);
    }

    let n = scaled(10_000);
    let t = Instant::now();
    let mut lat = create_pods(&client, "bench", "p", n).await;
    let elapsed = t.elapsed();
    rows.push(Row {
        what: format!("pod creates, {CONCURRENCY} clients: rate, p50 / p99"),
        backend,
        value: format!(
            "{} , {:.1} ms / {:.1} ms",
            per_sec(lat.len(), elapsed),
            lat.quantile_ms(0.5),
            lat.quantile_ms(0.99)
        ),
    });

    let mut lists = Latencies::default();
    let mut count = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (code, list) = client.get("/api/v1/namespaces/bench/pods").await.unwrap();
        lists.push(t.elapsed());
        assert_eq!(code, 200);
        count = list["items"].as_array().unwrap().len();
    }
    rows.push(Row {
        what: format!("LIST of {count} pods, p50"),
        backend,
        value: format!("{:.0} ms", lists.quantile_ms(0.5)),
    });

    // Watch fan-out: 100 watchers, each must see every new pod.
    const WATCHERS: usize = 100;
    let events = scaled(1000);
    let (_, list) = client.get("/api/v1/namespaces/fan/pods").await.unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let created: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut stream = client
            .watch(&format!(
                "/api/v1/namespaces/fan/pods?watch=true&resourceVersion={rv}"
            ))
            .await
            .unwrap();
        let created = created.clone();
        watchers.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            for _ in 0..events {
                let event = stream.next().await.unwrap();
                let name = event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let now = Instant::now();
                if let Some(t) = created.lock().unwrap().get(&name) {
                    lat.push(now.saturating_duration_since(*t));
                }
            }
            lat
        }));
    }
    let t = Instant::now();
    let path = "/api/v1/namespaces/fan/pods";
    for i in 0..events {
        let name = format!("f-{i}");
        created.lock().unwrap().insert(name.clone(), Instant::now());
        let (code, _) = client.post(path, &pod(&name)).await.unwrap();
        assert_eq!(code, 201);
    }
    let mut delivery = Latencies::default();
    for w in watchers {
        delivery.extend(w.await.unwrap());
    }
    rows.push(Row {
        what: format!(
            "watch fan-out: {events} creates to {WATCHERS} watchers, total; delivery p50 / p99"
        ),
        backend,
        value: format!(
            "{:.2} s; {:.1} ms / {:.1} ms",
            t.elapsed().as_secs_f64(),
            delivery.quantile_ms(0.5),
            delivery.quantile_ms(0.99)
        ),
    });
    rows.push(Row {
        what: format!("process RSS growth with {} pods stored", n + events),
        backend,
        value: format!("{:.0} MiB", rss_mib() - rss_before),
    });
    server.stop();
    rows
}

fn node(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
        "status": { "capacity": { "cpu": "4", "memory": "32Gi", "pods": "110" },
                    "allocatable": { "cpu": "4", "memory": "32Gi", "pods": "110" } },
    })
}

/// BENCHMARKS.md's memory figure: RSS of a process serving 5,000 nodes and 50,000 pods
/// (BENCH_MEMORY=1; scaled by BENCH_SCALE).
async fn memory_bench() -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let before = rss_mib();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        secure_port: 0,
        ..Config::default()
    };
    let server = spawn_in_process(config).await.unwrap();
    let client = HttpClient::new(&server.url());
    let nodes = scaled(5_000);
    for chunk in (0..nodes).collect::<Vec<_>>().chunks(CONCURRENCY) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|i| {
                let client = client.clone();
                let i = *i;
                tokio::spawn(async move {
                    client
                        .post("/api/v1/nodes", &node(&format!("node-{i}")))
                        .await
                        .unwrap()
                        .0
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 201);
        }
    }
    let pods = scaled(50_000);
    create_pods(&client, "default", "m", pods).await;
    let after = rss_mib();
    server.stop();
    vec![Row {
        what: format!(
            "process RSS serving {nodes} nodes and {} pods (growth)",
            pods.div_ceil(CONCURRENCY) * CONCURRENCY
        ),
        backend: "embedded (SQLite)",
        value: format!("{after:.0} MiB ({:.0} MiB)", after - before),
    }]
}

/// Pod creates per second on the embedded store, and CPU milliseconds per create.
async fn create_rate(config: Config, n: usize) -> (f64, f64) {
    let server = spawn_in_process(config).await.unwrap();
    let client = HttpClient::new(&server.url());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}});
    assert_eq!(client.post("/api/v1/namespaces", &ns).await.unwrap().0, 201);
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let lat = create_pods(&client, "bench", "p", n).await;
    let rate = lat.len() as f64 / t.elapsed().as_secs_f64();
    let cpu_ms = (cpu_seconds() - cpu) * 1000.0 / lat.len() as f64;
    server.stop();
    (rate, cpu_ms)
}

/// The cost of auditing: pod create throughput without a policy, and with Metadata for every
/// request written to a file (both stages, as upstream's default with no omitStages). Rounds
/// alternate, and so does which runs first, so drift in the machine's load hits both alike;
/// the medians are compared.
async fn audit_bench() -> Vec<Row> {
    let n = scaled(5_000);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .unwrap();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut log_bytes = 0;
    const ROUNDS: usize = 7;
    for round in 0..ROUNDS {
        let base = dir.path().join(format!("round-{round}"));
        let plain = Config {
            data_dir: base.join("off"),
            secure_port: 0,
            ..Config::default()
        };
        let log = base.join("audit.log");
        let audited = Config {
            data_dir: base.join("on"),
            secure_port: 0,
            audit: apiserver::audit::AuditConfig {
                policy_file: Some(policy.clone()),
                log: Some(apiserver::audit::log::LogConfig {
                    path: log.clone(),
                    ..Default::default()
                }),
                webhook: None,
            },
            ..Config::default()
        };
        // Which goes first alternates too.
        if round % 2 == 0 {
            off.push(create_rate(plain, n).await);
            on.push(create_rate(audited, n).await);
        } else {
            on.push(create_rate(audited, n).await);
            off.push(create_rate(plain, n).await);
        }
        log_bytes = std::fs::metadata(&log).map_or(0, |m| m.len());
    }
    let median = |v: &[(f64, f64)], field: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = v.iter().map(field).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off_rate, on_rate) = (median(&off, |r| r.0), median(&on, |r| r.0));
    let (off_cpu, on_cpu) = (median(&off, |r| r.1), median(&on, |r| r.1));
    let backend = "embedded (SQLite)";
    vec![
        Row {
            what: format!(
                "pod creates, {CONCURRENCY} clients, no audit policy: rate, CPU per create (medians of {ROUNDS})"
            ),
            backend,
            value: format!("{off_rate:.0}/s, {off_cpu:.3} ms"),
        },
        Row {
            what: format!(
                "pod creates, {CONCURRENCY} clients, Metadata for every request to a log file: rate, CPU per create (medians of {ROUNDS})"
            ),
            backend,
            value: format!(
                "{on_rate:.0}/s ({:+.1}%), {on_cpu:.3} ms ({:+.1}%); {:.0} bytes of log per create",
                (on_rate / off_rate - 1.0) * 100.0,
                (on_cpu / off_cpu - 1.0) * 100.0,
                log_bytes as f64 / n as f64
            ),
        },
    ]
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

#[tokio::main]
async fn main() {
    if std::env::var_os("BENCH_MEMORY").is_some() {
        report("Memory", &memory_bench().await);
        return;
    }
    if std::env::var_os("BENCH_AUDIT").is_some() {
        report("Audit", &audit_bench().await);
        return;
    }
    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap();
    let mut store_rows = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("state.db")).unwrap();
    store_rows.extend(store_bench("embedded (SQLite)", Arc::new(sqlite)).await);
    let etcd_store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .unwrap();
    store_rows.extend(store_bench("etcd 3.4", Arc::new(etcd_store)).await);
    let store_json = report("Store", &store_rows);

    let mut api_rows = Vec::new();
    let api_dir = tempfile::tempdir().unwrap();
    let embedded = Config {
        data_dir: api_dir.path().to_path_buf(),
        secure_port: 0,
        ..Config::default()
    };
    api_rows.extend(api_bench("embedded (SQLite)", embedded).await);
    let etcd2 = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap();
    let on_etcd = Config {
        data_dir: api_dir.path().join("etcd-mode"),
        secure_port: 0,
        etcd_servers: vec![format!("http://{}", etcd2.endpoint)],
        ..Config::default()
    };
    api_rows.extend(api_bench("etcd 3.4", on_etcd).await);
    let api_json = report("API server", &api_rows);

    let out = json!({ "store": store_json, "apiserver": api_json });
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-apiserver.json");
    let _ = std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap());
    println!("\nresults: {}", path.display());
}
