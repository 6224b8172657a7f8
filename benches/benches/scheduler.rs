//! Micro-benchmarks of the scheduler's hot path: one pod through Filter and Score over
//! 5,000 nodes, a snapshot update after one pod is assumed, and a queue push and pop.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use scheduler::cache::{Cache, Snapshot};
use scheduler::framework::CycleState;
use scheduler::framework::runtime::Diagnosis;
use scheduler::queue::SchedulingQueue;
use scheduler::testing::{make_node, make_pod};

const NODES: usize = 5000;

/// 5,000 nodes in three zones with 1,000 pods spread over them.
fn cache() -> Cache {
    let mut cache = Cache::new();
    for i in 0..NODES {
        let zone = format!("zone-{}", i % 3);
        cache.add_node(Arc::new(
            make_node(&format!("n{i}"))
                .label("topology.kubernetes.io/zone", &zone)
                .obj(),
        ));
    }
    for i in 0..1000 {
        let p = make_pod(&format!("init-{i}"))
            .uid(&format!("init-{i}"))
            .cpu("100m")
            .memory("500Mi")
            .node(&format!("n{}", i * 5));
        cache.add_pod(p.arc());
    }
    cache
}

fn filter_and_score(c: &mut Criterion) {
    let mut cache = cache();
    let mut snapshot = Snapshot::default();
    cache.update_snapshot(&mut snapshot);
    let pod = make_pod("p").cpu("100m").memory("500Mi").info();
    for threads in [1, 2] {
        let fw = scheduler::testing::default_framework(threads);
        c.bench_function(
            &format!("filter+score one pod over 5000 nodes ({threads} threads)"),
            |b| {
                b.iter(|| {
                    let mut state = CycleState::default();
                    let _ = fw.run_pre_filter(&mut state, &pod, &snapshot);
                    let mut d = Diagnosis::default();
                    let (feasible, _) = fw.find_feasible(&state, &pod, &snapshot, None, 0, &mut d);
                    fw.prioritize(&mut state, &pod, &snapshot, &feasible)
                        .unwrap()
                })
            },
        );
    }
    let spread = make_pod("s")
        .label("color", "blue")
        .spread(
            5,
            "topology.kubernetes.io/zone",
            "DoNotSchedule",
            &[("color", "blue")],
        )
        .info();
    let fw = scheduler::testing::default_framework(2);
    c.bench_function(
        "filter+score one topology-spread pod over 5000 nodes",
        |b| {
            b.iter(|| {
                let mut state = CycleState::default();
                let _ = fw.run_pre_filter(&mut state, &spread, &snapshot);
                let mut d = Diagnosis::default();
                let (feasible, _) = fw.find_feasible(&state, &spread, &snapshot, None, 0, &mut d);
                fw.prioritize(&mut state, &spread, &snapshot, &feasible)
                    .unwrap()
            })
        },
    );
}

fn snapshot_update(c: &mut Criterion) {
    let mut cache = cache();
    let mut snapshot = Snapshot::default();
    cache.update_snapshot(&mut snapshot);
    let mut i = 0u64;
    c.bench_function(
        "snapshot update after one pod is assumed (5000 nodes)",
        |b| {
            b.iter(|| {
                i += 1;
                let pod = make_pod("a")
                    .uid(&format!("a-{i}"))
                    .cpu("10m")
                    .node(&format!("n{}", i % NODES as u64))
                    .arc();
                cache.assume_pod(pod);
                cache.update_snapshot(&mut snapshot);
            })
        },
    );
}

fn queue(c: &mut Criterion) {
    let fw = scheduler::testing::default_framework(1);
    let profiles = [("default-scheduler".to_owned(), fw)].into_iter().collect();
    let q = SchedulingQueue::new(profiles, Duration::from_secs(1), Duration::from_secs(10));
    let pods: Vec<_> = (0..1000)
        .map(|i| {
            make_pod(&format!("q{i}"))
                .uid(&format!("q{i}"))
                .priority(i % 7)
                .arc()
        })
        .collect();
    let mut i = 0;
    c.bench_function("queue push + pop", |b| {
        b.iter(|| {
            q.add(pods[i % pods.len()].clone());
            let popped = q.pop().unwrap();
            q.done(&popped.pod.uid);
            i += 1;
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = filter_and_score, snapshot_update, queue
}
criterion_main!(benches);
