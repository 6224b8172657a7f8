//! The RBAC authorizer: Roles and ClusterRoles (with aggregation) granted through RoleBindings
//! and ClusterRoleBindings, as upstream's rbac authorizer evaluates them. The rules are indexed
//! from the watch cache and rebuilt only when an RBAC object changed, so a request costs a walk
//! over the bindings, never a parse.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use parking_lot::RwLock;

use super::attributes::Attributes;
use super::{Decision, UserInfo};
use crate::cache::Cache;
use crate::registry::ResourceInfo;
use crate::storage::Revision;

/// The rules granted by one binding.
struct Grant {
    subjects: Vec<k8s_openapi::api::rbac::v1::Subject>,
    /// The namespace of a RoleBinding (service-account subjects default to it).
    namespace: String,
    role: Arc<[PolicyRule]>,
    /// `ClusterRole/NAME` or `Role/NAME`, for the reason of an allow.
    role_name: String,
    binding_name: String,
}

#[derive(Default)]
struct Index {
    cluster: Vec<Grant>,
    /// RoleBindings by namespace.
    namespaced: HashMap<String, Vec<Grant>>,
    /// ClusterRoles by name, aggregated rules included.
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    /// Roles by (namespace, name).
    roles: HashMap<(String, String), Arc<[PolicyRule]>>,
}

/// The RBAC authorizer over the watch cache.
pub struct Rbac {
    cache: Arc<Cache>,
    resources: [&'static ResourceInfo; 4],
    index: RwLock<([Revision; 4], Arc<Index>)>,
}

fn typed<T: serde::de::DeserializeOwned>(cache: &Cache, resource: &ResourceInfo) -> Vec<T> {
    cache
        .list(resource, "")
        .objects
        .iter()
        .filter_map(|o| serde_json::from_slice(&o.bytes).ok())
        .collect()
}

impl Rbac {
    pub fn new(cache: Arc<Cache>) -> Rbac {
        let find = |plural| {
            crate::registry::builtin("rbac.authorization.k8s.io", "v1", plural)
                .expect("RBAC kinds are served")
        };
        Rbac {
            cache,
            resources: [
                find("clusterroles"),
                find("clusterrolebindings"),
                find("roles"),
                find("rolebindings"),
            ],
            index: RwLock::new(([Revision::MAX; 4], Arc::default())),
        }
    }

    fn index(&self) -> Arc<Index> {
        let stamp = self.resources.map(|r| self.cache.last_change(r));
        {
            let current = self.index.read();
            if current.0 == stamp {
                return current.1.clone();
            }
        }
        let index = Arc::new(self.build());
        *self.index.write() = (stamp, index.clone());
        index
    }

    fn build(&self) -> Index {
        let [cr, crb, r, rb] = self.resources;
        let cluster_roles: Vec<ClusterRole> = typed(&self.cache, cr);
        let by_name: HashMap<String, Arc<[PolicyRule]>> = aggregate(&cluster_roles)
            .into_iter()
            .map(|(name, rules)| (name, rules.into()))
            .collect();
        let mut roles: HashMap<(String, String), Arc<[PolicyRule]>> = HashMap::new();
        for role in typed::<Role>(&self.cache, r) {
            let key = (
                role.metadata.namespace.clone().unwrap_or_default(),
                role.metadata.name.clone().unwrap_or_default(),
            );
            roles.insert(key, role.rules.unwrap_or_default().into());
        }
        let mut index = Index::default();
        for b in typed::<ClusterRoleBinding>(&self.cache, crb) {
            if b.role_ref.kind != "ClusterRole" {
                continue;
            }
            if let Some(role) = by_name.get(&b.role_ref.name) {
                index.cluster.push(Grant {
                    subjects: b.subjects.unwrap_or_default(),
                    namespace: String::new(),
                    role: role.clone(),
                    role_name: format!("ClusterRole {:?}", b.role_ref.name),
                    binding_name: format!(
                        "ClusterRoleBinding {:?}",
                        b.metadata.name.unwrap_or_default()
                    ),
                });
            }
        }
        for b in typed::<RoleBinding>(&self.cache, rb) {
            let namespace = b.metadata.namespace.clone().unwrap_or_default();
            let role = match b.role_ref.kind.as_str() {
                "ClusterRole" => by_name.get(&b.role_ref.name),
                "Role" => roles.get(&(namespace.clone(), b.role_ref.name.clone())),
                _ => None,
            };
            if let Some(role) = role {
                index
                    .namespaced
                    .entry(namespace.clone())
                    .or_default()
                    .push(Grant {
                        subjects: b.subjects.unwrap_or_default(),
                        role: role.clone(),
                        role_name: format!("{} {:?}", b.role_ref.kind, b.role_ref.name),
                        binding_name: format!(
                            "RoleBinding \"{namespace}/{}\"",
                            b.metadata.name.unwrap_or_default()
                        ),
                        namespace,
                    });
            }
        }
        index.cluster_roles = by_name;
        index.roles = roles;
        index
    }

    /// The rules of the role a roleRef names (`Role` in `namespace`, or a `ClusterRole`).
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Arc<[PolicyRule]>> {
        let index = self.index();
        match kind {
            "ClusterRole" => index.cluster_roles.get(name).cloned(),
            "Role" => index
                .roles
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned(),
            _ => None,
        }
    }

    /// Allows when a binding of the user grants a matching rule; no opinion otherwise.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let index = self.index();
        let namespaced = (!attrs.namespace.is_empty())
            .then(|| index.namespaced.get(&attrs.namespace))
            .flatten();
        let grants = index.cluster.iter().chain(namespaced.into_iter().flatten());
        for grant in grants {
            if grant
                .subjects
                .iter()
                .any(|s| subject_matches(s, user, &grant.namespace))
                && grant.role.iter().any(|rule| rule_allows(rule, attrs))
            {
                return Decision::Allow(format!(
                    "RBAC: allowed by {} of {} to {}",
                    grant.binding_name, grant.role_name, user.name
                ));
            }
        }
        Decision::NoOpinion(String::new())
    }

    /// The rules that apply to `user` in `namespace` (SelfSubjectRulesReview).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let index = self.index();
        let namespaced = index.namespaced.get(namespace);
        index
            .cluster
            .iter()
            .chain(namespaced.into_iter().flatten())
            .filter(|g| {
                g.subjects
                    .iter()
                    .any(|s| subject_matches(s, user, &g.namespace))
            })
            .flat_map(|g| g.role.iter().cloned())
            .collect()
    }
}

/// Every ClusterRole's rules with aggregation applied, as upstream's clusterrole-aggregation
/// controller writes them: an aggregating role gains the (aggregated) rules of every role its
/// selectors match, so aggregation chains (view into edit into admin) carry through.
fn aggregate(cluster_roles: &[ClusterRole]) -> HashMap<String, Vec<PolicyRule>> {
    let name = |r: &ClusterRole| r.metadata.name.clone().unwrap_or_default();
    let mut resolved: HashMap<String, Vec<PolicyRule>> = cluster_roles
        .iter()
        .map(|r| (name(r), r.rules.clone().unwrap_or_default()))
        .collect();
    let aggregating: Vec<&ClusterRole> = cluster_roles
        .iter()
        .filter(|r| r.aggregation_rule.is_some())
        .collect();
    // Each pass carries rules one more link along a chain; a chain is at most as long as
    // there are aggregating roles.
    for _ in 0..=aggregating.len() {
        let mut changed = false;
        for role in &aggregating {
            let selectors = role
                .aggregation_rule
                .as_ref()
                .and_then(|a| a.cluster_role_selectors.as_ref());
            let mut rules = role.rules.clone().unwrap_or_default();
            // Rules are deduplicated through their encoding: a list scan per rule would make
            // many labelled rules quadratic on every rebuild.
            let key = |r: &PolicyRule| serde_json::to_string(r).unwrap_or_default();
            let mut seen: std::collections::HashSet<String> = rules.iter().map(key).collect();
            for other in cluster_roles {
                let labels = other.metadata.labels.as_ref();
                if other.metadata.name != role.metadata.name
                    && selectors.is_some_and(|s| s.iter().any(|s| selector_matches(s, labels)))
                {
                    for rule in &resolved[&name(other)] {
                        if seen.insert(key(rule)) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            if resolved[&name(role)].len() != rules.len() {
                changed = true;
                resolved.insert(name(role), rules);
            }
        }
        if !changed {
            break;
        }
    }
    resolved
}

fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    let empty = std::collections::BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    // An empty selector matches nothing for aggregation, as upstream.
    let empty_selector = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty());
    !empty_selector && labels_ok && expressions_ok
}

fn subject_matches(
    subject: &k8s_openapi::api::rbac::v1::Subject,
    user: &UserInfo,
    binding_namespace: &str,
) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            user.name
                .strip_prefix("system:serviceaccount:")
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(n, name)| n == ns && name == subject.name)
        }
        _ => false,
    }
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

/// Whether one rule grants the request, as upstream's RuleAllows.
pub fn rule_allows(rule: &PolicyRule, attrs: &Attributes) -> bool {
    if !has(&rule.verbs, &attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return rule.non_resource_urls.iter().flatten().any(|url| {
            url == "*"
                || *url == attrs.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attrs.path.starts_with(prefix))
        });
    }
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    if !has(groups, &attrs.api_group) {
        return false;
    }
    let combined = attrs.combined_resource();
    let resource_ok = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.contains(&attrs.name),
    }
}

/// A resource rule from lists, for tests.
#[cfg(test)]
pub(crate) fn rule(
    verbs: &[&str],
    groups: &[&str],
    resources: &[&str],
    names: &[&str],
) -> PolicyRule {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        verbs: v(verbs),
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        resource_names: Some(v(names)),
        non_resource_urls: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: &PolicyRule, method: &str, path: &str, allowed: bool) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let attrs = Attributes::from_request(method, path, query);
        assert_eq!(rule_allows(rule, &attrs), allowed, "{method} {path}");
    }

    #[test]
    fn rules_match_as_upstream() {
        let r = rule(&["get", "list"], &[""], &["pods"], &[]);
        check(&r, "GET", "/api/v1/namespaces/a/pods", true);
        check(&r, "GET", "/api/v1/namespaces/a/pods/p", true);
        check(&r, "GET", "/api/v1/namespaces/a/pods/p/log", false);
        check(&r, "DELETE", "/api/v1/namespaces/a/pods/p", false);
        check(&r, "GET", "/apis/apps/v1/namespaces/a/deployments", false);
        let r = rule(&["*"], &["*"], &["*/status"], &[]);
        check(&r, "PUT", "/api/v1/namespaces/a/pods/p/status", true);
        check(&r, "PUT", "/api/v1/namespaces/a/pods/p", false);
        let r = rule(&["get"], &[""], &["secrets"], &["s1"]);
        check(&r, "GET", "/api/v1/namespaces/a/secrets/s1", true);
        check(&r, "GET", "/api/v1/namespaces/a/secrets/s2", false);
        check(&r, "GET", "/api/v1/namespaces/a/secrets", false);
        let r = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/healthz".into(), "/apis/*".into()]),
            ..Default::default()
        };
        check(&r, "GET", "/healthz", true);
        check(&r, "GET", "/apis/apps/v1", true);
        check(&r, "GET", "/metrics", false);
        check(&r, "POST", "/healthz", false);
    }

    #[test]
    fn aggregation_carries_along_chains() {
        let role =
            |name: &str, label: Option<&str>, selects: Option<&str>, rules: Vec<PolicyRule>| {
                let mut v = serde_json::json!({"metadata": {"name": name}, "rules": rules});
                if let Some(l) = label {
                    v["metadata"]["labels"] = serde_json::json!({l: "true"});
                }
                if let Some(s) = selects {
                    v["aggregationRule"] =
                        serde_json::json!({"clusterRoleSelectors": [{"matchLabels": {s: "true"}}]});
                }
                serde_json::from_value::<ClusterRole>(v).unwrap()
            };
        let get_pods = rule(&["get"], &[""], &["pods"], &[]);
        let roles = [
            role("admin", None, Some("to-admin"), vec![]),
            role("edit", Some("to-admin"), Some("to-edit"), vec![]),
            role("view", Some("to-edit"), Some("to-view"), vec![]),
            role("pods-reader", Some("to-view"), None, vec![get_pods.clone()]),
        ];
        let resolved = aggregate(&roles);
        for name in ["admin", "edit", "view"] {
            assert_eq!(resolved[name], vec![get_pods.clone()], "{name}");
        }
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        use k8s_openapi::api::rbac::v1::Subject;
        let s = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(String::from),
            api_group: None,
        };
        let alice = UserInfo::new("alice", vec!["dev".into()]);
        assert!(subject_matches(&s("User", "alice", None), &alice, ""));
        assert!(subject_matches(&s("Group", "dev", None), &alice, ""));
        assert!(subject_matches(
            &s("Group", "system:authenticated", None),
            &alice,
            ""
        ));
        assert!(!subject_matches(&s("User", "bob", None), &alice, ""));
        let sa = UserInfo::new("system:serviceaccount:ns1:builder", vec![]);
        assert!(subject_matches(
            &s("ServiceAccount", "builder", None),
            &sa,
            "ns1"
        ));
        assert!(!subject_matches(
            &s("ServiceAccount", "builder", None),
            &sa,
            "ns2"
        ));
        assert!(subject_matches(
            &s("ServiceAccount", "builder", Some("ns1")),
            &sa,
            "ns2"
        ));
    }
}
