//! scheduling.k8s.io validation: PriorityClass, as upstream's pkg/apis/scheduling/validation.

use serde_json::{Value, json};

use crate::status::Cause;

/// User-defined classes stay below the system ones.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The classes the `system-` prefix is reserved for: (name, value).
const SYSTEM_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// v1 default: classes preempt lower priorities.
pub fn default_priority_class(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        crate::meta::default_field(map, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

pub fn priority_class(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = crate::meta::name(obj);
    let value = obj["value"].as_i64().unwrap_or(0);
    let global_default = obj["globalDefault"].as_bool().unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if global_default => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            causes.push(Cause::forbidden(
                "metadata.name",
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {problem}"),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        causes.push(Cause::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    let policy = &obj["preemptionPolicy"];
    match policy.as_str() {
        None if policy.is_null() => {}
        Some("PreemptLowerPriority" | "Never") => {}
        Some("") => causes.push(Cause::required("preemptionPolicy")),
        _ => causes.push(Cause::unsupported(
            "preemptionPolicy",
            policy,
            &["PreemptLowerPriority", "Never"],
        )),
    }
    if let Some(old) = old {
        if old["value"] != obj["value"] {
            causes.push(Cause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old["preemptionPolicy"] != obj["preemptionPolicy"] {
            causes.push(Cause::invalid(
                "preemptionPolicy",
                policy,
                "field is immutable",
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64) -> Value {
        let mut pc = json!({"metadata": {"name": name}, "value": value});
        default_priority_class(&mut pc);
        pc
    }

    fn messages(causes: Vec<Cause>) -> Vec<(String, String)> {
        causes.into_iter().map(|c| (c.field, c.message)).collect()
    }

    #[test]
    fn priority_classes() {
        let ok = class("high", 1000);
        assert_eq!(ok["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(messages(priority_class(&ok, None)), []);
        assert_eq!(
            messages(priority_class(
                &class("system-node-critical", 2_000_001_000),
                None
            )),
            []
        );
        let cases = [
            (
                class("system-mine", 5),
                (
                    "metadata.name",
                    "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class",
                ),
            ),
            (
                class("system-cluster-critical", 5),
                (
                    "metadata.name",
                    "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-cluster-critical PriorityClass must be 2000000000",
                ),
            ),
            (
                class("huge", 1_000_000_001),
                (
                    "value",
                    "Forbidden: maximum allowed value of a user defined priority is 1000000000",
                ),
            ),
            (
                json!({"metadata": {"name": "p"}, "value": 1, "preemptionPolicy": "Always"}),
                (
                    "preemptionPolicy",
                    "Unsupported value: \"Always\": supported values: \"PreemptLowerPriority\", \"Never\"",
                ),
            ),
        ];
        for (obj, (field, message)) in cases {
            assert_eq!(
                messages(priority_class(&obj, None)),
                [(field.to_owned(), message.to_owned())],
                "{obj}"
            );
        }
        let raised = class("high", 2000);
        assert_eq!(
            messages(priority_class(&raised, Some(&ok))),
            [(
                "value".to_owned(),
                "Forbidden: may not be changed in an update.".to_owned()
            )]
        );
    }
}
