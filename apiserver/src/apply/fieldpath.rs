//! Field sets, as structured-merge-diff keeps them for server-side apply: a trie of path
//! elements (`f:` a field, `k:` an item of a list keyed by some of its fields, `v:` an item of
//! a set, `i:` a list index) whose members are the owned fields, with upstream's FieldsV1
//! encoding (metadata.managedFields[].fieldsV1) and path rendering (conflict messages).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A field of a struct or a key of a map (`f:name`).
    Field(String),
    /// An item of an associative list, by its key fields sorted by name (`k:{"name":"c"}`).
    Key(Vec<(String, Scalar)>),
    /// An item of a set, by its value (`v:"a"`).
    Value(Scalar),
    /// An item of a list by position (`i:0`): read, never written (Kubernetes' lists are
    /// keyed, sets or atomic).
    Index(usize),
}

/// A JSON value ordered as structured-merge-diff orders values: numbers, then strings,
/// booleans, lists and maps (null first).
#[derive(Clone, Debug)]
pub struct Scalar(pub Value);

impl PartialEq for Scalar {
    fn eq(&self, other: &Scalar) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scalar {}
impl PartialOrd for Scalar {
    fn partial_cmp(&self, other: &Scalar) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scalar {
    fn cmp(&self, other: &Scalar) -> Ordering {
        compare_values(&self.0, &other.0)
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Bool(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                match compare_values(p, q) {
                    Ordering::Equal => continue,
                    other => return other,
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((kp, vp), (kq, vq)) in xs.iter().zip(&ys) {
                match kp.cmp(kq).then_with(|| compare_values(vp, vq)) {
                    Ordering::Equal => continue,
                    other => return other,
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A path from the object's root.
pub type Path = Vec<PathElement>;

/// A set of paths: members at this node, and the sets below each child.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds `path` (its last element becomes a member of the node its prefix reaches).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, prefix)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for e in prefix {
            // Cloned only for a node not there yet (inserts mostly walk existing nodes).
            if !node.children.contains_key(e) {
                node.children.insert(e.clone(), Set::new());
            }
            node = node.children.get_mut(e).expect("present");
        }
        if !node.members.contains(last) {
            node.members.insert(last.clone());
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, prefix)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for e in prefix {
            match node.children.get(e) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.members.contains(last)
    }

    /// Whether `element` is a member at this node.
    pub fn has_member(&self, element: &PathElement) -> bool {
        self.members.contains(element)
    }

    /// Whether the set holds any path strictly below `path`.
    pub fn has_below(&self, path: &[PathElement]) -> bool {
        let mut node = self;
        for e in path {
            match node.children.get(e) {
                Some(n) => node = n,
                None => return false,
            }
        }
        !node.is_empty()
    }

    /// The set below `element` (empty when there is none).
    pub fn child(&self, element: &PathElement) -> Option<&Set> {
        self.children.get(element)
    }

    pub fn child_mut(&mut self, element: &PathElement) -> Option<&mut Set> {
        self.children.get_mut(element)
    }

    /// Removes `element` as a member here (what lies below it stays).
    pub fn remove_member(&mut self, element: &PathElement) {
        self.members.remove(element);
    }

    /// Keeps only the members and children at this node that `keep` accepts.
    pub fn retain_top(&mut self, keep: impl Fn(&PathElement) -> bool) {
        self.members.retain(&keep);
        self.children.retain(|e, _| keep(e));
    }

    /// Removes every path of `other`, in place (`difference` without a copy).
    pub fn subtract(&mut self, other: &Set) {
        if other.members.is_empty() && other.children.is_empty() {
            return;
        }
        self.members.retain(|m| !other.members.contains(m));
        self.children.retain(|e, s| {
            if let Some(o) = other.children.get(e) {
                s.subtract(o);
            }
            !s.is_empty()
        });
    }

    /// Adds every path of `other`, in place and without copying it (`union`).
    pub fn absorb(&mut self, other: Set) {
        self.members.extend(other.members);
        for (e, s) in other.children {
            match self.children.get_mut(&e) {
                Some(mine) => mine.absorb(s),
                None => {
                    self.children.insert(e, s);
                }
            }
        }
    }

    /// Drops the nodes that hold no path any more, as `difference` leaves none.
    pub fn prune(&mut self) {
        self.children.retain(|_, s| {
            s.prune();
            !s.is_empty()
        });
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (e, s) in &other.children {
            let merged = match out.children.get(e) {
                Some(mine) => mine.union(s),
                None => s.clone(),
            };
            out.children.insert(e.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (e, s) in &self.children {
            if let Some(o) = other.children.get(e) {
                let both = s.intersection(o);
                if !both.is_empty() {
                    out.children.insert(e.clone(), both);
                }
            }
        }
        out
    }

    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (e, s) in &self.children {
            let rest = match other.children.get(e) {
                Some(o) => s.difference(o),
                None => s.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(e.clone(), rest);
            }
        }
        out
    }

    /// Every member path, in upstream's order (a node's members before its children).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (e, s) in &self.children {
            prefix.push(e.clone());
            s.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 form: `{"f:spec":{"f:replicas":{}}}`, "." first where a node with
    /// children is itself a member, then elements in order.
    pub fn to_fields_v1(&self) -> Value {
        let elements: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        let mut out = Map::new();
        for e in elements {
            let below = self.children.get(e).filter(|s| !s.is_empty());
            let mut value = match below {
                Some(s) => s.to_fields_v1(),
                None => Value::Object(Map::new()),
            };
            if self.members.contains(e) && below.is_some() {
                let mut with_dot = Map::new();
                with_dot.insert(".".into(), Value::Object(Map::new()));
                if let Value::Object(m) = value {
                    with_dot.extend(m);
                }
                value = Value::Object(with_dot);
            }
            out.insert(element_key(e), value);
        }
        Value::Object(out)
    }

    /// Reads a FieldsV1 object; unknown element prefixes are skipped, as upstream does.
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let mut out = Set::new();
        let Some(map) = v.as_object() else {
            return if v.is_null() {
                Ok(out)
            } else {
                Err("fieldsV1 must be an object".into())
            };
        };
        for (key, below) in map {
            if key == "." {
                continue;
            }
            let Some(e) = parse_element(key)? else {
                continue;
            };
            let sub = below
                .as_object()
                .ok_or("each fieldsV1 entry must be an object")?;
            let member = sub.is_empty() || sub.contains_key(".");
            if member {
                out.members.insert(e.clone());
            }
            let child = Set::from_fields_v1(below)?;
            if !child.is_empty() {
                out.children.insert(e, child);
            }
        }
        Ok(out)
    }
}

/// `f:name`, `k:{...}`, `v:...`, `i:n`.
fn element_key(e: &PathElement) -> String {
    match e {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", go_json(&Value::String(k.clone())), go_json(&v.0)))
                .collect();
            format!("k:{{{}}}", inner.join(","))
        }
        PathElement::Value(v) => format!("v:{}", go_json(&v.0)),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

fn parse_element(key: &str) -> Result<Option<PathElement>, String> {
    if key.len() < 2 || key.as_bytes()[1] != b':' {
        return Err(format!("invalid fieldsV1 key {key:?}"));
    }
    let rest = &key[2..];
    Ok(Some(match &key[..1] {
        "f" => PathElement::Field(rest.to_owned()),
        "k" => {
            let fields: Map<String, Value> = serde_json::from_str(rest)
                .map_err(|e| format!("invalid key in fieldsV1 {key:?}: {e}"))?;
            let mut fields: Vec<(String, Scalar)> =
                fields.into_iter().map(|(k, v)| (k, Scalar(v))).collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            PathElement::Key(fields)
        }
        "v" => PathElement::Value(Scalar(
            serde_json::from_str(rest)
                .map_err(|e| format!("invalid value in fieldsV1 {key:?}: {e}"))?,
        )),
        "i" => PathElement::Index(
            rest.parse()
                .map_err(|_| format!("invalid index in fieldsV1 {key:?}"))?,
        ),
        _ => return Ok(None),
    }))
}

/// Compact JSON as Go's encoder writes it: `<`, `>` and `&` escaped.
fn go_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A path as conflict messages print it: `.spec.containers[name="nginx"].image`.
pub fn render(path: &[PathElement]) -> String {
    let mut out = String::new();
    for e in path {
        match e {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", go_json(&v.0)))
                    .collect();
                out.push_str(&format!("[{}]", inner.join(",")));
            }
            PathElement::Value(v) => out.push_str(&format!("[={}]", go_json(&v.0))),
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    fn key(fields: &[(&str, Value)]) -> PathElement {
        let mut fields: Vec<(String, Scalar)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), Scalar(v.clone())))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    #[test]
    fn fields_v1_round_trips_in_upstreams_form() {
        let port = key(&[("protocol", json!("TCP")), ("containerPort", json!(80))]);
        let c = key(&[("name", json!("nginx"))]);
        let mut s = Set::new();
        let containers = [f("spec"), f("containers")];
        s.insert(&[&containers[..], std::slice::from_ref(&c)].concat());
        s.insert(&[&containers[..], &[c.clone(), f("image")]].concat());
        s.insert(&[&containers[..], &[c.clone(), f("ports"), port.clone()]].concat());
        s.insert(&[f("metadata"), f("labels"), f("app")]);
        s.insert(&[
            f("metadata"),
            f("finalizers"),
            PathElement::Value(Scalar(json!("a<b"))),
        ]);
        let encoded = s.to_fields_v1();
        assert_eq!(
            encoded.to_string(),
            r#"{"f:metadata":{"f:finalizers":{"v:\"a\\u003cb\"":{}},"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{}}}}}}"#
        );
        assert_eq!(Set::from_fields_v1(&encoded).unwrap(), s);
        assert_eq!(
            render(&[&containers[..], &[c, f("image")]].concat()),
            r#".spec.containers[name="nginx"].image"#
        );
        assert_eq!(
            render(&[f("spec"), f("ports"), port]),
            r#".spec.ports[containerPort=80,protocol="TCP"]"#
        );
    }

    #[test]
    fn set_operations() {
        let mut a = Set::new();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = Set::new();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("data"), f("k")]);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![vec![f("spec"), f("replicas")]]
        );
        assert_eq!(a.difference(&b).paths(), vec![vec![f("spec"), f("paused")]]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.difference(&a).is_empty());
        assert!(b.has(&[f("data"), f("k")]) && !b.has(&[f("data")]));
    }

    #[test]
    fn unknown_prefixes_are_skipped_and_bad_keys_refused() {
        let s = Set::from_fields_v1(&json!({"x:y": {}, "f:a": {}})).unwrap();
        assert_eq!(s.paths(), vec![vec![f("a")]]);
        assert!(Set::from_fields_v1(&json!({"fa": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:{bad": {}})).is_err());
    }
}
