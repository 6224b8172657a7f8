//! Strategic merge patch (application/strategic-merge-patch+json), applied on the server as
//! upstream's strategicpatch package does: maps merge recursively (null deletes), lists merge by
//! their patch merge key or as sets, and the directives `$patch`, `$setElementOrder/<list>`,
//! `$retainKeys` and `$deleteFromPrimitiveList/<list>` shape the result.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{ListStrategy, PatchSchema};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error("Unknown patch type: {0}")]
    UnknownDirective(String),
    #[error("invalid patch: {0}")]
    Invalid(String),
}

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to `original`.
pub fn apply(original: &Value, patch: &Value, schema: &PatchSchema) -> Result<Value, PatchError> {
    let Value::Object(patch_map) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let base = original.as_object().cloned().unwrap_or_default();
    match merge_map(base, patch_map, schema, &mut Vec::new())? {
        Some(m) => Ok(Value::Object(m)),
        None => Ok(Value::Object(Map::new())),
    }
}

/// Merges `patch` into `original`; None when the patch deletes the whole map.
fn merge_map<'a>(
    mut original: Map<String, Value>,
    patch: &'a Map<String, Value>,
    schema: &PatchSchema,
    path: &mut Vec<&'a str>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        None | Some("merge") => {}
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            strip_directives(&mut replaced);
            return Ok(Some(replaced));
        }
        Some("delete") => return Ok(None),
        Some(other) => return Err(PatchError::UnknownDirective(other.to_owned())),
    }
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with(SET_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVES) {
            let remove: HashSet<String> = value
                .as_array()
                .into_iter()
                .flatten()
                .map(identity_key)
                .collect();
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|v| !remove.contains(&identity_key(v)));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(PatchError::UnknownDirective(key.clone()));
        }
        path.push(key.as_str());
        match value {
            Value::Null => {
                original.remove(key);
            }
            Value::Object(sub) => {
                let base = match original.remove(key) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                if let Some(merged) = merge_map(base, sub, schema, path)? {
                    original.insert(key.clone(), Value::Object(merged));
                }
            }
            Value::Array(items) => {
                let order = patch
                    .get(&format!("{SET_ORDER}{key}"))
                    .and_then(Value::as_array);
                let base = match original.remove(key) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                let merged = merge_list(base, items, order, schema, path)?;
                original.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                original.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    // `$setElementOrder` for a list the patch does not otherwise touch still reorders it.
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER)
            && !patch.contains_key(field)
            && let (Some(Value::Array(items)), Some(order)) =
                (original.get_mut(field), order.as_array())
        {
            path.push(field);
            let strategy = schema.list_strategy(path);
            path.pop();
            let taken = std::mem::take(items);
            *items = reorder(taken, order, strategy);
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
        original.retain(|k, _| keep.contains(k.as_str()));
    }
    Ok(Some(original))
}

/// Removes directive keys from a replacement value, recursively.
fn strip_directives(map: &mut Map<String, Value>) {
    map.retain(|k, _| !k.starts_with('$'));
    for v in map.values_mut() {
        match v {
            Value::Object(m) => strip_directives(m),
            Value::Array(a) => a
                .iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(strip_directives),
            _ => {}
        }
    }
}

fn merge_list<'a>(
    mut original: Vec<Value>,
    patch: &'a [Value],
    order: Option<&Vec<Value>>,
    schema: &PatchSchema,
    path: &mut Vec<&'a str>,
) -> Result<Vec<Value>, PatchError> {
    // `{"$patch": "replace"}` as an item replaces the list with the other items.
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .map(|mut v| {
                if let Some(m) = v.as_object_mut() {
                    strip_directives(m);
                }
                v
            })
            .collect());
    }
    let strategy = schema.list_strategy(path);
    match strategy {
        ListStrategy::Replace => return Ok(patch.to_vec()),
        ListStrategy::MergePrimitives => {
            // Hash sets, not list scans: a patch of n items into a list of m costs n + m.
            let mut present: HashSet<String> = original.iter().map(identity_key).collect();
            for item in patch {
                if present.insert(identity_key(item)) {
                    original.push(item.clone());
                }
            }
        }
        ListStrategy::MergeByKey(key) => {
            // Items are removed by emptying their slot, and found through an index of their
            // merge keys, so every patch item costs the same whatever the list's length.
            let mut slots: Vec<Option<Value>> = original.into_iter().map(Some).collect();
            let mut index: HashMap<String, usize> = HashMap::new();
            for (i, item) in slots.iter().enumerate().rev() {
                if let Some(id) = item.as_ref().and_then(|o| o.get(key)) {
                    index.insert(identity_key(id), i);
                }
            }
            for item in patch {
                let Some(obj) = item.as_object() else {
                    return Err(PatchError::Invalid(format!(
                        "the list {} merges by {key} but an item is not an object",
                        path.join(".")
                    )));
                };
                let Some(id) = obj.get(key) else {
                    return Err(PatchError::Invalid(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    )));
                };
                let id = identity_key(id);
                let pos = index.get(&id).copied();
                if obj.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(p) = pos {
                        slots[p] = None;
                        index.remove(&id);
                    }
                    continue;
                }
                match pos {
                    Some(p) => {
                        let base = slots[p]
                            .take()
                            .and_then(|v| match v {
                                Value::Object(m) => Some(m),
                                _ => None,
                            })
                            .unwrap_or_default();
                        match merge_map(base, obj, schema, path)? {
                            Some(m) => slots[p] = Some(Value::Object(m)),
                            None => {
                                index.remove(&id);
                            }
                        }
                    }
                    None => {
                        let mut fresh = obj.clone();
                        strip_directives(&mut fresh);
                        index.insert(id, slots.len());
                        slots.push(Some(Value::Object(fresh)));
                    }
                }
            }
            original = slots.into_iter().flatten().collect();
        }
    }
    Ok(match order {
        Some(order) => reorder(original, order, strategy),
        None => original,
    })
}

/// A hashable identity of a list item or merge key: its JSON encoding.
fn identity_key(v: &Value) -> String {
    v.to_string()
}

/// Items with their place in a `$setElementOrder` list (`usize::MAX`: not listed).
type Ranked = Vec<(usize, Value)>;

/// Orders `items` as `order` lists them; items it does not list keep their relative order
/// after the ordered ones.
fn reorder(items: Vec<Value>, order: &[Value], strategy: ListStrategy) -> Vec<Value> {
    let identity = |v: &Value| -> String {
        match strategy {
            ListStrategy::MergeByKey(k) => identity_key(v.get(k).unwrap_or(&Value::Null)),
            _ => identity_key(v),
        }
    };
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for (i, w) in order.iter().enumerate() {
        wanted.entry(identity(w)).or_insert(i);
    }
    let (mut listed, rest): (Ranked, Ranked) = items
        .into_iter()
        .map(|i| (wanted.get(&identity(&i)).copied().unwrap_or(usize::MAX), i))
        .partition(|(rank, _)| *rank != usize::MAX);
    listed.sort_by_key(|(rank, _)| *rank);
    listed
        .into_iter()
        .chain(rest)
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn check(schema: &PatchSchema, original: Value, patch: Value, expected: Value) {
        assert_eq!(
            apply(&original, &patch, schema).unwrap(),
            expected,
            "patch {patch}"
        );
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let s = PatchSchema::for_kind::<Pod>();
        check(
            &s,
            json!({"a": 1, "b": {"c": 2, "d": 3}}),
            json!({"b": {"c": null, "e": 4}, "f": 5}),
            json!({"a": 1, "b": {"d": 3, "e": 4}, "f": 5}),
        );
        check(
            &s,
            json!({"b": {"c": 2}}),
            json!({"b": {"$patch": "replace", "x": 1}}),
            json!({"b": {"x": 1}}),
        );
        check(
            &s,
            json!({"a": 1, "b": {"c": 2}}),
            json!({"b": {"$patch": "delete"}}),
            json!({"a": 1}),
        );
    }

    #[test]
    fn containers_merge_by_name() {
        let s = PatchSchema::for_kind::<Pod>();
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}});
        check(
            &s,
            pod.clone(),
            json!({"spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}]}}),
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "b", "image": "b:1"}]}}),
        );
        check(
            &s,
            pod.clone(),
            json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}]}}),
        );
        check(
            &s,
            pod,
            json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
        );
    }

    #[test]
    fn set_element_order_and_primitive_lists() {
        let s = PatchSchema::for_kind::<Pod>();
        check(
            &s,
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]}}),
        );
        check(
            &s,
            json!({"metadata": {"finalizers": ["x", "y"]}}),
            json!({"metadata": {"finalizers": ["z"], "$deleteFromPrimitiveList/finalizers": ["x"]}}),
            json!({"metadata": {"finalizers": ["y", "z"]}}),
        );
        // Lists without a strategy are replaced.
        check(
            &s,
            json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}}),
            json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
            json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
        );
    }

    #[test]
    fn retain_keys() {
        let s = PatchSchema::for_kind::<Deployment>();
        check(
            &s,
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        );
    }

    #[test]
    fn kubectl_apply_patch_for_a_deployment() {
        let s = PatchSchema::for_kind::<Deployment>();
        let live = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "busybox:1.36", "command": ["httpd"], "imagePullPolicy": "IfNotPresent",
             "env": [{"name": "A", "value": "1"}]}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                "env": [{"name": "B", "value": "2"}], "image": "busybox:1.37", "name": "web"}]}}}});
        check(
            &s,
            live,
            patch,
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "busybox:1.37", "command": ["httpd"], "imagePullPolicy": "IfNotPresent",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}}),
        );
    }

    #[test]
    fn long_lists_merge_in_linear_time() {
        // Scanning the list for each patch item would take 10^10 comparisons here.
        let n = 100_000;
        let names: Vec<Value> = (0..n).map(|i| json!(format!("f{i}"))).collect();
        let containers: Vec<Value> = (0..n).map(|i| json!({"name": format!("c{i}")})).collect();
        let original =
            json!({"metadata": {"finalizers": names}, "spec": {"containers": containers}});
        let more: Vec<Value> = (0..n).map(|i| json!(format!("g{i}"))).collect();
        let patch = json!({
            "metadata": {"finalizers": more},
            "spec": {"containers": (0..n).rev().map(|i| json!({"name": format!("c{i}"), "image": "x"})).collect::<Vec<_>>()},
        });
        let start = std::time::Instant::now();
        let out = apply(&original, &patch, &PatchSchema::for_kind::<Pod>()).unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        assert_eq!(
            out["metadata"]["finalizers"].as_array().unwrap().len(),
            2 * n
        );
        assert_eq!(
            out["spec"]["containers"][0],
            json!({"name": "c0", "image": "x"})
        );
    }

    #[test]
    fn errors() {
        let s = PatchSchema::for_kind::<Pod>();
        assert!(apply(&json!({}), &json!({"a": {"$patch": "bogus"}}), &s).is_err());
        assert!(
            apply(
                &json!({}),
                &json!({"spec": {"containers": [{"image": "x"}]}}),
                &s
            )
            .is_err()
        );
        assert!(apply(&json!({}), &json!([1]), &s).is_err());
    }
}
