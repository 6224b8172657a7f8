//! The field sets server-side apply computes from objects: the fields an applied
//! configuration claims, and the fields a write added, changed or removed (which move
//! ownership to its writer and away from everyone else).

use serde_json::{Map, Value};

use super::fieldpath::{Path, PathElement, Scalar, Set};
use super::typed::{ListType, Shape, Types};

/// A list item's path element under `list` (keys, with defaults for keys it omits).
pub fn item_element(
    types: &dyn Types,
    names: &[&str],
    list: &ListType,
    item: &Value,
) -> Result<Option<PathElement>, String> {
    Ok(match list {
        ListType::Atomic => None,
        ListType::Set => Some(PathElement::Value(Scalar(item.clone()))),
        ListType::Map(keys) => {
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                let v = match item.get(k) {
                    Some(v) => v.clone(),
                    None => types.key_default(names, k).ok_or_else(|| {
                        format!(
                            "associative list with keys has an element that omits key field \"{k}\" (and doesn't have default value)"
                        )
                    })?,
                };
                fields.push((k.clone(), Scalar(v)));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Some(PathElement::Key(fields))
        }
    })
}

/// The fields an applied configuration claims: every scalar and atomic node it sets, every
/// keyed or set item it names, and maps it sets empty.
pub fn config_set(config: &Value, types: &dyn Types) -> Result<Set, String> {
    let mut out = Set::new();
    if let Value::Object(map) = config {
        walk_config(map, types, &mut Vec::new(), &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

fn walk_config<'a>(
    map: &'a Map<String, Value>,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
    path: &mut Path,
    out: &mut Set,
) -> Result<(), String> {
    for (name, value) in map {
        names.push(name);
        path.push(PathElement::Field(name.clone()));
        match (value, types.shape(names)) {
            (Value::Object(inner), Shape::Granular) if !inner.is_empty() => {
                walk_config(inner, types, names, path, out)?;
            }
            (Value::Array(items), Shape::List(list)) if list != ListType::Atomic => {
                walk_items(items, &list, types, names, path, out)?;
            }
            _ => out.insert(path),
        }
        path.pop();
        names.pop();
    }
    Ok(())
}

fn walk_items<'a>(
    items: &'a [Value],
    list: &ListType,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
    path: &mut Path,
    out: &mut Set,
) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        let Some(element) = item_element(types, names, list, item)? else {
            continue;
        };
        if !seen.insert(element.clone()) {
            return Err(format!(
                "{}: duplicate entries for key {}",
                super::fieldpath::render(path),
                super::fieldpath::render(std::slice::from_ref(&element))
            ));
        }
        path.push(element);
        out.insert(path);
        if let (ListType::Map(_), Value::Object(fields)) = (list, item) {
            walk_config(fields, types, names, path, out)?;
        }
        path.pop();
    }
    Ok(())
}

/// What a write from `old` to `new` did: (fields added or changed, fields removed). A node
/// that did not exist before is itself among the added, with everything below it.
pub fn changes(old: &Value, new: &Value, types: &dyn Types) -> (Set, Set) {
    let mut changed = Set::new();
    let mut removed = Set::new();
    if let (Value::Object(o), Value::Object(n)) = (old, new) {
        diff_maps(
            o,
            n,
            types,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut changed,
            &mut removed,
        );
    }
    (changed, removed)
}

fn diff_maps<'a>(
    old: &'a Map<String, Value>,
    new: &'a Map<String, Value>,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
    path: &mut Path,
    changed: &mut Set,
    removed: &mut Set,
) {
    for (name, n) in new {
        names.push(name);
        path.push(PathElement::Field(name.clone()));
        match old.get(name) {
            None => added(n, types, names, path, changed),
            Some(o) => diff_values(o, n, types, names, path, changed, removed),
        }
        path.pop();
        names.pop();
    }
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        path.push(PathElement::Field(name.clone()));
        removed.insert(path);
        path.pop();
    }
}

#[allow(clippy::too_many_arguments)]
fn diff_values<'a>(
    old: &'a Value,
    new: &'a Value,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
    path: &mut Path,
    changed: &mut Set,
    removed: &mut Set,
) {
    match (old, new, types.shape(names)) {
        (Value::Object(o), Value::Object(n), Shape::Granular) => {
            diff_maps(o, n, types, names, path, changed, removed)
        }
        (Value::Array(o), Value::Array(n), Shape::List(list)) if list != ListType::Atomic => {
            // Items matched through maps: linear in the lists, whatever their length.
            let element = |item: &Value| item_element(types, names, &list, item).ok().flatten();
            let old_items: std::collections::BTreeMap<PathElement, &Value> =
                o.iter().filter_map(|i| Some((element(i)?, i))).collect();
            let new_keys: std::collections::BTreeSet<PathElement> =
                n.iter().filter_map(element).collect();
            let mut names_now = names.clone();
            for item in n {
                let Some(e) = element(item) else { continue };
                path.push(e.clone());
                match old_items.get(&e) {
                    None => added(item, types, &mut names_now, path, changed),
                    Some(before) => {
                        if let (Value::Object(bo), Value::Object(no), ListType::Map(_)) =
                            (before, item, &list)
                        {
                            diff_maps(bo, no, types, &mut names_now, path, changed, removed);
                        }
                    }
                }
                path.pop();
            }
            for e in old_items.keys().filter(|e| !new_keys.contains(e)) {
                path.push(e.clone());
                removed.insert(path);
                path.pop();
            }
        }
        _ => {
            if !same(old, new) {
                changed.insert(path);
            }
        }
    }
}

/// A node that did not exist: itself and every node below it.
fn added<'a>(
    value: &'a Value,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
    path: &mut Path,
    changed: &mut Set,
) {
    changed.insert(path);
    match (value, types.shape(names)) {
        (Value::Object(map), Shape::Granular) => {
            for (name, v) in map {
                names.push(name);
                path.push(PathElement::Field(name.clone()));
                added(v, types, names, path, changed);
                path.pop();
                names.pop();
            }
        }
        (Value::Array(items), Shape::List(list)) if list != ListType::Atomic => {
            for item in items {
                let Ok(Some(element)) = item_element(types, names, &list, item) else {
                    continue;
                };
                path.push(element);
                changed.insert(path);
                if let (ListType::Map(_), Value::Object(fields)) = (&list, item) {
                    for (name, v) in fields {
                        names.push(name);
                        path.push(PathElement::Field(name.clone()));
                        added(v, types, names, path, changed);
                        path.pop();
                        names.pop();
                    }
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// Deep equality with numbers compared by value (1 == 1.0), as upstream compares.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fieldpath::render;
    use super::super::typed::Builtin;
    use super::*;
    use serde_json::json;

    fn rendered(set: &Set) -> Vec<String> {
        set.paths().iter().map(|p| render(p)).collect()
    }

    #[test]
    fn an_applied_deployment_claims_its_leaves_and_keyed_items() {
        let config = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1",
                    "ports": [{"containerPort": 80}], "args": ["a"]}]}}}
        });
        let set = config_set(&config, &Builtin { kind: "Deployment" }).unwrap();
        assert_eq!(
            rendered(&set),
            [
                ".apiVersion",
                ".kind",
                ".metadata.name",
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.selector",
                ".spec.template.spec.containers[name=\"nginx\"]",
                ".spec.template.spec.containers[name=\"nginx\"].args",
                ".spec.template.spec.containers[name=\"nginx\"].image",
                ".spec.template.spec.containers[name=\"nginx\"].name",
                ".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"]",
                ".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"].containerPort",
            ]
        );
        let dup =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = config_set(&dup, &Builtin { kind: "Deployment" }).unwrap_err();
        assert!(
            err.contains("duplicate entries for key [name=\"a\"]"),
            "{err}"
        );
    }

    #[test]
    fn a_write_reports_what_it_added_changed_and_removed() {
        let types = Builtin { kind: "ConfigMap" };
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}, "data": {"k": "v", "gone": "1"}});
        let new = json!({"metadata": {"labels": {"a": "1", "b": "3"}, "finalizers": ["x", "y"],
                         "annotations": {"n": "1"}}, "data": {"k": "v", "new": "2"}});
        let (changed, removed) = changes(&old, &new, &types);
        assert_eq!(
            rendered(&changed),
            [
                ".data.new",
                ".metadata.annotations",
                ".metadata.annotations.n",
                ".metadata.finalizers[=\"y\"]",
                ".metadata.labels.b",
            ]
        );
        assert_eq!(rendered(&removed), [".data.gone"]);
        // Numbers compare by value.
        let (changed, _) = changes(
            &json!({"spec": {"n": 1}}),
            &json!({"spec": {"n": 1.0}}),
            &types,
        );
        assert!(changed.is_empty());
    }
}
