//! Label selectors (`app=web,tier in (a,b),!legacy`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Failed`) as Kubernetes' apimachinery parses and matches
//! them, with label key and value validation in upstream's words.

use std::fmt;

use serde_json::{Map, Value};

/// A problem with a selector string, as the apiserver reports it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// The operators of a label requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` term; all terms of a selector must hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
    /// Sorted, as upstream keeps them (the canonical string lists them in order).
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether the labels that `get` looks up satisfy this requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        match self.op {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = || self.values.first().map(String::as_str).unwrap_or("");
        match self.op {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, one()),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, one()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, one()),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, one()),
            Operator::LessThan => write!(f, "{}<{}", self.key, one()),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

/// A parsed label selector; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Tokens of the label selector grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    Comma,
    OpenParen,
    CloseParen,
    Equals,
    DoubleEquals,
    NotEquals,
    Not,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Identifier(s) => s.clone(),
            Token::Comma => ",".into(),
            Token::OpenParen => "(".into(),
            Token::CloseParen => ")".into(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::NotEquals => "!=".into(),
            Token::Not => "!".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::GreaterThan => ">".into(),
            Token::LessThan => "<".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let (tok, len) = match (two.as_str(), c) {
            ("==", _) => (Token::DoubleEquals, 2),
            ("!=", _) => (Token::NotEquals, 2),
            (_, '=') => (Token::Equals, 1),
            (_, '!') => (Token::Not, 1),
            (_, '(') => (Token::OpenParen, 1),
            (_, ')') => (Token::CloseParen, 1),
            (_, ',') => (Token::Comma, 1),
            (_, '>') => (Token::GreaterThan, 1),
            (_, '<') => (Token::LessThan, 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Identifier(word),
                });
                continue;
            }
        };
        out.push(tok);
        i += len;
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek() == Some(&Token::Not);
        if negated {
            self.pos += 1;
        }
        let key = match self.next() {
            Some(Token::Identifier(k)) => k,
            Some(t) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: !, identifier, or 'end of string'",
                    t.describe()
                )));
            }
            None => return Err(SelectorError("found '', expected: identifier".into())),
        };
        check_key(&key)?;
        if negated {
            return Ok(Requirement {
                key,
                op: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        let op = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement {
                    key,
                    op: Operator::Exists,
                    values: Vec::new(),
                });
            }
            Some(Token::Equals) => Operator::Equals,
            Some(Token::DoubleEquals) => Operator::DoubleEquals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            Some(Token::GreaterThan) => Operator::GreaterThan,
            Some(Token::LessThan) => Operator::LessThan,
            Some(t) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.describe()
                )));
            }
        };
        self.pos += 1;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => {
                let value = match self.peek() {
                    Some(Token::Identifier(v)) => {
                        let v = v.clone();
                        self.pos += 1;
                        v
                    }
                    // `a=` selects an empty value.
                    None | Some(Token::Comma) => String::new(),
                    Some(t) => {
                        return Err(SelectorError(format!(
                            "found '{}', expected: identifier",
                            t.describe()
                        )));
                    }
                };
                if matches!(op, Operator::GreaterThan | Operator::LessThan)
                    && value.parse::<i64>().is_err()
                {
                    return Err(SelectorError(format!(
                        "for 'Gt', 'Lt' operators, the value must be an integer: {value}"
                    )));
                }
                vec![value]
            }
        };
        for v in &values {
            check_value(v)?;
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement { key, op, values })
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::OpenParen) => {}
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: '('",
                    t.map(|t| t.describe()).unwrap_or_default()
                )));
            }
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::CloseParen) => {
                    if expect_value && !values.is_empty() {
                        // `(a,)`: a trailing empty value.
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Some(Token::Identifier(v)) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Some(t) => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',' or ')'",
                        t.describe()
                    )));
                }
                None => return Err(SelectorError("found '', expected: ')'".into())),
            }
        }
    }
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    let errs = validate_qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "key: Invalid value: \"{key}\": {}",
            errs.join("; ")
        )))
    }
}

fn check_value(value: &str) -> Result<(), SelectorError> {
    let errs = validate_label_value(value);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "values[0][{value}]: Invalid value: \"{value}\": {}",
            errs.join("; ")
        )))
    }
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax; the empty string selects everything.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut parser = Parser {
            tokens: lex(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        while parser.peek().is_some() {
            requirements.push(parser.requirement()?);
            match parser.next() {
                None => break,
                Some(Token::Comma) if parser.peek().is_some() => {}
                Some(Token::Comma) => {
                    return Err(SelectorError(
                        "found '', expected: identifier after ','".into(),
                    ));
                }
                Some(t) => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.describe()
                    )));
                }
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// A selector of these requirements (all must hold), in the canonical key order.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Whether an object with these `metadata.labels` is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// Whether the labels that `get` looks up are selected (typed objects' label maps).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        self.requirements.iter().all(|r| r.matches_with(get))
    }

    /// Whether a typed object's labels are selected.
    pub fn matches_map(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Converts a metav1.LabelSelector (`{matchLabels, matchExpressions}`); null or `{}`
    /// selects everything.
    pub fn from_label_selector_json(v: &Value) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        if v.is_null() {
            return Ok(LabelSelector::everything());
        }
        let obj = v
            .as_object()
            .ok_or_else(|| SelectorError("a label selector must be an object".into()))?;
        if let Some(labels) = obj.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in labels {
                let val = val.as_str().unwrap_or("").to_owned();
                check_key(k)?;
                check_value(&val)?;
                requirements.push(Requirement {
                    key: k.clone(),
                    op: Operator::Equals,
                    values: vec![val],
                });
            }
        }
        for e in obj
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e["key"].as_str().unwrap_or("").to_owned();
            check_key(&key)?;
            let mut values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            values.sort();
            values.dedup();
            let op = match e["operator"].as_str().unwrap_or("") {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "\"{other}\" is not a valid label selector operator"
                    )));
                }
            };
            match op {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    return Err(SelectorError(
                        "for 'in', 'notin' operators, values set can't be empty".into(),
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    return Err(SelectorError(
                        "values set must be empty for exists and does not exist".into(),
                    ));
                }
                _ => {}
            }
            for v in &values {
                check_value(v)?;
            }
            requirements.push(Requirement { key, op, values });
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// `=`/`==` or `!=` in a field selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

/// One `field op value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

/// A parsed field selector; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Splits on `sep` outside backslash escapes.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Resolves `\\`, `\,` and `\=` escapes; any other escape is an error.
fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => return Err(SelectorError(format!("invalid escape sequence: \\{n}"))),
                None => return Err(SelectorError("unterminated escape sequence".into())),
            }
        } else if c == ',' || c == '=' {
            return Err(SelectorError(format!(
                "invalid field selector value: unescaped {c}"
            )));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Finds the first unescaped `op` in a term.
fn find_op(term: &str) -> Option<(usize, &'static str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => return Some((i, "!=")),
            b'=' if bytes.get(i + 1) == Some(&b'=') => return Some((i, "==")),
            b'=' => return Some((i, "=")),
            _ => i += 1,
        }
    }
    None
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::everything());
        }
        for term in split_unescaped(s, ',') {
            if term.is_empty() {
                continue;
            }
            let Some((i, op)) = find_op(&term) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = term[..i].trim().to_owned();
            let value = unescape_field_value(&term[i + op.len()..])
                .map_err(|e| SelectorError(format!("invalid selector: '{s}'; {e}")))?;
            let op = if op == "!=" {
                FieldOp::NotEquals
            } else {
                FieldOp::Equals
            };
            requirements.push(FieldRequirement { field, op, value });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether an object matches; `get(field)` reads the object's value, absent reading as "".
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = get(&r.field).unwrap_or_default();
            (v == r.value) == (r.op == FieldOp::Equals)
        })
    }

    /// The value required for `field` with `=`, if any.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }
}

const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_MSG: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, non-empty.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// An RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// The problems with a qualified name (`prefix/name` or `name`), in upstream's words.
pub fn validate_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if s.matches('/').count() > 1 {
        errs.push(format!("a qualified name {NAME_PART_MSG}").replace("name part must", "must"));
        return errs;
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else if !is_dns1123_subdomain(p) {
            errs.push(PREFIX_MSG.into());
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".into());
        }
        if !is_name_part(name) {
            errs.push(NAME_PART_MSG.into());
        }
    }
    errs
}

/// The problems with a label value (may be empty), in upstream's words.
pub fn validate_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !s.is_empty() && !is_name_part(s) {
        errs.push(LABEL_VALUE_MSG.into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Parses `selector`, checks its canonical form, and which label sets it matches.
    fn check(selector: &str, canonical: &str, matching: &[Value], not_matching: &[Value]) {
        let s = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(s.to_string(), canonical, "{selector}");
        for m in matching {
            assert!(
                s.matches(Some(&labels(m.clone()))),
                "{selector} should match {m}"
            );
        }
        for m in not_matching {
            assert!(
                !s.matches(Some(&labels(m.clone()))),
                "{selector} should not match {m}"
            );
        }
        // The canonical form parses to the same selector.
        assert_eq!(LabelSelector::parse(canonical).unwrap(), s);
    }

    #[test]
    fn label_selectors() {
        check("", "", &[json!({}), json!({"a": "b"})], &[]);
        check(
            "app=web",
            "app=web",
            &[json!({"app": "web", "x": "y"})],
            &[json!({"app": "db"}), json!({})],
        );
        check(
            "app==web",
            "app==web",
            &[json!({"app": "web"})],
            &[json!({})],
        );
        check(
            "app!=web",
            "app!=web",
            &[json!({"app": "db"}), json!({})],
            &[json!({"app": "web"})],
        );
        check(
            " tier in (b, a) ,app",
            "app,tier in (a,b)",
            &[json!({"app": "x", "tier": "a"})],
            &[json!({"tier": "a"}), json!({"app": "x", "tier": "c"})],
        );
        check(
            "tier notin (a)",
            "tier notin (a)",
            &[json!({}), json!({"tier": "b"})],
            &[json!({"tier": "a"})],
        );
        check(
            "!legacy",
            "!legacy",
            &[json!({})],
            &[json!({"legacy": "true"})],
        );
        check(
            "n>5,m<3",
            "m<3,n>5",
            &[json!({"n": "6", "m": "2"})],
            &[json!({"n": "5", "m": "2"}), json!({"n": "x", "m": "1"})],
        );
        check(
            "example.com/role=db",
            "example.com/role=db",
            &[json!({"example.com/role": "db"})],
            &[],
        );
        check(
            "a=",
            "a=",
            &[json!({"a": ""})],
            &[json!({"a": "x"}), json!({})],
        );
    }

    #[test]
    fn label_selector_errors() {
        for bad in [
            "a in b",
            "a in (b",
            "=b",
            "a=b,",
            "a b",
            "a=(b)",
            "Bad Key=1",
            "a>b",
            "a=b=c",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
        }
        let e = LabelSelector::parse("a=-bad").unwrap_err();
        assert!(e.0.contains("a valid label must be an empty string"), "{e}");
    }

    #[test]
    fn label_selector_objects() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}, {"key": "old", "operator": "DoesNotExist"}],
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!old,tier in (a,b)");
        assert!(s.matches(Some(&labels(json!({"app": "web", "tier": "a"})))));
        assert!(!s.matches(Some(&labels(
            json!({"app": "web", "tier": "a", "old": "1"})
        ))));
        assert!(
            LabelSelector::from_label_selector_json(&json!({}))
                .unwrap()
                .is_everything()
        );
        assert!(
            LabelSelector::from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
            )
            .is_err()
        );
        assert!(
            LabelSelector::from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})
            )
            .is_err()
        );
    }

    fn fields(v: Value) -> impl Fn(&str) -> Option<String> {
        move |f: &str| {
            let mut cur = &v;
            for p in f.split('.') {
                cur = cur.get(p)?;
            }
            cur.as_str().map(str::to_owned)
        }
    }

    #[test]
    fn field_selectors() {
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert_eq!(s.exact("spec.nodeName"), Some("n1"));
        assert!(s.matches(fields(
            json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
        )));
        assert!(!s.matches(fields(
            json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}})
        )));
        assert!(!s.matches(fields(json!({}))));
        // A missing field reads as "".
        assert!(
            FieldSelector::parse("spec.nodeName=")
                .unwrap()
                .matches(fields(json!({})))
        );
        assert!(
            FieldSelector::parse("spec.nodeName==n1")
                .unwrap()
                .matches(fields(json!({"spec": {"nodeName": "n1"}})))
        );
        let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c").unwrap();
        assert_eq!(escaped.requirements()[0].value, "a,b=c");
        assert!(FieldSelector::parse("nonsense").is_err());
        assert!(FieldSelector::parse(r"a=b\x").is_err());
        assert!(FieldSelector::parse("").unwrap().is_everything());
    }

    #[test]
    fn qualified_names_and_values() {
        assert!(validate_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(validate_qualified_name("MyName").is_empty());
        assert_eq!(
            validate_qualified_name("-bad"),
            vec![NAME_PART_MSG.to_owned()]
        );
        assert_eq!(
            validate_qualified_name("Bad_Prefix/x"),
            vec![PREFIX_MSG.to_owned()]
        );
        assert!(!validate_qualified_name(&"a".repeat(64)).is_empty());
        assert!(validate_label_value("").is_empty());
        assert!(!validate_label_value("-x").is_empty());
    }
}
