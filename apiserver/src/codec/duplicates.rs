//! Finds duplicate fields in a JSON body (`{"a": 1, "a": 2}`), which fieldValidation reports:
//! a JSON parser keeps only the last value, silently.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// At most this many duplicates are reported (each becomes a warning header).
const MAX_REPORTED: usize = 100;

/// The paths (`spec.replicas`) of the fields that appear twice in their object, at most
/// [`MAX_REPORTED`]. Time is linear in the body: a path is written out only for a duplicate.
pub fn duplicate_fields(json: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(json);
    // The body was already parsed once; a failure here only means no report.
    let _ = Check {
        path: &mut path,
        out: &mut out,
    }
    .deserialize(&mut de);
    out
}

/// One step of the path to the value being read.
enum Step {
    Field(String),
    Index(usize),
}

fn render(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) if s.is_empty() => s.push_str(f),
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

struct Check<'a> {
    path: &'a mut Vec<Step>,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = seen.contains(&key);
            self.path.push(Step::Field(key.clone()));
            if duplicate && self.out.len() < MAX_REPORTED {
                self.out.push(render(self.path));
            }
            if !duplicate {
                seen.insert(key);
            }
            let result = map.next_value_seed(Check {
                path: &mut *self.path,
                out: &mut *self.out,
            });
            self.path.pop();
            result?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Step::Index(i));
            let next = seq.next_element_seed(Check {
                path: &mut *self.path,
                out: &mut *self.out,
            });
            self.path.pop();
            if next?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_key_over_a_long_array_costs_linear_time() {
        // Writing the path of every element out would copy the 1 MB key a million times.
        let body = format!(
            "{{\"{}\": [{}0]}}",
            "k".repeat(1 << 20),
            "0,".repeat(1 << 20)
        );
        let start = std::time::Instant::now();
        assert!(duplicate_fields(body.as_bytes()).is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn reports_at_most_a_hundred() {
        let body = format!("{{{}\"a\": 1}}", "\"a\": 1,".repeat(1000));
        assert_eq!(duplicate_fields(body.as_bytes()).len(), MAX_REPORTED);
    }

    #[test]
    fn finds_repeated_keys_with_their_paths() {
        assert_eq!(
            duplicate_fields(br#"{"a": 1, "b": {"c": 1, "c": 2}, "a": 3}"#),
            ["b.c", "a"]
        );
        assert_eq!(
            duplicate_fields(br#"{"l": [{"x": 1, "x": 1}, {"x": 2}]}"#),
            ["l[0].x"]
        );
        assert!(duplicate_fields(br#"{"a": {"a": 1}}"#).is_empty());
    }
}
