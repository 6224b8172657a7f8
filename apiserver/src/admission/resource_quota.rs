//! Upstream's ResourceQuota admission: a create (or a service's or claim's update) that would
//! take a quota of its namespace over its hard limits is refused 403 with upstream's
//! "exceeded quota" message; otherwise each quota it counts against is charged at once by a
//! compare-and-swap of its status.used, so parallel creates cannot overshoot it together.
//! What an object counts for is `common::quota`'s, as the quota controller counts it.
//!
//! Costs nothing in a namespace without quotas: the watch cache says so before any parsing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Weak};

use common::quantity::Quantity;
use common::quota::{self, Usage};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use serde_json::Value;

use crate::registry::store::{Desired, guaranteed_update};
use crate::registry::{self, ResourceInfo};
use crate::registry::{Target, WriteOptions};
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// One lock per namespace being charged: this server's creates in a namespace charge its
/// quotas one after another instead of racing each other's compare-and-swaps into conflicts
/// (the compare-and-swap still guards against other servers and the controller).
static CHARGING: LazyLock<parking_lot::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn namespace_lock(namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = CHARGING.lock();
    if let Some(lock) = locks.get(namespace).and_then(Weak::upgrade) {
        return lock;
    }
    // Namespaces no request is charging any more are forgotten.
    locks.retain(|_, l| l.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(namespace.to_owned(), Arc::downgrade(&lock));
    lock
}

/// What one object (or an update's difference) adds to a quota's usage, and which quotas
/// count it.
enum Charge {
    Pod(Box<Pod>, Usage),
    Other(Usage),
}

impl Charge {
    fn usage(&self) -> &Usage {
        match self {
            Charge::Pod(_, u) | Charge::Other(u) => u,
        }
    }

    /// The names of `quota`'s hard limits (as its status has them: a quota the controller
    /// has not yet seen limits nothing) this charge adds to.
    fn charged_names(&self, quota: &ResourceQuota) -> Vec<String> {
        let Some(spec) = quota.spec.as_ref() else {
            return Vec::new();
        };
        let hard = quota.status.as_ref().and_then(|s| s.hard.as_ref());
        let counted = match self {
            Charge::Pod(pod, _) => quota::quota_matches_pod(spec, pod),
            Charge::Other(_) => quota::quota_matches_other(spec),
        };
        if !counted {
            return Vec::new();
        }
        let tracked = |name: &str| match self {
            Charge::Pod(..) => quota::quota_tracks(spec, name),
            Charge::Other(_) => true,
        };
        hard.into_iter()
            .flatten()
            .map(|(name, _)| name)
            .filter(|name| tracked(name) && self.usage().get(*name).is_some_and(|v| *v != 0))
            .cloned()
            .collect()
    }
}

/// What `obj` (replacing `old` on an update) charges; None when nothing is charged: updates
/// of kinds whose usage cannot change that way, or an object that does not parse (validation
/// refuses it anyway).
fn charge(resource: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Option<Charge> {
    let core = resource.group.is_empty();
    // What upstream never counts: bindings and events.
    if (core
        && matches!(
            resource.plural.as_str(),
            "bindings" | "events" | "componentstatuses"
        ))
        || (resource.group == "events.k8s.io" && resource.plural == "events")
    {
        return None;
    }
    fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
        serde_json::from_value(v.clone()).ok()
    }
    match (core, resource.plural.as_str(), old) {
        (true, "pods", None) => {
            let pod: Pod = parse(obj)?;
            let usage = quota::pod_usage(&pod);
            Some(Charge::Pod(Box::new(pod), usage))
        }
        // Pods do not change what they hold once created (no in-place resize here).
        (true, "pods", Some(_)) => None,
        (true, "services", old) => {
            let new = quota::service_usage(&parse::<Service>(obj)?);
            let old = old
                .and_then(parse::<Service>)
                .map(|s| quota::service_usage(&s));
            Some(Charge::Other(difference(new, old)))
        }
        (true, "persistentvolumeclaims", old) => {
            let new = quota::claim_usage(&parse::<PersistentVolumeClaim>(obj)?);
            let old = old
                .and_then(parse::<PersistentVolumeClaim>)
                .map(|c| quota::claim_usage(&c));
            Some(Charge::Other(difference(new, old)))
        }
        (_, plural, None) => Some(Charge::Other(quota::object_count_usage(
            &resource.group,
            plural,
        ))),
        _ => None,
    }
}

/// `new` less `old` (an update charges only what grew; shrinking frees nothing until the
/// controller recounts, as upstream).
fn difference(new: Usage, old: Option<Usage>) -> Usage {
    let Some(old) = old else { return new };
    new.into_iter()
        .map(|(name, v)| {
            let before = old.get(&name).copied().unwrap_or(0);
            (name, (v - before).max(0))
        })
        .collect()
}

/// Admits a create or update of `target` as upstream's ResourceQuota plugin: refuses what
/// would exceed a quota and, unless `dry_run`, charges every quota it counts against.
pub async fn admit(
    state: &Arc<ApiState>,
    target: &Target,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> ApiResult<()> {
    let resource = &*target.resource;
    // Updates of most kinds (pod status, leases) change no usage: nothing is looked up.
    let updates_count = resource.group.is_empty()
        && matches!(
            resource.plural.as_str(),
            "services" | "persistentvolumeclaims"
        );
    if !resource.namespaced || (old.is_some() && !updates_count) {
        return Ok(());
    }
    static QUOTAS: LazyLock<&'static Arc<ResourceInfo>> =
        LazyLock::new(|| registry::builtin("", "v1", "resourcequotas").expect("quotas are served"));
    let quotas_resource = *QUOTAS;
    let cached = state.cache.list(quotas_resource, &target.namespace).objects;
    if cached.is_empty() {
        return Ok(());
    }
    let Some(charge) = charge(resource, obj, old) else {
        return Ok(());
    };
    let lock = namespace_lock(&target.namespace);
    let _charging = lock.lock().await;
    let forbidden =
        |why: String| ApiError::forbidden(&resource.group, &resource.plural, &target.name, &why);
    let mut charged = Vec::new();
    for cached in cached {
        let Ok(quota) = serde_json::from_slice::<ResourceQuota>(&cached.bytes) else {
            continue;
        };
        let names = charge.charged_names(&quota);
        if names.is_empty() {
            continue;
        }
        if let Charge::Pod(pod, _) = &charge {
            let hard: Vec<&str> = quota
                .status
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .into_iter()
                .flatten()
                .map(|(n, _)| n.as_str())
                .collect();
            quota::pod_constraints(&hard, pod)
                .map_err(|e| forbidden(format!("failed quota: {}: {e}", meta_name(&quota))))?;
        }
        check(&quota, &names, charge.usage()).map_err(forbidden)?;
        charged.push((meta_name(&quota), names));
    }
    if dry_run {
        return Ok(());
    }
    // Charge each quota with a compare-and-swap; a quota that moved is checked again.
    let options = WriteOptions::default();
    for (name, names) in charged {
        let quota_target = Target {
            resource: quotas_resource.clone(),
            namespace: target.namespace.clone(),
            name,
            subresource: "status".into(),
        };
        guaranteed_update(
            state,
            &quota_target,
            &options,
            "kube-apiserver",
            |current| {
                let mut quota: ResourceQuota = serde_json::from_value(current.clone())
                    .map_err(|e| ApiError::internal(format!("reading a ResourceQuota: {e}")))?;
                check(&quota, &names, charge.usage()).map_err(forbidden)?;
                let status = quota.status.get_or_insert_with(Default::default);
                let used = status.used.get_or_insert_with(BTreeMap::new);
                for name in &names {
                    let before = used.get(name).map_or(0, |q| amount(name, &q.0));
                    let after = before + charge.usage()[name];
                    used.insert(
                        name.clone(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                            quota::format_amount(name, after),
                        ),
                    );
                }
                let object = serde_json::to_value(&quota)
                    .map_err(|e| ApiError::internal(format!("writing a ResourceQuota: {e}")))?;
                Ok(Desired {
                    object,
                    precondition: false,
                })
            },
        )
        .await?;
    }
    Ok(())
}

fn meta_name(quota: &ResourceQuota) -> String {
    quota.metadata.name.clone().unwrap_or_default()
}

fn amount(name: &str, q: &str) -> i64 {
    Quantity::parse(q).map_or(0, |q| quota::amount(name, &q))
}

/// Whether `usage` fits in `quota` for `names`; upstream's message otherwise.
fn check(quota: &ResourceQuota, names: &[String], usage: &Usage) -> Result<(), String> {
    let quota_name = meta_name(quota);
    let hard = quota.status.as_ref().and_then(|s| s.hard.as_ref());
    let used = quota.status.as_ref().and_then(|s| s.used.as_ref());
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| used.is_none_or(|u| !u.contains_key(*n)))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "status unknown for quota: {quota_name}, resources: {}",
            unknown.join(",")
        ));
    }
    let (mut requested, mut current, mut limited) = (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        let limit = hard
            .and_then(|h| h.get(name))
            .map_or(0, |q| amount(name, &q.0));
        let now = used
            .and_then(|u| u.get(name))
            .map_or(0, |q| amount(name, &q.0));
        let adds = usage[name];
        if now + adds > limit {
            requested.push(format!("{name}={}", quota::format_amount(name, adds)));
            current.push(format!("{name}={}", quota::format_amount(name, now)));
            limited.push(format!("{name}={}", quota::format_amount(name, limit)));
        }
    }
    if requested.is_empty() {
        return Ok(());
    }
    Err(format!(
        "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
        requested.join(","),
        current.join(","),
        limited.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota(hard: Value, used: Value) -> ResourceQuota {
        serde_json::from_value(json!({"metadata": {"name": "compute"},
            "spec": {"hard": hard}, "status": {"hard": hard, "used": used}}))
        .unwrap()
    }

    #[test]
    fn a_quota_the_controller_has_not_seen_limits_nothing() {
        let fresh: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "q"},
            "spec": {"hard": {"configmaps": "1"}}}))
        .unwrap();
        let charge = Charge::Other(Usage::from([("configmaps".into(), 1)]));
        assert!(charge.charged_names(&fresh).is_empty());
        let seen = quota(json!({"configmaps": "1"}), json!({"configmaps": "0"}));
        assert_eq!(charge.charged_names(&seen), ["configmaps"]);
    }

    #[test]
    fn messages_are_upstreams() {
        let q = quota(
            json!({"pods": "2", "limits.cpu": "1"}),
            json!({"pods": "1", "limits.cpu": "500m"}),
        );
        let usage = Usage::from([("pods".into(), 1), ("limits.cpu".into(), 700)]);
        let names = vec!["limits.cpu".to_owned(), "pods".to_owned()];
        assert_eq!(
            check(&q, &names, &usage).unwrap_err(),
            "exceeded quota: compute, requested: limits.cpu=700m, used: limits.cpu=500m, \
             limited: limits.cpu=1"
        );
        let fits = Usage::from([("pods".into(), 1), ("limits.cpu".into(), 500)]);
        assert_eq!(check(&q, &names, &fits), Ok(()));
        let fresh = quota(json!({"pods": "2"}), json!({}));
        // Status has the hard limit but not yet the usage.
        assert_eq!(
            check(&fresh, &["pods".to_owned()], &usage).unwrap_err(),
            "status unknown for quota: compute, resources: pods"
        );
    }

    #[test]
    fn updates_charge_only_growth() {
        let services = registry::builtin("", "v1", "services").unwrap();
        let old = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let Some(Charge::Other(u)) = charge(services, &new, Some(&old)) else {
            panic!("a service is charged");
        };
        assert_eq!((u["services"], u["services.nodeports"]), (0, 1));
        let pods = registry::builtin("", "v1", "pods").unwrap();
        assert!(charge(pods, &json!({"spec": {}}), Some(&json!({"spec": {}}))).is_none());
        let cms = registry::builtin("", "v1", "configmaps").unwrap();
        let Some(Charge::Other(u)) = charge(cms, &json!({}), None) else {
            panic!("a configmap is counted");
        };
        assert_eq!((u["configmaps"], u["count/configmaps"]), (1, 1));
        let events = registry::builtin("", "v1", "events").unwrap();
        assert!(charge(events, &json!({}), None).is_none());
    }
}
