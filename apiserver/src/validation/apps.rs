//! apps/v1 validation beyond the workloads' pod templates: ControllerRevision, as upstream's
//! pkg/apis/apps/validation.

use serde_json::Value;

use crate::status::Cause;

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
    use serde_json::json;

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
