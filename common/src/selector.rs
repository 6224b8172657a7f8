//! STUB placeholder so the workspace compiles; the selector module replaces this file whole.
#![allow(dead_code, unused_variables)]
#[derive(Clone, Debug, PartialEq)]
pub struct LabelSelector;
#[derive(Clone, Debug, PartialEq)]
pub struct FieldSelector(Vec<FieldRequirement>);
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
}
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("stub")]
pub struct SelectorError;
impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Ok(LabelSelector)
    }
    pub fn everything() -> Self {
        LabelSelector
    }
    pub fn is_everything(&self) -> bool {
        true
    }
    pub fn matches(&self, labels: Option<&serde_json::Map<String, serde_json::Value>>) -> bool {
        true
    }
    pub fn from_label_selector_json(v: &serde_json::Value) -> Result<Self, SelectorError> {
        Ok(LabelSelector)
    }
}
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Ok(FieldSelector(vec![]))
    }
    pub fn everything() -> Self {
        FieldSelector(vec![])
    }
    pub fn is_everything(&self) -> bool {
        true
    }
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.0
    }
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        true
    }
}
pub fn validate_qualified_name(s: &str) -> Vec<String> {
    vec![]
}
pub fn validate_label_value(s: &str) -> Vec<String> {
    vec![]
}
