//! Taints and tolerations as upstream's Toleration.ToleratesTaint and the helpers beside it
//! (component-helpers/scheduling/corev1: TolerationsTolerateTaint,
//! FindMatchingUntoleratedTaint; core/v1/helper: GetMatchingTolerations) and the
//! tolerationSeconds rule the taint-eviction controller applies.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `toleration` tolerates `taint`: an empty effect or key matches any, operator
/// Exists matches any value, Equal (or none) needs the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint that `include` selects and no toleration tolerates.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    include: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .find(|t| include(t) && !tolerations_tolerate_taint(tolerations, t))
}

/// The taints that keep a pod off a node (upstream's DoNotScheduleTaintsFilterFunc).
pub fn does_not_schedule(taint: &Taint) -> bool {
    matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
}

/// For each taint, the first toleration that tolerates it; None when one is untolerated.
pub fn matching_tolerations<'a>(
    taints: &[&Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// How long a pod may stay under NoExecute taints given the tolerations it uses for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationTime {
    /// No used toleration sets tolerationSeconds.
    Forever,
    /// The smallest tolerationSeconds; zero when one is zero or negative.
    Seconds(i64),
}

/// Upstream's getMinTolerationTime over the tolerations `matching_tolerations` returned.
pub fn min_toleration_time(used: &[&Toleration]) -> TolerationTime {
    let mut min = None;
    for s in used.iter().filter_map(|t| t.toleration_seconds) {
        if s <= 0 {
            return TolerationTime::Seconds(0);
        }
        min = Some(min.map_or(s, |m: i64| m.min(s)));
    }
    min.map_or(TolerationTime::Forever, TolerationTime::Seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_matches_key_value_and_effect() {
        let gpu = taint("gpu", "true", "NoSchedule");
        for (t, want) in [
            (
                json!({"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "gpu", "value": "true"}), true),
            (
                json!({"key": "gpu", "operator": "Equal", "value": "false"}),
                false,
            ),
            (json!({"key": "gpu", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (
                json!({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            (
                json!({"key": "gpu", "operator": "Gt", "value": "true"}),
                false,
            ),
            // An empty key with Equal matches any key whose taint has the same value.
            (json!({"value": "true"}), true),
        ] {
            assert_eq!(tolerates(&tol(t.clone()), &gpu), want, "{t}");
        }
    }

    #[test]
    fn the_first_untolerated_taint_the_filter_selects() {
        let taints = [
            taint("soft", "", "PreferNoSchedule"),
            taint("gpu", "true", "NoSchedule"),
            taint("maint", "", "NoExecute"),
        ];
        let find = |tols: &[Toleration]| {
            find_untolerated_taint(&taints, tols, does_not_schedule).map(|t| t.key.as_str())
        };
        assert_eq!(find(&[]), Some("gpu"));
        assert_eq!(
            find(&[tol(json!({"key": "gpu", "operator": "Exists"}))]),
            Some("maint")
        );
        assert_eq!(find(&[tol(json!({"operator": "Exists"}))]), None);
        assert!(tolerations_tolerate_taint(
            &[tol(json!({"key": "soft", "operator": "Exists"}))],
            &taints[0]
        ));
    }

    #[test]
    fn the_first_matching_toleration_sets_the_time() {
        let t = taint("node.kubernetes.io/unreachable", "", "NoExecute");
        let forever = tol(json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists"}));
        let limited = tol(json!({"operator": "Exists", "tolerationSeconds": 300}));
        let shorter = tol(json!({"operator": "Exists", "tolerationSeconds": 5}));
        let time = |tols: &[Toleration]| {
            matching_tolerations(&[&t], tols).map(|used| min_toleration_time(&used))
        };
        assert_eq!(time(&[]), None);
        assert_eq!(
            time(std::slice::from_ref(&forever)),
            Some(TolerationTime::Forever)
        );
        // Only the first toleration of each taint counts, as upstream.
        assert_eq!(
            time(&[limited.clone(), shorter.clone()]),
            Some(TolerationTime::Seconds(300))
        );
        assert_eq!(time(&[shorter, limited]), Some(TolerationTime::Seconds(5)));
        let zero = tol(json!({"operator": "Exists", "tolerationSeconds": -1}));
        assert_eq!(time(&[zero]), Some(TolerationTime::Seconds(0)));
        assert_eq!(matching_tolerations(&[], &[]), Some(vec![]));
    }
}
