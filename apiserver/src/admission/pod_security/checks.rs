//! The checks of the Pod Security Standards, one function each, with upstream's check IDs,
//! levels, minimum versions and forbidden reasons and details, word for word: kubectl users
//! and scripts match on them. A check reads the pod's (or template's) metadata and spec as
//! JSON and answers `None` when the pod passes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Level;

/// A failed check: upstream's ForbiddenReason and ForbiddenDetail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

type CheckFn = fn(&Value, &Value, u32) -> Option<Violation>;

/// One check of the standard. `min_minor` is the first v1.x the check applies to; a restricted
/// check replaces the baseline checks in `overrides` wherever it applies.
struct Check {
    id: &'static str,
    level: Level,
    min_minor: u32,
    overrides: &'static [&'static str],
    run: CheckFn,
}

/// Baseline checks then restricted ones, each group sorted by ID: upstream's evaluation order,
/// which is the order of the reasons in a message.
const CHECKS: &[Check] = &[
    baseline("appArmorProfile", 0, app_armor_profile),
    baseline("capabilities_baseline", 0, capabilities_baseline),
    baseline("hostNamespaces", 0, host_namespaces),
    baseline("hostPathVolumes", 0, host_path_volumes),
    baseline("hostPorts", 0, host_ports),
    baseline("privileged", 0, privileged),
    baseline("procMount", 0, proc_mount),
    baseline("seLinuxOptions", 0, se_linux_options),
    baseline("seccompProfile_baseline", 0, seccomp_baseline),
    baseline("sysctls", 0, sysctls),
    baseline("windowsHostProcess", 0, windows_host_process),
    restricted(
        "allowPrivilegeEscalation",
        8,
        &[],
        allow_privilege_escalation,
    ),
    restricted(
        "capabilities_restricted",
        22,
        &["capabilities_baseline"],
        capabilities_restricted,
    ),
    restricted(
        "restrictedVolumes",
        0,
        &["hostPathVolumes"],
        restricted_volumes,
    ),
    restricted("runAsNonRoot", 0, &[], run_as_non_root),
    restricted("runAsUser", 23, &[], run_as_user),
    restricted(
        "seccompProfile_restricted",
        19,
        &["seccompProfile_baseline"],
        seccomp_restricted,
    ),
];

const fn baseline(id: &'static str, min_minor: u32, run: CheckFn) -> Check {
    Check {
        id,
        level: Level::Baseline,
        min_minor,
        overrides: &[],
        run,
    }
}

const fn restricted(
    id: &'static str,
    min_minor: u32,
    overrides: &'static [&'static str],
    run: CheckFn,
) -> Check {
    Check {
        id,
        level: Level::Restricted,
        min_minor,
        overrides,
        run,
    }
}

/// Runs the checks of `level` as of v1.`minor` on a pod's metadata and spec: the violations,
/// in upstream's order.
pub fn evaluate(level: Level, minor: u32, meta: &Value, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let applies = |c: &&Check| c.level <= level && c.min_minor <= minor;
    let overridden: Vec<&str> = CHECKS
        .iter()
        .filter(applies)
        .filter(|c| c.level == level)
        .flat_map(|c| c.overrides.iter().copied())
        .collect();
    CHECKS
        .iter()
        .filter(applies)
        .filter(|c| !(c.level == Level::Baseline && overridden.contains(&c.id)))
        .filter_map(|c| (c.run)(meta, spec, minor))
        .collect()
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

/// Init, regular and ephemeral containers, in upstream's visiting order.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |l| spec[l].as_array().into_iter().flatten())
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap_or("")
}

/// The names of the containers for which `bad` holds.
fn containers_where(spec: &Value, mut bad: impl FnMut(&Value) -> bool) -> Vec<&str> {
    containers(spec).filter(|c| bad(c)).map(name).collect()
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 { singular } else { plural }
}

fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    quoted.join(", ")
}

/// `container "a"` or `containers "a", "b"`.
fn container_list(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Who set a forbidden value: "pod", then the containers, joined by " and ".
fn setters(pod: bool, bad: &[&str]) -> String {
    let mut who = Vec::new();
    if pod {
        who.push("pod".to_owned());
    }
    if !bad.is_empty() {
        who.push(container_list(bad));
    }
    who.join(" and ")
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Go's %q of a string, as upstream quotes annotation values.
fn go_quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Windows pods are exempt from the Linux-only restricted checks from v1.25.
fn windows_exempt(spec: &Value, minor: u32) -> bool {
    minor >= 25 && spec["os"]["name"] == "windows"
}

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor_profile(meta: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let allowed_type = |t: &Value| matches!(text(t), "RuntimeDefault" | "Localhost");
    let mut bad_values = BTreeSet::new();
    let pod_profile = &spec["securityContext"]["appArmorProfile"];
    let pod_bad = pod_profile.is_object() && !allowed_type(&pod_profile["type"]);
    if pod_bad {
        bad_values.insert(text(&pod_profile["type"]).to_owned());
    }
    let bad = containers_where(spec, |c| {
        let p = &c["securityContext"]["appArmorProfile"];
        let bad = p.is_object() && !allowed_type(&p["type"]);
        if bad {
            bad_values.insert(text(&p["type"]).to_owned());
        }
        bad
    });
    let mut annotations: Vec<String> = meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(APPARMOR_ANNOTATION_PREFIX))
        .filter_map(|(k, v)| {
            let v = text(v);
            let allowed = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!allowed).then(|| format!("{k}={}", go_quote(v)))
        })
        .collect();
    annotations.sort();
    let mut who = setters(pod_bad, &bad);
    let mut values: Vec<String> = bad_values.into_iter().collect();
    if !annotations.is_empty() {
        let setter = pluralize("annotation", "annotations", annotations.len());
        who = if who.is_empty() {
            setter.to_owned()
        } else {
            format!("{who} and {setter}")
        };
        values.extend(annotations);
    }
    if who.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{who} must not set AppArmor profile type to {}",
            join_quote(&values)
        ),
    )
}

/// The capabilities a container runtime grants by default, which baseline lets a container add.
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> impl Iterator<Item = &str> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
}

fn capabilities_baseline(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut forbidden = BTreeSet::new();
    let bad = containers_where(spec, |c| {
        let extra: Vec<&str> = added_capabilities(c)
            .filter(|cap| !DEFAULT_CAPABILITIES.contains(cap))
            .collect();
        forbidden.extend(extra.iter().map(|s| s.to_string()));
        !extra.is_empty()
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            container_list(&bad),
            join_quote(&forbidden)
        ),
    )
}

fn host_namespaces(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let shared: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| spec[*f] == true)
        .map(|f| format!("{f}=true"))
        .collect();
    if shared.is_empty() {
        return None;
    }
    violation("host namespaces", shared.join(", "))
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["volumes"].as_array().into_iter().flatten()
}

fn host_path_volumes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let names: Vec<&str> = volumes(spec)
        .filter(|v| v["hostPath"].is_object())
        .map(name)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

fn host_ports(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    // Sorted as strings, as upstream's set of them.
    let mut ports = BTreeSet::new();
    let bad = containers_where(spec, |c| {
        let used: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        ports.extend(used.iter().cloned());
        !used.is_empty()
    });
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            container_list(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let bad = containers_where(spec, |c| c["securityContext"]["privileged"] == true);
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            container_list(&bad)
        ),
    )
}

fn proc_mount(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut kinds = BTreeSet::new();
    let bad = containers_where(spec, |c| match c["securityContext"]["procMount"].as_str() {
        Some(kind) if kind != "Default" => {
            kinds.insert(kind.to_owned());
            true
        }
        _ => false,
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            container_list(&bad),
            join_quote(&kinds)
        ),
    )
}

fn se_linux_options(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut valid = |opts: &Value| {
        if !opts.is_object() {
            return true;
        }
        let t = text(&opts["type"]);
        let allowed = matches!(
            t,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (minor >= 31 && t == "container_engine_t");
        if !allowed {
            types.insert(t.to_owned());
        }
        let sets_user = !text(&opts["user"]).is_empty();
        let sets_role = !text(&opts["role"]).is_empty();
        user |= sets_user;
        role |= sets_role;
        allowed && !sets_user && !sets_role
    };
    let pod_bad = !valid(&spec["securityContext"]["seLinuxOptions"]);
    let bad = containers_where(spec, |c| !valid(&c["securityContext"]["seLinuxOptions"]));
    if !pod_bad && bad.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if !types.is_empty() {
        what.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if user {
        what.push("user may not be set".to_owned());
    }
    if role {
        what.push("role may not be set".to_owned());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters(pod_bad, &bad),
            what.join("; ")
        ),
    )
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn valid_seccomp(t: &Value) -> bool {
    matches!(text(t), "RuntimeDefault" | "Localhost")
}

/// Before v1.19 seccomp profiles were annotations; from v1.19 the securityContext fields.
fn seccomp_baseline(meta: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if minor < 19 {
        return seccomp_annotations(meta, spec);
    }
    let mut values = BTreeSet::new();
    let pod = &spec["securityContext"]["seccompProfile"];
    let pod_bad = pod.is_object() && !valid_seccomp(&pod["type"]);
    if pod_bad {
        values.insert(text(&pod["type"]).to_owned());
    }
    let bad = containers_where(spec, |c| {
        let p = &c["securityContext"]["seccompProfile"];
        let bad = p.is_object() && !valid_seccomp(&p["type"]);
        if bad {
            values.insert(text(&p["type"]).to_owned());
        }
        bad
    });
    if !pod_bad && bad.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters(pod_bad, &bad),
            join_quote(&values)
        ),
    )
}

fn seccomp_annotations(meta: &Value, spec: &Value) -> Option<Violation> {
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let annotations = &meta["annotations"];
    let mut keys = vec![SECCOMP_POD_ANNOTATION.to_owned()];
    keys.extend(
        containers(spec).map(|c| format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", name(c))),
    );
    let forbidden: BTreeSet<String> = keys
        .iter()
        .filter_map(|k| annotations[k].as_str().map(|v| (k, v)))
        .filter(|(_, v)| !valid(v))
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    let list: Vec<String> = forbidden.into_iter().collect();
    violation(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", list.len()),
            list.join(", ")
        ),
    )
}

/// Namespaced sysctls isolated from other pods, and the version that allowed each.
const SAFE_SYSCTLS: [(&str, u32); 12] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
];

fn sysctls(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    let safe = |n: &str| SAFE_SYSCTLS.iter().any(|(s, m)| *s == n && *m <= minor);
    let forbidden: Vec<&str> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(name)
        .filter(|n| !safe(n))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

fn windows_host_process(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let host_process = |sc: &Value| sc["windowsOptions"]["hostProcess"] == true;
    let pod_bad = host_process(&spec["securityContext"]);
    let bad = containers_where(spec, |c| host_process(&c["securityContext"]));
    if !pod_bad && bad.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters(pod_bad, &bad)
        ),
    )
}

fn allow_privilege_escalation(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if windows_exempt(spec, minor) {
        return None;
    }
    let bad = containers_where(spec, |c| {
        c["securityContext"]["allowPrivilegeEscalation"] != false
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            container_list(&bad)
        ),
    )
}

fn capabilities_restricted(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if windows_exempt(spec, minor) {
        return None;
    }
    let (mut missing_drop, mut adding) = (Vec::new(), Vec::new());
    let mut forbidden = BTreeSet::new();
    for c in containers(spec) {
        let caps = &c["securityContext"]["capabilities"];
        if !caps.is_object() {
            missing_drop.push(name(c));
            continue;
        }
        let drops_all = caps["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d == "ALL");
        if !drops_all {
            missing_drop.push(name(c));
        }
        let extra: Vec<&str> = added_capabilities(c)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            forbidden.extend(extra.iter().map(|s| s.to_string()));
            adding.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            container_list(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            container_list(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// The inline volume sources restricted allows.
const ALLOWED_VOLUME_SOURCES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The sources restricted refuses, in the order upstream names the first one a volume has.
const RESTRICTED_VOLUME_SOURCES: [&str; 21] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let has = |v: &Value, source: &str| v.get(source).is_some_and(|s| !s.is_null());
    let mut kinds = BTreeSet::new();
    let bad: Vec<&str> = volumes(spec)
        .filter(|v| !ALLOWED_VOLUME_SOURCES.iter().any(|s| has(v, s)))
        .inspect(|v| {
            let kind = RESTRICTED_VOLUME_SOURCES
                .into_iter()
                .find(|s| has(v, s))
                .unwrap_or("unknown");
            kinds.insert(kind);
        })
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                kinds.len()
            ),
            join_quote(&kinds)
        ),
    )
}

fn run_as_non_root(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let pod = &spec["securityContext"]["runAsNonRoot"];
    let pod_bad = *pod == false;
    let pod_non_root = *pod == true;
    let explicit = containers_where(spec, |c| c["securityContext"]["runAsNonRoot"] == false);
    let implicit = containers_where(spec, |c| {
        !c["securityContext"]["runAsNonRoot"].is_boolean() && !pod_non_root
    });
    if pod_bad || !explicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters(pod_bad, &explicit)
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            container_list(&implicit)
        ),
    )
}

fn run_as_user(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let root = |sc: &Value| sc["runAsUser"].as_i64() == Some(0);
    let pod_bad = root(&spec["securityContext"]);
    let bad = containers_where(spec, |c| root(&c["securityContext"]));
    if !pod_bad && bad.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters(pod_bad, &bad)),
    )
}

fn seccomp_restricted(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if windows_exempt(spec, minor) {
        return None;
    }
    let mut values = BTreeSet::new();
    let pod = &spec["securityContext"]["seccompProfile"];
    let pod_bad = pod.is_object() && !valid_seccomp(&pod["type"]);
    if pod_bad {
        values.insert(text(&pod["type"]).to_owned());
    }
    let pod_set = pod.is_object() && !pod_bad;
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        let p = &c["securityContext"]["seccompProfile"];
        if p.is_object() {
            if !valid_seccomp(&p["type"]) {
                explicit.push(name(c));
                values.insert(text(&p["type"]).to_owned());
            }
        } else if !pod_set {
            implicit.push(name(c));
        }
    }
    if pod_bad || !explicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters(pod_bad, &explicit),
                join_quote(&values)
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            container_list(&implicit)
        ),
    )
}
