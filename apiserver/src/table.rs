//! STUB placeholder until the table printers land; replaced whole.
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}
static DEFAULT: [Column; 2] = [
    Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: "",
        priority: 0,
    },
    Column {
        name: "Age",
        type_: "string",
        format: "",
        description: "",
        priority: 0,
    },
];
pub fn columns(_group: &str, _resource: &str) -> &'static [Column] {
    &DEFAULT
}
pub fn cells(
    _group: &str,
    _resource: &str,
    obj: &serde_json::Value,
    _now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    vec![obj["metadata"]["name"].clone(), serde_json::json!("0s")]
}
