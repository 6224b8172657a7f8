//! metadata.managedFields: which manager last wrote an object, with the fields it set in
//! upstream's FieldsV1 form (`f:` for fields, `k:` for list items keyed by name).

use serde_json::{Map, Value, json};

/// The FieldsV1 set of every field present in `obj`.
pub fn fields_v1(obj: &Value) -> Value {
    match obj {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(format!("f:{k}"), fields_v1(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                // Lists of named objects are merged by name; other lists are atomic.
                let key = item
                    .get("name")
                    .filter(|n| n.is_string())
                    .or_else(|| item.get("type").filter(|n| n.is_string()));
                let Some(key) = key else { return json!({}) };
                let field = if item.get("name").is_some() {
                    "name"
                } else {
                    "type"
                };
                let mut sub = fields_v1(item);
                if let Some(m) = sub.as_object_mut() {
                    m.insert(".".into(), json!({}));
                }
                out.insert(format!("k:{{\"{field}\":{key}}}"), sub);
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// The FieldsV1 a write sets: the status alone for the status subresource, else everything but
/// the status, identity and server-set metadata. Built from borrowed parts, without a copy of
/// the object.
fn owned_fields(obj: &Value, subresource: &str) -> Value {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => subresource == "status",
            _ => subresource != "status",
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            let mut meta = Map::new();
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if matches!(
                    mk.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                ) {
                    meta.insert(format!("f:{mk}"), fields_v1(mv));
                }
            }
            if !meta.is_empty() {
                out.insert("f:metadata".into(), Value::Object(meta));
            }
        } else {
            out.insert(format!("f:{k}"), fields_v1(v));
        }
    }
    Value::Object(out)
}

/// Records a write by `manager` in `obj`'s managedFields. `subresource` is "" or e.g. "status".
pub fn record(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: &str,
) {
    let fields = owned_fields(obj, subresource);
    let entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": crate::meta::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    let meta = crate::meta::metadata_mut(obj);
    let list = meta.entry("managedFields").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let list = list.as_array_mut().expect("array");
    list.retain(|e| {
        !(e["manager"] == manager
            && e["operation"] == operation
            && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource)
    });
    let mut entry = entry;
    if !subresource.is_empty() {
        entry["subresource"] = json!(subresource);
    }
    list.push(entry);
}

/// The manager name a request writes as: `fieldManager`, else the User-Agent's program name.
pub fn manager_name(field_manager: &str, user_agent: &str) -> String {
    if !field_manager.is_empty() {
        return field_manager.to_owned();
    }
    let program = user_agent.split('/').next().unwrap_or("").trim();
    if program.is_empty() {
        "unknown".to_owned()
    } else {
        program.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_pod() {
        let pod = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let f = fields_v1(&pod);
        assert_eq!(f["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert_eq!(
            f["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:image"],
            json!({})
        );
    }

    #[test]
    fn records_one_entry_per_manager() {
        let mut obj = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
        record(&mut obj, "kubectl", "Update", "v1", "");
        record(&mut obj, "kubectl", "Update", "v1", "");
        record(&mut obj, "other", "Update", "v1", "");
        assert_eq!(
            obj["metadata"]["managedFields"].as_array().unwrap().len(),
            2
        );
        assert_eq!(manager_name("", "kubectl/v1.32.4 (linux/amd64)"), "kubectl");
    }
}
