//! A custom resource's server-side table, as upstream's CRD table convertor prints it: Name,
//! then the version's additionalPrinterColumns, each read from the object by a JSONPath
//! (`.spec.replicas`, `.status.conditions[?(@.type=="Ready")].status`); Age alone when the
//! version declares none.

use chrono::{DateTime, Utc};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use serde_json::{Value, json};

/// Column types and formats upstream accepts.
pub const TYPES: [&str; 5] = ["boolean", "date", "integer", "number", "string"];
pub const FORMATS: [&str; 8] = [
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// The columns of one served version.
pub struct PrinterColumns {
    columns: Vec<Column>,
}

struct Column {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i32,
    path: Vec<Step>,
}

/// One step of a simple JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    /// Every element of a list (`[*]`).
    All,
    /// The elements whose `field` (a dotted path) equals `value` (`[?(@.type=="Ready")]`).
    Filter(Vec<String>, String),
}

/// Parses the simple JSONPaths printer columns use; the error says what is wrong.
fn parse(path: &str) -> Result<Vec<Step>, String> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    if !path.starts_with('.') {
        return Err("must be a simple json path starting with a dot".into());
    }
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(format!("empty field name in {path:?}"));
            }
            steps.push(Step::Field(r[..end].to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unclosed [ in {path:?}"))?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (field, value) = filter
                    .split_once("==")
                    .ok_or_else(|| format!("unsupported filter in {path:?}"))?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                let field = field.trim().split('.').map(str::to_owned).collect();
                steps.push(Step::Filter(field, value.to_owned()));
            } else {
                return Err(format!("unsupported subscript [{inner}] in {path:?}"));
            }
        } else {
            return Err(format!("unexpected {rest:?} in {path:?}"));
        }
    }
    Ok(steps)
}

/// Whether a column's jsonPath is one the table can follow; the reason when not.
pub fn check_path(path: &str) -> Result<(), String> {
    parse(path).map(|_| ())
}

/// The values `steps` reach in `value`, in order.
fn find<'a>(value: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let Some((step, rest)) = steps.split_first() else {
        return vec![value];
    };
    match step {
        Step::Field(name) => value.get(name).map(|v| find(v, rest)).unwrap_or_default(),
        Step::Index(i) => value.get(*i).map(|v| find(v, rest)).unwrap_or_default(),
        Step::All => value
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|v| find(v, rest))
            .collect(),
        Step::Filter(field, want) => value
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| {
                let got = field.iter().try_fold(*v, |v, f| v.get(f));
                match got {
                    Some(Value::String(s)) => s == want,
                    Some(other @ (Value::Number(_) | Value::Bool(_))) => {
                        serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other)
                    }
                    Some(_) => false,
                    None => false,
                }
            })
            .flat_map(|v| find(v, rest))
            .collect(),
    }
}

impl PrinterColumns {
    /// The columns a version declares (those whose path cannot be followed are left out:
    /// definitions are validated, so only an old stored one has any).
    pub fn new(defs: &[CustomResourceColumnDefinition]) -> PrinterColumns {
        let mut columns = vec![Column {
            name: "Name".into(),
            type_: "string".into(),
            format: "name".into(),
            description: "Name must be unique within a namespace.".into(),
            priority: 0,
            path: vec![Step::Field("metadata".into()), Step::Field("name".into())],
        }];
        if defs.is_empty() {
            columns.push(Column {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description: "Time since the object was created.".into(),
                priority: 0,
                path: vec![
                    Step::Field("metadata".into()),
                    Step::Field("creationTimestamp".into()),
                ],
            });
        }
        for d in defs {
            let Ok(path) = parse(&d.json_path) else {
                continue;
            };
            columns.push(Column {
                name: d.name.clone(),
                type_: d.type_.clone(),
                format: d.format.clone().unwrap_or_default(),
                description: d.description.clone().unwrap_or_default(),
                priority: d.priority.unwrap_or(0),
                path,
            });
        }
        PrinterColumns { columns }
    }

    /// The Table's columnDefinitions.
    pub fn definitions(&self) -> Vec<Value> {
        self.columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.name, "type": c.type_, "format": c.format,
                    "description": c.description, "priority": c.priority
                })
            })
            .collect()
    }

    /// One row's cells: a date as the time since it (upstream's age), other values as
    /// found, null where the path finds nothing.
    pub fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        self.columns
            .iter()
            .map(|c| {
                let Some(found) = find(obj, &c.path).into_iter().next() else {
                    return Value::Null;
                };
                match (c.type_.as_str(), found) {
                    ("date", Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                        Ok(t) => json!(crate::table::human_duration(now - t.with_timezone(&Utc))),
                        Err(_) => json!("<invalid>"),
                    },
                    (_, Value::Array(_) | Value::Object(_)) => json!(found.to_string()),
                    _ => found.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(v: Value) -> PrinterColumns {
        PrinterColumns::new(&serde_json::from_value::<Vec<_>>(v).unwrap())
    }

    #[test]
    fn paths_parse_as_upstream_writes_them() {
        assert_eq!(
            parse(".status.conditions[?(@.type==\"Ready\")].status").unwrap(),
            [
                Step::Field("status".into()),
                Step::Field("conditions".into()),
                Step::Filter(vec!["type".into()], "Ready".into()),
                Step::Field("status".into()),
            ]
        );
        assert_eq!(parse("{.spec.items[0]}").unwrap().len(), 3);
        assert!(parse("spec.replicas").is_err());
        assert!(parse(".spec[").is_err());
    }

    #[test]
    fn cells_follow_the_declared_columns() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"size": 3, "tags": ["a"]},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let printer = columns(json!([
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.none"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]));
        assert_eq!(
            printer.cells(&obj, now),
            [
                json!("w"),
                json!(3),
                json!("True"),
                json!("[\"a\"]"),
                Value::Null,
                json!("10m")
            ]
        );
        let names: Vec<Value> = printer
            .definitions()
            .iter()
            .map(|d| d["name"].clone())
            .collect();
        assert_eq!(names, ["Name", "Size", "Ready", "Tags", "Missing", "Age"]);
        // No declared columns: Name and Age.
        let plain = columns(json!([]));
        assert_eq!(plain.cells(&obj, now), [json!("w"), json!("10m")]);
    }
}
