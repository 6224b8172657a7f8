//! coordination.k8s.io validation: Lease, as upstream's pkg/apis/coordination/validation.

use serde_json::Value;

use crate::status::Cause;

pub fn lease(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    if let Some(d) = spec["leaseDurationSeconds"].as_i64()
        && d <= 0
    {
        causes.push(Cause::invalid(
            "spec.leaseDurationSeconds",
            &spec["leaseDurationSeconds"],
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec["leaseTransitions"].as_i64()
        && t < 0
    {
        causes.push(Cause::invalid(
            "spec.leaseTransitions",
            &spec["leaseTransitions"],
            "must be greater than or equal to 0",
        ));
    }
    let strategy = spec["strategy"].as_str().unwrap_or("");
    // Unprefixed strategies are Kubernetes' own; others are qualified names.
    if !strategy.is_empty() {
        if strategy.contains('/') {
            super::fields::qualified_name("spec.strategy", strategy, &mut causes);
        } else if strategy != "OldestEmulationVersion" {
            causes.push(Cause::unsupported(
                "spec.strategy",
                &spec["strategy"],
                &["OldestEmulationVersion"],
            ));
        }
    }
    let preferred = spec["preferredHolder"].as_str().unwrap_or("");
    if !preferred.is_empty() && strategy.is_empty() {
        causes.push(Cause::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leases() {
        let ok = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}});
        assert_eq!(lease(&ok), []);
        let bad = json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "b"}});
        let got: Vec<_> = lease(&bad)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect();
        let want = [
            (
                "spec.leaseDurationSeconds",
                "Invalid value: 0: must be greater than 0",
            ),
            (
                "spec.leaseTransitions",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "spec.preferredHolder",
                "Forbidden: may only be specified if `strategy` is defined",
            ),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
