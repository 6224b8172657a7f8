//! The definitions' controller, run inside the apiserver as upstream's apiextensions
//! controllers are: it accepts a definition's names when no other definition of the group
//! uses them (NamesAccepted), establishes it (Established: its resources are served), records
//! its storage version, and when the definition is deleted deletes its custom resources and
//! then lets it go (Terminating, the cleanup finalizer).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::CLEANUP_FINALIZER;
use super::definition::{condition, set_condition};
use crate::meta;
use crate::registry::store::{self, Desired};
use crate::registry::{ResourceInfo, Target, WriteOptions};
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// The field manager of the controller's writes, as upstream's.
const MANAGER: &str = "kube-apiserver";
/// How soon a failed definition is tried again, and how often all are looked at anyway.
const RETRY: Duration = Duration::from_secs(1);
const RESYNC: Duration = Duration::from_secs(30);

fn definitions() -> Arc<ResourceInfo> {
    crate::registry::builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("definitions are served")
        .clone()
}

fn target(name: &str, subresource: &str) -> Target {
    Target {
        resource: definitions(),
        namespace: String::new(),
        name: name.to_owned(),
        subresource: subresource.to_owned(),
    }
}

/// Starts the controller; it runs for the life of the server.
pub fn spawn(state: Arc<ApiState>) {
    tokio::spawn(run(state));
}

async fn run(state: Arc<ApiState>) {
    let resource = definitions();
    loop {
        let Ok(mut watch) = state.cache.watch(&resource, "", None).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let mut pending: BTreeSet<String> = watch
            .initial
            .iter()
            .map(|o| super::name_of_key(&o.key).to_owned())
            .collect();
        let mut failed = BTreeSet::new();
        loop {
            for name in std::mem::take(&mut pending) {
                if let Err(e) = reconcile(&state, &name).await {
                    tracing::info!(definition = %name, error = %e.message, "will retry the definition");
                    failed.insert(name);
                }
            }
            let wait = if failed.is_empty() { RESYNC } else { RETRY };
            tokio::select! {
                event = watch.live.recv() => match event {
                    Ok(e) => {
                        pending.insert(super::name_of_key(&e.object.key).to_owned());
                    }
                    // Fell behind or the cache reloaded: start over from a fresh list.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
                },
                _ = tokio::time::sleep(wait) => {
                    pending.append(&mut failed);
                    if wait == RESYNC {
                        break;
                    }
                }
            }
        }
    }
}

/// Brings one definition's status (or its deletion) forward.
async fn reconcile(state: &Arc<ApiState>, name: &str) -> ApiResult<()> {
    let obj = match store::current(state, &target(name, "")).await {
        Ok((_, obj)) => obj,
        Err(e) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    let Ok(crd) = CustomResourceDefinition::deserialize(&obj) else {
        return Ok(());
    };
    if meta::is_terminating(&obj) {
        if meta::finalizers(&obj)
            .iter()
            .any(|f| f == CLEANUP_FINALIZER)
        {
            finalize(state, name).await?;
        }
        return Ok(());
    }
    let others: Vec<CustomResourceDefinition> = state
        .cache
        .list(&definitions(), "")
        .objects
        .iter()
        .filter_map(|o| serde_json::from_slice::<CustomResourceDefinition>(&o.bytes).ok())
        .filter(|o| o.metadata.name.as_deref() != Some(name) && o.spec.group == crd.spec.group)
        .collect();
    let conflict = conflict(&crd.spec.names, &others);
    update_status(state, name, |status_obj| {
        let mut changed = false;
        match &conflict {
            None => {
                let accepted = serde_json::to_value(&crd.spec.names).unwrap_or(Value::Null);
                if status_obj["status"]["acceptedNames"] != accepted {
                    status_obj["status"]["acceptedNames"] = accepted;
                    changed = true;
                }
                changed |= set_condition(
                    status_obj,
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                );
                let established = status_obj["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    });
                if !established {
                    changed |= set_condition(
                        status_obj,
                        condition(
                            "Established",
                            "InitialNamesAccepted",
                            "the initial names have been accepted",
                        ),
                    );
                }
            }
            Some((reason, message)) => {
                let mut refused = condition("NamesAccepted", reason, message);
                refused["status"] = json!("False");
                changed |= set_condition(status_obj, refused);
            }
        }
        if let Some(storage) = crd.spec.versions.iter().find(|v| v.storage) {
            let stored = meta::object_at(status_obj, &["status"])
                .entry("storedVersions")
                .or_insert_with(|| json!([]));
            if let Some(list) = stored.as_array_mut()
                && !list.iter().any(|v| v == storage.name.as_str())
            {
                list.push(json!(storage.name));
                changed = true;
            }
        }
        changed
    })
    .await
}

/// Which of a definition's names another definition of its group already serves under:
/// (reason, message) as upstream's naming controller reports it.
fn conflict(
    names: &CustomResourceDefinitionNames,
    others: &[CustomResourceDefinition],
) -> Option<(&'static str, String)> {
    let taken: Vec<&CustomResourceDefinitionNames> = others
        .iter()
        .filter_map(|o| o.status.as_ref()?.accepted_names.as_ref())
        .collect();
    let in_use = |n: &str| {
        !n.is_empty()
            && taken.iter().any(|t| {
                t.plural == n
                    || t.singular.as_deref() == Some(n)
                    || t.short_names.iter().flatten().any(|s| s == n)
            })
    };
    let kind_in_use = |k: &str| {
        !k.is_empty()
            && taken
                .iter()
                .any(|t| t.kind == k || t.list_kind.as_deref() == Some(k))
    };
    if in_use(&names.plural) {
        return Some((
            "PluralConflict",
            format!("\"{}\" is already in use", names.plural),
        ));
    }
    if let Some(singular) = names.singular.as_deref().filter(|s| in_use(s)) {
        return Some((
            "SingularConflict",
            format!("\"{singular}\" is already in use"),
        ));
    }
    if let Some(short) = names.short_names.iter().flatten().find(|s| in_use(s)) {
        return Some((
            "ShortNamesConflict",
            format!("\"{short}\" is already in use"),
        ));
    }
    if kind_in_use(&names.kind) {
        return Some((
            "KindConflict",
            format!("\"{}\" is already in use", names.kind),
        ));
    }
    if let Some(list_kind) = names.list_kind.as_deref().filter(|k| kind_in_use(k)) {
        return Some((
            "ListKindConflict",
            format!("\"{list_kind}\" is already in use"),
        ));
    }
    None
}

/// Writes the definition (through `subresource`) as `change` leaves it; nothing when it
/// changes nothing, or when the definition is gone.
async fn update(
    state: &Arc<ApiState>,
    name: &str,
    subresource: &str,
    change: impl Fn(&mut Value) -> bool,
) -> ApiResult<()> {
    let result = store::guaranteed_update(
        state,
        &target(name, subresource),
        &WriteOptions::default(),
        MANAGER,
        |old| {
            let mut new = old.clone();
            change(&mut new);
            Ok(Desired {
                object: new,
                precondition: false,
            })
        },
    )
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the definition's status as `change` leaves it.
async fn update_status(
    state: &Arc<ApiState>,
    name: &str,
    change: impl Fn(&mut Value) -> bool,
) -> ApiResult<()> {
    update(state, name, "status", change).await
}

/// Deletes a terminating definition's custom resources; once none is left, removes the
/// cleanup finalizer, which lets the definition go.
async fn finalize(state: &Arc<ApiState>, name: &str) -> ApiResult<()> {
    update_status(state, name, |obj| {
        set_condition(
            obj,
            condition(
                "Terminating",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            ),
        )
    })
    .await?;
    if let Some(resource) = state.cache.resources().defined_by(name).into_iter().next() {
        let all = Target {
            resource,
            namespace: String::new(),
            name: String::new(),
            subresource: String::new(),
        };
        store::delete_collection(state, &all, &Default::default(), |_| true).await?;
        let left = state.cache.list(&all.resource, "").objects.len();
        if left > 0 {
            // Finalizers of the objects themselves may hold them a while.
            return Err(ApiError::conflict(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                name,
                &format!("{left} custom resources remain"),
            ));
        }
    }
    update_status(state, name, |obj| {
        set_condition(
            obj,
            condition(
                "Terminating",
                "InstanceDeletionCompleted",
                "removed all instances",
            ),
        )
    })
    .await?;
    update(state, name, "", |obj| {
        let kept: Vec<String> = meta::finalizers(obj)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect();
        meta::metadata_mut(obj).insert("finalizers".into(), json!(kept));
        true
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: Value) -> CustomResourceDefinitionNames {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn names_another_definition_accepted_conflict() {
        let other: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"}, "versions": []},
            "status": {"acceptedNames": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                       "listKind": "WidgetList", "shortNames": ["wd"]}}
        }))
        .unwrap();
        let others = [other];
        let check = |n: Value| conflict(&names(n), &others).map(|(r, m)| format!("{r}: {m}"));
        assert_eq!(
            check(json!({"plural": "widgets", "kind": "Gadget"})).as_deref(),
            Some("PluralConflict: \"widgets\" is already in use")
        );
        assert_eq!(
            check(json!({"plural": "gadgets", "kind": "Gadget", "shortNames": ["wd"]})).as_deref(),
            Some("ShortNamesConflict: \"wd\" is already in use")
        );
        assert_eq!(
            check(json!({"plural": "gadgets", "kind": "Widget"})).as_deref(),
            Some("KindConflict: \"Widget\" is already in use")
        );
        assert_eq!(check(json!({"plural": "gadgets", "kind": "Gadget"})), None);
    }
}
