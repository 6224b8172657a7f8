//! The scheduler-perf harness works in every mode: SchedulingBasic at a tiny size
//! produces upstream's throughput metric, every measured pod bound.

use benches::scheduler_perf::workload::Workload;
use benches::scheduler_perf::{Mode, Store, report, run};

async fn check(mode: Mode) -> benches::scheduler_perf::Result {
    let w = Workload::load("SchedulingBasic").unwrap();
    // 5000 nodes, 1000 + 10000 pods scaled to 50 nodes, 10 + 100 pods.
    let config = scheduler::config::KubeSchedulerConfiguration::default_config();
    let r = run(&w, mode, 0.01, &config, None).await.unwrap();
    assert_eq!((r.nodes, r.measured_pods), (50, 100));
    assert!(!r.samples.is_empty(), "{r:?}");
    assert!(r.average > 0.0 && r.overall > 0.0, "{r:?}");
    assert!(r.perc50 <= r.perc99, "{r:?}");
    assert!(r.latency_p50_ms <= r.latency_p99_ms, "{r:?}");
    let table = report::markdown(std::slice::from_ref(&r));
    assert!(
        table.contains("| SchedulingBasic |") && table.contains("| 680 |"),
        "{table}"
    );
    let svg = report::svg(std::slice::from_ref(&r));
    for part in [
        "SchedulingBasic",
        "upstream floor",
        "pods/s",
        "<rect",
        "<polyline",
    ] {
        assert!(svg.contains(part), "{part} missing from {svg}");
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_basic_in_process() {
    check(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_basic_end_to_end() {
    let r = check(Mode::EndToEnd(Store::Sqlite)).await;
    assert!(r.server.is_none(), "{r:?}");
}

/// kube-apiserver and kube-scheduler as their binaries over TLS: the servers' work is read
/// from their /proc and /metrics, each measured pod a create and a binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_basic_as_processes() {
    let r = check(Mode::Processes(Store::Sqlite)).await;
    let load = r.server.as_ref().expect("the servers' load");
    assert_eq!(load.writes.get("POST pods"), Some(&100), "{load:?}");
    assert_eq!(load.writes.get("POST pods/binding"), Some(&100), "{load:?}");
    // Each pod is seen at least by the scheduler's informer and the harness's watch.
    assert!(load.watch_events_per_write >= 1.0, "{load:?}");
    assert!(load.apiserver_cpu_us_per_write > 0.0, "{load:?}");
    assert!(load.scheduler_cpu_ms_per_pod > 0.0, "{load:?}");
    let table = report::markdown(std::slice::from_ref(&r));
    assert!(table.contains("writes/s"), "{table}");
}

/// #22's guard: every workload that can be scheduled deterministically (one filter thread,
/// a fixed seed) places each pod on the node recorded in tests/fixtures/placements before
/// the scheduler was optimised. `TETSU_BLESS=1` rewrites the records (only for a change
/// that means to move pods, said in its commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placements_are_unchanged() {
    use benches::scheduler_perf::placements::{placements, unsupported};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/placements");
    let bless = std::env::var_os("TETSU_BLESS").is_some();
    let mut checked = 0;
    for w in Workload::all().unwrap() {
        if unsupported(&w).is_some() {
            continue;
        }
        let got = tokio::task::block_in_place(|| placements(&w, 0.1, 22)).unwrap();
        assert!(!got.is_empty(), "{}: no pod placed", w.name);
        let path = dir.join(format!("{}.txt", w.name));
        let text = got.join("\n") + "\n";
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (TETSU_BLESS=1 records it)", path.display()));
        let moved: Vec<(&str, &str)> = want
            .lines()
            .zip(text.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .collect();
        assert!(
            want == text,
            "{}: placements differ from the record ({} vs {} lines); first differences: {moved:?}",
            w.name,
            want.lines().count(),
            text.lines().count()
        );
        checked += 1;
    }
    assert!(bless || checked >= 8, "only {checked} workloads checked");
}
