//! CEL validation rules (`x-kubernetes-validations`) of a CustomResourceDefinition's schema,
//! evaluated as upstream's apiextensions-apiserver does: each rule at its schema node with
//! `self` bound to the node's value (and `oldSelf` to the value it replaces, for transition
//! rules), a false result answered with the rule's message at its field path.
//!
//! The interpreter is the `cel` crate. Two bounds keep a definition's author, or an object's,
//! from making a write expensive: each expression's text is bounded and parsing and evaluating
//! run on a large stack of their own (the parser and interpreter recurse once per operator);
//! and before a rule runs, its cost is bounded from above by its size times the size of the
//! value to the power of its nested comprehensions, against upstream's per-call and per-object
//! limits (upstream meters the cost as it evaluates; the `cel` crate has no meter).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr};
use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, IdedExpr, Program, Value as Cel};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, ValidationRule,
};
use serde_json::Value;

use super::schema::{additional_schema, items_schema};
use crate::status::Cause;

/// The longest rule or messageExpression compiled.
const MAX_EXPRESSION: usize = 16 * 1024;
/// The stack parsing and evaluating run on; reserved, not committed, until used.
const STACK: usize = 256 << 20;
/// Upstream's cost limits: one rule, and all rules of one object.
const PER_CALL_LIMIT: u64 = 1_000_000;
const PER_OBJECT_BUDGET: u64 = 10_000_000;

/// What one evaluation costs before its expression runs.
const EVALUATION_COST: u64 = 100;

/// The standard library, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Identifiers a rule may use without binding them: its variables and CEL's type names.
const KNOWN_IDENTS: &[&str] = &[
    "self",
    "oldSelf",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// A compiled expression with what its cost bound needs.
pub struct Compiled {
    program: Program,
    uses_old_self: bool,
    /// Its AST's nodes, and its deepest nesting of comprehensions (`all`, `exists`, `map`).
    nodes: u64,
    loops: u32,
}

/// Parses `source`, refusing what upstream's compiler would refuse for an unknown variable.
pub fn compile(source: &str) -> Result<Compiled, String> {
    if source.len() > MAX_EXPRESSION {
        return Err(format!(
            "the expression is longer than {MAX_EXPRESSION} bytes"
        ));
    }
    stacker::grow(STACK, || {
        let program = Program::compile(source).map_err(|e| {
            let text = e.to_string();
            text.lines().next().unwrap_or_default().to_owned()
        })?;
        let mut shape = Shape::default();
        shape.walk(program.expression(), &mut Vec::new(), 0)?;
        Ok(Compiled {
            program,
            uses_old_self: shape.uses_old_self,
            nodes: shape.nodes,
            loops: shape.loops,
        })
    })
}

#[derive(Default)]
struct Shape {
    nodes: u64,
    loops: u32,
    uses_old_self: bool,
}

impl Shape {
    /// Counts nodes and comprehension depth, and checks every free identifier is known.
    fn walk<'a>(
        &mut self,
        e: &'a IdedExpr,
        bound: &mut Vec<&'a str>,
        depth: u32,
    ) -> Result<(), String> {
        self.nodes += 1;
        match &e.expr {
            Expr::Ident(name) => {
                if name == "oldSelf" {
                    self.uses_old_self = true;
                }
                if !bound.contains(&name.as_str()) && !KNOWN_IDENTS.contains(&name.as_str()) {
                    return Err(format!("undeclared reference to '{name}'"));
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.walk(target, bound, depth)?;
                }
                for arg in &call.args {
                    self.walk(arg, bound, depth)?;
                }
            }
            Expr::Comprehension(c) => {
                let depth = depth + 1;
                self.loops = self.loops.max(depth);
                self.walk(&c.iter_range, bound, depth)?;
                let before = bound.len();
                bound.push(&c.iter_var);
                if let Some(second) = &c.iter_var2 {
                    bound.push(second);
                }
                bound.push(&c.accu_var);
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.walk(part, bound, depth)?;
                }
                bound.truncate(before);
            }
            Expr::List(list) => {
                for item in &list.elements {
                    self.walk(item, bound, depth)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.walk(&m.key, bound, depth)?;
                        self.walk(&m.value, bound, depth)?;
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.walk(&f.value, bound, depth)?;
                    }
                }
            }
            Expr::Select(select) => self.walk(&select.operand, bound, depth)?,
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(())
    }
}

/// One rule of a schema node, compiled.
pub struct Rule {
    source: ValidationRule,
    compiled: Result<Compiled, String>,
    message_expression: Option<Compiled>,
}

/// The rules of one schema node, compiled (a rule that does not compile is reported when an
/// object is validated, as upstream reports it).
fn rules_of(schema: &JSONSchemaProps) -> Vec<Rule> {
    schema
        .x_kubernetes_validations
        .iter()
        .flatten()
        .map(|rule| Rule {
            compiled: compile(&rule.rule),
            message_expression: rule
                .message_expression
                .as_deref()
                .filter(|m| !m.is_empty())
                .and_then(|m| compile(m).ok()),
            source: rule.clone(),
        })
        .collect()
}

/// What a definition's rules must satisfy, with the problems at `path` (the rules' list).
pub fn check_rules(rules: &[ValidationRule], path: &str, causes: &mut Vec<Cause>) {
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if rule.rule.trim().is_empty() {
            causes.push(Cause::required_detail(
                format!("{at}.rule"),
                "rule is not specified",
            ));
        } else if let Err(e) = compile(&rule.rule) {
            causes.push(Cause::invalid(
                format!("{at}.rule"),
                &Value::String(rule.rule.clone()),
                format!("compilation failed: {e}"),
            ));
        }
        if let Some(m) = rule.message_expression.as_deref().filter(|m| !m.is_empty())
            && let Err(e) = compile(m)
        {
            causes.push(Cause::invalid(
                format!("{at}.messageExpression"),
                &Value::String(m.to_owned()),
                format!("messageExpression compilation failed: {e}"),
            ));
        }
        if let Some(reason) = &rule.reason
            && !matches!(
                reason.as_str(),
                "FieldValueInvalid"
                    | "FieldValueForbidden"
                    | "FieldValueRequired"
                    | "FieldValueDuplicate"
            )
        {
            causes.push(Cause::unsupported(
                format!("{at}.reason"),
                &Value::String(reason.clone()),
                &[
                    "FieldValueInvalid",
                    "FieldValueForbidden",
                    "FieldValueRequired",
                    "FieldValueDuplicate",
                ],
            ));
        }
    }
}

/// The rules of every node of a version's schema, by the node's address in that schema
/// (which `Structural` keeps unmoved behind its `Arc` beside them).
pub struct Rules {
    by_node: HashMap<usize, Vec<Rule>>,
}

fn address(schema: &JSONSchemaProps) -> usize {
    schema as *const JSONSchemaProps as usize
}

impl Rules {
    pub fn new(root: &JSONSchemaProps) -> Rules {
        let mut by_node = HashMap::new();
        super::schema::each_schema(root, &mut |s| {
            if s.x_kubernetes_validations
                .as_ref()
                .is_some_and(|r| !r.is_empty())
            {
                by_node.insert(address(s), rules_of(s));
            }
        });
        Rules { by_node }
    }

    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// Evaluates every rule on `value` (and `old`, the object it replaces) under `schema`.
    pub fn validate(
        &self,
        schema: &JSONSchemaProps,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        causes: &mut Vec<Cause>,
    ) {
        let mut walk = Walk {
            rules: self,
            budget: PER_OBJECT_BUDGET,
            causes,
        };
        // One stack for the object's every evaluation (each `run` finds it roomy enough).
        stacker::grow(STACK, || {
            walk.node(schema, value, old, path);
        });
    }
}

struct Walk<'a> {
    rules: &'a Rules,
    budget: u64,
    causes: &'a mut Vec<Cause>,
}

impl Walk<'_> {
    /// The rules of `schema` on `value`, then of the nodes below. False once the budget ran out.
    fn node(
        &mut self,
        schema: &JSONSchemaProps,
        value: &Value,
        old: Option<&Value>,
        path: &str,
    ) -> bool {
        if value.is_null() {
            return true;
        }
        if let Some(rules) = self.rules.by_node.get(&address(schema))
            && !self.evaluate(schema, rules, value, old, path)
        {
            return false;
        }
        for sub in schema.all_of.iter().flatten() {
            if !self.node(sub, value, old, path) {
                return false;
            }
        }
        match value {
            Value::Object(map) => {
                let old_map = old.and_then(Value::as_object);
                for (key, child) in map {
                    let (sub, child_path) = match property(schema, key) {
                        Some(sub) => (sub, super::schema::child(path, key)),
                        None => match additional_schema(schema) {
                            Some(sub) => (sub, format!("{path}[{key}]")),
                            None => continue,
                        },
                    };
                    let old_child = old_map.and_then(|m| m.get(key));
                    if !self.node(sub, child, old_child, &child_path) {
                        return false;
                    }
                }
            }
            Value::Array(items) => {
                let Some(sub) = items_schema(schema) else {
                    return true;
                };
                // Only a map-typed list pairs its items with the old list's, by their keys
                // (indexed once: a long list costs linear time, not quadratic).
                let old_by_key: HashMap<String, &Value> = match (
                    schema.x_kubernetes_list_type.as_deref(),
                    old.and_then(Value::as_array),
                ) {
                    (Some("map"), Some(olds)) => {
                        let keys = schema
                            .x_kubernetes_list_map_keys
                            .as_deref()
                            .unwrap_or_default();
                        olds.iter().map(|o| (list_map_key(keys, o), o)).collect()
                    }
                    _ => HashMap::new(),
                };
                let keys = schema
                    .x_kubernetes_list_map_keys
                    .as_deref()
                    .unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    let old_item = if old_by_key.is_empty() {
                        None
                    } else {
                        old_by_key.get(&list_map_key(keys, item)).copied()
                    };
                    if !self.node(sub, item, old_item, &format!("{path}[{i}]")) {
                        return false;
                    }
                }
            }
            _ => {}
        }
        true
    }

    fn evaluate(
        &mut self,
        schema: &JSONSchemaProps,
        rules: &[Rule],
        value: &Value,
        old: Option<&Value>,
        path: &str,
    ) -> bool {
        let ty = schema.type_.as_deref().unwrap_or("object");
        let shown = if path.is_empty() { "<nil>" } else { path };
        let this = to_cel(schema, value);
        let old_this = old.map(|o| to_cel(schema, o));
        let mut size = Size::default();
        size.add(value);
        if let Some(old) = old {
            size.add(old);
        }
        for rule in rules {
            let source = &rule.source;
            let compiled = match &rule.compiled {
                Ok(c) => c,
                Err(e) => {
                    self.invalid(shown, ty, format!("rule compile error: {e}"));
                    continue;
                }
            };
            // A transition rule runs only where there is an old value to compare with.
            if compiled.uses_old_self && old_this.is_none() {
                continue;
            }
            let cost = bound(compiled, &size);
            if cost > PER_CALL_LIMIT || cost > self.budget {
                self.invalid(
                    shown,
                    ty,
                    "validation failed due to running out of cost budget, no further validation rules will be run".into(),
                );
                return false;
            }
            self.budget -= cost;
            let result = run(compiled, &this, old_this.as_ref());
            let passed = match result {
                Ok(Cel::Bool(true)) => true,
                Ok(Cel::Bool(false)) => false,
                Ok(_) => {
                    self.invalid(
                        shown,
                        ty,
                        format!(
                            "the rule did not evaluate to a bool evaluating rule: {}",
                            error_string(source)
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    self.invalid(
                        shown,
                        ty,
                        format!("{e} evaluating rule: {}", error_string(source)),
                    );
                    continue;
                }
            };
            // Ratcheting, as upstream: a rule that does not read oldSelf and fails on a value
            // the update left as it was does not refuse the update.
            if passed || (!compiled.uses_old_self && old == Some(value)) {
                continue;
            }
            let field = match source.field_path.as_deref().map(str::trim) {
                Some(p) if !p.is_empty() => rule_field(path, p),
                _ => shown.to_owned(),
            };
            let detail = rule
                .message_expression
                .as_ref()
                .and_then(|m| run(m, &this, old_this.as_ref()).ok())
                .and_then(|v| match v {
                    Cel::String(s) if !s.trim().is_empty() => Some(s.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| message_or_default(source));
            self.causes.push(match source.reason.as_deref() {
                Some("FieldValueForbidden") => Cause::forbidden(field, detail),
                Some("FieldValueRequired") => Cause::required_detail(field, &detail),
                Some("FieldValueDuplicate") => Cause::duplicate(field, &Value::String(ty.into())),
                _ => Cause::invalid(field, &Value::String(ty.to_owned()), detail),
            });
        }
        true
    }

    fn invalid(&mut self, field: &str, ty: &str, detail: String) {
        self.causes
            .push(Cause::invalid(field, &Value::String(ty.to_owned()), detail));
    }
}

/// The node's path with a rule's fieldPath (`.spec.x`, `['a.b']`) below it.
fn rule_field(path: &str, field_path: &str) -> String {
    if path.is_empty() {
        field_path.trim_start_matches('.').to_owned()
    } else if field_path.starts_with('.') || field_path.starts_with('[') {
        format!("{path}{field_path}")
    } else {
        format!("{path}.{field_path}")
    }
}

/// The schema of property `key` of an object's schema.
fn property<'a>(schema: &'a JSONSchemaProps, key: &str) -> Option<&'a JSONSchemaProps> {
    schema.properties.as_ref().and_then(|p| p.get(key))
}

/// An item of a map-typed list by its key fields' values.
fn list_map_key(keys: &[String], item: &Value) -> String {
    let values: Vec<Option<&Value>> = keys.iter().map(|k| item.get(k)).collect();
    serde_json::to_string(&values).unwrap_or_default()
}

fn error_string(rule: &ValidationRule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => rule.rule.trim().to_owned(),
    }
}

fn message_or_default(rule: &ValidationRule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => format!("failed rule: {}", rule.rule.trim()),
    }
}

/// How large the values a rule reads are.
#[derive(Default)]
struct Size {
    nodes: u64,
    longest_string: u64,
}

impl Size {
    fn add(&mut self, v: &Value) {
        self.nodes += 1;
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.add(i)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                self.longest_string = self.longest_string.max(k.len() as u64);
                self.add(v)
            }),
            Value::String(s) => self.longest_string = self.longest_string.max(s.len() as u64),
            _ => {}
        }
    }
}

/// The most work (and memory) `compiled` can take on values of `size`: each comprehension
/// iterates over at most as many elements as the values and the rule's own literals hold,
/// and each step may copy the longest string (a concatenation).
fn bound(compiled: &Compiled, size: &Size) -> u64 {
    let elements = size.nodes + compiled.nodes;
    let mut cost = compiled.nodes.saturating_mul(1 + size.longest_string / 256);
    // Each evaluation's own setup (its context and stack), so that a rule on every item of
    // a long list runs a bounded number of times.
    cost += EVALUATION_COST;
    for _ in 0..compiled.loops {
        cost = cost.saturating_mul(elements);
    }
    cost
}

fn run(compiled: &Compiled, this: &Cel, old: Option<&Cel>) -> Result<Cel, String> {
    stacker::maybe_grow(STACK / 2, STACK, || {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("self", this.clone());
        if let Some(old) = old {
            context.add_variable_from_value("oldSelf", old.clone());
        }
        compiled.program.execute(&context).map_err(|e| {
            // Upstream's spelling of the interpreter's errors (`no such key: x`).
            let text = e.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        })
    })
}

/// The schema of a value no schema describes (under x-kubernetes-preserve-unknown-fields).
static NO_SCHEMA: LazyLock<JSONSchemaProps> = LazyLock::new(JSONSchemaProps::default);

/// `v` as a CEL value, typed by its schema: integers are ints, numbers doubles.
fn to_cel(schema: &JSONSchemaProps, v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (schema.type_.as_deref(), n.as_i64()) {
            (Some("number"), _) | (_, None) => Cel::Float(n.as_f64().unwrap_or_default()),
            (_, Some(i)) => Cel::Int(i),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let sub = items_schema(schema).unwrap_or(&NO_SCHEMA);
            Cel::List(Arc::new(items.iter().map(|i| to_cel(sub, i)).collect()))
        }
        Value::Object(map) => {
            let entries = map
                .iter()
                .map(|(k, v)| {
                    let sub = property(schema, k)
                        .or_else(|| additional_schema(schema))
                        .unwrap_or(&NO_SCHEMA);
                    (Key::String(Arc::new(k.clone())), to_cel(sub, v))
                })
                .collect();
            Cel::Map(CelMap {
                map: Arc::new(entries),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> JSONSchemaProps {
        serde_json::from_value(v).unwrap()
    }

    fn check(schema_json: Value, value: Value, old: Option<Value>) -> Vec<String> {
        let s = schema(schema_json);
        let rules = Rules::new(&s);
        let mut causes = Vec::new();
        rules.validate(&s, &value, old.as_ref(), "", &mut causes);
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn spec_with(rules: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": rules,
            "properties": {"replicas": {"type": "integer"}, "max": {"type": "integer"},
                "name": {"type": "string"}, "ratio": {"type": "number"},
                "items": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"},
                        "size": {"type": "integer",
                            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "size is immutable"}]}}}}}}}})
    }

    #[test]
    fn rules_answer_with_their_messages_at_their_paths() {
        let s = spec_with(json!([
            {"rule": "self.replicas <= self.max"},
            {"rule": "self.name.startsWith('a')", "message": "name must start with a", "fieldPath": ".name"},
            {"rule": "self.ratio < 1.5 && self.replicas * 2 > 0", "reason": "FieldValueForbidden"},
            {"rule": "!has(self.max) || self.max < 100", "messageExpression": "'max is ' + string(self.max)"}
        ]));
        let ok = json!({"spec": {"replicas": 1, "max": 3, "name": "abc", "ratio": 1}});
        assert!(check(s.clone(), ok, None).is_empty());
        let bad = json!({"spec": {"replicas": 500, "max": 300, "name": "b", "ratio": 2.5}});
        assert_eq!(
            check(s, bad, None),
            [
                "spec: Invalid value: \"object\": failed rule: self.replicas <= self.max",
                "spec.name: Invalid value: \"object\": name must start with a",
                "spec: Forbidden: failed rule: self.ratio < 1.5 && self.replicas * 2 > 0",
                "spec: Invalid value: \"object\": max is 300",
            ]
        );
    }

    #[test]
    fn transition_rules_compare_with_the_old_value_by_list_map_keys() {
        let s = spec_with(
            json!([{"rule": "self.name == oldSelf.name", "message": "name is immutable"}]),
        );
        let old = json!({"spec": {"name": "a", "items": [{"name": "x", "size": 1}, {"name": "y", "size": 2}]}});
        // Created: no old value, so no transition rule runs.
        assert!(check(s.clone(), old.clone(), None).is_empty());
        // Reordered, unchanged: fine. Changed: refused at the item and at spec.
        let same = json!({"spec": {"name": "a", "items": [{"name": "y", "size": 2}, {"name": "x", "size": 1}]}});
        assert!(check(s.clone(), same, Some(old.clone())).is_empty());
        let changed = json!({"spec": {"name": "b", "items": [{"name": "y", "size": 3}, {"name": "z", "size": 9}]}});
        assert_eq!(
            check(s, changed, Some(old)),
            [
                "spec: Invalid value: \"object\": name is immutable",
                "spec.items[0].size: Invalid value: \"integer\": size is immutable",
            ]
        );
    }

    #[test]
    fn evaluation_errors_and_ratcheting() {
        let s = spec_with(json!([{"rule": "self.missing == 1"}, {"rule": "self.replicas < 3"}]));
        let v = json!({"spec": {"replicas": 5}});
        assert_eq!(
            check(s.clone(), v.clone(), None),
            [
                "spec: Invalid value: \"object\": no such key: missing evaluating rule: self.missing == 1",
                "spec: Invalid value: \"object\": failed rule: self.replicas < 3",
            ]
        );
        // An unchanged value that already broke a rule does not block other updates.
        let errors = check(s, v.clone(), Some(v));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("no such key"));
    }

    #[test]
    fn costly_or_hostile_rules_are_bounded() {
        // Quadratic work over a long list: refused before it runs.
        let s = json!({"type": "array", "items": {"type": "integer"},
            "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x + y > 0))"}]});
        let long: Vec<i64> = (1..5000).collect();
        let start = std::time::Instant::now();
        let errors = check(s.clone(), json!(long), None);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("running out of cost budget"),
            "{errors:?}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // Positive control: the same rule on a short list runs and passes.
        assert!(check(s, json!([1, 2, 3]), None).is_empty());
        // Copies of a long string, by a loop over the rule's own literals or a chain.
        let long = json!({"s": "x".repeat(1 << 20)});
        for rule in [
            format!(
                "[{}].map(i, self.s + self.s).size() > 0",
                vec!["1"; 1000].join(",")
            ),
            format!("({}).size() > 0", vec!["self.s"; 1000].join(" + ")),
        ] {
            let s = json!({"type": "object", "properties": {"s": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": rule}]});
            let errors = check(s, long.clone(), None);
            assert!(
                errors[0].contains("running out of cost budget"),
                "{errors:?}"
            );
        }
        // Pairing a long map-typed list with the old one takes linear time.
        let s = json!({"type": "object", "x-kubernetes-validations": [{"rule": "has(self.items)"}],
            "properties": {"items": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}});
        let items: Vec<Value> = (0..50_000)
            .map(|i| json!({"name": format!("n{i}")}))
            .collect();
        let v = json!({"items": items});
        let start = std::time::Instant::now();
        assert!(check(s, v.clone(), Some(v)).is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // A plain check of a long string is cheap enough.
        let s = json!({"type": "object", "properties": {"s": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.s.size() < 2000000"}]});
        assert!(check(s, long, None).is_empty());
        // A long chain of operators parses on the rule's own stack; a longer text is refused.
        let chain = vec!["1"; 4000].join(" + ");
        assert!(compile(&format!("{chain} > 0")).is_ok());
        assert!(compile(&"1 + ".repeat(5000)).is_err());
        // Unknown variables are compile errors, as upstream's type checker finds them.
        assert_eq!(
            compile("self.a == other").err().as_deref(),
            Some("undeclared reference to 'other'")
        );
        assert!(
            compile("self.all(x, x.exists(y, y == oldSelf))")
                .is_ok_and(|c| c.uses_old_self && c.loops == 2)
        );
    }
}
