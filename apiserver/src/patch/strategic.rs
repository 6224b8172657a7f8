//! STUB placeholder; replaced whole.
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
#[error("strategic merge patch is not implemented yet")]
pub struct PatchError;
pub fn apply(
    original: &Value,
    patch: &Value,
    schema: &super::schema::PatchSchema,
) -> Result<Value, PatchError> {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    let _ = schema;
    Ok(out)
}
