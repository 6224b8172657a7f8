//! The query parameters of resource requests, parsed once with upstream's error messages
//! (the request's one reading, `request::RequestInfo`, holds the result).

use common::selector::{FieldSelector, LabelSelector};

use crate::registry::read::ListOptions;
use crate::registry::{FieldValidation, WriteOptions};
use crate::status::{ApiError, ApiResult};

/// Every query parameter a verb may read.
#[derive(Clone, Debug)]
pub struct Query {
    pub watch: bool,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: usize,
    pub continue_token: String,
    pub resource_version: String,
    pub resource_version_match: String,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_manager: String,
    /// `force` (server-side apply takes fields other managers own).
    pub force: Option<bool>,
    pub field_validation: FieldValidation,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: String,
    pub orphan_dependents: Option<bool>,
    /// `includeObject` for Table answers: None, Metadata (default) or Object.
    pub include_object: String,
    /// Fields the JSON body held twice (found while reading it), for fieldValidation.
    pub duplicate_fields: Vec<String>,
}

impl Query {
    /// What the query asks of a list.
    pub fn list_options(&self) -> ListOptions<'_> {
        ListOptions {
            label_selector: &self.label_selector,
            field_selector: &self.field_selector,
            limit: self.limit,
            continue_token: &self.continue_token,
            resource_version: &self.resource_version,
            resource_version_match: &self.resource_version_match,
        }
    }

    /// What the query says of how to write.
    pub fn write_options(&self) -> WriteOptions {
        WriteOptions {
            dry_run: self.dry_run,
            field_validation: self.field_validation,
            duplicate_fields: self.duplicate_fields.clone(),
            apply: None,
        }
    }

    /// Upstream's reading of a boolean parameter: only `false` (in any case) and `0` are false;
    /// every other value, the empty one too, is true.
    pub fn truthy(v: &str) -> bool {
        !(v == "0" || v.eq_ignore_ascii_case("false"))
    }

    /// The first value of parameter `name`, as upstream's url.Values conversion reads it.
    pub fn first_value(raw: &str, name: &str) -> Option<String> {
        form_urlencoded(raw)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Parses a query. A parameter given more than once counts with its first value only, as
    /// upstream reads it (authorization reads the very same [`Query`]).
    pub fn parse(raw: &str) -> ApiResult<Query> {
        let mut q = Query {
            watch: false,
            label_selector: LabelSelector::everything(),
            field_selector: FieldSelector::everything(),
            limit: 0,
            continue_token: String::new(),
            resource_version: String::new(),
            resource_version_match: String::new(),
            timeout_seconds: None,
            allow_watch_bookmarks: false,
            send_initial_events: None,
            dry_run: false,
            field_manager: String::new(),
            force: None,
            field_validation: FieldValidation::Warn,
            grace_period_seconds: None,
            propagation_policy: String::new(),
            orphan_dependents: None,
            include_object: String::new(),
            duplicate_fields: Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        for (key, value) in form_urlencoded(raw) {
            if !seen.insert(key.clone()) {
                continue;
            }
            match key.as_str() {
                "watch" => q.watch = Query::truthy(&value),
                "labelSelector" => {
                    q.label_selector = LabelSelector::parse(&value).map_err(|e| {
                        ApiError::bad_request(format!("unable to parse requirement: {e}"))
                    })?;
                }
                "fieldSelector" => {
                    q.field_selector = FieldSelector::parse(&value)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                }
                "limit" => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit: {value:?}")))?;
                    q.limit = n.max(0) as usize;
                }
                "continue" => q.continue_token = value,
                "resourceVersion" => q.resource_version = value,
                "resourceVersionMatch" => q.resource_version_match = value,
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds: {value:?}"))
                    })?)
                }
                "allowWatchBookmarks" => q.allow_watch_bookmarks = Query::truthy(&value),
                "sendInitialEvents" => q.send_initial_events = Some(Query::truthy(&value)),
                "dryRun" => {
                    if value != "All" {
                        return Err(ApiError::bad_request(format!(
                            "dryRun: Unsupported value: {value:?}: supported values: \"All\""
                        )));
                    }
                    q.dry_run = true;
                }
                "fieldManager" => q.field_manager = value,
                "force" => {
                    q.force = Some(match value.as_str() {
                        "true" | "True" | "TRUE" | "1" | "t" | "T" => true,
                        "false" | "False" | "FALSE" | "0" | "f" | "F" => false,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "force: invalid value {other:?}: must be true or false"
                            )));
                        }
                    })
                }
                "fieldValidation" => {
                    q.field_validation = match value.as_str() {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Warn\", \"Strict\""
                            )));
                        }
                    }
                }
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid gracePeriodSeconds: {value:?}"))
                    })?)
                }
                "propagationPolicy" => q.propagation_policy = value,
                "orphanDependents" => q.orphan_dependents = Some(Query::truthy(&value)),
                "includeObject" => q.include_object = value,
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Decodes `a=b&c=d` with percent-escapes and `+` as space.
fn form_urlencoded(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        assert_eq!(
            unescape("app%3Dweb%2Ctier+in+%28a%29"),
            "app=web,tier in (a)"
        );
        assert_eq!(unescape("100%"), "100%");
    }

    #[test]
    fn parses_list_parameters() {
        let q = Query::parse("labelSelector=app%3Dweb&limit=5&watch=true&fieldValidation=Strict")
            .unwrap();
        assert!(q.watch);
        assert_eq!(q.limit, 5);
        assert_eq!(q.field_validation, FieldValidation::Strict);
        assert!(Query::parse("fieldValidation=Bogus").is_err());
        assert!(Query::parse("dryRun=Some").is_err());
    }
}
