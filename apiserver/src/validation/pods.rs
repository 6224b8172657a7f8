//! PodSpec validation beyond container names and images (which `registry::strategies` checks):
//! volumes, container ports, env, resources and mounts, DNS policy, tolerations and the
//! scheduling fields, as upstream's ValidatePodSpec. Shared by pods and every pod template.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::fields::{self, items, text};
use crate::status::Cause;

/// The volume sources a pod volume may name, exactly one at a time.
const POD_VOLUME_SOURCES: [&str; 30] = [
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "scaleIO",
    "configMap",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// v1 default: a volume naming no source is an emptyDir.
pub fn default_volumes(spec: &mut Map<String, Value>) {
    for volume in spec
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if !POD_VOLUME_SOURCES
            .iter()
            .any(|s| volume.get(*s).is_some_and(|v| !v.is_null()))
        {
            volume.insert("emptyDir".into(), json!({}));
        }
    }
}

pub fn pod_spec(spec: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let volumes = volumes(spec, path, &mut causes);
    for list in ["initContainers", "containers"] {
        for (i, c) in items(&spec[list]).iter().enumerate() {
            container(c, &format!("{path}.{list}[{i}]"), &volumes, &mut causes);
        }
    }
    let dns = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
    match spec["dnsPolicy"].as_str() {
        None | Some("") => {}
        Some("None") if spec["dnsConfig"].is_null() => causes.push(Cause::required_detail(
            format!("{path}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        )),
        Some(p) if dns.contains(&p) => {}
        Some(p) => causes.push(Cause::unsupported(
            format!("{path}.dnsPolicy"),
            &json!(p),
            &dns,
        )),
    }
    fields::labels(
        &spec["nodeSelector"],
        &format!("{path}.nodeSelector"),
        &mut causes,
    );
    for (field, label) in [
        ("serviceAccountName", false),
        ("nodeName", false),
        ("schedulerName", false),
        ("hostname", true),
        ("subdomain", true),
    ] {
        let value = text(spec, field);
        if value.is_empty() {
            continue;
        }
        let p = format!("{path}.{field}");
        if label {
            fields::dns_label(&p, value, &mut causes);
        } else {
            fields::dns_subdomain(&p, value, &mut causes);
        }
    }
    if let Some(deadline) = spec["activeDeadlineSeconds"].as_i64()
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        causes.push(Cause::invalid(
            format!("{path}.activeDeadlineSeconds"),
            &json!(deadline),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for (i, t) in items(&spec["tolerations"]).iter().enumerate() {
        toleration(t, &format!("{path}.tolerations[{i}]"), &mut causes);
    }
    causes
}

/// The pod's volumes; answers their names for the mounts to refer to.
fn volumes<'a>(spec: &'a Value, path: &str, causes: &mut Vec<Cause>) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in items(&spec["volumes"]).iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        let mut sources = 0;
        for source in POD_VOLUME_SOURCES {
            if v[source].is_null() {
                continue;
            }
            if sources > 0 {
                causes.push(Cause::forbidden(
                    format!("{vp}.{source}"),
                    "may not specify more than 1 volume type",
                ));
            }
            sources += 1;
        }
        if sources == 0 {
            causes.push(Cause::required_detail(&vp, "must specify a volume type"));
        }
        let name = text(v, "name");
        let np = format!("{vp}.name");
        if name.is_empty() {
            causes.push(Cause::required(&np));
        } else {
            fields::dns_label(&np, name, causes);
        }
        if !names.insert(name) {
            causes.push(Cause::duplicate(np, &json!(name)));
        }
    }
    names
}

fn container(c: &Value, path: &str, volumes: &HashSet<&str>, causes: &mut Vec<Cause>) {
    let mut port_names = HashSet::new();
    for (i, p) in items(&c["ports"]).iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        let name = text(p, "name");
        if !name.is_empty() {
            let errs = fields::port_name_errors(name);
            for msg in &errs {
                causes.push(Cause::invalid(format!("{pp}.name"), &json!(name), msg));
            }
            if errs.is_empty() && !port_names.insert(name) {
                causes.push(Cause::duplicate(format!("{pp}.name"), &json!(name)));
            }
        }
        match p["containerPort"].as_i64() {
            None | Some(0) => causes.push(Cause::required(format!("{pp}.containerPort"))),
            Some(_) => {
                fields::port_number(&format!("{pp}.containerPort"), &p["containerPort"], causes)
            }
        }
        if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
            fields::port_number(&format!("{pp}.hostPort"), &p["hostPort"], causes);
        }
        match text(p, "protocol") {
            "" => causes.push(Cause::required(format!("{pp}.protocol"))),
            "TCP" | "UDP" | "SCTP" => {}
            other => causes.push(Cause::unsupported(
                format!("{pp}.protocol"),
                &json!(other),
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
    for (i, e) in items(&c["env"]).iter().enumerate() {
        env_var(e, &format!("{path}.env[{i}]"), causes);
    }
    resources(&c["resources"], &format!("{path}.resources"), causes);
    let mut mount_paths = HashSet::new();
    for (i, m) in items(&c["volumeMounts"]).iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        let name = text(m, "name");
        if name.is_empty() {
            causes.push(Cause::required(format!("{mp}.name")));
        }
        if !volumes.contains(name) {
            causes.push(Cause {
                reason: "FieldValueNotFound",
                field: format!("{mp}.name"),
                message: format!("Not found: \"{name}\""),
            });
        }
        let mount_path = text(m, "mountPath");
        if mount_path.is_empty() {
            causes.push(Cause::required(format!("{mp}.mountPath")));
        }
        if !mount_paths.insert(mount_path) {
            causes.push(Cause::invalid(
                format!("{mp}.mountPath"),
                &json!(mount_path),
                "must be unique",
            ));
        }
    }
    if let Some(policy) = c["imagePullPolicy"].as_str() {
        let policies = ["Always", "IfNotPresent", "Never"];
        if !policies.contains(&policy) {
            causes.push(Cause::unsupported(
                format!("{path}.imagePullPolicy"),
                &json!(policy),
                &policies,
            ));
        }
    }
    if let Some(policy) = c["terminationMessagePolicy"].as_str() {
        let policies = ["File", "FallbackToLogsOnError"];
        if !policies.contains(&policy) {
            causes.push(Cause::unsupported(
                format!("{path}.terminationMessagePolicy"),
                &json!(policy),
                &policies,
            ));
        }
    }
}

fn env_var(e: &Value, path: &str, causes: &mut Vec<Cause>) {
    let name = text(e, "name");
    let np = format!("{path}.name");
    if name.is_empty() {
        causes.push(Cause::required(&np));
        causes.push(Cause::invalid(
            &np,
            &json!(name),
            "environment variable name must be non-empty",
        ));
    } else if name.bytes().any(|b| !(32..=126).contains(&b) || b == b'=') {
        causes.push(Cause::invalid(
            &np,
            &json!(name),
            "a valid environment variable name must consist only of printable ASCII characters other than '='",
        ));
    }
    let from = &e["valueFrom"];
    if from.is_null() {
        return;
    }
    let fp = format!("{path}.valueFrom");
    let sources = [
        "fieldRef",
        "resourceFieldRef",
        "configMapKeyRef",
        "secretKeyRef",
    ]
    .iter()
    .filter(|s| !from[**s].is_null())
    .count();
    if sources == 0 {
        causes.push(Cause::invalid(
            &fp,
            &json!(""),
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !text(e, "value").is_empty() {
        causes.push(Cause::invalid(
            &fp,
            &json!(""),
            "may not be specified when `value` is not empty",
        ));
    }
    if sources > 1 {
        causes.push(Cause::invalid(
            &fp,
            &json!(""),
            "may not have more than one field specified at a time",
        ));
    }
}

/// What a container may request unprefixed.
fn is_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn resources(r: &Value, path: &str, causes: &mut Vec<Cause>) {
    for section in ["limits", "requests"] {
        for (k, v) in r[section].as_object().into_iter().flatten() {
            let p = format!("{path}.{section}[{k}]");
            let before = causes.len();
            fields::qualified_name(&p, k, causes);
            if causes.len() == before && !k.contains('/') && !is_container_resource(k) {
                causes.push(Cause::invalid(
                    &p,
                    &json!(k),
                    "must be a standard resource type or fully qualified",
                ));
                causes.push(Cause::invalid(
                    &p,
                    &json!(k),
                    "must be a standard resource for containers",
                ));
            }
            fields::nonnegative_quantity(&p, v, causes);
        }
    }
    let quantity = |v: &Value| {
        v.as_str()
            .and_then(|s| common::quantity::Quantity::parse(s).ok())
            .map(|q| q.milli_value())
    };
    for (k, request) in r["requests"].as_object().into_iter().flatten() {
        let limit = &r["limits"][k];
        if let (Some(req), Some(lim)) = (quantity(request), quantity(limit))
            && req > lim
        {
            causes.push(Cause::invalid(
                format!("{path}.requests"),
                request,
                format!(
                    "must be less than or equal to {k} limit of {}",
                    limit.as_str().unwrap_or("")
                ),
            ));
        }
    }
}

pub(crate) fn toleration(t: &Value, path: &str, causes: &mut Vec<Cause>) {
    let key = text(t, "key");
    let operator = text(t, "operator");
    let effect = text(t, "effect");
    let value = text(t, "value");
    if !key.is_empty() {
        fields::label_key(&format!("{path}.key"), key, causes);
    }
    if key.is_empty() && operator != "Exists" {
        causes.push(Cause::invalid(
            format!("{path}.operator"),
            &json!(operator),
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    if !t["tolerationSeconds"].is_null() && effect != "NoExecute" {
        causes.push(Cause::invalid(
            format!("{path}.effect"),
            &json!(effect),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    match operator {
        "" | "Equal" => {
            let errs = common::selector::validate_label_value(value);
            if !errs.is_empty() {
                causes.push(Cause::invalid(
                    format!("{path}.operator"),
                    &json!(value),
                    errs.join(";"),
                ));
            }
        }
        "Exists" => {
            if !value.is_empty() {
                causes.push(Cause::invalid_shown(
                    format!("{path}.operator"),
                    &format!("core.Toleration{{Key:\"{key}\", Operator:\"Exists\", Value:\"{value}\", Effect:\"{effect}\", TolerationSeconds:(*int64)(nil)}}"),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => causes.push(Cause::unsupported(
            format!("{path}.operator"),
            &json!(other),
            &["Equal", "Exists"],
        )),
    }
    if !effect.is_empty() {
        super::core::taint_effect(effect, &format!("{path}.effect"), causes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(spec: &Value) -> Vec<(String, String)> {
        pod_spec(spec, "spec")
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn valid_spec_is_accepted() {
        let mut spec = json!({
            "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c"}}],
            "containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "example.com/gpu": "1"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/c"}]}],
            "dnsPolicy": "ClusterFirst", "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"operator": "Exists"}, {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
                            {"key": "n", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        });
        default_volumes(spec.as_object_mut().unwrap());
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(pairs(&spec), []);
    }

    #[test]
    fn invalid_specs_get_upstream_causes() {
        let cases: &[(Value, &[(&str, &str)])] = &[
            (
                json!({"volumes": [{"name": "a", "emptyDir": {}, "hostPath": {"path": "/"}}, {"name": "a", "emptyDir": {}}]}),
                &[
                    (
                        "spec.volumes[0].emptyDir",
                        "Forbidden: may not specify more than 1 volume type",
                    ),
                    ("spec.volumes[1].name", "Duplicate value: \"a\""),
                ],
            ),
            (
                json!({"containers": [{"ports": [{"containerPort": 0, "protocol": "ICMP", "name": "8080"}, {"containerPort": 80, "hostPort": 70000, "protocol": "TCP"}]}]}),
                &[
                    (
                        "spec.containers[0].ports[0].name",
                        "Invalid value: \"8080\": must contain at least one letter (a-z)",
                    ),
                    (
                        "spec.containers[0].ports[0].containerPort",
                        "Required value",
                    ),
                    (
                        "spec.containers[0].ports[0].protocol",
                        "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                    ),
                    (
                        "spec.containers[0].ports[1].hostPort",
                        "Invalid value: 70000: must be between 1 and 65535, inclusive",
                    ),
                ],
            ),
            (
                json!({"containers": [{"env": [{"name": "A=B"}, {"name": "C", "value": "x", "valueFrom": {"fieldRef": {}, "secretKeyRef": {}}}]}]}),
                &[
                    (
                        "spec.containers[0].env[0].name",
                        "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                    ),
                    (
                        "spec.containers[0].env[1].valueFrom",
                        "Invalid value: \"\": may not be specified when `value` is not empty",
                    ),
                    (
                        "spec.containers[0].env[1].valueFrom",
                        "Invalid value: \"\": may not have more than one field specified at a time",
                    ),
                ],
            ),
            (
                json!({"containers": [{"resources": {"requests": {"cpu": "2", "memory": "-1"}, "limits": {"cpu": "1"}}}]}),
                &[
                    (
                        "spec.containers[0].resources.requests[memory]",
                        "Invalid value: \"-1\": must be greater than or equal to 0",
                    ),
                    (
                        "spec.containers[0].resources.requests",
                        "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                    ),
                ],
            ),
            (
                json!({"containers": [{"volumeMounts": [{"name": "x", "mountPath": "/a"}, {"name": "", "mountPath": "/a"}]}]}),
                &[
                    (
                        "spec.containers[0].volumeMounts[0].name",
                        "Not found: \"x\"",
                    ),
                    ("spec.containers[0].volumeMounts[1].name", "Required value"),
                    ("spec.containers[0].volumeMounts[1].name", "Not found: \"\""),
                    (
                        "spec.containers[0].volumeMounts[1].mountPath",
                        "Invalid value: \"/a\": must be unique",
                    ),
                ],
            ),
            (
                json!({"dnsPolicy": "Custom", "activeDeadlineSeconds": 0, "hostname": "Web"}),
                &[
                    (
                        "spec.dnsPolicy",
                        "Unsupported value: \"Custom\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
                    ),
                    (
                        "spec.hostname",
                        "Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    ),
                    (
                        "spec.activeDeadlineSeconds",
                        "Invalid value: 0: must be between 1 and 2147483647, inclusive",
                    ),
                ],
            ),
            (
                json!({"dnsPolicy": "None"}),
                &[(
                    "spec.dnsConfig",
                    "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                )],
            ),
            (
                json!({"tolerations": [
                    {"operator": "Equal"},
                    {"key": "k", "operator": "Exists", "value": "v"},
                    {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
                    {"key": "k", "operator": "Near", "effect": "Sometimes"}]}),
                &[
                    (
                        "spec.tolerations[0].operator",
                        "Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                    ),
                    (
                        "spec.tolerations[1].operator",
                        "Invalid value: core.Toleration{Key:\"k\", Operator:\"Exists\", Value:\"v\", Effect:\"\", TolerationSeconds:(*int64)(nil)}: value must be empty when `operator` is 'Exists'",
                    ),
                    (
                        "spec.tolerations[2].effect",
                        "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                    ),
                    (
                        "spec.tolerations[3].operator",
                        "Unsupported value: \"Near\": supported values: \"Equal\", \"Exists\"",
                    ),
                    (
                        "spec.tolerations[3].effect",
                        "Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                    ),
                ],
            ),
        ];
        for (spec, want) in cases {
            let want: Vec<_> = want
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect();
            assert_eq!(pairs(spec), want, "{spec}");
        }
    }
}
