//! apps/v1 validation beyond the pod templates (`registry::strategies` checks those): the
//! workloads' own spec fields and ControllerRevision, as upstream's pkg/apis/apps/validation.

use serde_json::{Value, json};

use super::fields::{self, text};
use crate::status::Cause;

/// Controllers restart their pods forever: ReplicaSet, ReplicationController, Deployment,
/// StatefulSet and DaemonSet templates take restartPolicy Always only.
pub fn template_restarts_always(spec: &Value, causes: &mut Vec<Cause>) {
    let policy = &spec["template"]["spec"]["restartPolicy"];
    if !policy.is_null() && policy != "Always" {
        causes.push(Cause::unsupported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

/// `Invalid value: <Go struct>` for upstream's messages that print a whole strategy.
fn go_strategy(kind: &str, ty: &str, rolling: &str) -> String {
    format!("apps.{kind}{{Type:\"{ty}\", RollingUpdate:(*apps.{rolling})(nil)}}")
}

pub fn deployment_spec(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    template_restarts_always(spec, &mut causes);
    for field in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        fields::nonnegative(spec, field, "spec", &mut causes);
    }
    if let Some(deadline) = spec["progressDeadlineSeconds"].as_i64()
        && deadline <= spec["minReadySeconds"].as_i64().unwrap_or(0)
    {
        causes.push(Cause::invalid(
            "spec.progressDeadlineSeconds",
            &json!(deadline),
            "must be greater than minReadySeconds",
        ));
    }
    let strategy = &spec["strategy"];
    let rolling = &strategy["rollingUpdate"];
    match text(strategy, "type") {
        "Recreate" => {
            if !rolling.is_null() {
                causes.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if rolling.is_null() {
                causes.push(Cause::required_detail(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ));
            } else {
                let (unavailable, surge) = (&rolling["maxUnavailable"], &rolling["maxSurge"]);
                let path = "spec.strategy.rollingUpdate";
                fields::int_or_percent(unavailable, &format!("{path}.maxUnavailable"), &mut causes);
                fields::int_or_percent(surge, &format!("{path}.maxSurge"), &mut causes);
                if fields::int_or_percent_value(unavailable) == 0
                    && fields::int_or_percent_value(surge) == 0
                {
                    causes.push(Cause::invalid_shown(
                        format!("{path}.maxUnavailable"),
                        &shown(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                fields::at_most_100_percent(
                    unavailable,
                    &format!("{path}.maxUnavailable"),
                    &mut causes,
                );
            }
        }
        other => causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.strategy".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"Recreate\", \"RollingUpdate\"",
                go_strategy("DeploymentStrategy", other, "RollingUpdateDeployment")
            ),
        }),
    }
    causes
}

/// An IntOrString as Go's Stringer prints it.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "0".into(),
        other => other.to_string(),
    }
}

pub fn stateful_set_spec(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    template_restarts_always(spec, &mut causes);
    fields::nonnegative(spec, "minReadySeconds", "spec", &mut causes);
    match text(spec, "podManagementPolicy") {
        "" => causes.push(Cause::required("spec.podManagementPolicy")),
        "OrderedReady" | "Parallel" => {}
        other => causes.push(Cause::invalid(
            "spec.podManagementPolicy",
            &json!(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let update = &spec["updateStrategy"];
    let rolling = &update["rollingUpdate"];
    match text(update, "type") {
        "" => causes.push(Cause::required("spec.updateStrategy")),
        "OnDelete" => {
            if !rolling.is_null() {
                causes.push(Cause::invalid_shown(
                    "spec.updateStrategy.rollingUpdate",
                    &format!(
                        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:(*intstr.IntOrString)(nil)}}",
                        rolling["partition"].as_i64().unwrap_or(0)
                    ),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            fields::nonnegative(
                rolling,
                "partition",
                "spec.updateStrategy.rollingUpdate",
                &mut causes,
            );
        }
        other => causes.push(Cause::invalid_shown(
            "spec.updateStrategy",
            &go_strategy(
                "StatefulSetUpdateStrategy",
                other,
                "RollingUpdateStatefulSetStrategy",
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    let retention = &spec["persistentVolumeClaimRetentionPolicy"];
    for field in ["whenDeleted", "whenScaled"] {
        if let Some(v) = retention[field].as_str()
            && v != "Retain"
            && v != "Delete"
        {
            causes.push(Cause::unsupported(
                format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                &json!(v),
                &["Retain", "Delete"],
            ));
        }
    }
    fields::nonnegative(&spec["ordinals"], "start", "spec.ordinals", &mut causes);
    causes
}

pub fn daemon_set_spec(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    template_restarts_always(spec, &mut causes);
    for field in ["minReadySeconds", "revisionHistoryLimit"] {
        fields::nonnegative(spec, field, "spec", &mut causes);
    }
    let update = &spec["updateStrategy"];
    let rolling = &update["rollingUpdate"];
    let path = "spec.updateStrategy.rollingUpdate";
    match text(update, "type") {
        "OnDelete" => {}
        "RollingUpdate" if rolling.is_null() => causes.push(Cause::required(path)),
        "RollingUpdate" => {
            let (unavailable, surge) = (&rolling["maxUnavailable"], &rolling["maxSurge"]);
            let (up, sp) = (format!("{path}.maxUnavailable"), format!("{path}.maxSurge"));
            fields::int_or_percent(unavailable, &up, &mut causes);
            fields::int_or_percent(surge, &sp, &mut causes);
            fields::at_most_100_percent(unavailable, &up, &mut causes);
            fields::at_most_100_percent(surge, &sp, &mut causes);
            // Exactly one of the two moves the rollout.
            match (
                fields::int_or_percent_value(unavailable) != 0,
                fields::int_or_percent_value(surge) != 0,
            ) {
                (true, true) => causes.push(Cause::invalid_shown(
                    sp,
                    &shown(surge),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => {
                    causes.push(Cause::required_detail(up, "cannot be 0 when maxSurge is 0"))
                }
                _ => {}
            }
        }
        other => causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.updateStrategy".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"RollingUpdate\", \"OnDelete\"",
                go_strategy("DaemonSetUpdateStrategy", other, "RollingUpdateDaemonSet")
            ),
        }),
    }
    causes
}

pub fn controller_revision(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if obj["data"].is_null() {
        causes.push(Cause::required_detail("data", "data is mandatory"));
    }
    if let Some(r) = obj["revision"].as_i64()
        && r < 0
    {
        causes.push(Cause::invalid(
            "revision",
            &obj["revision"],
            "must be greater than or equal to 0",
        ));
    }
    if let Some(old) = old
        && old["data"] != obj["data"]
    {
        causes.push(Cause::invalid("data", &obj["data"], "field is immutable"));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(got: Vec<Cause>, want: &[(&str, &str)]) {
        super::super::testing::check(got, want, &"");
    }

    #[test]
    fn deployments() {
        let ok = json!({"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"spec": {"restartPolicy": "Always"}}});
        check(deployment_spec(&ok), &[]);
        check(
            deployment_spec(
                &json!({"revisionHistoryLimit": -1, "minReadySeconds": 10, "progressDeadlineSeconds": 5,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
                "template": {"spec": {"restartPolicy": "Never"}}}),
            ),
            &[
                (
                    "spec.template.spec.restartPolicy",
                    "Unsupported value: \"Never\": supported values: \"Always\"",
                ),
                (
                    "spec.revisionHistoryLimit",
                    "Invalid value: -1: must be greater than or equal to 0",
                ),
                (
                    "spec.progressDeadlineSeconds",
                    "Invalid value: 5: must be greater than minReadySeconds",
                ),
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0%: may not be 0 when `maxSurge` is 0",
                ),
            ],
        );
        check(
            deployment_spec(&json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}})),
            &[(
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )],
        );
        check(
            deployment_spec(&json!({"strategy": {"type": "BlueGreen"}})),
            &[(
                "spec.strategy",
                "Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
            )],
        );
        check(
            deployment_spec(
                &json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "200%"}}}),
            ),
            &[
                (
                    "spec.strategy.rollingUpdate.maxSurge",
                    "Invalid value: x: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ),
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 200%: must not be greater than 100%",
                ),
            ],
        );
    }

    #[test]
    fn stateful_and_daemon_sets() {
        let sts = json!({"podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}});
        check(stateful_set_spec(&sts), &[]);
        check(
            stateful_set_spec(&json!({"podManagementPolicy": "Random",
                "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 2}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}})),
            &[
                (
                    "spec.podManagementPolicy",
                    "Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
                ),
                (
                    "spec.updateStrategy.rollingUpdate",
                    "Invalid value: apps.RollingUpdateStatefulSetStrategy{Partition:2, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'",
                ),
                (
                    "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
                    "Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
                ),
            ],
        );
        let ds = json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}});
        check(daemon_set_spec(&ds), &[]);
        check(
            daemon_set_spec(
                &json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}}),
            ),
            &[(
                "spec.updateStrategy.rollingUpdate.maxSurge",
                "Invalid value: 1: may not be set when maxUnavailable is non-zero",
            )],
        );
        check(
            daemon_set_spec(
                &json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}),
            ),
            &[(
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                "Required value: cannot be 0 when maxSurge is 0",
            )],
        );
    }

    #[test]
    fn revisions() {
        let ok = json!({"data": {"spec": {}}, "revision": 1});
        assert_eq!(controller_revision(&ok, None), []);
        assert_eq!(controller_revision(&ok, Some(&ok)), []);
        let bad = json!({"revision": -1});
        let got: Vec<_> = controller_revision(&bad, None)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "data".to_owned(),
                    "Required value: data is mandatory".to_owned()
                ),
                (
                    "revision".to_owned(),
                    "Invalid value: -1: must be greater than or equal to 0".to_owned()
                ),
            ]
        );
        let changed = json!({"data": {"spec": {"x": 1}}, "revision": 1});
        assert_eq!(controller_revision(&changed, Some(&ok)).len(), 1);
    }
}
