//! CI's performance guard: work counted, not timed. A counting allocator tallies the heap
//! allocations of this process (a test binary of its own, one test, so nothing else runs in
//! it), so the numbers are the same in a debug build and on a loaded machine; each write to the apiserver and each scheduled
//! pod has a budget of allocations (the count measured when the budget was set, plus
//! headroom for the small variation of hash orders and buffer growth). Allocation counts
//! follow the CPU the profiles show (building serde_json Values and malloc dominate the
//! write path), so a change that brings back a copy or a second round trip per write, or a
//! per-node rescan per cycle, breaks a budget here instead of going unseen.
//!
//! A budget that breaks for a good reason (a feature that must allocate) is raised in the
//! same change, with the new measured count in the commit message.

use std::alloc::System;

use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static COUNTING: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap allocations (new blocks and reallocations) by every thread of this process so far.
fn allocations() -> u64 {
    let stats = COUNTING.stats();
    (stats.allocations + stats.reallocations) as u64
}

/// Allocations per call of `op` over `n` calls (by the whole process).
async fn per_op<F: std::future::Future<Output = ()>>(n: u64, mut op: impl FnMut(u64) -> F) -> u64 {
    let before = allocations();
    for i in 0..n {
        op(i).await;
    }
    (allocations() - before) / n
}

/// What one measurement may reach: the count when the budget was set (2026-12-07), plus a
/// tenth (the counts repeat exactly run to run; the tenth is for hash orders and buffer
/// growth that vary with names and sizes). Returns the complaint when over it.
fn within(what: &str, measured: u64, budget_base: u64) -> Option<String> {
    let budget = budget_base + budget_base / 10;
    println!("{what}: {measured} allocations (budget {budget}, set at {budget_base})");
    (measured > budget).then(|| {
        format!(
            "{what}: {measured} allocations, over its budget of {budget} (set at {budget_base})"
        )
    })
}

/// One test, so the two measurements never overlap.
#[tokio::test(flavor = "current_thread")]
async fn writes_and_scheduling_stay_within_their_allocation_budgets() {
    let mut over = apiserver_writes().await;
    over.extend(scheduling());
    assert!(over.is_empty(), "see counted_work.rs:\n{}", over.join("\n"));
}

/// The apiserver's writes, each through the whole router (authentication, admission,
/// validation, field ownership, the store and the watch cache) from an HTTP client in this
/// process, one at a time: the client's allocations are counted with the server's (SQLite
/// allocates through its own malloc, not counted).
async fn apiserver_writes() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let server = apiserver::server::spawn_in_process(apiserver::server::Config {
        data_dir: dir.path().to_owned(),
        secure_port: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = apiserver::testing::http::HttpClient::new(&server.url());
    let configmaps = || "/api/v1/namespaces/default/configmaps".to_owned();
    let pods = || "/api/v1/namespaces/default/pods".to_owned();
    let bind = |i: u64| format!("/api/v1/namespaces/default/pods/pod-{i}/binding");
    let events = || "/api/v1/namespaces/default/events".to_owned();
    let create = |path: String, body: serde_json::Value| {
        let client = &client;
        async move {
            let (code, answer) = client.post(&path, &body).await.unwrap();
            assert_eq!(code, 201, "{answer}");
        }
    };
    let configmap = |i: u64| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")},
            "data": {"key": "value"}})
    };
    // A pod as scheduler_perf's template has it, and the event the scheduler writes for it.
    let pod = |i: u64| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i}"), "labels": {"app": "perf"}},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}})
    };
    let binding = |i: u64| {
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": format!("pod-{i}")},
            "target": {"kind": "Node", "name": "node-1"}})
    };
    let event = |i: u64| {
        json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("pod-{i}.scheduled")},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": format!("pod-{i}"),
                "apiVersion": "v1"},
            "reason": "Scheduled", "type": "Normal", "source": {"component": "default-scheduler"},
            "message": format!("Successfully assigned default/pod-{i} to node-1"),
            "firstTimestamp": "2026-12-07T00:00:00Z", "lastTimestamp": "2026-12-07T00:00:00Z",
            "count": 1})
    };
    // Warm up: the first writes fill caches (discovery, RBAC, admission, the statement
    // cache) that later writes reuse.
    const WARM: u64 = 20;
    const N: u64 = 100;
    for i in 0..WARM {
        create(configmaps(), configmap(i)).await;
        create(pods(), pod(i)).await;
        create(bind(i), binding(i)).await;
    }
    let configmap_creates = per_op(N, |i| create(configmaps(), configmap(WARM + i))).await;
    let pod_creates = per_op(N, |i| create(pods(), pod(WARM + i))).await;
    let bindings = per_op(N, |i| create(bind(WARM + i), binding(WARM + i))).await;
    let event_creates = per_op(N, |i| create(events(), event(i))).await;
    // The ratio to a ConfigMap says how much a pod costs beyond the generic path.
    println!(
        "pod create / ConfigMap create: {:.2}",
        pod_creates as f64 / configmap_creates as f64
    );
    server.stop();
    [
        within("ConfigMap create", configmap_creates, 519),
        within("pod create", pod_creates, 1588),
        within("pods/binding", bindings, 845),
        within("Event create", event_creates, 775),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The scheduler's cycle, as the placements guard runs it (one filter thread, a fixed seed):
/// allocations per placed pod, node and pod setup included, at scale 0.1 (500 nodes).
fn scheduling() -> Vec<String> {
    use benches::scheduler_perf::placements::placements;
    use benches::scheduler_perf::workload::Workload;
    let mut over = Vec::new();
    for (name, budget_base) in [
        ("SchedulingBasic", 98),
        ("TopologySpreading", 135),
        ("SchedulingPodAffinity", 173),
        ("SchedulingPodAntiAffinity", 342),
    ] {
        let workload = Workload::load(name).unwrap();
        let before = allocations();
        let placed = placements(&workload, 0.1, 22).unwrap();
        let per_pod = (allocations() - before) / placed.len() as u64;
        over.extend(within(
            &format!("{name}, per placed pod"),
            per_pod,
            budget_base,
        ));
    }
    over
}
