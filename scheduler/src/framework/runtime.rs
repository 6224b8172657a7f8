//! The Framework: one profile's plugins per extension point and the code that runs them,
//! including the two parallel loops of a scheduling cycle (filter nodes until enough are
//! feasible; score the feasible ones).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rayon::prelude::*;

use super::{
    ClusterEvent, Code, CycleState, Handle, NodeInfo, Plugin, PodInfo, PostFilterResult,
    PreFilterResult, Registry, Status,
};
use crate::cache::Snapshot;
use crate::config::{Point, Profile};

/// Nodes below which every node is examined (upstream's minFeasibleNodesToFind).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (upstream's minFeasibleNodesPercentageToFind).
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How many feasible nodes a cycle looks for before it stops filtering: all of a small
/// cluster, otherwise `percentage` of the nodes (0: 50% less 1% per 125 nodes, at least
/// 5%), and never fewer than 100.
pub fn num_feasible_nodes_to_find(percentage: i32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut p = percentage.clamp(0, 100) as usize;
    if p == 0 {
        p = 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    }
    (num_all_nodes * p / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// A feasible node (its index in the snapshot) and its weighted total score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeScore {
    pub node: usize,
    pub score: i64,
}

/// Why nodes were rejected in one cycle: what the FailedScheduling message is built from
/// and which plugins' events may requeue the pod.
#[derive(Debug, Default)]
pub struct Diagnosis {
    /// Rejected nodes (index in the snapshot) and why.
    pub node_to_status: Vec<(usize, Status)>,
    pub unschedulable_plugins: HashSet<&'static str>,
    /// Set when PreFilter rejected the pod for every node.
    pub pre_filter_msg: String,
    pub post_filter_msg: String,
}

impl Diagnosis {
    /// upstream's FitError message: "0/5 nodes are available: 3 Insufficient cpu, 2
    /// node(s) had untolerated taint {a: b}. preemption: ...".
    pub fn message(&self, num_all_nodes: usize) -> String {
        let mut msg = format!("0/{num_all_nodes} nodes are available:");
        if !self.pre_filter_msg.is_empty() {
            msg.push(' ');
            msg.push_str(&self.pre_filter_msg);
            msg.push('.');
        } else {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, status) in &self.node_to_status {
                for r in &status.reasons {
                    *counts.entry(r.as_ref()).or_default() += 1;
                }
            }
            let mut reasons: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            reasons.sort();
            msg.push(' ');
            msg.push_str(&reasons.join(", "));
            msg.push('.');
        }
        if !self.post_filter_msg.is_empty() {
            msg.push(' ');
            msg.push_str(&self.post_filter_msg);
        }
        msg
    }
}

/// One profile, built: its plugins at each point, in order.
pub struct Framework {
    pub scheduler_name: String,
    pub percentage_of_nodes_to_score: i32,
    pub handle: Arc<Handle>,
    pool: Arc<rayon::ThreadPool>,
    plugins: Vec<Arc<dyn Plugin>>,
    pre_enqueue: Vec<Arc<dyn Plugin>>,
    queue_sort: Option<Arc<dyn Plugin>>,
    pre_filter: Vec<Arc<dyn Plugin>>,
    filter: Vec<Arc<dyn Plugin>>,
    post_filter: Vec<Arc<dyn Plugin>>,
    pre_score: Vec<Arc<dyn Plugin>>,
    score: Vec<(Arc<dyn Plugin>, i64)>,
    reserve: Vec<Arc<dyn Plugin>>,
    permit: Vec<Arc<dyn Plugin>>,
    pre_bind: Vec<Arc<dyn Plugin>>,
    bind: Vec<Arc<dyn Plugin>>,
    post_bind: Vec<Arc<dyn Plugin>>,
}

impl Framework {
    /// Builds a profile's plugins from the registry. `percentage` is the global
    /// percentageOfNodesToScore, which the profile's own overrides.
    pub fn new(
        profile: &Profile,
        registry: &Registry,
        handle: Arc<Handle>,
        percentage: i32,
        pool: Arc<rayon::ThreadPool>,
    ) -> crate::Result<Framework> {
        let mut built: Vec<Arc<dyn Plugin>> = Vec::new();
        let mut get = |name: &str| -> crate::Result<Arc<dyn Plugin>> {
            if let Some(p) = built.iter().find(|p| p.name() == name) {
                return Ok(p.clone());
            }
            let p = registry.build(name, profile.args(name), &handle)?;
            built.push(p.clone());
            Ok(p)
        };
        let mut at = |point: Point,
                      has: fn(&dyn Plugin) -> bool|
         -> crate::Result<Vec<(Arc<dyn Plugin>, i64)>> {
            let mut out = Vec::new();
            for e in profile.resolved(point) {
                let p = get(&e.name)?;
                if has(p.as_ref()) {
                    out.push((p, i64::from(e.weight)));
                } else if !crate::config::DEFAULT_PLUGINS
                    .iter()
                    .any(|(n, _)| *n == e.name)
                {
                    crate::invalid!("plugin {:?} does not extend {point:?}", e.name);
                }
            }
            Ok(out)
        };
        let plain = |v: Vec<(Arc<dyn Plugin>, i64)>| v.into_iter().map(|(p, _)| p).collect();
        let pre_enqueue = plain(at(Point::PreEnqueue, |p| p.as_pre_enqueue().is_some())?);
        let queue_sort: Vec<Arc<dyn Plugin>> =
            plain(at(Point::QueueSort, |p| p.as_queue_sort().is_some())?);
        let pre_filter = plain(at(Point::PreFilter, |p| p.as_pre_filter().is_some())?);
        let filter = plain(at(Point::Filter, |p| p.as_filter().is_some())?);
        let post_filter = plain(at(Point::PostFilter, |p| p.as_post_filter().is_some())?);
        let pre_score = plain(at(Point::PreScore, |p| p.as_pre_score().is_some())?);
        let score = at(Point::Score, |p| p.as_score().is_some())?;
        let reserve = plain(at(Point::Reserve, |p| p.as_reserve().is_some())?);
        let permit = plain(at(Point::Permit, |p| p.as_permit().is_some())?);
        let pre_bind = plain(at(Point::PreBind, |p| p.as_pre_bind().is_some())?);
        let bind: Vec<Arc<dyn Plugin>> = plain(at(Point::Bind, |p| p.as_bind().is_some())?);
        let post_bind = plain(at(Point::PostBind, |p| p.as_post_bind().is_some())?);
        if queue_sort.len() != 1 {
            crate::invalid!(
                "exactly one queueSort plugin must be enabled, found {}",
                queue_sort.len()
            );
        }
        if bind.is_empty() {
            crate::invalid!("at least one bind plugin is needed");
        }
        if let Some((p, w)) = score.iter().find(|(_, w)| *w <= 0 || *w > 100) {
            crate::invalid!(
                "score plugin {:?} has weight {w}: must be in 1..=100",
                p.name()
            );
        }
        Ok(Framework {
            scheduler_name: profile.scheduler_name().to_owned(),
            percentage_of_nodes_to_score: profile
                .percentage_of_nodes_to_score
                .unwrap_or(percentage),
            handle,
            pool,
            plugins: built,
            pre_enqueue,
            queue_sort: queue_sort.into_iter().next(),
            pre_filter,
            filter,
            post_filter,
            pre_score,
            score,
            reserve,
            permit,
            pre_bind,
            bind,
            post_bind,
        })
    }

    /// The cluster events each plugin registered, for the queue.
    pub fn events(&self) -> Vec<(&'static str, ClusterEvent)> {
        self.plugins
            .iter()
            .flat_map(|p| p.events_to_register().into_iter().map(|e| (p.name(), e)))
            .collect()
    }

    pub fn queue_sort(&self) -> &dyn super::QueueSortPlugin {
        self.queue_sort
            .as_ref()
            .and_then(|p| p.as_queue_sort())
            .expect("checked in new")
    }

    pub fn run_pre_enqueue(&self, pod: &PodInfo) -> Status {
        for p in &self.pre_enqueue {
            let s = p.as_pre_enqueue().expect("pre-enqueue").pre_enqueue(pod);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// PreFilter: fills the cycle state; narrows the nodes when plugins know the answer.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let mut result: PreFilterResult = None;
        let mut narrowed_by = Vec::new();
        for p in &self.pre_filter {
            let (r, s) = p
                .as_pre_filter()
                .expect("pre-filter")
                .pre_filter(state, pod, snapshot);
            if s.is_skip() {
                state.skip_filter.insert(p.name());
                continue;
            }
            if !s.is_success() {
                return (None, s.with_plugin(p.name()));
            }
            if let Some(nodes) = r {
                narrowed_by.push(p.name());
                result = Some(match result {
                    None => nodes,
                    Some(prev) => prev.intersection(&nodes).cloned().collect(),
                });
                if result.as_ref().is_some_and(HashSet::is_empty) {
                    let msg = format!(
                        "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                        narrowed_by.join(" ")
                    );
                    let msg = if narrowed_by.len() == 1 {
                        format!("node(s) didn't satisfy plugin {}", narrowed_by[0])
                    } else {
                        msg
                    };
                    return (None, Status::unresolvable(msg).with_plugin(p.name()));
                }
            }
        }
        (result, Status::success())
    }

    /// Every Filter plugin on one node; the first rejection wins.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for p in &self.filter {
            if !state.skip_filter.is_empty() && state.skip_filter.contains(p.name()) {
                continue;
            }
            let s = p.as_filter().expect("filter").filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Filters nodes from `start` round the snapshot until enough are feasible. Returns
    /// the feasible nodes (snapshot indexes, in scan order) and how many nodes were looked
    /// at, so the next cycle starts after them.
    pub fn find_feasible(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        candidates: Option<&[usize]>,
        start: usize,
        diagnosis: &mut Diagnosis,
    ) -> (Vec<usize>, usize) {
        let n = candidates.map_or(snapshot.nodes.len(), <[usize]>::len);
        if n == 0 {
            return (Vec::new(), 0);
        }
        let want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, n);
        let node_at = |i: usize| {
            let pos = (start + i) % n;
            candidates.map_or(pos, |c| c[pos])
        };
        // The plugins that did not Skip, resolved once rather than per node.
        let filters: Vec<(&'static str, &dyn super::FilterPlugin)> = self
            .filter
            .iter()
            .filter(|p| !state.skip_filter.contains(p.name()))
            .map(|p| (p.name(), p.as_filter().expect("filter")))
            .collect();
        let run_on = |node: &NodeInfo| {
            for (name, f) in &filters {
                let s = f.filter(state, pod, node);
                if !s.is_success() {
                    return s.with_plugin(name);
                }
            }
            Status::success()
        };
        let run = |node: &NodeInfo| match snapshot.with_nominated(node) {
            None => run_on(node),
            Some(with) => run_on(&with),
        };
        let found = AtomicUsize::new(0);
        let threads = self.pool.current_num_threads().max(1);
        let chunk = (n / (threads * 4)).clamp(64, 512);
        let chunks = n.div_ceil(chunk);
        type Chunk = (Vec<(usize, usize)>, Vec<(usize, usize, Status)>);
        let scan = |c: usize| -> Chunk {
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for i in c * chunk..((c + 1) * chunk).min(n) {
                if found.load(Ordering::Relaxed) >= want {
                    break;
                }
                let idx = node_at(i);
                let status = run(&snapshot.nodes[idx]);
                if status.is_success() {
                    found.fetch_add(1, Ordering::Relaxed);
                    ok.push((i, idx));
                } else {
                    failed.push((i, idx, status));
                }
            }
            (ok, failed)
        };
        // The first chunk runs on this thread: when most nodes fit, it finds enough on
        // its own and waking the pool would cost more than it saves.
        let mut parts: Vec<Chunk> = vec![scan(0)];
        if chunks > 1 && found.load(Ordering::Relaxed) < want {
            if threads == 1 {
                parts.extend((1..chunks).map(scan));
            } else {
                parts.extend(
                    self.pool
                        .install(|| (1..chunks).into_par_iter().map(scan).collect::<Vec<_>>()),
                );
            }
        }
        let mut feasible: Vec<(usize, usize)> = Vec::new();
        let mut failed = Vec::new();
        for (ok, bad) in parts {
            feasible.extend(ok);
            failed.extend(bad);
        }
        feasible.sort_unstable_by_key(|(i, _)| *i);
        let processed = if feasible.len() >= want {
            feasible.truncate(want);
            feasible.last().map_or(n, |(i, _)| i + 1)
        } else {
            n
        };
        for (i, idx, status) in failed {
            if i < processed {
                if status.is_rejected() || status.code == Code::Error {
                    diagnosis.unschedulable_plugins.insert(status.plugin);
                }
                diagnosis.node_to_status.push((idx, status));
            }
        }
        (
            feasible.into_iter().map(|(_, idx)| idx).collect(),
            processed,
        )
    }

    /// PreScore, then Score and NormalizeScore of every plugin, weighted and summed.
    pub fn prioritize(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        feasible: &[usize],
    ) -> Result<Vec<NodeScore>, Status> {
        let nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| &*snapshot.nodes[i]).collect();
        for p in &self.pre_score {
            let s = p
                .as_pre_score()
                .expect("pre-score")
                .pre_score(state, pod, &nodes, snapshot);
            if s.is_skip() {
                state.skip_score.insert(p.name());
            } else if !s.is_success() {
                return Err(s.with_plugin(p.name()));
            }
        }
        let active: Vec<(&dyn super::ScorePlugin, i64)> = self
            .score
            .iter()
            .filter(|(p, _)| !state.skip_score.contains(p.name()))
            .map(|(p, w)| (p.as_score().expect("score"), *w))
            .collect();
        let k = active.len();
        let mut totals: Vec<NodeScore> = feasible
            .iter()
            .map(|&node| NodeScore { node, score: 0 })
            .collect();
        if k == 0 {
            return Ok(totals);
        }
        // Raw scores, node-major: raw[node * k + plugin].
        let state_ref: &CycleState = state;
        let score_chunk = |chunk: &[&NodeInfo]| -> Vec<i64> {
            let mut out = Vec::with_capacity(chunk.len() * k);
            for node in chunk {
                for (p, _) in &active {
                    out.push(p.score(state_ref, pod, node));
                }
            }
            out
        };
        // Scoring a node is cheap: split the work only when there is plenty of it.
        let threads = self.pool.current_num_threads().max(1);
        let chunk = (nodes.len() / (threads * 2)).max(1024);
        let raw: Vec<i64> = if nodes.len() <= chunk || threads == 1 {
            score_chunk(&nodes)
        } else {
            self.pool.install(|| {
                nodes
                    .par_chunks(chunk)
                    .map(score_chunk)
                    .collect::<Vec<_>>()
                    .concat()
            })
        };
        let mut column = vec![0i64; nodes.len()];
        for (j, (p, weight)) in active.iter().enumerate() {
            for (i, c) in column.iter_mut().enumerate() {
                *c = raw[i * k + j];
            }
            p.normalize(state, pod, &mut column);
            for (t, c) in totals.iter_mut().zip(&column) {
                t.score += c * weight;
            }
        }
        Ok(totals)
    }

    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        diagnosis: &Diagnosis,
    ) -> (Option<PostFilterResult>, Status) {
        let mut last = Status::unschedulable("no PostFilter plugin");
        for p in &self.post_filter {
            let (r, s) = p
                .as_post_filter()
                .expect("post-filter")
                .post_filter(state, pod, snapshot, diagnosis, self);
            if s.is_success() {
                return (r, s);
            }
            last = s.with_plugin(p.name());
        }
        (None, last)
    }

    pub fn has_post_filter(&self) -> bool {
        !self.post_filter.is_empty()
    }

    /// PreFilter plugins, for preemption's what-if filtering.
    pub fn pre_filter_plugins(&self) -> impl Iterator<Item = &dyn super::PreFilterPlugin> {
        self.pre_filter.iter().filter_map(|p| p.as_pre_filter())
    }

    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for (i, p) in self.reserve.iter().enumerate() {
            let s = p.as_reserve().expect("reserve").reserve(state, pod, node);
            if !s.is_success() {
                for q in self.reserve[..i].iter().rev() {
                    q.as_reserve().expect("reserve").unreserve(state, pod, node);
                }
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn run_unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for p in self.reserve.iter().rev() {
            p.as_reserve().expect("reserve").unreserve(state, pod, node);
        }
    }

    /// Permit: Success, a rejection, or Wait with the longest timeout asked for.
    pub fn run_permit(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> (Status, Duration) {
        let mut wait = Duration::ZERO;
        let mut waiting = false;
        for p in &self.permit {
            let (s, timeout) = p.as_permit().expect("permit").permit(state, pod, node);
            match s.code {
                Code::Success | Code::Skip => {}
                Code::Wait => {
                    waiting = true;
                    wait = wait.max(timeout);
                }
                _ => return (s.with_plugin(p.name()), Duration::ZERO),
            }
        }
        if waiting {
            (Status::new(Code::Wait, "waiting"), wait)
        } else {
            (Status::success(), Duration::ZERO)
        }
    }

    pub async fn run_pre_bind(&self, pod: &PodInfo, node: &str) -> Status {
        for p in &self.pre_bind {
            let s = p.as_pre_bind().expect("pre-bind").pre_bind(pod, node).await;
            if !s.is_success() && !s.is_skip() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    pub async fn run_bind(&self, pod: &PodInfo, node: &str) -> Status {
        for p in &self.bind {
            let s = p.as_bind().expect("bind").bind(pod, node).await;
            if s.is_skip() {
                continue;
            }
            return s.with_plugin(p.name());
        }
        Status::error("no bind plugin bound the pod")
    }

    pub fn run_post_bind(&self, pod: &PodInfo, node: &str) {
        for p in &self.post_bind {
            p.as_post_bind().expect("post-bind").post_bind(pod, node);
        }
    }
}

/// Picks the highest score; ties are broken uniformly at random (reservoir sampling), as
/// upstream does so that equal nodes share the load.
pub fn select_host(scores: &[NodeScore], rng: &mut impl rand::Rng) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut best_score = i64::MIN;
    let mut ties = 0u32;
    for s in scores {
        if s.score > best_score {
            best_score = s.score;
            best = Some(s.node);
            ties = 1;
        } else if s.score == best_score {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = Some(s.node);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_follows_upstream() {
        for (pct, n, want) in [
            (0, 50, 50),
            (0, 99, 99),
            (0, 100, 100),
            (0, 1000, 420),
            (0, 5000, 500),
            (0, 6000, 300),
            (0, 100_000, 5000),
            (100, 5000, 5000),
            (10, 500, 100),
            (40, 1000, 400),
        ] {
            assert_eq!(num_feasible_nodes_to_find(pct, n), want, "{pct}% of {n}");
        }
    }

    #[test]
    fn fit_error_message_counts_reasons() {
        let mut d = Diagnosis::default();
        for (i, r) in [
            "Insufficient cpu",
            "Insufficient cpu",
            "node(s) were unschedulable",
        ]
        .iter()
        .enumerate()
        {
            d.node_to_status.push((i, Status::unschedulable(*r)));
        }
        assert_eq!(
            d.message(5),
            "0/5 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
        );
        d.post_filter_msg =
            "preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
                .into();
        assert!(d.message(5).ends_with(
            "cpu. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
        ));
    }

    #[test]
    fn ties_are_shared() {
        let scores = [
            NodeScore { node: 0, score: 5 },
            NodeScore { node: 1, score: 9 },
            NodeScore { node: 2, score: 9 },
        ];
        let mut rng = rand::rng();
        let mut seen = [0; 3];
        for _ in 0..200 {
            seen[select_host(&scores, &mut rng).unwrap()] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 50 && seen[2] > 50, "{seen:?}");
    }
}
