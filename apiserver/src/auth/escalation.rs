//! RBAC escalation prevention, as upstream's policy-based RBAC storage: a Role or ClusterRole
//! may grant only permissions its writer already holds (or the writer may `escalate` it), and
//! a RoleBinding or ClusterRoleBinding may bind only a role whose permissions the writer holds
//! in that scope (or the writer may `bind` it). Without this, anyone allowed to create
//! bindings could make themselves cluster-admin.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::attributes::Attributes;
use super::{Decision, UserInfo};
use crate::registry::Target;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Refuses a create (`old` None) or update of an RBAC object that would grant `user` more
/// than it holds. Other kinds pass untouched.
pub fn check(
    state: &ApiState,
    user: &UserInfo,
    target: &Target,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let resource = &*target.resource;
    if resource.group != RBAC_GROUP {
        return Ok(());
    }
    let plural = resource.plural.as_str();
    let binding = match plural {
        "roles" | "clusterroles" => false,
        "rolebindings" | "clusterrolebindings" => true,
        _ => return Ok(()),
    };
    // Upstream lets through updates that only touch what the garbage collector changes.
    if old.is_some_and(|old| only_gc_fields_changed(obj, old)) {
        return Ok(());
    }
    let namespace = target.namespace.as_str();
    let name = obj["metadata"]["name"].as_str().unwrap_or(&target.name);
    let may = |verb: &str, resource: &str, name: &str| {
        let attrs = Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: RBAC_GROUP.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Attributes::default()
        };
        matches!(
            state.auth.authorize(&state.cache, user, &attrs),
            Decision::Allow(_)
        )
    };
    let refuse = |why: String| ApiError::forbidden(RBAC_GROUP, plural, name, &why);
    let rules: Vec<PolicyRule> = if binding {
        let kind = obj["roleRef"]["kind"].as_str().unwrap_or("");
        let role = obj["roleRef"]["name"].as_str().unwrap_or("");
        let role_resource = if kind == "Role" {
            "roles"
        } else {
            "clusterroles"
        };
        if may("bind", role_resource, role) {
            return Ok(());
        }
        match state.auth.role_rules(kind, namespace, role) {
            Some(rules) => rules.to_vec(),
            None if !state.auth.rbac_enabled() => Vec::new(),
            None => {
                return Err(refuse(format!(
                    "{role_resource}.{RBAC_GROUP} {role:?} not found"
                )));
            }
        }
    } else {
        if may("escalate", plural, name) {
            return Ok(());
        }
        // Setting or removing an aggregationRule changes what the role gathers: upstream
        // requires full authority for either.
        if plural == "clusterroles"
            && (aggregates(obj) || old.is_some_and(aggregates))
            && !covers(&state.auth.rbac_rules(user, ""), &full_authority())?.is_empty()
        {
            return Err(refuse(
                "must have cluster-admin privileges to use the aggregationRule".into(),
            ));
        }
        match &obj["rules"] {
            Value::Null => Vec::new(),
            rules => serde_json::from_value(rules.clone()).map_err(|e| {
                ApiError::bad_request(format!("rules: cannot be read as PolicyRules: {e}"))
            })?,
        }
    };
    let held = state.auth.rbac_rules(user, namespace);
    let missing = covers(&held, &rules)?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(refuse(not_held_message(user, &missing)))
}

/// Whether an update changes nothing but ownerReferences and finalizers.
fn only_gc_fields_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
                "generation",
            ] {
                m.remove(field);
            }
        }
        v
    };
    strip(new) == strip(old)
}

/// `*` on everything: what the aggregationRule needs.
fn full_authority() -> Vec<PolicyRule> {
    let all = || Some(vec!["*".to_owned()]);
    vec![
        PolicyRule {
            verbs: vec!["*".into()],
            api_groups: all(),
            resources: all(),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: all(),
            ..PolicyRule::default()
        },
    ]
}

/// A ClusterRole with an aggregationRule that selects something, as upstream's
/// hasAggregationRule.
fn aggregates(role: &Value) -> bool {
    role["aggregationRule"]["clusterRoleSelectors"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
}

/// The most single permissions (verb x group x resource x name) a written role may expand to
/// before its check is refused: the check costs this times the writer's rules.
pub const MAX_PERMISSIONS_CHECKED: usize = 100_000;

/// The parts of `wanted` no rule of `held` covers, each as one verb on one group, resource and
/// name (or one URL), as upstream's Covers breaks rules down. A role expanding to more than
/// [`MAX_PERMISSIONS_CHECKED`] permissions is refused before any is checked.
pub fn covers(held: &[PolicyRule], wanted: &[PolicyRule]) -> ApiResult<Vec<PolicyRule>> {
    let len = |l: &Option<Vec<String>>| l.as_ref().map_or(0, Vec::len);
    let size = wanted.iter().fold(0usize, |total, r| {
        let resources = len(&r.api_groups)
            .saturating_mul(len(&r.resources))
            .saturating_mul(len(&r.resource_names).max(1));
        let urls = len(&r.non_resource_urls);
        total.saturating_add(r.verbs.len().saturating_mul(resources.saturating_add(urls)))
    });
    if size > MAX_PERMISSIONS_CHECKED {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "rules: Too many: {size}: the rules expand to more than {MAX_PERMISSIONS_CHECKED} permissions to check against the writer's; split them or ask for the escalate verb"
            ),
        ));
    }
    Ok(wanted
        .iter()
        .flat_map(breakdown)
        .filter(|atom| !held.iter().any(|owner| rule_covers(owner, atom)))
        .collect())
}

fn one(s: &str) -> Option<Vec<String>> {
    Some(vec![s.to_owned()])
}

/// Splits a rule into rules of one verb, group, resource and name (or one URL and verb).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut atoms = Vec::new();
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    let names = list(&rule.resource_names);
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let atom = |names: Option<Vec<String>>| PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: one(&group),
                    resources: one(&resource),
                    resource_names: names,
                    non_resource_urls: None,
                };
                if names.is_empty() {
                    atoms.push(atom(None));
                } else {
                    atoms.extend(names.iter().map(|n| atom(one(n))));
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            atoms.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(&url),
                ..PolicyRule::default()
            });
        }
    }
    atoms
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

/// Upstream's ruleCovers: `owner` grants everything `sub` does.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    fn list(l: &Option<Vec<String>>) -> &[String] {
        l.as_deref().unwrap_or_default()
    }
    let (o_groups, s_groups) = (list(&owner.api_groups), list(&sub.api_groups));
    let (o_res, s_res) = (list(&owner.resources), list(&sub.resources));
    let (o_names, s_names) = (list(&owner.resource_names), list(&sub.resource_names));
    let (o_urls, s_urls) = (list(&owner.non_resource_urls), list(&sub.non_resource_urls));
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(o_groups, "*") || has_all(o_groups, s_groups);
    let resources = has(o_res, "*")
        || s_res.iter().all(|r| {
            has(o_res, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| o_res.iter().any(|o| o.strip_prefix("*/") == Some(sub)))
        });
    let urls = has(o_urls, "*")
        || s_urls.iter().all(|u| {
            o_urls.iter().any(|o| {
                o == u
                    || o.strip_suffix('*')
                        .is_some_and(|prefix| u.starts_with(prefix))
            })
        });
    let names = if s_names.is_empty() {
        o_names.is_empty()
    } else {
        o_names.is_empty() || has_all(o_names, s_names)
    };
    verbs && groups && resources && urls && names
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Upstream's CompactString of a rule: `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let mut field = |label: &str, list: &Option<Vec<String>>| {
        if let Some(l) = list.as_ref().filter(|l| !l.is_empty()) {
            parts.push(format!("{label}:{}", go_quoted(l)));
        }
    };
    field("APIGroups", &rule.api_groups);
    field("Resources", &rule.resources);
    field("NonResourceURLs", &rule.non_resource_urls);
    field("ResourceNames", &rule.resource_names);
    field("Verbs", &Some(rule.verbs.clone()));
    format!("{{{}}}", parts.join(", "))
}

/// Lines of the message at most; the rest are counted.
const MAX_MESSAGE_RULES: usize = 100;

/// Upstream's message, missing rules that differ only in their verb merged into one.
fn not_held_message(user: &UserInfo, missing: &[PolicyRule]) -> String {
    let mut compact: Vec<PolicyRule> = Vec::new();
    // (groups, resources) of unnamed resource rules -> their place in `compact`.
    let mut by_target: std::collections::HashMap<(String, String), usize> = Default::default();
    for atom in missing {
        let mergeable = atom.resource_names.is_none() && atom.non_resource_urls.is_none();
        let key = (
            format!("{:?}", atom.api_groups),
            format!("{:?}", atom.resources),
        );
        match by_target.get(&key).filter(|_| mergeable) {
            Some(&i) => {
                if !compact[i].verbs.contains(&atom.verbs[0]) {
                    compact[i].verbs.push(atom.verbs[0].clone());
                }
            }
            None => {
                if mergeable {
                    by_target.insert(key, compact.len());
                }
                compact.push(atom.clone());
            }
        }
    }
    let mut lines: Vec<String> = compact.iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    let more = lines.len().saturating_sub(MAX_MESSAGE_RULES);
    lines.truncate(MAX_MESSAGE_RULES);
    if more > 0 {
        lines.push(format!("... and {more} more"));
    }
    format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::super::rbac::rule;
    use super::*;

    fn check(held: &[PolicyRule], wanted: &[PolicyRule], covered: bool) {
        assert_eq!(
            covers(held, wanted).unwrap().is_empty(),
            covered,
            "held {held:?} wanted {wanted:?}"
        );
    }

    #[test]
    fn covers_as_upstream() {
        let view = rule(
            &["get", "list", "watch"],
            &["", "apps"],
            &["pods", "deployments"],
            &[],
        );
        check(
            std::slice::from_ref(&view),
            &[rule(&["get"], &[""], &["pods"], &[])],
            true,
        );
        check(
            std::slice::from_ref(&view),
            &[rule(&["get"], &[""], &["secrets"], &[])],
            false,
        );
        check(
            std::slice::from_ref(&view),
            &[rule(&["delete"], &[""], &["pods"], &[])],
            false,
        );
        check(
            std::slice::from_ref(&view),
            &[rule(&["*"], &[""], &["pods"], &[])],
            false,
        );
        check(&[view], &[rule(&["get"], &["*"], &["pods"], &[])], false);
        // Names: a named grant covers only those names; an unnamed one covers all.
        let one_secret = rule(&["get"], &[""], &["secrets"], &["s1"]);
        check(
            std::slice::from_ref(&one_secret),
            &[rule(&["get"], &[""], &["secrets"], &["s1"])],
            true,
        );
        check(
            std::slice::from_ref(&one_secret),
            &[rule(&["get"], &[""], &["secrets"], &[])],
            false,
        );
        check(
            &[one_secret],
            &[rule(&["get"], &[""], &["secrets"], &["s2"])],
            false,
        );
        // Subresources: */status covers pods/status.
        let status = rule(&["update"], &[""], &["*/status"], &[]);
        check(
            std::slice::from_ref(&status),
            &[rule(&["update"], &[""], &["pods/status"], &[])],
            true,
        );
        check(
            &[status],
            &[rule(&["update"], &[""], &["pods"], &[])],
            false,
        );
        // Split across two held rules is still covered.
        let a = rule(&["get"], &[""], &["pods"], &[]);
        let b = rule(&["list"], &[""], &["pods"], &[]);
        check(
            &[a, b],
            &[rule(&["get", "list"], &[""], &["pods"], &[])],
            true,
        );
        // cluster-admin covers all, URLs too.
        check(&full_authority(), &full_authority(), true);
        check(&[], &[], true);
        let url = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/metrics".into()]),
            ..PolicyRule::default()
        };
        let prefix = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/met*".into()]),
            ..PolicyRule::default()
        };
        check(&[prefix], std::slice::from_ref(&url), true);
        check(&[rule(&["*"], &["*"], &["*"], &[])], &[url], false);
    }

    #[test]
    fn huge_products_are_refused_before_any_check() {
        let many: Vec<String> = (0..1000).map(|i| format!("g{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let start = std::time::Instant::now();
        let err = covers(&[], &[rule(&["get"], &refs, &refs, &[])]).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // Just under the bound is checked.
        let some: Vec<&str> = refs[..300].to_vec();
        assert_eq!(
            covers(&[], &[rule(&["get"], &some, &some, &[])])
                .unwrap()
                .len(),
            90_000
        );
    }

    #[test]
    fn message_is_upstreams() {
        let user = UserInfo::new("bob", vec![]);
        let missing = covers(
            &[],
            &[
                rule(&["get", "list"], &[""], &["secrets"], &[]),
                rule(&["get"], &["apps"], &["deployments"], &["web"]),
            ],
        )
        .unwrap();
        assert_eq!(
            not_held_message(&user, &missing),
            "user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], ResourceNames:[\"web\"], Verbs:[\"get\"]}"
        );
    }
}
