//! RBAC escalation prevention, as upstream's policy-based RBAC storage: a Role or ClusterRole
//! may grant only permissions its writer already holds (or the writer may `escalate` it), and
//! a RoleBinding or ClusterRoleBinding may bind only a role whose permissions the writer holds
//! in that scope (or the writer may `bind` it). Without this, anyone allowed to create
//! bindings could make themselves cluster-admin.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::attributes::Attributes;
use super::{Decision, UserInfo};
use crate::handlers::Target;
use crate::server::ApiState;
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
    let resource = target.resource;
    if resource.group != RBAC_GROUP {
        return Ok(());
    }
    let plural = resource.plural;
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
        if plural == "clusterroles"
            && obj["aggregationRule"].is_object()
            && !covers(&state.auth.rbac_rules(user, ""), &full_authority()).is_empty()
        {
            return Err(refuse(
                "must have cluster-admin privileges to use the aggregationRule".into(),
            ));
        }
        serde_json::from_value(obj["rules"].clone()).unwrap_or_default()
    };
    let held = state.auth.rbac_rules(user, namespace);
    let missing = covers(&held, &rules);
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

/// The parts of `wanted` no rule of `held` covers, each as one verb on one group, resource and
/// name (or one URL), as upstream's Covers breaks rules down.
pub fn covers(held: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    wanted
        .iter()
        .flat_map(breakdown)
        .filter(|atom| !held.iter().any(|owner| rule_covers(owner, atom)))
        .collect()
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
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    let (o_groups, s_groups) = (list(&owner.api_groups), list(&sub.api_groups));
    let (o_res, s_res) = (list(&owner.resources), list(&sub.resources));
    let (o_names, s_names) = (list(&owner.resource_names), list(&sub.resource_names));
    let (o_urls, s_urls) = (list(&owner.non_resource_urls), list(&sub.non_resource_urls));
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&o_groups, "*") || has_all(&o_groups, &s_groups);
    let resources = has(&o_res, "*")
        || s_res.iter().all(|r| {
            has(&o_res, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&o_res, &format!("*/{sub}")))
        });
    let urls = has(&o_urls, "*")
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
        o_names.is_empty() || has_all(&o_names, &s_names)
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

/// Upstream's message, missing rules that differ only in their verb merged into one.
fn not_held_message(user: &UserInfo, missing: &[PolicyRule]) -> String {
    let mut compact: Vec<PolicyRule> = Vec::new();
    for atom in missing {
        let same_target = compact.iter_mut().find(|r| {
            r.api_groups == atom.api_groups
                && r.resources == atom.resources
                && r.resource_names.is_none()
                && atom.resource_names.is_none()
                && r.non_resource_urls.is_none()
                && atom.non_resource_urls.is_none()
        });
        match same_target {
            Some(r) if !r.verbs.contains(&atom.verbs[0]) => r.verbs.push(atom.verbs[0].clone()),
            Some(_) => {}
            None => compact.push(atom.clone()),
        }
    }
    let mut lines: Vec<String> = compact.iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            resource_names: (!names.is_empty()).then(|| v(names)),
            non_resource_urls: None,
        }
    }

    fn check(held: &[PolicyRule], wanted: &[PolicyRule], covered: bool) {
        assert_eq!(
            covers(held, wanted).is_empty(),
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
    fn message_is_upstreams() {
        let user = UserInfo::new("bob", vec![]);
        let missing = covers(
            &[],
            &[
                rule(&["get", "list"], &[""], &["secrets"], &[]),
                rule(&["get"], &["apps"], &["deployments"], &["web"]),
            ],
        );
        assert_eq!(
            not_held_message(&user, &missing),
            "user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], ResourceNames:[\"web\"], Verbs:[\"get\"]}"
        );
    }
}
