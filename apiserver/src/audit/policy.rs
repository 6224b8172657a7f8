//! The audit Policy (audit.k8s.io/v1, `--audit-policy-file`): loading, validation with
//! upstream's rules, and the first-match evaluation that gives each request its level.

use std::path::Path;

use serde::Deserialize;

use crate::auth::UserInfo;
use crate::auth::attributes::Attributes;

/// How much of a request is recorded.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Nothing: no event is built.
    #[default]
    None,
    /// Who did what to which object, and the answer's status.
    Metadata,
    /// Metadata plus the request's body.
    Request,
    /// Request plus the response's body.
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// The points of a request's life at which an event is emitted.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
pub enum Stage {
    /// As soon as the request is authenticated, before it is served.
    RequestReceived,
    /// Long-running requests only (watch, exec, logs, proxy...): the headers were sent.
    ResponseStarted,
    /// The answer was sent entirely.
    ResponseComplete,
    /// Serving the request panicked.
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

/// A resource selector of a rule: `group` empty is the core group.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    /// `pods`, `pods/status`, `*/status`, `pods/*` or `*`; none means every resource.
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One rule: every non-empty selector must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyRule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// `""` matches non-namespaced resources.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Paths, or prefixes ending in `*`.
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: Option<bool>,
}

/// The Policy kind.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: serde_json::Value,
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// What the policy decided for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestAuditConfig {
    pub level: Level,
    /// The policy's and the rule's omitted stages together.
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

impl RequestAuditConfig {
    pub fn records(&self, stage: Stage) -> bool {
        !self.omit_stages.contains(&stage)
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading audit policy file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed decoding audit policy file {path}: {message}")]
    Decode { path: String, message: String },
    #[error("invalid audit policy file {path}: {}", .errors.join("; "))]
    Invalid { path: String, errors: Vec<String> },
}

impl Policy {
    /// Reads, decodes (YAML or JSON, unknown fields refused) and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        Policy::parse(&bytes).map_err(|e| match e {
            ParseError::Decode(message) => PolicyError::Decode {
                path: shown.clone(),
                message,
            },
            ParseError::Invalid(errors) => PolicyError::Invalid {
                path: shown.clone(),
                errors,
            },
        })
    }

    fn parse(bytes: &[u8]) -> Result<Policy, ParseError> {
        // JSON is YAML, so one decoder reads both.
        let policy: Policy =
            serde_yaml::from_slice(bytes).map_err(|e| ParseError::Decode(e.to_string()))?;
        if policy.kind != "Policy" || policy.api_version != "audit.k8s.io/v1" {
            return Err(ParseError::Decode(format!(
                "expected kind Policy of apiVersion audit.k8s.io/v1, got kind {:?} of apiVersion {:?}",
                policy.kind, policy.api_version
            )));
        }
        let errors = policy.validate();
        if !errors.is_empty() {
            return Err(ParseError::Invalid(errors));
        }
        Ok(policy)
    }

    /// Upstream's validation, with its field paths.
    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.rules.is_empty() {
            errors.push("rules: Required value: a policy needs at least one rule".into());
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                errors.push(format!(
                    "{at}.nonResourceURLs: Invalid value: rules cannot apply to both regular resources and non-resource URLs"
                ));
            }
            for (j, url) in rule.non_resource_urls.iter().enumerate() {
                if !url.starts_with('/') && url != "*" {
                    errors.push(format!(
                        "{at}.nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character"
                    ));
                }
                if url.trim_end_matches('*').contains('*') {
                    errors.push(format!(
                        "{at}.nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URL wildcards ('*') must be the final character of the rule"
                    ));
                }
            }
            for (j, group) in rule.resources.iter().enumerate() {
                if !group.resource_names.is_empty() && group.resources.is_empty() {
                    errors.push(format!(
                        "{at}.resources[{j}].resourceNames: Invalid value: using resourceNames requires at least one resource"
                    ));
                }
                for (k, resource) in group.resources.iter().enumerate() {
                    let (plural, sub) = resource.split_once('/').unwrap_or((resource, ""));
                    if sub.contains('/')
                        || plural.is_empty()
                        || (resource.contains('/') && sub.is_empty())
                    {
                        errors.push(format!(
                            "{at}.resources[{j}].resources[{k}]: Invalid value: {resource:?}: resources must be `resource`, `resource/subresource`, `*/subresource` or `resource/*`"
                        ));
                    }
                }
            }
        }
        errors
    }

    /// The level and stages of a request: the first rule that matches decides; none is
    /// level None.
    pub fn evaluate(&self, user: &UserInfo, attrs: &Attributes) -> RequestAuditConfig {
        let Some(rule) = self.rules.iter().find(|r| r.matches(user, attrs)) else {
            return RequestAuditConfig::default();
        };
        let mut omit_stages = self.omit_stages.clone();
        for stage in &rule.omit_stages {
            if !omit_stages.contains(stage) {
                omit_stages.push(*stage);
            }
        }
        RequestAuditConfig {
            level: rule.level,
            omit_stages,
            omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
        }
    }
}

enum ParseError {
    Decode(String),
    Invalid(Vec<String>),
}

impl PolicyRule {
    fn matches(&self, user: &UserInfo, attrs: &Attributes) -> bool {
        if !self.users.is_empty() && !self.users.contains(&user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !user.groups.iter().any(|g| self.user_groups.contains(g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&attrs.verb) {
            return false;
        }
        if attrs.resource_request {
            if !self.non_resource_urls.is_empty() {
                return false;
            }
            if !self.namespaces.is_empty() && !self.namespaces.contains(&attrs.namespace) {
                return false;
            }
            self.resources.is_empty() || self.resources.iter().any(|g| g.matches(attrs))
        } else {
            if !self.resources.is_empty() || !self.namespaces.is_empty() {
                return false;
            }
            self.non_resource_urls.is_empty()
                || self
                    .non_resource_urls
                    .iter()
                    .any(|url| match url.strip_suffix('*') {
                        Some(prefix) => attrs.path.starts_with(prefix),
                        None => attrs.path == *url,
                    })
        }
    }
}

impl GroupResources {
    fn matches(&self, attrs: &Attributes) -> bool {
        if self.group != attrs.api_group {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        if !self.resource_names.is_empty() && !self.resource_names.contains(&attrs.name) {
            return false;
        }
        self.resources.iter().any(|selector| {
            match selector.split_once('/') {
                // `*` is every resource and subresource; `pods` the object alone.
                None => {
                    selector == "*" || (attrs.subresource.is_empty() && *selector == attrs.resource)
                }
                Some(("*", sub)) => !attrs.subresource.is_empty() && sub == attrs.subresource,
                // `pods/*`: the object and every subresource of it.
                Some((plural, "*")) => plural == attrs.resource,
                Some((plural, sub)) => plural == attrs.resource && sub == attrs.subresource,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Policy {
        match Policy::parse(yaml.as_bytes()) {
            Ok(p) => p,
            Err(ParseError::Decode(e)) => panic!("decode: {e}"),
            Err(ParseError::Invalid(e)) => panic!("invalid: {e:?}"),
        }
    }

    fn refused(yaml: &str) -> String {
        match Policy::parse(yaml.as_bytes()) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(ParseError::Decode(e)) => e,
            Err(ParseError::Invalid(e)) => e.join("; "),
        }
    }

    fn request(method: &str, url: &str) -> Attributes {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Attributes::from_request(method, path, query)
    }

    fn alice() -> UserInfo {
        UserInfo::new("alice", vec!["devs".into()])
    }

    /// The level `policy` gives `user` for `method url`.
    fn check(policy: &Policy, user: &UserInfo, method: &str, url: &str, expected: Level) {
        let got = policy.evaluate(user, &request(method, url)).level;
        assert_eq!(got, expected, "{} {method} {url}", user.name);
    }

    const HEAD: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        assert!(refused("apiVersion: v1\nkind: ConfigMap\n").contains("expected kind Policy"));
        assert!(refused(&format!("{HEAD}rules: []\n")).contains("at least one rule"));
        assert!(refused(&format!("{HEAD}rules:\n- level: Verbose\n")).contains("Verbose"));
        assert!(refused(&format!("{HEAD}rules:\n- level: None\n  color: red\n")).contains("color"));
        assert!(
            refused(&format!(
                "{HEAD}rules:\n- level: None\n  omitStages: [Later]\n"
            ))
            .contains("Later")
        );
        assert!(
            refused(&format!(
                "{HEAD}rules:\n- level: None\n  nonResourceURLs: [/healthz]\n  namespaces: [a]\n"
            ))
            .contains("both regular resources and non-resource URLs")
        );
        assert!(
            refused(&format!(
                "{HEAD}rules:\n- level: None\n  nonResourceURLs: [healthz]\n"
            ))
            .contains("must begin with a '/'")
        );
        assert!(
            refused(&format!(
                "{HEAD}rules:\n- level: None\n  nonResourceURLs: ['/a*b']\n"
            ))
            .contains("final character")
        );
        assert!(
            refused(&format!(
                "{HEAD}rules:\n- level: None\n  resources: [{{group: '', resourceNames: [x]}}]\n"
            ))
            .contains("requires at least one resource")
        );
        assert!(
            refused(&format!(
                "{HEAD}rules:\n- level: None\n  resources: [{{resources: [a/b/c]}}]\n"
            ))
            .contains("resources[0].resources[0]")
        );
        // JSON is read too.
        let json =
            r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Metadata"}]}"#;
        assert_eq!(policy(json).rules[0].level, Level::Metadata);
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = policy(&format!(
            "{HEAD}rules:\n- level: None\n  users: [bob]\n- level: RequestResponse\n  verbs: [create]\n- level: Metadata\n"
        ));
        let bob = UserInfo::new("bob", vec![]);
        check(&p, &bob, "POST", "/api/v1/namespaces/a/pods", Level::None);
        check(
            &p,
            &alice(),
            "POST",
            "/api/v1/namespaces/a/pods",
            Level::RequestResponse,
        );
        check(
            &p,
            &alice(),
            "GET",
            "/api/v1/namespaces/a/pods",
            Level::Metadata,
        );
        // No rule matches: None.
        let only_bob = policy(&format!(
            "{HEAD}rules:\n- level: Metadata\n  users: [bob]\n"
        ));
        check(&only_bob, &alice(), "GET", "/api/v1/pods", Level::None);
    }

    #[test]
    fn each_selector_kind_matches_as_upstream() {
        let p = policy(&format!(
            r#"{HEAD}rules:
- level: Request
  userGroups: [admins]
- level: RequestResponse
  resources: [{{group: rbac.authorization.k8s.io}}]
- level: None
  resources: [{{group: "", resources: [pods/status]}}]
- level: Request
  resources: [{{group: "", resources: ["*/scale"]}}]
- level: Request
  resources: [{{group: apps, resources: ["deployments/*"]}}]
- level: RequestResponse
  resources: [{{group: "", resources: [secrets], resourceNames: [db]}}]
- level: None
  namespaces: [""]
  resources: [{{group: "", resources: [nodes, namespaces]}}]
- level: None
  nonResourceURLs: [/healthz*, /version]
- level: Request
  namespaces: [kube-system]
- level: Metadata
"#
        ));
        let admin = UserInfo::new("carol", vec!["admins".into()]);
        check(&p, &admin, "GET", "/healthz", Level::Request);
        let a = alice();
        let rbac = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
        check(&p, &a, "POST", rbac, Level::RequestResponse);
        check(
            &p,
            &a,
            "PUT",
            "/api/v1/namespaces/a/pods/p/status",
            Level::None,
        );
        check(
            &p,
            &a,
            "PUT",
            "/api/v1/namespaces/a/pods/p",
            Level::Metadata,
        );
        check(
            &p,
            &a,
            "PUT",
            "/api/v1/namespaces/a/replicationcontrollers/r/scale",
            Level::Request,
        );
        check(
            &p,
            &a,
            "GET",
            "/apis/apps/v1/namespaces/a/deployments/d",
            Level::Request,
        );
        check(
            &p,
            &a,
            "GET",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            Level::Request,
        );
        check(
            &p,
            &a,
            "GET",
            "/apis/apps/v1/namespaces/a/replicasets/r",
            Level::Metadata,
        );
        check(
            &p,
            &a,
            "GET",
            "/api/v1/namespaces/a/secrets/db",
            Level::RequestResponse,
        );
        check(
            &p,
            &a,
            "GET",
            "/api/v1/namespaces/a/secrets/other",
            Level::Metadata,
        );
        // `""` is the non-namespaced requests: the Node, and a Namespace itself.
        check(&p, &a, "GET", "/api/v1/nodes/n1", Level::None);
        check(&p, &a, "GET", "/api/v1/namespaces/a", Level::Metadata);
        check(&p, &a, "GET", "/api/v1/namespaces", Level::None);
        check(&p, &a, "GET", "/healthz", Level::None);
        check(&p, &a, "GET", "/healthz/etcd", Level::None);
        check(&p, &a, "GET", "/version", Level::None);
        check(&p, &a, "GET", "/version/x", Level::Metadata);
        check(
            &p,
            &a,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps",
            Level::Request,
        );
    }

    #[test]
    fn omitted_stages_and_managed_fields_combine_policy_and_rule() {
        let p = policy(&format!(
            "{HEAD}omitStages: [RequestReceived]\nomitManagedFields: true\nrules:\n- level: Metadata\n  verbs: [watch]\n  omitStages: [ResponseStarted]\n  omitManagedFields: false\n- level: Request\n"
        ));
        let watch = p.evaluate(&alice(), &request("GET", "/api/v1/pods?watch=1"));
        assert_eq!(
            watch.omit_stages,
            [Stage::RequestReceived, Stage::ResponseStarted]
        );
        assert!(!watch.records(Stage::ResponseStarted));
        assert!(watch.records(Stage::ResponseComplete));
        assert!(!watch.omit_managed_fields);
        let get = p.evaluate(&alice(), &request("GET", "/api/v1/pods"));
        assert_eq!(get.level, Level::Request);
        assert_eq!(get.omit_stages, [Stage::RequestReceived]);
        assert!(get.omit_managed_fields);
    }
}
