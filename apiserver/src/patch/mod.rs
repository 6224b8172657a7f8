//! Patches: JSON patch within upstream's limits (the json-patch crate applies each
//! operation), strategic merge patch and the per-kind metadata it needs. Merge patch is the
//! json-patch crate's alone. [`apply`] picks the one a content type names.

pub mod json;
pub mod schema;
pub mod strategic;

use serde_json::Value;

use crate::registry::ResourceInfo;
use crate::status::{ApiError, ApiResult};

/// Applies one patch document of `content_type` to `old`.
pub fn apply(
    resource: &ResourceInfo,
    content_type: &str,
    old: &Value,
    patch: &[u8],
) -> ApiResult<Value> {
    crate::codec::check_body_shape(patch, false)?;
    let doc: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    match content_type {
        "application/json-patch+json" => {
            let ops = json::decode(doc)?;
            let mut out = old.clone();
            json::apply(&mut out, &ops)?;
            Ok(out)
        }
        "application/merge-patch+json" => {
            if !doc.is_object() {
                return Err(ApiError::bad_request(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                ));
            }
            let mut out = old.clone();
            json_patch::merge(&mut out, &doc);
            Ok(out)
        }
        "application/strategic-merge-patch+json" => {
            // Custom resources have no Go struct to read merge keys from: upstream refuses.
            let schema = resource
                .patch_schema()
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            strategic::apply(old, &doc, schema)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}
