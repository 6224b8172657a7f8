//! rbac.authorization.k8s.io validation: roles' rules and bindings' roleRef and subjects, as
//! upstream's pkg/apis/rbac/validation.

use serde_json::{Value, json};

use super::fields::{self, items, text};
use crate::meta::{NameRule, validate_name};
use crate::status::Cause;

const GROUP: &str = "rbac.authorization.k8s.io";

/// `[]string{"a", "b"}`, as Go prints a string slice in a message.
fn go_strings(v: &Value) -> String {
    let quoted: Vec<String> = items(v)
        .iter()
        .map(|s| format!("\"{}\"", s.as_str().unwrap_or("")))
        .collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Role (namespaced: no non-resource URLs) and ClusterRole rules; `old` is set on update.
pub fn role(obj: &Value, old: Option<&Value>, namespaced: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, rule) in items(&obj["rules"]).iter().enumerate() {
        policy_rule(rule, namespaced, &format!("rules[{i}]"), &mut causes);
    }
    let aggregation = &obj["aggregationRule"];
    if !namespaced && !aggregation.is_null() {
        let selectors = items(&aggregation["clusterRoleSelectors"]);
        if selectors.is_empty() {
            causes.push(Cause::required_detail(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        // An update may keep label values an older server let into the selectors.
        let values = old.is_none_or(|o| {
            items(&o["aggregationRule"]["clusterRoleSelectors"])
                .iter()
                .all(fields::selector_is_valid)
        });
        for (i, s) in selectors.iter().enumerate() {
            let path = format!("aggregationRule.clusterRoleSelectors[{i}]");
            fields::label_selector(s, &path, values, &mut causes);
        }
    }
    causes
}

fn policy_rule(rule: &Value, namespaced: bool, path: &str, causes: &mut Vec<Cause>) {
    if items(&rule["verbs"]).is_empty() {
        causes.push(Cause::required_detail(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = &rule["nonResourceURLs"];
    if !items(urls).is_empty() {
        let field = format!("{path}.nonResourceURLs");
        if namespaced {
            causes.push(Cause::invalid_shown(
                &field,
                &go_strings(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let resourceful = ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|f| !items(&rule[*f]).is_empty());
        if resourceful {
            causes.push(Cause::invalid_shown(
                &field,
                &go_strings(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if items(&rule["apiGroups"]).is_empty() {
        causes.push(Cause::required_detail(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if items(&rule["resources"]).is_empty() {
        causes.push(Cause::required_detail(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

/// v1 defaults: User and Group subjects are in the RBAC API group.
pub fn default_binding(obj: &mut Value) {
    for subject in obj
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        let unset = subject
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset && (kind == "User" || kind == "Group") {
            subject.insert("apiGroup".into(), json!(GROUP));
        }
    }
}

/// RoleBinding (namespaced: may reference a Role) and ClusterRoleBinding.
pub fn binding(obj: &Value, old: Option<&Value>, namespaced: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let role_ref = &obj["roleRef"];
    let group = text(role_ref, "apiGroup");
    if group != GROUP {
        causes.push(Cause::unsupported(
            "roleRef.apiGroup",
            &json!(group),
            &[GROUP],
        ));
    }
    let kind = text(role_ref, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        causes.push(Cause::unsupported("roleRef.kind", &json!(kind), kinds));
    }
    let name = text(role_ref, "name");
    if name.is_empty() {
        causes.push(Cause::required("roleRef.name"));
    } else {
        for msg in validate_name(NameRule::PathSegment, name) {
            causes.push(Cause::invalid("roleRef.name", &json!(name), msg));
        }
    }
    for (i, subject) in items(&obj["subjects"]).iter().enumerate() {
        binding_subject(subject, namespaced, &format!("subjects[{i}]"), &mut causes);
    }
    if let Some(old) = old {
        let old_ref = &old["roleRef"];
        let same = ["apiGroup", "kind", "name"]
            .iter()
            .all(|f| text(old_ref, f) == text(role_ref, f));
        if !same {
            causes.push(Cause::invalid_shown(
                "roleRef",
                &format!("rbac.RoleRef{{APIGroup:\"{group}\", Kind:\"{kind}\", Name:\"{name}\"}}"),
                "cannot change roleRef",
            ));
        }
    }
    causes
}

fn binding_subject(subject: &Value, namespaced: bool, path: &str, causes: &mut Vec<Cause>) {
    let name = text(subject, "name");
    if name.is_empty() {
        causes.push(Cause::required(format!("{path}.name")));
    }
    let group = text(subject, "apiGroup");
    match text(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                fields::dns_subdomain(&format!("{path}.name"), name, causes);
            }
            if !group.is_empty() {
                causes.push(Cause::unsupported(
                    format!("{path}.apiGroup"),
                    &json!(group),
                    &[""],
                ));
            }
            if !namespaced && text(subject, "namespace").is_empty() {
                causes.push(Cause::required(format!("{path}.namespace")));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                causes.push(Cause::unsupported(
                    format!("{path}.apiGroup"),
                    &json!(group),
                    &[GROUP],
                ));
            }
        }
        other => causes.push(Cause::unsupported(
            format!("{path}.kind"),
            &json!(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::check;
    use super::*;

    #[test]
    fn roles() {
        let ok = json!({"rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        check(role(&ok, None, true), &[], &ok);
        let cluster = json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "true"}}]}});
        check(role(&cluster, None, false), &[], &cluster);
        let bad = json!({"rules": [
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}]});
        check(
            role(&bad, None, true),
            &[
                (
                    "rules[0].verbs",
                    "Required value: verbs must contain at least one value",
                ),
                (
                    "rules[1].apiGroups",
                    "Required value: resource rules must supply at least one api group",
                ),
                (
                    "rules[1].resources",
                    "Required value: resource rules must supply at least one resource",
                ),
                (
                    "rules[2].nonResourceURLs",
                    "Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                ),
                (
                    "rules[2].nonResourceURLs",
                    "Invalid value: []string{\"/healthz\"}: rules cannot apply to both regular resources and non-resource URLs",
                ),
            ],
            &bad,
        );
        let stored = json!({"aggregationRule": {"clusterRoleSelectors": [{"matchExpressions": [
            {"key": "a", "operator": "In", "values": ["bad value"]}]}]}});
        assert_eq!(role(&stored, None, false).len(), 1);
        check(role(&stored, Some(&stored), false), &[], &stored);
        let empty_aggregation = json!({"aggregationRule": {}});
        check(
            role(&empty_aggregation, None, false),
            &[(
                "aggregationRule.clusterRoleSelectors",
                "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil",
            )],
            &empty_aggregation,
        );
    }

    #[test]
    fn bootstrap_policy_is_valid() {
        for obj in crate::auth::policy::objects() {
            let causes = match obj["kind"].as_str() {
                Some("ClusterRole") => role(&obj, None, false),
                _ => binding(&obj, None, false),
            };
            assert_eq!(causes, [], "{obj}");
        }
    }

    #[test]
    fn bindings() {
        let mut ok = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "g"},
                         {"kind": "ServiceAccount", "name": "default", "namespace": "ns"}]});
        default_binding(&mut ok);
        assert_eq!(ok["subjects"][0]["apiGroup"], GROUP);
        check(binding(&ok, None, true), &[], &ok);
        check(binding(&ok, Some(&ok), true), &[], &ok);
        let bad = json!({"roleRef": {"apiGroup": "example.com", "kind": "Policy"},
            "subjects": [{"kind": "Robot", "name": "r"}, {"kind": "ServiceAccount", "name": "Bad_SA", "apiGroup": "x"},
                         {"kind": "User", "name": "", "apiGroup": GROUP}]});
        check(
            binding(&bad, None, false),
            &[
                (
                    "roleRef.apiGroup",
                    "Unsupported value: \"example.com\": supported values: \"rbac.authorization.k8s.io\"",
                ),
                (
                    "roleRef.kind",
                    "Unsupported value: \"Policy\": supported values: \"ClusterRole\"",
                ),
                ("roleRef.name", "Required value"),
                (
                    "subjects[0].kind",
                    "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                ),
                (
                    "subjects[1].name",
                    "Invalid value: \"Bad_SA\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                ),
                (
                    "subjects[1].apiGroup",
                    "Unsupported value: \"x\": supported values: \"\"",
                ),
                ("subjects[1].namespace", "Required value"),
                ("subjects[2].name", "Required value"),
            ],
            &bad,
        );
        let moved = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "admin"}});
        check(
            binding(&moved, Some(&ok), true),
            &[(
                "roleRef",
                "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"admin\"}: cannot change roleRef",
            )],
            &moved,
        );
    }
}
