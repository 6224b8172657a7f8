//! metadata.managedFields: who owns which fields. An ordinary write (create, update, patch)
//! gives its manager the fields it added or changed and takes them from everyone else; an
//! apply makes its manager own exactly the fields it applied, refuses to change fields
//! others own (409, unless forced) and removes fields it stopped applying that nobody else
//! owns. docs/design/server-side-apply.md has upstream's rules this follows.

use serde_json::{Value, json};

use super::fieldpath::{Path, PathElement, Set, render};
use super::merge;
use super::sets::{changes, config_set};
use super::typed::Types;
use crate::status::ApiError;

/// One managedFields entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub manager: String,
    /// "Apply" or "Update".
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub set: Set,
}

impl Entry {
    /// Whether `self` and `other` are the same entry (upstream's identity: an Apply entry per
    /// manager and subresource, an Update entry per manager, version and subresource).
    fn same_identity(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == "Apply" || self.api_version == api_version)
    }

    /// How conflict messages name the entry's manager.
    fn shown(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// The entries an object carries (those that cannot be read are skipped).
pub fn read(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let operation = e["operation"].as_str()?;
            if !matches!(operation, "Apply" | "Update") || e["fieldsType"] != "FieldsV1" {
                return None;
            }
            Some(Entry {
                manager: e["manager"].as_str().unwrap_or("unknown").to_owned(),
                operation: operation.to_owned(),
                api_version: e["apiVersion"].as_str()?.to_owned(),
                time: e["time"].as_str().map(str::to_owned),
                subresource: e["subresource"].as_str().unwrap_or("").to_owned(),
                set: Set::from_fields_v1(&e["fieldsV1"]).ok()?,
            })
        })
        .collect()
}

/// Writes `entries` into `obj` in upstream's order (Apply first, then by time, manager,
/// version, subresource), dropping empty ones; no entries, no managedFields.
pub fn write(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (a.operation != "Apply")
            .cmp(&(b.operation != "Apply"))
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let meta = crate::meta::metadata_mut(obj);
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_fields_v1(),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

/// Paths no manager owns: identity and server-set metadata.
fn strip(mut set: Set) -> Set {
    let f = |n: &str| PathElement::Field(n.to_owned());
    for field in ["apiVersion", "kind", "metadata"] {
        set.remove_member(&f(field));
    }
    if let Some(metadata) = set.child_mut(&f("metadata")) {
        for field in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            metadata.remove_member(&f(field));
        }
    }
    set.prune();
    set
}

/// What a write through `subresource` may own: the status alone through /status, everything
/// but the status through the main resource of a kind with a status subresource.
fn reset(mut set: Set, subresource: &str, has_status: bool) -> Set {
    let status = PathElement::Field("status".into());
    match subresource {
        "status" => set.retain_top(|e| *e == status),
        "" if has_status => set.retain_top(|e| *e != status),
        _ => {}
    }
    set
}

/// Where a write happens: who, through which version and subresource.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: String,
    pub subresource: &'a str,
    /// The kind has a status subresource (its main resource does not own the status).
    pub has_status: bool,
    pub types: &'a dyn Types,
}

fn now() -> String {
    crate::meta::now_rfc3339()
}

/// Records an ordinary write from `old` (None: a create) to `new` in `new`'s managedFields.
/// An existing object nobody tracks stays untracked, as upstream.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let supplied = &new["metadata"]["managedFields"];
    let current = old.map_or(&Value::Null, |o| &o["metadata"]["managedFields"]);
    // managedFields a client sends are taken as the starting point (how kubectl moves an
    // object from client-side to server-side apply); `[]` clears them. Ones that cannot be
    // read are ignored, as upstream does.
    let given = (w.subresource.is_empty() && supplied.is_array() && supplied != current)
        .then(|| supplied.clone());
    let mut entries = match (&given, old) {
        (Some(list), _)
            if list.as_array().is_some_and(|l| {
                l.iter()
                    .all(|e| e.as_object().is_some_and(|m| m.is_empty()))
            }) =>
        {
            crate::meta::metadata_mut(new).remove("managedFields");
            return;
        }
        (Some(_), _) if !read(new).is_empty() => read(new),
        (_, Some(old)) => {
            let entries = read(old);
            if entries.is_empty() {
                crate::meta::metadata_mut(new).remove("managedFields");
                return;
            }
            entries
        }
        (_, None) => Vec::new(),
    };
    let empty = json!({});
    let (changed, removed) = changes(old.unwrap_or(&empty), new, w.types);
    let changed = reset(strip(changed), w.subresource, w.has_status);
    let mut mine: Option<Entry> = None;
    for mut e in std::mem::take(&mut entries) {
        if e.same_identity(w.manager, "Update", &w.api_version, w.subresource) {
            mine = Some(e);
        } else {
            e.set.subtract(&changed);
            e.set.subtract(&removed);
            entries.push(e);
        }
    }
    let mut mine = mine.unwrap_or_else(|| Entry {
        manager: w.manager.to_owned(),
        operation: "Update".into(),
        api_version: w.api_version.clone(),
        time: None,
        subresource: w.subresource.to_owned(),
        set: Set::new(),
    });
    let before = mine.set.clone();
    mine.set.subtract(&removed);
    mine.set.absorb(changed);
    if mine.set != before {
        mine.time = Some(now());
    }
    entries.push(mine);
    write(new, cap_updates(entries));
}

/// The most Update entries an object keeps (upstream's cap): older ones of a version merge
/// into one `ancient-changes` entry, so writers with ever new names cannot grow an object
/// without bound.
const MAX_UPDATE_ENTRIES: usize = 10;

fn cap_updates(entries: Vec<Entry>) -> Vec<Entry> {
    let (mut updates, mut out): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.operation == "Update");
    if updates.len() <= MAX_UPDATE_ENTRIES {
        out.extend(updates);
        return out;
    }
    // Oldest first (no time: oldest of all), then by identity.
    updates.sort_by(|a, b| {
        a.time.cmp(&b.time).then_with(|| {
            (&a.manager, &a.api_version, &a.subresource).cmp(&(
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
        })
    });
    let mut count = updates.len();
    let mut kept: Vec<Entry> = Vec::with_capacity(updates.len());
    let mut first_of_version: std::collections::HashMap<String, usize> = Default::default();
    for e in updates {
        match first_of_version.get(&e.api_version) {
            Some(&i) if count > MAX_UPDATE_ENTRIES => {
                let bucket = &mut kept[i];
                bucket.manager = "ancient-changes".into();
                bucket.subresource = String::new();
                bucket.set = bucket.set.union(&e.set);
                bucket.time = bucket.time.clone().max(e.time);
                count -= 1;
            }
            _ => {
                first_of_version
                    .entry(e.api_version.clone())
                    .or_insert(kept.len());
                kept.push(e);
            }
        }
    }
    out.extend(kept);
    out
}

/// An apply of `config` by `w.manager` to `live` (an empty object when there is none): the
/// merged object with its managedFields, or upstream's 409 naming every conflict.
pub fn apply(live: &Value, config: &Value, force: bool, w: &Writer<'_>) -> Result<Value, ApiError> {
    let internal = |e: String| ApiError::internal(e);
    let applied = reset(
        strip(config_set(config, w.types).map_err(internal)?),
        w.subresource,
        w.has_status,
    );
    let mut entries = read(live);
    if entries.is_empty() && live.get("metadata").is_some() {
        // An object nobody tracked: its fields belong to whoever wrote them before.
        let (all, _) = changes(&json!({}), live, w.types);
        entries.push(Entry {
            manager: "before-first-apply".into(),
            operation: "Update".into(),
            api_version: w.api_version.clone(),
            time: None,
            subresource: w.subresource.to_owned(),
            set: strip(all),
        });
    }
    let (mine, others): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| e.same_identity(w.manager, "Apply", &w.api_version, w.subresource));
    let last = mine.first().map(|e| e.set.clone()).unwrap_or_default();
    let mut merged = merge::merge(live, config, w.types).map_err(internal)?;
    let kept = others
        .iter()
        .fold(applied.clone(), |acc, e| acc.union(&e.set));
    merge::remove(&mut merged, &last.difference(&kept), &kept, w.types);
    let (changed, removed) = changes(live, &merged, w.types);
    let conflicts: Vec<(&Entry, Vec<Path>)> = others
        .iter()
        .map(|e| (e, e.set.intersection(&changed).paths()))
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    let mut entries: Vec<Entry> = others
        .iter()
        .map(|e| Entry {
            set: e.set.difference(&changed).difference(&removed),
            ..e.clone()
        })
        .collect();
    let object_changed = !changed.is_empty() || !removed.is_empty();
    let previous_time = mine.first().and_then(|e| e.time.clone());
    entries.push(Entry {
        manager: w.manager.to_owned(),
        operation: "Apply".into(),
        api_version: w.api_version.clone(),
        time: if object_changed || previous_time.is_none() {
            Some(now())
        } else {
            previous_time
        },
        subresource: w.subresource.to_owned(),
        set: applied,
    });
    write(&mut merged, entries);
    Ok(merged)
}

/// Upstream's 409: `Apply failed with N conflicts: conflicts with "m" using v1:\n- .path`.
fn conflict_error(conflicts: &[(&Entry, Vec<Path>)]) -> ApiError {
    let total: usize = conflicts.iter().map(|(_, p)| p.len()).sum();
    let mut causes = Vec::new();
    for (e, paths) in conflicts {
        for p in paths {
            causes.push(json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", e.shown()),
                "field": render(p),
            }));
        }
    }
    let message = if total == 1 {
        let (e, paths) = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            e.shown(),
            render(&paths[0])
        )
    } else {
        let mut lines = Vec::new();
        let mut sorted: Vec<&(&Entry, Vec<Path>)> = conflicts.iter().collect();
        sorted.sort_by(|a, b| a.0.manager.cmp(&b.0.manager));
        for (e, paths) in sorted {
            lines.push(format!("conflicts with {}:", e.shown()));
            lines.extend(paths.iter().map(|p| format!("- {}", render(p))));
        }
        format!("Apply failed with {total} conflicts: {}", lines.join("\n"))
    };
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(Box::new(json!({ "causes": causes }))),
        retry_after: None,
    }
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
        program
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::typed::Builtin;
    use super::*;

    fn writer<'a>(manager: &'a str, types: &'a Builtin) -> Writer<'a> {
        Writer {
            manager,
            api_version: "apps/v1".into(),
            subresource: "",
            has_status: true,
            types,
        }
    }

    fn deployment(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "d", "namespace": "default"},
               "spec": {"replicas": replicas, "paused": false}})
    }

    #[test]
    fn an_update_takes_the_fields_it_changes_and_an_apply_then_conflicts() {
        let types = Builtin { kind: "Deployment" };
        let created = apply(
            &json!({}),
            &deployment(3),
            false,
            &writer("apply_test", &types),
        )
        .unwrap();
        let entries = read(&created);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].set.to_fields_v1(),
            json!({"f:spec": {"f:paused": {}, "f:replicas": {}}})
        );
        // Another manager changes the replicas: it owns them now.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            Some(&created),
            &mut scaled,
            &writer("kube-controller-manager", &types),
        );
        let entries = read(&scaled);
        assert_eq!(
            entries[0].set.to_fields_v1(),
            json!({"f:spec": {"f:paused": {}}})
        );
        assert_eq!(
            entries[1].set.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        // Applying 3 again conflicts; the same value would not.
        let err = apply(
            &scaled,
            &deployment(3),
            false,
            &writer("apply_test", &types),
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            err.details.as_deref().unwrap()["causes"][0],
            json!({"reason": "FieldManagerConflict", "message": "conflict with \"kube-controller-manager\" using apps/v1", "field": ".spec.replicas"})
        );
        let shared = apply(
            &scaled,
            &deployment(5),
            false,
            &writer("apply_test", &types),
        )
        .unwrap();
        assert_eq!(read(&shared).len(), 2, "a co-owner, no conflict");
        // Forced: the field is taken and the other entry, now empty, goes.
        let forced = apply(&scaled, &deployment(3), true, &writer("apply_test", &types)).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let entries = read(&forced);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "apply_test");
    }

    #[test]
    fn fields_no_longer_applied_go_unless_someone_else_owns_them() {
        let types = Builtin { kind: "Deployment" };
        let w = writer("m", &types);
        let mut config = deployment(3);
        config["metadata"]["labels"] = json!({"a": "1", "b": "2"});
        let live = apply(&json!({}), &config, false, &w).unwrap();
        // Another manager also sets label b (same value: shared).
        let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default", "labels": {"b": "2"}}});
        other["spec"] = json!({});
        let live = apply(&live, &other, false, &writer("other", &types)).unwrap();
        // m stops applying both labels: a goes, b stays (other owns it).
        let live = apply(&live, &deployment(3), false, &w).unwrap();
        assert_eq!(live["metadata"]["labels"], json!({"b": "2"}));
    }

    #[test]
    fn long_lists_cost_linear_time() {
        let types = Builtin { kind: "Deployment" };
        let w = writer("m", &types);
        let many: Vec<String> = (0..50_000).map(|i| format!("example.com/f{i}")).collect();
        let mut config = deployment(1);
        config["metadata"]["finalizers"] = json!(many);
        let start = std::time::Instant::now();
        let live = apply(&json!({}), &config, false, &w).unwrap();
        let mut reversed = config.clone();
        reversed["metadata"]["finalizers"] = json!(many.iter().rev().collect::<Vec<_>>());
        let live = apply(&live, &reversed, false, &w).unwrap();
        let emptied = apply(&live, &deployment(1), false, &w).unwrap();
        let left = emptied["metadata"]["finalizers"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(left, 0);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn update_entries_are_capped_into_ancient_changes() {
        let types = Builtin { kind: "ConfigMap" };
        let mut obj =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        record_update(
            None,
            &mut obj,
            &Writer {
                manager: "creator",
                api_version: "v1".into(),
                subresource: "",
                has_status: false,
                types: &types,
            },
        );
        for i in 0..30 {
            let old = obj.clone();
            obj["data"][format!("k{i}")] = json!("v");
            let manager = format!("writer-{i}");
            record_update(
                Some(&old),
                &mut obj,
                &Writer {
                    manager: &manager,
                    api_version: "v1".into(),
                    subresource: "",
                    has_status: false,
                    types: &types,
                },
            );
        }
        let entries = read(&obj);
        assert_eq!(entries.len(), MAX_UPDATE_ENTRIES);
        let ancient = entries
            .iter()
            .find(|e| e.manager == "ancient-changes")
            .expect("a bucket");
        assert!(ancient.set.has(&[
            PathElement::Field("data".into()),
            PathElement::Field("k0".into())
        ]));
        assert!(entries.iter().any(|e| e.manager == "writer-29"));
    }

    #[test]
    fn several_conflicts_are_listed_by_manager() {
        let types = Builtin { kind: "Deployment" };
        let live = apply(&json!({}), &deployment(1), false, &writer("a", &types)).unwrap();
        let mut config = deployment(2);
        config["spec"]["paused"] = json!(true);
        let err = apply(&live, &config, false, &writer("b", &types)).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.paused\n- .spec.replicas"
        );
    }
}
