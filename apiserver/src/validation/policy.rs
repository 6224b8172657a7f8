//! policy validation: PodDisruptionBudget, as upstream's pkg/apis/policy/validation.

use serde_json::Value;

use super::fields;
use crate::status::Cause;

pub fn pod_disruption_budget(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let (min, max) = (&spec["minAvailable"], &spec["maxUnavailable"]);
    if !min.is_null() && !max.is_null() {
        causes.push(Cause::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        if !spec[field].is_null() {
            let path = format!("spec.{field}");
            fields::int_or_percent(&spec[field], &path, &mut causes);
            fields::at_most_100_percent(&spec[field], &path, &mut causes);
        }
    }
    // An update may keep label values an older server let in.
    let values = old.is_none_or(|o| fields::selector_is_valid(&o["spec"]["selector"]));
    fields::label_selector(&spec["selector"], "spec.selector", values, &mut causes);
    if let Some(policy) = spec["unhealthyPodEvictionPolicy"].as_str()
        && policy != "AlwaysAllow"
        && policy != "IfHealthyBudget"
    {
        causes.push(Cause::unsupported(
            "spec.unhealthyPodEvictionPolicy",
            &spec["unhealthyPodEvictionPolicy"],
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(obj: &Value) -> Vec<(String, String)> {
        pod_disruption_budget(obj, None)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn budgets() {
        for ok in [
            json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}}}),
            json!({"spec": {"maxUnavailable": "50%", "unhealthyPodEvictionPolicy": "AlwaysAllow"}}),
        ] {
            assert_eq!(pairs(&ok), [], "{ok}");
        }
        let cases = [
            (
                json!({"spec": {"minAvailable": -1}}),
                "spec.minAvailable",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"spec": {"minAvailable": "half"}}),
                "spec.minAvailable",
                "Invalid value: half: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ),
            (
                json!({"spec": {"maxUnavailable": "150%"}}),
                "spec.maxUnavailable",
                "Invalid value: 150%: must not be greater than 100%",
            ),
            (
                json!({"spec": {"unhealthyPodEvictionPolicy": "Never"}}),
                "spec.unhealthyPodEvictionPolicy",
                "Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\"",
            ),
            (
                json!({"spec": {"selector": {"matchLabels": {"a": "b c"}}}}),
                "spec.selector.matchLabels",
                "Invalid value: \"b c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
        ];
        for (obj, field, message) in cases {
            assert_eq!(
                pairs(&obj),
                [(field.to_owned(), message.to_owned())],
                "{obj}"
            );
        }
        let both = json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}});
        let got = pairs(&both);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "spec");
        assert!(
            got[0]
                .1
                .ends_with("minAvailable and maxUnavailable cannot be both set")
        );
    }
}
