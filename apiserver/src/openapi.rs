//! STUB placeholder until the OpenAPI module lands; replaced whole.
use serde_json::{Value, json};
pub fn v3_index() -> Value {
    json!({"paths": {}})
}
pub fn v3_document(_group: &str, _version: &str) -> Option<Value> {
    None
}
pub fn v2_document() -> &'static Value {
    static V: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
        || json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": {}, "definitions": {}}),
    );
    &V
}
