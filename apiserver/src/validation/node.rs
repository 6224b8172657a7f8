//! node.k8s.io validation: RuntimeClass, as upstream's pkg/apis/node/validation.

use serde_json::{Value, json};

use super::fields;
use crate::status::Cause;

pub fn runtime_class(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let handler = obj["handler"].as_str().unwrap_or_default();
    fields::dns_label("handler", handler, &mut causes);
    if let Some(old) = old
        && old["handler"] != obj["handler"]
    {
        causes.push(Cause::invalid(
            "handler",
            &json!(handler),
            "field is immutable",
        ));
    }
    if let Some(fixed) = obj["overhead"]["podFixed"].as_object() {
        for (name, q) in fixed {
            fields::nonnegative_quantity(&format!("overhead.podFixed[{name}]"), q, &mut causes);
        }
    }
    let scheduling = &obj["scheduling"];
    if scheduling["nodeSelector"].is_object() {
        fields::labels(
            &scheduling["nodeSelector"],
            "scheduling.nodeSelector",
            &mut causes,
        );
    }
    for (i, t) in fields::items(&scheduling["tolerations"]).iter().enumerate() {
        super::pods::toleration(t, &format!("scheduling.tolerations[{i}]"), &mut causes);
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_classes_are_validated_as_upstream() {
        let ok = json!({"handler": "runsc", "overhead": {"podFixed": {"cpu": "250m"}},
            "scheduling": {"nodeSelector": {"sandbox": "gvisor"},
                           "tolerations": [{"key": "sandbox", "operator": "Exists"}]}});
        assert!(runtime_class(&ok, None).is_empty());
        let bad = json!({"handler": "Run_SC", "overhead": {"podFixed": {"cpu": "-1"}}});
        let causes = runtime_class(&bad, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["handler", "overhead.podFixed[cpu]"]);
        let moved = json!({"handler": "kata"});
        let causes = runtime_class(&moved, Some(&ok));
        assert!(
            causes[0].message.ends_with("field is immutable"),
            "{}",
            causes[0].message
        );
    }
}
