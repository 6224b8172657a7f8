//! Upstream's DefaultStorageClass and DefaultIngressClass admission: a claim created without a
//! class, and an ingress created without a class name or the legacy class annotation, get the
//! class marked default (the newest when several are, as upstream since 1.28).

use serde_json::{Value, json};

use crate::registry;
use crate::state::ApiState;

/// The default class of `plural` in `group` by its default annotations, if any.
fn default_class(
    state: &ApiState,
    group: &str,
    plural: &str,
    annotations: &[&str],
) -> Option<String> {
    let resource = registry::builtin(group, "v1", plural)?;
    state
        .cache
        .list(resource, "")
        .objects
        .iter()
        .map(|o| o.value())
        .filter(|class| {
            annotations
                .iter()
                .any(|a| class["metadata"]["annotations"][a].as_str() == Some("true"))
        })
        .max_by(|a, b| {
            let created = |v: &Value| {
                v["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| crate::meta::name(b).cmp(crate::meta::name(a)))
        })
        .map(|class| crate::meta::name(&class).to_owned())
}

/// A claim without spec.storageClassName (absent, not empty: "" asks for no class) and
/// without the beta class annotation gets the default StorageClass.
pub fn storage_class(state: &ApiState, claim: &mut Value) {
    let has_class = !claim["spec"]["storageClassName"].is_null()
        || !claim["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].is_null();
    if has_class {
        return;
    }
    let annotations = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ];
    if let Some(spec) = claim["spec"].as_object_mut()
        && let Some(class) = default_class(state, "storage.k8s.io", "storageclasses", &annotations)
    {
        spec.insert("storageClassName".into(), json!(class));
    }
}

/// An ingress without spec.ingressClassName and without the `kubernetes.io/ingress.class`
/// annotation gets the default IngressClass.
pub fn ingress_class(state: &ApiState, ingress: &mut Value) {
    let has_class = !ingress["spec"]["ingressClassName"].is_null()
        || !ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"].is_null();
    if has_class {
        return;
    }
    let annotations = ["ingressclass.kubernetes.io/is-default-class"];
    if let Some(spec) = ingress["spec"].as_object_mut()
        && let Some(class) =
            default_class(state, "networking.k8s.io", "ingressclasses", &annotations)
    {
        spec.insert("ingressClassName".into(), json!(class));
    }
}
