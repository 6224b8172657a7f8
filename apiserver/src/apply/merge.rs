//! An applied configuration merged into the live object, and the fields its manager stopped
//! applying removed, as structured-merge-diff does: maps and structs merge by key, keyed lists
//! and sets by item (the configuration's order, live-only items kept where they were), atomic
//! nodes are replaced whole.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::fieldpath::{PathElement, Set};
use super::sets::item_element;
use super::typed::{ListType, Shape, Types};

/// `config` merged into `live`.
pub fn merge(live: &Value, config: &Value, types: &dyn Types) -> Result<Value, String> {
    merge_at(live, config, types, &mut Vec::new())
}

fn merge_at<'a>(
    live: &'a Value,
    config: &'a Value,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
) -> Result<Value, String> {
    let shape = if names.is_empty() {
        Shape::Granular
    } else {
        types.shape(names)
    };
    match (live, config, shape) {
        (Value::Object(l), Value::Object(c), Shape::Granular) => merge_fields(l, c, types, names),
        (Value::Array(l), Value::Array(c), Shape::List(list))
            if list != ListType::Atomic && !(l.is_empty() && c.is_empty()) =>
        {
            merge_lists(l, c, &list, types, names).map(Value::Array)
        }
        _ => Ok(config.clone()),
    }
}

/// A granular map or struct (or a keyed list's item): every configured entry merged into live.
fn merge_fields<'a>(
    live: &'a Map<String, Value>,
    config: &'a Map<String, Value>,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
) -> Result<Value, String> {
    let mut out = live.clone();
    for (k, cv) in config {
        names.push(k);
        let merged = match live.get(k) {
            Some(lv) => merge_at(lv, cv, types, names)?,
            None => cv.clone(),
        };
        names.pop();
        out.insert(k.clone(), merged);
    }
    Ok(Value::Object(out))
}

/// Keyed lists and sets: the configuration's items in its order, merged with their live
/// twins, and live-only items kept after the live item before them.
fn merge_lists<'a>(
    live: &'a [Value],
    config: &'a [Value],
    list: &ListType,
    types: &dyn Types,
    names: &mut Vec<&'a str>,
) -> Result<Vec<Value>, String> {
    let key = |v: &Value| item_element(types, names, list, v);
    let live_keys: Vec<Option<PathElement>> = live.iter().map(key).collect::<Result<_, _>>()?;
    let config_keys: Vec<Option<PathElement>> = config.iter().map(key).collect::<Result<_, _>>()?;
    let in_config: BTreeSet<&Option<PathElement>> = config_keys.iter().collect();
    let in_live: BTreeSet<&Option<PathElement>> = live_keys.iter().collect();
    let shared: Vec<&Option<PathElement>> =
        config_keys.iter().filter(|k| in_live.contains(k)).collect();
    let twins: std::collections::BTreeMap<&Option<PathElement>, &'a Value> =
        live_keys.iter().zip(live).rev().collect();
    let merge_item = |l: Option<&'a Value>, c: &'a Value, names: &mut Vec<&'a str>| match (l, c) {
        (Some(Value::Object(l)), Value::Object(c)) if matches!(list, ListType::Map(_)) => {
            merge_fields(l, c, types, names)
        }
        _ => Ok(c.clone()),
    };
    let (mut i, mut j, mut s) = (0, 0, 0);
    let mut emitted: BTreeSet<&Option<PathElement>> = BTreeSet::new();
    let mut out = Vec::with_capacity(live.len() + config.len());
    loop {
        if i < live.len() {
            let lk = &live_keys[i];
            if emitted.contains(lk) {
                i += 1;
                continue;
            }
            if j < config.len() && config_keys[j] == *lk {
                out.push(merge_item(Some(&live[i]), &config[j], names)?);
                emitted.insert(lk);
                if shared.get(s) == Some(&lk) {
                    s += 1;
                }
                i += 1;
                j += 1;
                continue;
            }
            if !in_config.contains(lk) {
                out.push(live[i].clone());
                i += 1;
                continue;
            }
            if shared.get(s) != Some(&lk) {
                // Emitted later, where the configuration places it.
                i += 1;
                continue;
            }
        }
        if j < config.len() {
            let ck = &config_keys[j];
            let live_twin = twins.get(ck).copied();
            out.push(merge_item(live_twin, &config[j], names)?);
            if shared.get(s) == Some(&ck) {
                s += 1;
            }
            emitted.insert(ck);
            j += 1;
            continue;
        }
        if i >= live.len() {
            break;
        }
        i += 1;
    }
    Ok(out)
}

/// Removes from `obj` every path of `gone`, and maps emptied by that removal; a node with
/// something `kept` below it stays (only its other children go). One walk of the object,
/// whatever the number of paths.
pub fn remove(obj: &mut Value, gone: &Set, kept: &Set, types: &dyn Types) {
    remove_below(obj, gone, kept, types, &mut Vec::new(), &mut Vec::new());
}

fn remove_below(
    obj: &mut Value,
    gone: &Set,
    kept: &Set,
    types: &dyn Types,
    names: &mut Vec<String>,
    path: &mut Vec<PathElement>,
) {
    match obj {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for name in keys {
                let element = PathElement::Field(name.clone());
                path.push(element.clone());
                names.push(name.clone());
                if gone.has_member(&element) && !kept.has_below(path) {
                    map.remove(&name);
                } else if let Some(below) = gone.child(&element)
                    && let Some(child) = map.get_mut(&name)
                {
                    remove_below(child, below, kept, types, names, path);
                    if child.as_object().is_some_and(Map::is_empty) {
                        map.remove(&name);
                    }
                }
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => {
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let Shape::List(list) = types.shape(&name_refs) else {
                return;
            };
            let elements: Vec<Option<PathElement>> = items
                .iter()
                .map(|v| item_element(types, &name_refs, &list, v).ok().flatten())
                .collect();
            let mut keep = Vec::with_capacity(items.len());
            for (mut item, element) in std::mem::take(items).into_iter().zip(elements) {
                if let Some(element) = element {
                    path.push(element.clone());
                    let drop = gone.has_member(&element) && !kept.has_below(path);
                    if !drop && let Some(below) = gone.child(&element) {
                        remove_below(&mut item, below, kept, types, names, path);
                    }
                    path.pop();
                    if drop {
                        continue;
                    }
                }
                keep.push(item);
            }
            *items = keep;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::typed::Builtin;
    use super::*;
    use serde_json::json;

    fn names(list: &[Value]) -> Vec<String> {
        list.iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn merged(live: &[&str], config: &[&str]) -> Vec<String> {
        let item = |n: &&str| json!({"name": n});
        let live = json!({"spec": {"containers": live.iter().map(item).collect::<Vec<_>>()}});
        let config = json!({"spec": {"containers": config.iter().map(item).collect::<Vec<_>>()}});
        let out = merge(&live, &config, &Builtin { kind: "Pod" }).unwrap();
        names(out["spec"]["containers"].as_array().unwrap())
    }

    #[test]
    fn keyed_lists_keep_the_order_upstream_keeps() {
        assert_eq!(
            merged(&["a", "b", "c", "d"], &["d", "e", "f", "a"]),
            ["b", "c", "d", "e", "f", "a"]
        );
        assert_eq!(
            merged(&["a", "b", "c"], &["c", "d", "e", "f"]),
            ["a", "b", "c", "d", "e", "f"]
        );
        assert_eq!(
            merged(
                &["c", "d", "e", "f", "g", "h", "i", "j"],
                &["2", "h", "3", "e", "4", "k", "l"]
            ),
            [
                "c", "d", "f", "g", "2", "h", "i", "j", "3", "e", "4", "k", "l"
            ]
        );
        assert_eq!(merged(&["a", "b"], &["b", "a"]), ["b", "a"]);
    }

    #[test]
    fn maps_merge_items_merge_and_atomic_nodes_are_replaced() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"nodeSelector": {"x": "1", "y": "2"},
                     "containers": [{"name": "c", "image": "old", "args": ["1", "2"]}]}});
        let config = json!({"metadata": {"labels": {"b": "3"}},
            "spec": {"nodeSelector": {"z": "3"},
                     "containers": [{"name": "c", "args": ["9"]}]}});
        let out = merge(&live, &config, &Builtin { kind: "Pod" }).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "3"}));
        assert_eq!(out["spec"]["nodeSelector"], json!({"z": "3"}));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "old", "args": ["9"]}])
        );
    }

    #[test]
    fn removal_takes_fields_items_and_emptied_maps() {
        let types = Builtin { kind: "Pod" };
        let mut obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d"}]}});
        let mut gone = Set::new();
        gone.insert(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("labels".into()),
            PathElement::Field("a".into()),
        ]);
        let c = item_element(
            &types,
            &["spec", "containers"],
            &ListType::Map(vec!["name".into()]),
            &json!({"name": "c"}),
        )
        .unwrap()
        .unwrap();
        gone.insert(&[
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            c,
        ]);
        let x = item_element(
            &types,
            &["metadata", "finalizers"],
            &ListType::Set,
            &json!("x"),
        )
        .unwrap()
        .unwrap();
        gone.insert(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("finalizers".into()),
            x,
        ]);
        remove(&mut obj, &gone, &Set::new(), &types);
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["y"]}, "spec": {"containers": [{"name": "d"}]}})
        );
    }
}
