//! Patches: JSON patch within upstream's limits (the json-patch crate applies each
//! operation), strategic merge patch and the per-kind metadata it needs. Merge patch is the
//! json-patch crate's alone.

pub mod json;
pub mod schema;
pub mod strategic;
