//! The clusterrole-aggregation controller: a ClusterRole with an aggregationRule gets, as its
//! rules, the union of the rules of every ClusterRole its selectors match (how admin, edit
//! and view gather the `aggregate-to-*` roles). Keyed by the aggregating role's name.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};

pub struct ClusterRoleAggregationController {
    client: kube::Client,
    roles: Arc<Informer<ClusterRole>>,
}

/// Starts the controller: any ClusterRole change re-checks every aggregating role, since a
/// label change may add or remove a role from any of them.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(ClusterRoleAggregationController {
        client: ctx.client.clone(),
        roles: ctx.informers.get::<ClusterRole>(),
    });
    let queue = WorkQueue::new("clusterrole_aggregation");
    let q = queue.clone();
    let roles = c.roles.clone();
    c.roles.on_change(move |change| {
        let changed = match change {
            Change::Added(r) | Change::Deleted(r) => r.aggregation_rule.is_none(),
            Change::Updated { new, .. } => new.aggregation_rule.is_none(),
        };
        if let Change::Added(r) | Change::Updated { new: r, .. } = change
            && r.aggregation_rule.is_some()
        {
            q.add(r.name_any());
        }
        if changed {
            for r in roles.list() {
                if r.aggregation_rule.is_some() {
                    q.add(r.name_any());
                }
            }
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 1))
}

/// The rules an aggregating role should hold: those of the roles its selectors match, each
/// rule once, in the order of the matched roles' names.
pub fn aggregate(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Vec<PolicyRule> {
    let selectors = role
        .aggregation_rule
        .as_ref()
        .and_then(|a| a.cluster_role_selectors.clone())
        .unwrap_or_default();
    let selectors: Vec<common::selector::LabelSelector> = selectors
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .filter_map(|v| common::selector::LabelSelector::from_label_selector_json(&v).ok())
        .filter(|s| !s.is_everything())
        .collect();
    let mut sources: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| {
            let labels = other.metadata.labels.clone().unwrap_or_default();
            selectors.iter().any(|s| s.matches_map(&labels))
        })
        .collect();
    sources.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for source in sources {
        for rule in source.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

#[async_trait]
impl Reconcile for ClusterRoleAggregationController {
    async fn sync(&self, name: &str) -> crate::Result<Requeue> {
        let Some(role) = self.roles.get(name) else {
            return Ok(None);
        };
        if role.aggregation_rule.is_none() {
            return Ok(None);
        }
        let rules = aggregate(&role, &self.roles.list());
        if role.rules.as_deref().unwrap_or_default() == rules.as_slice() {
            return Ok(None);
        }
        let api: Api<ClusterRole> = Api::all(self.client.clone());
        let patch = serde_json::json!({ "rules": rules });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, labels: &[(&str, &str)], verbs: &[&str]) -> Arc<ClusterRole> {
        let mut r = ClusterRole::default();
        r.metadata.name = Some(name.into());
        r.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        r.rules = Some(
            verbs
                .iter()
                .map(|v| PolicyRule {
                    verbs: vec![v.to_string()],
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["pods".into()]),
                    ..Default::default()
                })
                .collect(),
        );
        Arc::new(r)
    }

    #[test]
    fn aggregates_the_rules_of_matching_roles_once() {
        let label = "rbac.authorization.k8s.io/aggregate-to-view";
        let mut view = (*role("view", &[], &[])).clone();
        view.aggregation_rule = Some(
            serde_json::from_value(serde_json::json!({
                "clusterRoleSelectors": [{"matchLabels": {label: "true"}}]
            }))
            .unwrap(),
        );
        let all = vec![
            role("b-extra", &[(label, "true")], &["list", "get"]),
            role("a-view", &[(label, "true")], &["get"]),
            role("other", &[], &["delete"]),
        ];
        let verbs: Vec<String> = aggregate(&view, &all)
            .into_iter()
            .map(|r| r.verbs[0].clone())
            .collect();
        assert_eq!(verbs, ["get", "list"]);
    }
}
