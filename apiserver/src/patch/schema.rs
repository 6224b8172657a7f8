//! STUB placeholder; replaced whole.
pub struct PatchSchema;
impl PatchSchema {
    pub fn for_kind<K: schemars::JsonSchema>() -> PatchSchema {
        PatchSchema
    }
    pub fn empty() -> PatchSchema {
        PatchSchema
    }
}
