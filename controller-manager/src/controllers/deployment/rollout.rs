//! How a Deployment moves its ReplicaSets, as pure functions over in-memory copies:
//! a rolling update step (scale the new ReplicaSet up within maxSurge, the old ones down
//! within maxUnavailable), Recreate's steps, and proportional scaling when the Deployment is
//! resized mid-rollout. Each function changes `spec.replicas` on the copies and answers
//! which ones changed; the controller writes those.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util::{
    self, DESIRED_REPLICAS, MAX_REPLICAS, annotation_i32, max_surge, max_unavailable, replicas,
    rs_available, rs_replicas, set_rs_replicas,
};

/// The ReplicaSets of one Deployment: `new` indexes the one whose template is current.
#[derive(Clone, Debug, Default)]
pub struct ReplicaSets {
    pub all: Vec<ReplicaSet>,
    pub new: Option<usize>,
}

impl ReplicaSets {
    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.all[i])
    }

    /// Indices of the old ReplicaSets, oldest first.
    pub fn old(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.all.len())
            .filter(|&i| Some(i) != self.new)
            .collect();
        idx.sort_by(|&a, &b| {
            created(&self.all[a])
                .cmp(&created(&self.all[b]))
                .then_with(|| self.all[a].metadata.name.cmp(&self.all[b].metadata.name))
        });
        idx
    }

    pub fn refs(&self) -> Vec<&ReplicaSet> {
        self.all.iter().collect()
    }

    fn total(&self, idx: &[usize]) -> i32 {
        idx.iter().map(|&i| rs_replicas(&self.all[i])).sum()
    }
}

fn created(rs: &ReplicaSet) -> Option<k8s_openapi::jiff::Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The size the new ReplicaSet may have now: all of spec.replicas for Recreate; for a
/// rolling update as much as maxSurge leaves room for (upstream's NewRSNewReplicas).
pub fn new_rs_target(d: &Deployment, rss: &ReplicaSets, new: &ReplicaSet) -> i32 {
    if util::is_recreate(d) {
        return replicas(d);
    }
    let current: i32 = rss.all.iter().map(rs_replicas).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new));
    rs_replicas(new) + up
}

/// Rolling update, first half: grow (or shrink) the new ReplicaSet toward spec.replicas
/// within maxSurge. True if it changed.
pub fn reconcile_new(d: &Deployment, rss: &mut ReplicaSets) -> bool {
    let Some(i) = rss.new else { return false };
    let cur = rs_replicas(&rss.all[i]);
    let want = replicas(d);
    let target = if cur > want {
        want
    } else {
        new_rs_target(d, rss, &rss.all[i])
    };
    if target == cur {
        return false;
    }
    set_rs_replicas(&mut rss.all[i], target);
    true
}

/// Rolling update, second half: shrink old ReplicaSets, unhealthy replicas first, never
/// below spec.replicas - maxUnavailable available pods. Answers the changed indices.
pub fn reconcile_old(d: &Deployment, rss: &mut ReplicaSets) -> Vec<usize> {
    let old = rss.old();
    let old_pods = rss.total(&old);
    if old_pods == 0 {
        return Vec::new();
    }
    let new = rss.new_rs();
    let all_pods = old_pods + new.map_or(0, rs_replicas);
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = new.map_or(0, |n| rs_replicas(n) - rs_available(n));
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut changed = Vec::new();
    // Unhealthy replicas of old ReplicaSets go first: removing them costs no availability.
    let mut cleaned = 0;
    for &i in &old {
        if cleaned >= max_scaled_down {
            break;
        }
        let (spec, avail) = (rs_replicas(&rss.all[i]), rs_available(&rss.all[i]));
        if spec == 0 || spec == avail {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(spec - avail);
        set_rs_replicas(&mut rss.all[i], spec - n);
        cleaned += n;
        changed.push(i);
    }
    // Then available ones, as far as availability allows.
    let available: i32 = rss.all.iter().map(rs_available).sum();
    if available > min_available {
        let budget = available - min_available;
        let mut scaled = 0;
        for &i in &old {
            if scaled >= budget {
                break;
            }
            let spec = rs_replicas(&rss.all[i]);
            if spec == 0 {
                continue;
            }
            let n = spec.min(budget - scaled);
            set_rs_replicas(&mut rss.all[i], spec - n);
            scaled += n;
            if !changed.contains(&i) {
                changed.push(i);
            }
        }
    }
    changed
}

/// Recreate, first step: every old ReplicaSet to zero. Answers the changed indices.
pub fn scale_down_old_for_recreate(rss: &mut ReplicaSets) -> Vec<usize> {
    let mut changed = Vec::new();
    for i in rss.old() {
        if rs_replicas(&rss.all[i]) != 0 {
            set_rs_replicas(&mut rss.all[i], 0);
            changed.push(i);
        }
    }
    changed
}

/// The one active ReplicaSet (or, with none active, the new one or else the newest old
/// one); `None` when several are active (upstream's FindActiveOrLatest).
fn active_or_latest(rss: &ReplicaSets) -> Option<usize> {
    let active: Vec<usize> = (0..rss.all.len())
        .filter(|&i| rs_replicas(&rss.all[i]) > 0)
        .collect();
    match active.len() {
        0 => rss.new.or_else(|| rss.old().last().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// The new ReplicaSet holds every replica, all available, for the current size.
fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    rs_replicas(rs) == replicas(d)
        && annotation_i32(rs, DESIRED_REPLICAS) == Some(replicas(d))
        && rs_available(rs) == replicas(d)
}

/// How many replicas a ReplicaSet gains (or loses) when the Deployment's size changes, in
/// proportion to its share of the size recorded in its max-replicas annotation.
fn fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = replicas(d) + max_surge(d);
    let annotated = annotation_i32(rs, MAX_REPLICAS)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// Resizes the ReplicaSets after spec.replicas changed (or while paused): the single active
/// one takes the new size; mid-rollout, the change is spread over the active ReplicaSets
/// in proportion to their sizes, the remainder going to the largest. Answers the indices
/// of every ReplicaSet whose size or replica annotations must be written.
pub fn scale(d: &Deployment, rss: &mut ReplicaSets) -> Vec<usize> {
    if let Some(i) = active_or_latest(rss) {
        if rs_replicas(&rss.all[i]) == replicas(d) {
            return Vec::new();
        }
        set_rs_replicas(&mut rss.all[i], replicas(d));
        return vec![i];
    }
    if let Some(n) = rss.new
        && is_saturated(d, &rss.all[n])
    {
        return scale_down_old_for_recreate(rss);
    }
    if util::is_recreate(d) {
        return Vec::new();
    }
    let mut active: Vec<usize> = (0..rss.all.len())
        .filter(|&i| rs_replicas(&rss.all[i]) > 0)
        .collect();
    let total = rss.total(&active);
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total;
    // Largest first; on ties newer first when growing, older first when shrinking.
    active.sort_by(|&a, &b| {
        let (ra, rb) = (&rss.all[a], &rss.all[b]);
        rs_replicas(rb).cmp(&rs_replicas(ra)).then_with(|| {
            if to_add > 0 {
                created(rb).cmp(&created(ra))
            } else {
                created(ra).cmp(&created(rb))
            }
        })
    });
    let mut added = 0;
    let mut sizes = Vec::with_capacity(active.len());
    for &i in &active {
        let rs = &rss.all[i];
        let proportion = if to_add == 0 || to_add == added {
            0
        } else {
            let allowed = to_add - added;
            let f = fraction(d, rs);
            if to_add > 0 {
                f.min(allowed)
            } else {
                f.max(allowed)
            }
        };
        sizes.push(rs_replicas(rs) + proportion);
        added += proportion;
    }
    if let Some(first) = sizes.first_mut() {
        *first = (*first + to_add - added).max(0);
    }
    for (&i, size) in active.iter().zip(sizes) {
        set_rs_replicas(&mut rss.all[i], size);
    }
    active
}

/// Whether spec.replicas changed since the active ReplicaSets were last sized (their
/// desired-replicas annotation says otherwise).
pub fn is_scaling_event(d: &Deployment, rss: &ReplicaSets) -> bool {
    rss.all.iter().filter(|rs| rs_replicas(rs) > 0).any(|rs| {
        annotation_i32(rs, DESIRED_REPLICAS).is_some_and(|desired| desired != replicas(d))
    })
}

/// Old ReplicaSets beyond revisionHistoryLimit that may be deleted (empty and settled),
/// lowest revision first.
pub fn history_to_delete(d: &Deployment, rss: &ReplicaSets) -> Vec<usize> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
        return Vec::new();
    };
    let mut old: Vec<usize> = rss
        .old()
        .into_iter()
        .filter(|&i| rss.all[i].metadata.deletion_timestamp.is_none())
        .collect();
    let excess = old.len() as i64 - i64::from(limit);
    if excess <= 0 {
        return Vec::new();
    }
    old.sort_by(|&a, &b| {
        util::revision(&rss.all[a])
            .cmp(&util::revision(&rss.all[b]))
            .then_with(|| created(&rss.all[a]).cmp(&created(&rss.all[b])))
    });
    old.into_iter()
        .take(excess as usize)
        .filter(|&i| {
            let rs = &rss.all[i];
            let status = rs.status.clone().unwrap_or_default();
            status.replicas == 0
                && rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, surge: i32, unavailable: i32) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {
            "replicas": replicas, "selector": {}, "template": {},
            "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        .unwrap()
    }

    fn rs(name: &str, created: &str, spec: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"replicas": spec, "selector": {}},
            "status": {"replicas": spec, "availableReplicas": available}}))
        .unwrap()
    }

    fn sizes(rss: &ReplicaSets) -> Vec<i32> {
        rss.all.iter().map(rs_replicas).collect()
    }

    /// Steps a rollout the way the cluster would (every pod becomes available at once) and
    /// checks availability never drops below spec.replicas - maxUnavailable.
    #[test]
    fn rolling_update_with_surge_one_never_drops_below_desired() {
        let d = deployment(3, 1, 0);
        let mut rss = ReplicaSets {
            all: vec![
                rs("old", "2026-01-01T00:00:00Z", 3, 3),
                rs("new", "2026-01-02T00:00:00Z", 0, 0),
            ],
            new: Some(1),
        };
        for step in 0..20 {
            let up = reconcile_new(&d, &mut rss);
            let down = reconcile_old(&d, &mut rss);
            let total: i32 = sizes(&rss).iter().sum();
            assert!(total <= 4, "step {step}: surge exceeded: {:?}", sizes(&rss));
            // Scaled-down pods are gone at once; new ones are not available yet.
            let available_now: i32 = rss
                .all
                .iter()
                .map(|r| rs_replicas(r).min(rs_available(r)))
                .sum();
            assert!(
                available_now >= 3,
                "step {step}: availability dropped: {:?}",
                sizes(&rss)
            );
            // Then the "kubelet" makes every pod available.
            for r in &mut rss.all {
                let n = rs_replicas(r);
                let s = r.status.get_or_insert_with(Default::default);
                s.replicas = n;
                s.available_replicas = Some(n);
            }
            if !up && down.is_empty() {
                break;
            }
        }
        assert_eq!(sizes(&rss), vec![0, 3]);
    }

    #[test]
    fn unhealthy_old_replicas_are_removed_first() {
        let d = deployment(4, 0, 1);
        let mut rss = ReplicaSets {
            all: vec![
                rs("oldest", "2026-01-01T00:00:00Z", 2, 0),
                rs("older", "2026-01-02T00:00:00Z", 2, 2),
                rs("new", "2026-01-03T00:00:00Z", 1, 1),
            ],
            new: Some(2),
        };
        let changed = reconcile_old(&d, &mut rss);
        // 5 pods, min available 3, new unavailable 0: 2 may go; the unready ones first.
        assert_eq!(changed, vec![0]);
        assert_eq!(sizes(&rss), vec![0, 2, 1]);
    }

    #[test]
    fn resizing_mid_rollout_is_proportional() {
        // 10 replicas, surge 3: old 8 + new 5 = 13 = max; now scale to 20 (max 23).
        let mut d = deployment(20, 3, 2);
        d.status = Some(Default::default());
        let mut old = rs("old", "2026-01-01T00:00:00Z", 8, 8);
        let mut new = rs("new", "2026-01-02T00:00:00Z", 5, 0);
        util::set_replicas_annotations(&mut old, 10, 13);
        util::set_replicas_annotations(&mut new, 10, 13);
        let mut rss = ReplicaSets {
            all: vec![old, new],
            new: Some(1),
        };
        assert!(is_scaling_event(&d, &rss));
        let changed = scale(&d, &mut rss);
        assert_eq!(changed.len(), 2);
        let s = sizes(&rss);
        assert_eq!(s.iter().sum::<i32>(), 23, "{s:?}");
        assert_eq!(s, vec![14, 9], "8*23/13=14.2 -> 14; 5*23/13=8.8 -> 9");
    }

    #[test]
    fn a_single_active_replicaset_takes_the_new_size() {
        let d = deployment(5, 1, 0);
        let mut rss = ReplicaSets {
            all: vec![
                rs("old", "2026-01-01T00:00:00Z", 0, 0),
                rs("new", "2026-01-02T00:00:00Z", 3, 3),
            ],
            new: Some(1),
        };
        assert_eq!(scale(&d, &mut rss), vec![1]);
        assert_eq!(sizes(&rss), vec![0, 5]);
    }

    #[test]
    fn history_beyond_the_limit_is_deleted_oldest_revision_first() {
        let mut d = deployment(1, 1, 0);
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let with_rev = |name: &str, rev: &str, created: &str, spec: i32| {
            let mut r = rs(name, created, spec, spec);
            r.metadata.annotations = Some([(util::REVISION.to_owned(), rev.to_owned())].into());
            r
        };
        let rss = ReplicaSets {
            all: vec![
                with_rev("r2", "2", "2026-01-02T00:00:00Z", 0),
                with_rev("r1", "1", "2026-01-01T00:00:00Z", 0),
                with_rev("r3", "3", "2026-01-03T00:00:00Z", 0),
                with_rev("r4", "4", "2026-01-04T00:00:00Z", 1),
            ],
            new: Some(3),
        };
        let gone: Vec<_> = history_to_delete(&d, &rss)
            .into_iter()
            .map(|i| rss.all[i].metadata.name.clone().unwrap())
            .collect();
        assert_eq!(gone, ["r1", "r2"]);
    }
}
