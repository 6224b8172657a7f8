//! The Job controller's decisions as pure functions: pod failure policy matching, the
//! completed-indexes interval notation, and how many pods a Job wants running.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{Job, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;

/// What a pod failure policy rule decided for a failed pod.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the Job, with upstream's message.
    FailJob(String),
    /// Do not count the failure against backoffLimit.
    Ignore,
    /// Count it (also when no rule matches).
    Count,
}

/// Applies `spec.podFailurePolicy` to a failed pod: the first matching rule decides.
pub fn failure_action(job: &Job, pod: &Pod) -> Action {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return Action::Count;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(what) = rule_matches(rule, pod) {
            return match rule.action.as_str() {
                "FailJob" => Action::FailJob(format!("{what} matching FailJob rule at index {i}")),
                "Ignore" => Action::Ignore,
                _ => Action::Count,
            };
        }
    }
    Action::Count
}

/// Describes how `rule` matches `pod` ("Container c for pod ns/p failed with exit code 42"),
/// or `None`.
fn rule_matches(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let status = pod.status.as_ref();
    if let Some(codes) = &rule.on_exit_codes {
        let statuses = status.into_iter().flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        });
        for cs in statuses {
            if codes.container_name.as_ref().is_some_and(|c| *c != cs.name) {
                continue;
            }
            let Some(code) = cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code)
            else {
                continue;
            };
            if code == 0 {
                continue;
            }
            let listed = codes.values.contains(&code);
            let hit = match codes.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if hit {
                return Some(format!(
                    "Container {} for pod {ns}/{name} failed with exit code {code}",
                    cs.name
                ));
            }
        }
    }
    for pattern in rule.on_pod_conditions.iter().flatten() {
        // The API defaults the status to "True".
        let want = if pattern.status.is_empty() {
            "True"
        } else {
            pattern.status.as_str()
        };
        let found = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == want);
        if found {
            return Some(format!("Pod {ns}/{name} has condition {}", pattern.type_));
        }
    }
    None
}

/// "1,3-5,7" from a set of indexes, as status.completedIndexes writes them.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The set written as "1,3-5,7" (invalid parts are skipped).
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    set.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = part.parse() {
                    set.insert(n);
                }
            }
        }
    }
    set
}

/// How many pods should run now (NonIndexed): parallelism, but no more than the
/// completions still missing; with no completions set (a work queue), none once any
/// pod has succeeded.
pub fn want_active(parallelism: i32, completions: Option<i32>, succeeded: i32) -> i32 {
    match completions {
        Some(c) => parallelism.min((c - succeeded).max(0)),
        None if succeeded > 0 => 0,
        None => parallelism,
    }
}

/// The retry delay after `failures` failed pods: 10 s doubling, at most 6 minutes
/// (upstream's pod failure backoff), scaled by `base`.
pub fn backoff(base: std::time::Duration, failures: i32) -> std::time::Duration {
    if failures <= 0 {
        return std::time::Duration::ZERO;
    }
    let d = base.saturating_mul(1u32 << (failures - 1).min(16) as u32);
    d.min(base.saturating_mul(36))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_indexes_round_trip_in_interval_notation() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn active_pods_wanted() {
        assert_eq!(want_active(3, Some(5), 4), 1);
        assert_eq!(want_active(3, Some(5), 0), 3);
        assert_eq!(want_active(3, None, 0), 3);
        assert_eq!(want_active(3, None, 1), 0);
        let base = std::time::Duration::from_secs(10);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 3), base * 4);
        assert_eq!(backoff(base, 20), base * 36, "capped at 6 minutes");
    }

    #[test]
    fn pod_failure_policy_rules_match_in_order() {
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {"template": {},
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
                {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
            ]}}}))
        .unwrap();
        let pod = |code: i32, conditions: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"},
                "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                    {"name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                     "state": {"terminated": {"exitCode": code}}}]}}))
            .unwrap()
        };
        assert_eq!(
            failure_action(&job, &pod(42, json!([]))),
            Action::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into())
        );
        assert_eq!(
            failure_action(
                &job,
                &pod(42, json!([{"type": "DisruptionTarget", "status": "True"}]))
            ),
            Action::Ignore
        );
        assert_eq!(failure_action(&job, &pod(1, json!([]))), Action::Count);
    }
}
