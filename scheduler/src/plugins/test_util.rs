//! Runs one plugin's points the way the framework does, for table-driven tests.

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Status};

/// PreFilter then Filter on every node: one Status per node (PreFilter's on every node
/// when it rejects, Success for nodes a Skip left unfiltered).
pub fn filter(plugin: &dyn Plugin, pod: &PodInfo, nodes: Vec<NodeInfo>) -> Vec<Status> {
    let snapshot = Snapshot::from_nodes(nodes);
    let mut state = CycleState::default();
    if let Some(pf) = plugin.as_pre_filter() {
        let (result, s) = pf.pre_filter(&mut state, pod, &snapshot);
        if s.is_skip() {
            return vec![Status::success(); snapshot.nodes.len()];
        }
        if !s.is_success() {
            return vec![s; snapshot.nodes.len()];
        }
        if let Some(names) = result {
            return snapshot
                .nodes
                .iter()
                .map(|n| {
                    if names.contains(&n.name) {
                        plugin.as_filter().unwrap().filter(&state, pod, n)
                    } else {
                        Status::unresolvable("not in PreFilter result")
                    }
                })
                .collect();
        }
    }
    snapshot
        .nodes
        .iter()
        .map(|n| plugin.as_filter().unwrap().filter(&state, pod, n))
        .collect()
}

/// The codes and first reasons of `filter`, for compact expectations.
pub fn filter_reasons(plugin: &dyn Plugin, pod: &PodInfo, nodes: Vec<NodeInfo>) -> Vec<String> {
    filter(plugin, pod, nodes)
        .into_iter()
        .map(|s| {
            if s.is_success() {
                String::new()
            } else {
                s.message()
            }
        })
        .collect()
}

/// PreScore, Score and NormalizeScore on every node (None if PreScore skipped).
pub fn score(plugin: &dyn Plugin, pod: &PodInfo, nodes: Vec<NodeInfo>) -> Option<Vec<i64>> {
    let snapshot = Snapshot::from_nodes(nodes);
    let mut state = CycleState::default();
    if let Some(pf) = plugin.as_pre_filter() {
        let _ = pf.pre_filter(&mut state, pod, &snapshot);
    }
    let refs: Vec<&NodeInfo> = snapshot.nodes.iter().map(|n| &**n).collect();
    if let Some(ps) = plugin.as_pre_score() {
        let s = ps.pre_score(&mut state, pod, &refs, &snapshot);
        if s.is_skip() {
            return None;
        }
        assert!(s.is_success(), "{s:?}");
    }
    let sp = plugin.as_score().unwrap();
    let mut scores: Vec<i64> = refs.iter().map(|n| sp.score(&state, pod, n)).collect();
    sp.normalize(&state, pod, &mut scores);
    Some(scores)
}

/// Builds a plugin with default args.
pub fn build(factory: crate::framework::registry::Factory) -> Arc<dyn Plugin> {
    build_with(factory, None)
}

pub fn build_with(
    factory: crate::framework::registry::Factory,
    args: Option<serde_json::Value>,
) -> Arc<dyn Plugin> {
    let handle = Arc::new(crate::framework::Handle {
        client: Arc::new(crate::client::NoopClient),
    });
    factory(args.as_ref(), &handle).unwrap()
}
