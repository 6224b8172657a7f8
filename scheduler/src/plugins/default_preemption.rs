//! DefaultPreemption: when no node fits, find nodes where evicting lower-priority pods
//! would make room, choose victims on each (keep every pod that can stay: the most
//! important are reprieved first), and pick the node by upstream's rules: fewest PDB
//! violations, lowest highest-victim priority, lowest priority sum, fewest victims,
//! latest-started highest-priority victim.

use std::sync::Arc;

use serde::Deserialize;

use crate::cache::Snapshot;
use crate::framework::runtime::Diagnosis;
use crate::framework::{
    Code, CycleState, Framework, Handle, NodeInfo, Plugin, PodInfo, PostFilterPlugin,
    PostFilterResult, Status,
};

pub const NAME: &str = "DefaultPreemption";
const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct DefaultPreemption {
    min_candidate_nodes_percentage: usize,
    min_candidate_nodes_absolute: usize,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Args {
    min_candidate_nodes_percentage: Option<usize>,
    min_candidate_nodes_absolute: Option<usize>,
}

pub fn factory(
    args: Option<&serde_json::Value>,
    _: &Arc<Handle>,
) -> crate::Result<Arc<dyn Plugin>> {
    let args: Args = crate::framework::registry::decode_args(args, "DefaultPreemptionArgs")?;
    let pct = args.min_candidate_nodes_percentage.unwrap_or(10);
    if pct > 100 {
        crate::invalid!(
            "DefaultPreemptionArgs: minCandidateNodesPercentage: Invalid value: {pct}: not in valid range [0, 100]"
        );
    }
    Ok(Arc::new(DefaultPreemption {
        min_candidate_nodes_percentage: pct,
        min_candidate_nodes_absolute: args.min_candidate_nodes_absolute.unwrap_or(100),
    }))
}

/// A node where preemption would work, and what it costs.
struct Candidate {
    node: usize,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

fn start_time(p: &PodInfo) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    p.pod.status.as_ref().and_then(|s| s.start_time.as_ref())
}

/// Higher priority first, then the earlier started (upstream's MoreImportantPod).
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (start_time(a), start_time(b)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

impl DefaultPreemption {
    /// Victims on one node, or None if even evicting every lower-priority pod is not enough.
    fn select_victims(
        &self,
        fw: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Option<Candidate> {
        let mut state =
            state.clone_with(|v| fw.pre_filter_plugins().find_map(|p| p.clone_state(v)));
        // Pods already nominated here (by earlier preemptions) keep their room; they are
        // not on the node yet, so they can never be victims.
        let mut info = snapshot
            .with_nominated(node)
            .unwrap_or_else(|| node.clone());
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if potential.is_empty() {
            return None;
        }
        for v in &potential {
            info.remove_pod(&v.uid);
            for p in fw.pre_filter_plugins() {
                p.remove_pod(&mut state, pod, v, &info);
            }
        }
        if !fw.run_filter(&state, pod, &info).is_success() {
            return None;
        }
        potential.sort_by(|a, b| more_important(a, b));
        let (violating, non_violating) = split_by_pdb(potential, &snapshot.pdbs);
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        // Put back as many as still let the pod fit: first those whose eviction would
        // violate a PodDisruptionBudget, then the others, most important first.
        for (group, violates) in [(violating, true), (non_violating, false)] {
            for v in group {
                info.add_pod(v.clone());
                for p in fw.pre_filter_plugins() {
                    p.add_pod(&mut state, pod, &v, &info);
                }
                if !fw.run_filter(&state, pod, &info).is_success() {
                    info.remove_pod(&v.uid);
                    for p in fw.pre_filter_plugins() {
                        p.remove_pod(&mut state, pod, &v, &info);
                    }
                    pdb_violations += usize::from(violates);
                    victims.push(v);
                }
            }
        }
        Some(Candidate {
            node: 0,
            victims,
            pdb_violations,
        })
    }
}

/// Splits pods (most important first) into those whose eviction would exceed a matching
/// PodDisruptionBudget's allowed disruptions and those whose would not, as upstream's
/// filterPodsWithPDBViolation counts them.
fn split_by_pdb(
    pods: Vec<Arc<PodInfo>>,
    pdbs: &[crate::cache::Pdb],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i64> = pdbs
        .iter()
        .map(|p| i64::from(p.disruptions_allowed))
        .collect();
    let (mut violating, mut ok) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.namespace != pod.namespace
                    || pdb.selector.is_everything()
                    || !pdb.selector.matches_map(&pod.labels)
                    || pdb.disrupted_pods.contains(&pod.name)
                {
                    continue;
                }
                allowed[i] -= 1;
                violated |= allowed[i] < 0;
            }
        }
        if violated {
            violating.push(pod);
        } else {
            ok.push(pod);
        }
    }
    (violating, ok)
}

/// upstream's pickOneNodeForPreemption, each rule narrowing the candidates.
fn pick(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    fn keep_min<K: Ord>(c: &mut Vec<Candidate>, key: impl Fn(&Candidate) -> K) {
        if let Some(min) = c.iter().map(&key).min() {
            c.retain(|x| key(x) == min);
        }
    }
    keep_min(&mut candidates, |c| c.pdb_violations);
    keep_min(&mut candidates, |c| {
        c.victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN)
    });
    keep_min(&mut candidates, |c| {
        c.victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum::<i64>()
    });
    keep_min(&mut candidates, |c| c.victims.len());
    // The latest start among each node's highest-priority victims wins.
    keep_min(&mut candidates, |c| {
        let top = c.victims.iter().map(|v| v.priority).max();
        let earliest = c
            .victims
            .iter()
            .filter(|v| Some(v.priority) == top)
            .filter_map(|v| start_time(v).map(|t| t.0))
            .min();
        std::cmp::Reverse(earliest)
    });
    candidates.into_iter().next()
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        diagnosis: &Diagnosis,
        fw: &Framework,
    ) -> (Option<PostFilterResult>, Status) {
        let n = snapshot.nodes.len();
        if pod.spec().preemption_policy.as_deref() == Some("Never") {
            return (
                None,
                Status::unschedulable("not eligible due to preemptionPolicy=Never."),
            );
        }
        // Waiting for victims chosen earlier to go away.
        if let Some(nominated) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            && let Some(node) = snapshot.get(nominated)
            && node
                .pods
                .iter()
                .any(|p| p.is_terminating() && p.priority < pod.priority)
        {
            return (
                None,
                Status::unschedulable(
                    "not eligible due to a terminating pod on the nominated node.",
                ),
            );
        }
        let potential: Vec<usize> = diagnosis
            .node_to_status
            .iter()
            .filter(|(_, s)| s.code == Code::Unschedulable)
            .map(|(i, _)| *i)
            .collect();
        let unhelpful = n - potential.len();
        let mut candidates = Vec::new();
        let want = (n * self.min_candidate_nodes_percentage / 100)
            .max(self.min_candidate_nodes_absolute)
            .min(n);
        let offset = if potential.is_empty() {
            0
        } else {
            rand::random_range(0..potential.len())
        };
        for k in 0..potential.len() {
            if candidates.len() >= want {
                break;
            }
            let idx = potential[(offset + k) % potential.len()];
            if let Some(mut c) = self.select_victims(fw, state, pod, &snapshot.nodes[idx], snapshot)
            {
                c.node = idx;
                candidates.push(c);
            }
        }
        let found = candidates.len();
        let Some(best) = pick(candidates) else {
            let mut parts = Vec::new();
            if unhelpful > 0 {
                parts.push(format!("{unhelpful} {NOT_HELPFUL}"));
            }
            let no_victims = n - unhelpful - found;
            if no_victims > 0 {
                parts.push(format!("{no_victims} {NO_VICTIMS}"));
            }
            parts.sort();
            return (
                None,
                Status::unschedulable(format!(
                    "preemption: 0/{n} nodes are available: {}.",
                    parts.join(", ")
                )),
            );
        };
        (
            Some(PostFilterResult {
                nominated_node: snapshot.nodes[best.node].name.clone(),
                victims: best.victims,
            }),
            Status::success(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Snapshot;
    use crate::testing::{make_node, make_pod};

    fn preempt(pod: &PodInfo, nodes: Vec<NodeInfo>) -> (Option<PostFilterResult>, Status) {
        preempt_with(pod, nodes, Vec::new())
    }

    fn preempt_with(
        pod: &PodInfo,
        nodes: Vec<NodeInfo>,
        pdbs: Vec<crate::cache::Pdb>,
    ) -> (Option<PostFilterResult>, Status) {
        let fw = crate::testing::default_framework(1);
        let mut snapshot = Snapshot::from_nodes(nodes);
        snapshot.pdbs = pdbs;
        let mut state = CycleState::default();
        let (_, s) = fw.run_pre_filter(&mut state, pod, &snapshot);
        assert!(s.is_success(), "{s:?}");
        let mut diagnosis = Diagnosis::default();
        let (feasible, _) = fw.find_feasible(&state, pod, &snapshot, None, 0, &mut diagnosis);
        assert!(feasible.is_empty());
        fw.run_post_filter(&state, pod, &snapshot, &diagnosis)
    }

    fn names(r: &PostFilterResult) -> Vec<&str> {
        let mut v: Vec<&str> = r.victims.iter().map(|p| p.name.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        let nodes = vec![
            // Freeing 2 cpus on n1 needs both low pods (priority 10 and 20).
            make_node("n1").cpu("3").with_pods(vec![
                make_pod("a").cpu("1").priority(10).info(),
                make_pod("b").cpu("1").priority(20).info(),
                make_pod("keep").cpu("1").priority(100).info(),
            ]),
            // On n2 evicting one pod of priority 5 is enough.
            make_node("n2").cpu("3").with_pods(vec![
                make_pod("c").cpu("2").priority(5).info(),
                make_pod("d").cpu("1").priority(100).info(),
            ]),
        ];
        let pod = make_pod("p").cpu("2").priority(50).info();
        let (r, s) = preempt(&pod, nodes);
        assert!(s.is_success(), "{s:?}");
        let r = r.unwrap();
        assert_eq!(r.nominated_node, "n2");
        assert_eq!(names(&r), vec!["c"]);
    }

    #[test]
    fn prefers_nodes_where_no_budget_is_violated() {
        let nodes = vec![
            make_node("guarded").cpu("2").with_pods(vec![
                make_pod("db-0")
                    .cpu("2")
                    .priority(1)
                    .label("app", "db")
                    .info(),
            ]),
            make_node("free")
                .cpu("2")
                .with_pods(vec![make_pod("batch").cpu("2").priority(5).info()]),
        ];
        let pod = make_pod("p").cpu("2").priority(10).info();
        // Without a budget the lowest-priority victim wins.
        let (r, _) = preempt_with(&pod, nodes.clone(), Vec::new());
        assert_eq!(r.unwrap().nominated_node, "guarded");
        // A budget that allows no disruption of `app=db` moves preemption elsewhere.
        let pdb = crate::cache::Pdb {
            namespace: "default".into(),
            selector: common::selector::LabelSelector::parse("app=db").unwrap(),
            disruptions_allowed: 0,
            disrupted_pods: Vec::new(),
        };
        let (r, _) = preempt_with(&pod, nodes, vec![pdb]);
        let r = r.unwrap();
        assert_eq!(
            (r.nominated_node.as_str(), names(&r)),
            ("free", vec!["batch"])
        );
    }

    #[test]
    fn reprieves_pods_that_can_stay() {
        let nodes = vec![make_node("n1").cpu("4").with_pods(vec![
            make_pod("small").cpu("1").priority(1).info(),
            make_pod("big").cpu("3").priority(2).info(),
        ])];
        // Needs 3 cpus: evicting `big` (more important) alone would do, but reprieve
        // keeps the more important pod first, so `small` stays only if it fits with big.
        let pod = make_pod("p").cpu("3").priority(10).info();
        let (r, _) = preempt(&pod, nodes);
        assert_eq!(names(&r.unwrap()), vec!["big"]);
    }

    #[test]
    fn no_victims_among_higher_priority_pods() {
        let nodes = vec![
            make_node("n1")
                .cpu("1")
                .with_pods(vec![make_pod("a").cpu("1").priority(100).info()]),
            make_node("n2")
                .cpu("1")
                .taint("k", "v", "NoSchedule")
                .info(),
        ];
        let pod = make_pod("p").cpu("1").priority(50).info();
        let (r, s) = preempt(&pod, nodes);
        assert!(r.is_none());
        assert_eq!(
            s.message(),
            "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
        let never = {
            let mut p = make_pod("p").cpu("1").priority(50).obj();
            p.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
            PodInfo::new(Arc::new(p))
        };
        let (_, s) = preempt(
            &never,
            vec![
                make_node("n1")
                    .cpu("1")
                    .with_pods(vec![make_pod("a").cpu("1").info()]),
            ],
        );
        assert_eq!(s.message(), "not eligible due to preemptionPolicy=Never.");
    }
}
