//! Upstream's PersistentVolumeClaimResize admission: a claim's storage request may grow only
//! once it is bound, and only when its StorageClass allows volume expansion.

use common::quantity::Quantity;
use serde_json::Value;

use crate::registry;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// Admits an update of a claim from `old` to `new`.
pub fn admit(state: &ApiState, new: &Value, old: &Value) -> ApiResult<()> {
    let storage = |claim: &Value| {
        claim["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .and_then(|q| Quantity::parse(q).ok())
            .map(|q| q.value())
    };
    let (Some(wanted), Some(had)) = (storage(new), storage(old)) else {
        return Ok(());
    };
    if wanted <= had {
        return Ok(());
    }
    let refuse =
        |why: &str| ApiError::forbidden("", "persistentvolumeclaims", crate::meta::name(new), why);
    if old["status"]["phase"].as_str() != Some("Bound") {
        return Err(refuse(
            "Only bound persistent volume claims can be expanded",
        ));
    }
    let class = old["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
        .as_str()
        .or_else(|| old["spec"]["storageClassName"].as_str())
        .unwrap_or_default();
    let expandable = !class.is_empty()
        && registry::builtin("storage.k8s.io", "v1", "storageclasses").is_some_and(|classes| {
            let key = format!("{}{class}", classes.key_prefix(&state.root));
            state
                .cache
                .get(classes, &key)
                .is_some_and(|c| c.value()["allowVolumeExpansion"].as_bool() == Some(true))
        });
    if !expandable {
        return Err(refuse(
            "only dynamically provisioned pvc can be resized and the storageclass that \
             provisions the pvc must support resize",
        ));
    }
    Ok(())
}
