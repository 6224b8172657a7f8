//! Patches beyond JSON patch and merge patch (which the json-patch crate applies): strategic
//! merge patch and the per-kind metadata it needs.

pub mod schema;
pub mod strategic;
