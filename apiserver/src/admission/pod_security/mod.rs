//! Upstream's PodSecurity admission: the Pod Security Standards (privileged, baseline,
//! restricted, each as of a version) that a namespace's `pod-security.kubernetes.io/*` labels
//! choose. A pod that violates the enforce level is refused 403; the warn level's violations
//! come back as `Warning` headers and the audit level's as the request's audit annotation.
//! Workloads with pod templates are only ever warned and audited, so a Deployment is never
//! refused for what its pods would be. Raising a namespace's enforce level warns about the
//! pods already there that it would refuse.
//!
//! A namespace without labels gets the [`Configuration`]'s defaults (privileged:latest unless
//! --admission-control-config-file says otherwise), and its exemptions (users, runtime
//! classes, namespaces) are left alone.

pub mod checks;
pub mod config;

use std::fmt;

use serde_json::{Map, Value};

use crate::audit::filter as audit;
use crate::meta;
use crate::registry;
use crate::registry::Target;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult, Cause};

pub use checks::Violation;
pub use config::Configuration;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// The minor version "latest" means: tetsu serves v1.33.
pub const LATEST_MINOR: u32 = 33;

/// How many existing pods a new enforce level is checked against, as upstream.
const MAX_PODS_TO_CHECK: usize = 3000;

/// A level of the standard, least restrictive first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// An unknown level reads as restricted (fail closed), with upstream's error.
    fn parse(s: &str) -> Result<Level, (Level, &'static str)> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err((
                Level::Restricted,
                "must be one of privileged, baseline, restricted",
            )),
        }
    }
}

/// A version of the standard: `latest` or v1.x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Latest,
    Minor(u32),
}

impl Version {
    /// An unknown version reads as latest, with upstream's error.
    fn parse(s: &str) -> Result<Version, (Version, &'static str)> {
        let invalid = (Version::Latest, "must be \"latest\" or \"v1.x\"");
        if s == "latest" {
            return Ok(Version::Latest);
        }
        let minor = s.strip_prefix("v1.").ok_or(invalid)?;
        // v1.0 or v1.N without leading zeros, as upstream's ^v1\.([0-9]|[1-9][0-9]*)$.
        if minor.is_empty()
            || !minor.bytes().all(|b| b.is_ascii_digit())
            || (minor.len() > 1 && minor.starts_with('0'))
        {
            return Err(invalid);
        }
        minor.parse().map(Version::Minor).map_err(|_| invalid)
    }

    /// The checks a version runs: a version newer than this server's are latest's.
    fn minor(self) -> u32 {
        match self {
            Version::Latest => LATEST_MINOR,
            Version::Minor(m) => m.min(LATEST_MINOR),
        }
    }
}

/// A level as of a version, shown as upstream's `restricted:latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Version::Latest => write!(f, "{}:latest", self.level.as_str()),
            Version::Minor(m) => write!(f, "{}:v1.{m}", self.level.as_str()),
        }
    }
}

impl LevelVersion {
    const PRIVILEGED: LevelVersion = LevelVersion {
        level: Level::Privileged,
        version: Version::Latest,
    };

    /// The violations of a pod's (or pod template's) metadata and spec.
    pub fn evaluate(self, meta: &Value, spec: &Value) -> Vec<Violation> {
        checks::evaluate(self.level, self.version.minor(), meta, spec)
    }
}

/// What a namespace's labels ask for in each mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Policy {
    pub const PRIVILEGED: Policy = Policy {
        enforce: LevelVersion::PRIVILEGED,
        audit: LevelVersion::PRIVILEGED,
        warn: LevelVersion::PRIVILEGED,
    };

    /// The policy of a namespace's labels, with the labels' errors. As upstream: a bad enforce
    /// level fails closed (restricted), bad audit and warn levels fail open (privileged), and a
    /// warn level left unset follows a stricter enforce level.
    pub fn from_labels(labels: &Value, defaults: Policy) -> (Policy, Vec<Cause>) {
        let mut policy = defaults;
        let mut errors = Vec::new();
        let label = |mode: &str| {
            let key = format!("{LABEL_PREFIX}{mode}");
            labels[&key].as_str().map(|v| (key, v.to_owned()))
        };
        let mut read = |mode: &str, lv: &mut LevelVersion| -> (bool, bool) {
            let mut level_ok = false;
            let level = label(mode);
            if let Some((key, value)) = &level {
                match Level::parse(value) {
                    Ok(l) => {
                        lv.level = l;
                        level_ok = true;
                    }
                    Err((fallback, why)) => {
                        lv.level = if mode == "enforce" {
                            fallback
                        } else {
                            Level::Privileged
                        };
                        errors.push(Cause::invalid(
                            label_field(key),
                            &Value::from(value.as_str()),
                            why,
                        ));
                    }
                }
            }
            let version = label(&format!("{mode}-version"));
            if let Some((key, value)) = &version {
                lv.version = Version::parse(value).unwrap_or_else(|(fallback, why)| {
                    errors.push(Cause::invalid(
                        label_field(key),
                        &Value::from(value.as_str()),
                        why,
                    ));
                    fallback
                });
            }
            (level_ok, version.is_some())
        };
        let (enforce_level, _) = read("enforce", &mut policy.enforce);
        read("audit", &mut policy.audit);
        let had_warn_level = label("warn").is_some();
        let (_, warn_version) = read("warn", &mut policy.warn);
        if !had_warn_level && enforce_level && policy.enforce.level > policy.warn.level {
            policy.warn.level = policy.enforce.level;
            if !warn_version {
                policy.warn.version = policy.enforce.version;
            }
        }
        (policy, errors)
    }

    /// Upstream's Equivalent: each mode the same, or privileged whatever its version.
    fn equivalent(&self, other: &Policy) -> bool {
        let same = |a: LevelVersion, b: LevelVersion| {
            a == b || (a.level == Level::Privileged && b.level == Level::Privileged)
        };
        same(self.enforce, other.enforce)
            && same(self.audit, other.audit)
            && same(self.warn, other.warn)
    }

    fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }
}

fn label_field(key: &str) -> String {
    format!("metadata.labels[{key}]")
}

/// Upstream's ForbiddenDetail: `reason (detail), reason (detail)`.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect();
    parts.join(", ")
}

/// Upstream's ForbiddenReason: the reasons alone.
fn forbidden_reason(violations: &[Violation]) -> String {
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
    reasons.join(", ")
}

/// The warning a violation of `lv` gives.
fn would_violate(lv: LevelVersion, violations: &[Violation]) -> String {
    format!(
        "would violate PodSecurity \"{lv}\": {}",
        forbidden_detail(violations)
    )
}

/// Resources whose objects carry a pod template, and where in the object it is.
const TEMPLATES: &[(&str, &str, &[&str])] = &[
    ("", "podtemplates", &["template"]),
    ("", "replicationcontrollers", &["spec", "template"]),
    ("apps", "replicasets", &["spec", "template"]),
    ("apps", "deployments", &["spec", "template"]),
    ("apps", "daemonsets", &["spec", "template"]),
    ("apps", "statefulsets", &["spec", "template"]),
    ("batch", "jobs", &["spec", "template"]),
    (
        "batch",
        "cronjobs",
        &["spec", "jobTemplate", "spec", "template"],
    ),
];

/// Pod subresources whose writes upstream never evaluates.
const IGNORED_POD_SUBRESOURCES: [&str; 8] = [
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// PodSecurity on a create (`old` None) or update of `obj` at `target`: the warnings to
/// return, or the refusal. What it decides is noted in the request's audit event.
pub async fn admit(
    state: &ApiState,
    target: &Target,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<Vec<String>> {
    let resource = &*target.resource;
    let config = &state.admission.pod_security_config;
    let exempt = |what: &'static str| {
        audit::annotate(EXEMPT, what.to_owned());
        Ok(Vec::new())
    };
    let exempt_namespace = config.exemptions.namespaces.contains(&target.namespace);
    let exempt_user =
        || crate::auth::requesting_user().is_some_and(|u| config.exemptions.usernames.contains(&u));
    match (resource.group.as_str(), resource.plural.as_str()) {
        ("", "namespaces") if target.subresource.is_empty() => admit_namespace(state, obj, old),
        ("", "pods") if !IGNORED_POD_SUBRESOURCES.contains(&target.subresource.as_str()) => {
            if exempt_namespace {
                return exempt("namespace");
            }
            if exempt_user() {
                return exempt("user");
            }
            let Some(labels) = namespace_labels(state, &target.namespace).await else {
                return Err(ApiError::internal(format!(
                    "failed to lookup namespace \"{}\"",
                    target.namespace
                )));
            };
            let (policy, errors) = Policy::from_labels(&labels, config.defaults);
            if errors.is_empty() && policy.fully_privileged() {
                audit::annotate(ENFORCE_POLICY, LevelVersion::PRIVILEGED.to_string());
                return Ok(Vec::new());
            }
            if old.is_some_and(|old| !significant_pod_update(obj, old)) {
                return Ok(Vec::new());
            }
            if exempt_runtime_class(config, &obj["spec"]) {
                return exempt("runtimeClass");
            }
            let pod = Evaluated {
                policy,
                errors: &errors,
                meta: &obj["metadata"],
                spec: &obj["spec"],
            };
            pod.judge(Some(&target.name))
        }
        (group, plural) if target.subresource.is_empty() => {
            let Some((_, _, path)) = TEMPLATES
                .iter()
                .find(|(g, p, _)| *g == group && *p == plural)
            else {
                return Ok(Vec::new());
            };
            if exempt_namespace {
                return exempt("namespace");
            }
            if exempt_user() {
                return exempt("user");
            }
            // A workload is never refused: upstream allows it when its namespace cannot be read.
            let Some(labels) = namespace_labels(state, &target.namespace).await else {
                return Ok(Vec::new());
            };
            let (policy, errors) = Policy::from_labels(&labels, config.defaults);
            let quiet =
                policy.warn.level == Level::Privileged && policy.audit.level == Level::Privileged;
            let template = path.iter().fold(obj, |v, k| &v[*k]);
            if (errors.is_empty() && quiet) || !template.is_object() {
                return Ok(Vec::new());
            }
            if exempt_runtime_class(config, &template["spec"]) {
                return exempt("runtimeClass");
            }
            let workload = Evaluated {
                policy,
                errors: &errors,
                meta: &template["metadata"],
                spec: &template["spec"],
            };
            workload.judge(None)
        }
        _ => Ok(Vec::new()),
    }
}

/// A pod whose runtime class the configuration exempts.
fn exempt_runtime_class(config: &Configuration, spec: &Value) -> bool {
    spec["runtimeClassName"].as_str().is_some_and(|rc| {
        !rc.is_empty() && config.exemptions.runtime_classes.iter().any(|e| e == rc)
    })
}

const EXEMPT: &str = "pod-security.kubernetes.io/exempt";
const ENFORCE_POLICY: &str = "pod-security.kubernetes.io/enforce-policy";
const AUDIT_VIOLATIONS: &str = "pod-security.kubernetes.io/audit-violations";
const POLICY_ERROR: &str = "pod-security.kubernetes.io/error";

/// A pod or pod template under its namespace's policy.
struct Evaluated<'a> {
    policy: Policy,
    errors: &'a [Cause],
    meta: &'a Value,
    spec: &'a Value,
}

impl Evaluated<'_> {
    /// Upstream's EvaluatePod: the enforce level refuses a pod (`enforced`, named), the audit
    /// level's violations go to the audit event, and the warn level's come back as warnings
    /// when the write is allowed.
    fn judge(&self, enforced: Option<&str>) -> ApiResult<Vec<String>> {
        if !self.errors.is_empty() {
            let rendered: Vec<String> = self.errors.iter().map(Cause::render).collect();
            let aggregate = if rendered.len() == 1 {
                rendered[0].clone()
            } else {
                format!("[{}]", rendered.join(", "))
            };
            audit::annotate(POLICY_ERROR, format!("Failed to parse policy: {aggregate}"));
        }
        let Policy {
            enforce,
            audit: audit_level,
            warn,
        } = self.policy;
        let evaluate = |lv: LevelVersion| lv.evaluate(self.meta, self.spec);
        let mut refusal = None;
        let enforced_violations = enforced.map(|name| {
            audit::annotate(ENFORCE_POLICY, enforce.to_string());
            let violations = evaluate(enforce);
            if !violations.is_empty() {
                refusal = Some(ApiError::forbidden(
                    "",
                    "pods",
                    name,
                    &format!(
                        "violates PodSecurity \"{enforce}\": {}",
                        forbidden_detail(&violations)
                    ),
                ));
            }
            violations
        });
        let same_as_enforced = |lv: LevelVersion| {
            enforced_violations
                .as_ref()
                .filter(|_| lv == enforce)
                .cloned()
        };
        let audited = same_as_enforced(audit_level).unwrap_or_else(|| evaluate(audit_level));
        if !audited.is_empty() {
            audit::annotate(AUDIT_VIOLATIONS, would_violate(audit_level, &audited));
        }
        if let Some(refused) = refusal {
            return Err(refused);
        }
        let warned = same_as_enforced(warn).unwrap_or_else(|| evaluate(warn));
        if warned.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![would_violate(warn, &warned)])
    }
}

/// A pod update upstream evaluates: containers added or removed, an image changed, or an
/// ephemeral container added or changed (the rest of a pod's spec cannot change).
fn significant_pod_update(new: &Value, old: &Value) -> bool {
    let list = |pod: &Value, field: &str| -> Vec<Value> {
        pod["spec"][field].as_array().cloned().unwrap_or_default()
    };
    for field in ["containers", "initContainers"] {
        let (n, o) = (list(new, field), list(old, field));
        if n.len() != o.len() || n.iter().zip(&o).any(|(a, b)| a["image"] != b["image"]) {
            return true;
        }
    }
    let old_ephemeral = list(old, "ephemeralContainers");
    list(new, "ephemeralContainers").iter().any(|c| {
        old_ephemeral
            .iter()
            .find(|o| o["name"] == c["name"])
            .is_none_or(|o| o["image"] != c["image"])
    })
}

/// A namespace's labels refer to valid levels and versions; raising its enforce level warns
/// about the pods already there that the new level would refuse.
fn admit_namespace(state: &ApiState, obj: &Value, old: Option<&Value>) -> ApiResult<Vec<String>> {
    let name = meta::name(obj);
    let config = &state.admission.pod_security_config;
    let labels = &obj["metadata"]["labels"];
    let (policy, errors) = Policy::from_labels(labels, config.defaults);
    let invalid = |errors: Vec<Cause>| ApiError::invalid("", "Namespace", name, errors);
    let exempt = config.exemptions.namespaces.iter().any(|n| n == name);
    let exempt_warning = || exempt_namespace_warning(config, name, policy, labels);
    let Some(old) = old else {
        return if !errors.is_empty() {
            Err(invalid(errors))
        } else if exempt {
            Ok(exempt_warning())
        } else {
            Ok(Vec::new())
        };
    };
    let (old_policy, old_errors) = Policy::from_labels(&old["metadata"]["labels"], config.defaults);
    let rendered = |c: &[Cause]| c.iter().map(Cause::render).collect::<Vec<_>>();
    if !errors.is_empty() && (old_errors.is_empty() || rendered(&errors) != rendered(&old_errors)) {
        return Err(invalid(errors));
    }
    let (new, old) = (policy.enforce, old_policy.enforce);
    if new == old
        || new.level == Level::Privileged
        || (new.version == old.version && new.level <= old.level)
    {
        return Ok(Vec::new());
    }
    if exempt {
        return Ok(exempt_warning());
    }
    Ok(existing_pod_warnings(state, config, name, new))
}

/// Upstream's warning that an exempt namespace's labels will be ignored, naming the modes
/// its labels set; none when they change nothing.
fn exempt_namespace_warning(
    config: &Configuration,
    name: &str,
    policy: Policy,
    labels: &Value,
) -> Vec<String> {
    if policy.fully_privileged() || policy.equivalent(&config.defaults) {
        return Vec::new();
    }
    let labelled = |mode: &str| {
        labels.get(format!("{LABEL_PREFIX}{mode}")).is_some()
            || labels
                .get(format!("{LABEL_PREFIX}{mode}-version"))
                .is_some()
    };
    let modes = [
        ("enforce", policy.enforce),
        ("audit", policy.audit),
        ("warn", policy.warn),
    ];
    let named: Vec<String> = modes
        .into_iter()
        .filter(|(mode, lv)| lv.level != Level::Privileged && labelled(mode))
        .map(|(mode, lv)| format!("{mode}={lv}"))
        .collect();
    vec![format!(
        "namespace \"{name}\" is exempt from Pod Security, and the policy ({}) will be ignored",
        named.join(", ")
    )]
}

/// Upstream's warnings about a namespace's pods under a new enforce level: one line per
/// distinct set of reasons, naming the first pod by name and how many others share it. Pods
/// of a controller already seen are checked last.
fn existing_pod_warnings(
    state: &ApiState,
    config: &Configuration,
    namespace: &str,
    enforce: LevelVersion,
) -> Vec<String> {
    let pods = registry::builtin("", "v1", "pods").expect("pods are served");
    let snapshot = state.cache.list(pods, namespace);
    let all: Vec<Value> = snapshot.objects.iter().map(|o| o.value()).collect();
    let mut seen_controllers = Vec::new();
    let (mut first, mut duplicates) = (Vec::new(), Vec::new());
    for pod in all
        .iter()
        .filter(|p| !exempt_runtime_class(config, &p["spec"]))
    {
        let controller = pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["controller"] == true)
            .map(|r| r["uid"].clone());
        match controller {
            Some(uid) if seen_controllers.contains(&uid) => duplicates.push(pod),
            Some(uid) => {
                seen_controllers.push(uid);
                first.push(pod);
            }
            None => first.push(pod),
        }
    }
    first.extend(duplicates);
    let total = first.len();
    first.truncate(MAX_PODS_TO_CHECK);
    // reason -> (first pod by name, count), in the order first seen.
    let mut found: Vec<(String, String, usize)> = Vec::new();
    for pod in &first {
        let violations = enforce.evaluate(&pod["metadata"], &pod["spec"]);
        if violations.is_empty() {
            continue;
        }
        let reason = forbidden_reason(&violations);
        let pod_name = meta::name(pod);
        match found.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, name, count)) => {
                if pod_name < name.as_str() {
                    *name = pod_name.to_owned();
                }
                *count += 1;
            }
            None => found.push((reason, pod_name.to_owned(), 1)),
        }
    }
    let mut warnings = Vec::new();
    if first.len() < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {} of {total} existing pods",
            first.len()
        ));
    }
    if !found.is_empty() {
        warnings.push(format!(
            "existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"{enforce}\""
        ));
    }
    let mut pod_warnings: Vec<String> = found
        .into_iter()
        .map(|(reason, name, count)| match count {
            1 => format!("{name}: {reason}"),
            2 => format!("{name} (and 1 other pod): {reason}"),
            n => format!("{name} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

/// A namespace's labels, from the watch cache or, when it trails, the store; None when the
/// namespace cannot be found.
async fn namespace_labels(state: &ApiState, namespace: &str) -> Option<Value> {
    let namespaces = registry::builtin("", "v1", "namespaces").expect("namespaces are served");
    let key = format!("{}/namespaces/{namespace}", state.root);
    let found = match state.cache.get(namespaces, &key) {
        Some(o) => o.value(),
        None => {
            let kv = state.store.get(&key).await.ok()??;
            serde_json::from_slice(&kv.value).ok()?
        }
    };
    Some(
        found["metadata"]["labels"]
            .as_object()
            .cloned()
            .map(Value::Object)
            .unwrap_or_else(|| Value::Object(Map::new())),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A pod restricted admits: every check passes at every level.
    fn compliant() -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "image": "busybox", "securityContext": {
                    "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            },
        })
    }

    /// The compliant pod with `patch` merged in (JSON merge patch).
    fn pod(patch: Value) -> Value {
        let mut p = compliant();
        json_patch::merge(&mut p, &patch);
        p
    }

    fn lv(level: Level, version: &str) -> LevelVersion {
        LevelVersion {
            level,
            version: Version::parse(version).unwrap(),
        }
    }

    /// The message a pod gets at `level`:`version`; empty when admitted.
    fn detail(pod: &Value, level: Level, version: &str) -> String {
        forbidden_detail(&lv(level, version).evaluate(&pod["metadata"], &pod["spec"]))
    }

    fn container(sc: Value) -> Value {
        let mut sc_all =
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
        json_patch::merge(&mut sc_all, &sc);
        json!({"spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": sc_all}]}})
    }

    #[test]
    fn every_check_refuses_at_its_level_and_not_below() {
        use Level::*;
        // (pod, the lowest level refusing it, upstream's message at that level)
        let cases = [
            (
                json!({"spec": {"securityContext": {"windowsOptions": {"hostProcess": true}}}}),
                Baseline,
                "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
            ),
            (
                json!({"spec": {"hostNetwork": true, "hostPID": true, "hostIPC": true}}),
                Baseline,
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
            ),
            (
                container(json!({"privileged": true})),
                Baseline,
                "privileged (container \"c\" must not set securityContext.privileged=true)",
            ),
            (
                container(json!({"capabilities": {"add": ["SYS_TIME", "NET_ADMIN", "CHOWN"]}})),
                Baseline,
                "non-default capabilities (container \"c\" must not include \"NET_ADMIN\", \"SYS_TIME\" in securityContext.capabilities.add)",
            ),
            (
                json!({"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}),
                Baseline,
                "hostPath volumes (volume \"h\")",
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}),
                Baseline,
                "hostPort (container \"c\" uses hostPort 8080)",
            ),
            (
                json!({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}}}),
                Baseline,
                "forbidden AppArmor profile (annotation must not set AppArmor profile type to \"container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"\")",
            ),
            (
                container(json!({"appArmorProfile": {"type": "Unconfined"}})),
                Baseline,
                "forbidden AppArmor profile (container \"c\" must not set AppArmor profile type to \"Unconfined\")",
            ),
            (
                json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "u"}}}}),
                Baseline,
                "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set)",
            ),
            (
                container(json!({"procMount": "Unmasked"})),
                Baseline,
                "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")",
            ),
            (
                json!({"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}}),
                Baseline,
                "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")",
            ),
            (
                json!({"spec": {"securityContext": {"sysctls": [
                    {"name": "net.ipv4.tcp_rmem", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]}}}),
                Baseline,
                "forbidden sysctls (kernel.msgmax)",
            ),
            (
                container(json!({"allowPrivilegeEscalation": true})),
                Restricted,
                "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)",
            ),
            (
                container(
                    json!({"capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE", "CHOWN"]}}),
                ),
                Restricted,
                "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"c\" must not include \"CHOWN\" in securityContext.capabilities.add)",
            ),
            (
                json!({"spec": {"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}},
                    {"name": "ok", "emptyDir": {}}, {"name": "g", "gitRepo": {"repository": "r"}}]}}),
                Restricted,
                "restricted volume types (volumes \"n\", \"g\" use restricted volume types \"gitRepo\", \"nfs\")",
            ),
            (
                json!({"spec": {"securityContext": {"runAsNonRoot": false}}}),
                Restricted,
                "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
            ),
            (
                json!({"spec": {"securityContext": {"runAsUser": 0}}}),
                Restricted,
                "runAsUser=0 (pod must not set runAsUser=0)",
            ),
            (
                json!({"spec": {"securityContext": {"seccompProfile": null}}}),
                Restricted,
                "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            ),
        ];
        for (patch, level, message) in cases {
            let p = pod(patch.clone());
            let below = if level == Baseline {
                Privileged
            } else {
                Baseline
            };
            assert_eq!(detail(&p, below, "latest"), "", "{patch} at {below:?}");
            assert_eq!(detail(&p, level, "latest"), message, "{patch}");
            if level == Baseline {
                // Restricted refuses it too, for the same reason or its stricter form.
                assert_ne!(detail(&p, Restricted, "latest"), "", "{patch}");
            }
        }
        assert_eq!(detail(&compliant(), Restricted, "latest"), "");
    }

    #[test]
    fn restricted_replaces_the_baseline_checks_it_tightens() {
        let caps = pod(container(json!({"capabilities": {"add": ["SYS_TIME"]}})));
        assert_eq!(
            detail(&caps, Level::Restricted, "latest"),
            "unrestricted capabilities (container \"c\" must not include \"SYS_TIME\" in securityContext.capabilities.add)"
        );
        let host = pod(json!({"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}));
        assert_eq!(
            detail(&host, Level::Restricted, "latest"),
            "restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")"
        );
    }

    #[test]
    fn a_bare_pod_at_restricted_gets_upstreams_message() {
        let bare = json!({"metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        assert_eq!(
            detail(&bare, Level::Restricted, "latest"),
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert_eq!(detail(&bare, Level::Baseline, "latest"), "");
    }

    #[test]
    fn versions_run_the_checks_of_their_release() {
        let root = pod(json!({"spec": {"securityContext": {"runAsUser": 0}}}));
        assert_eq!(detail(&root, Level::Restricted, "v1.22"), "");
        assert_ne!(detail(&root, Level::Restricted, "v1.23"), "");
        let rmem =
            pod(json!({"spec": {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem"}]}}}));
        assert_eq!(
            detail(&rmem, Level::Baseline, "v1.31"),
            "forbidden sysctls (net.ipv4.tcp_rmem)"
        );
        assert_eq!(detail(&rmem, Level::Baseline, "v1.32"), "");
        // Versions after this server's run latest's checks.
        assert_eq!(detail(&rmem, Level::Baseline, "v1.99"), "");
        let windows = json!({"metadata": {"name": "w"}, "spec": {"os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}});
        assert_eq!(detail(&windows, Level::Restricted, "latest"), "");
        assert!(
            detail(&windows, Level::Restricted, "v1.24").starts_with("allowPrivilegeEscalation")
        );
        // Before v1.19 seccomp was annotations.
        let annotated = pod(json!({"metadata": {"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}}));
        assert_eq!(
            detail(&annotated, Level::Baseline, "v1.18"),
            "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
        );
        assert_eq!(detail(&annotated, Level::Baseline, "latest"), "");
        // Ephemeral and init containers are checked as containers.
        let debug = pod(
            json!({"spec": {"initContainers": [{"name": "i", "securityContext": {"privileged": true}}],
            "ephemeralContainers": [{"name": "e", "securityContext": {"privileged": true}}]}}),
        );
        assert_eq!(
            detail(&debug, Level::Baseline, "latest"),
            "privileged (containers \"i\", \"e\" must not set securityContext.privileged=true)"
        );
    }

    #[test]
    fn labels_choose_the_policy() {
        let policy = |labels: Value| Policy::from_labels(&labels, Policy::PRIVILEGED);
        let (p, errors) = policy(json!({}));
        assert!(p.fully_privileged() && errors.is_empty());
        let (p, _) = policy(json!({"pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.30"}));
        assert_eq!(p.enforce.to_string(), "baseline:v1.30");
        // An unset warn level follows a stricter enforce level.
        assert_eq!(p.warn.to_string(), "baseline:v1.30");
        assert_eq!(p.audit.to_string(), "privileged:latest");
        let (p, _) = policy(json!({"pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted"}));
        assert_eq!(p.warn.to_string(), "restricted:latest");
        // Bad values: enforce fails closed, warn and audit open; each is an error.
        let (p, errors) = policy(json!({"pod-security.kubernetes.io/enforce": "strict",
            "pod-security.kubernetes.io/warn": "loud", "pod-security.kubernetes.io/audit-version": "1.2"}));
        assert_eq!(p.enforce.to_string(), "restricted:latest");
        assert_eq!(p.warn.to_string(), "privileged:latest");
        let rendered: Vec<String> = errors.iter().map(Cause::render).collect();
        assert_eq!(
            rendered,
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"1.2\": must be \"latest\" or \"v1.x\"",
                "metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"loud\": must be one of privileged, baseline, restricted",
            ]
        );
        for bad in ["v1.01", "v2.0", "v1.", "V1.2"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Version::parse("v1.0"), Ok(Version::Minor(0)));
    }

    #[test]
    fn only_image_and_container_changes_are_evaluated_on_update() {
        let old = compliant();
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(!significant_pod_update(&labelled, &old));
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("nginx");
        assert!(significant_pod_update(&image, &old));
        let mut debug = old.clone();
        debug["spec"]["ephemeralContainers"] = json!([{"name": "d", "image": "busybox"}]);
        assert!(significant_pod_update(&debug, &old));
        assert!(!significant_pod_update(&debug, &debug));
    }
}
