//! Reads below HTTP, as upstream's generic registry store: get (consistent from the store,
//! or from the watch cache when a resourceVersion allows) and list (from the watch cache, or
//! paged and exact-revision lists from the store with continue tokens bound to their list).
//! Encoding the answer is the caller's: objects come as the cache holds them, with their
//! serialized bytes.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use super::{ResourceInfo, Target};
use crate::cache::CachedObject;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};
use crate::storage::{self, RangeOptions, Revision};

/// What a list asks for (upstream's ListOptions), borrowed from the request.
#[derive(Clone, Copy, Debug)]
pub struct ListOptions<'a> {
    pub label_selector: &'a LabelSelector,
    pub field_selector: &'a FieldSelector,
    /// At most this many objects (0: all), with a continue token for the rest.
    pub limit: usize,
    pub continue_token: &'a str,
    pub resource_version: &'a str,
    pub resource_version_match: &'a str,
}

impl ListOptions<'_> {
    /// Whether an object passes the label and field selectors.
    pub fn selects(&self, object: &CachedObject) -> bool {
        object.selected(self.label_selector, self.field_selector)
    }
}

/// A list's objects, the revision they are at, and where the next page starts (empty: no
/// more).
pub struct List {
    pub objects: Vec<Arc<CachedObject>>,
    pub revision: Revision,
    pub continue_token: String,
}

/// One object: read from the store when `resource_version` is empty (a consistent read, as
/// upstream's quorum read), else from the watch cache.
pub async fn get(
    state: &ApiState,
    target: &Target,
    resource_version: &str,
) -> ApiResult<Arc<CachedObject>> {
    let resource = &*target.resource;
    let object = if resource_version.is_empty() {
        let kv = super::store::stored(state, target).await?;
        CachedObject::from_kv(&kv, Some(resource)).map(Arc::new)
    } else {
        state.cache.get(resource, &target.key(&state.root))
    };
    object
        .map(|o| resource.served_object(&o))
        .ok_or_else(|| ApiError::not_found(&resource.group, &resource.plural, &target.name))
}

/// The objects of the collection `target` names that `options` select.
pub async fn list(state: &ApiState, target: &Target, options: &ListOptions<'_>) -> ApiResult<List> {
    let resource = &*target.resource;
    check_field_selector(resource, options.field_selector)?;
    let rv = options.resource_version;
    let paged = (options.limit > 0 && rv != "0") || !options.continue_token.is_empty();
    let exact = options.resource_version_match == "Exact";
    let (objects, revision, next) =
        if paged || exact {
            list_from_store(state, target, options).await?
        } else {
            match rv {
                "" => {
                    state.cache.wait_fresh().await.map_err(|e| {
                        ApiError::from_store(e, &resource.group, &resource.plural, "")
                    })?;
                }
                "0" => {}
                rv => {
                    let wanted = parse_rv(rv)?;
                    if !state.cache.wait_for(wanted, Duration::from_secs(3)).await {
                        return Err(ApiError::timeout(format!(
                            "Too large resource version: {wanted}, current: {}",
                            state.cache.revision()
                        )));
                    }
                }
            }
            let snapshot = state.cache.list(resource, &target.namespace);
            let objects: Vec<_> = snapshot
                .objects
                .into_iter()
                .filter(|o| options.selects(o))
                .collect();
            (objects, snapshot.revision, None)
        };
    let objects = if resource.is_custom() {
        objects.iter().map(|o| resource.served_object(o)).collect()
    } else {
        objects
    };
    Ok(List {
        objects,
        revision,
        continue_token: next.unwrap_or_default(),
    })
}

/// Checks that every field in the selector is one this resource supports.
pub fn check_field_selector(resource: &ResourceInfo, selector: &FieldSelector) -> ApiResult<()> {
    for req in selector.requirements() {
        let field = req.field.as_str();
        let supported = field == "metadata.name"
            || field == "metadata.namespace"
            || resource.strategy.selectable_fields().contains(&field)
            || resource
                .strategy
                .custom_selectable_fields()
                .iter()
                .any(|f| &**f == field);
        if !supported {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {}",
                req.field
            )));
        }
    }
    Ok(())
}

/// The version tag of continue tokens, as upstream's.
const CONTINUE_VERSION: &str = "meta.k8s.io/v1";

/// A continue token: the revision of the first page, the key to start the next one at
/// (relative to the list's key prefix, as upstream's) and the list it continues (the prefix
/// relative to the store root), so that a token continues only the list it was issued for.
fn encode_continue(root: &str, prefix: &str, revision: Revision, start: &str) -> String {
    let token = json!({
        "v": CONTINUE_VERSION,
        "rv": revision,
        "start": start.strip_prefix(prefix).unwrap_or(start),
        "list": prefix.strip_prefix(root).unwrap_or(prefix),
    });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

/// Reads a continue token for the list under `prefix`: (revision, absolute start key). A
/// malformed token, or one issued for another list, is a 400 with upstream's words.
fn decode_continue(root: &str, prefix: &str, token: &str) -> ApiResult<(Revision, String)> {
    let invalid = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| invalid("invalid continue token"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| invalid("invalid continue token"))?;
    if v["v"] != CONTINUE_VERSION {
        return Err(invalid(&format!(
            "server does not recognize this encoded version {:?}",
            v["v"].as_str().unwrap_or("")
        )));
    }
    let revision = v["rv"].as_i64().filter(|rv| *rv > 0).ok_or_else(|| {
        invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    })?;
    let start = v["start"].as_str().unwrap_or("");
    if start.is_empty() {
        return Err(invalid("encoded start key empty (version meta.k8s.io/v1)"));
    }
    // Upstream cleans the key as a path and refuses any that changes: no climbing out.
    if start.starts_with('/') || start.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(invalid(start));
    }
    if v["list"].as_str() != Some(prefix.strip_prefix(root).unwrap_or(prefix)) {
        return Err(invalid("the token was issued for a different list"));
    }
    Ok((revision, format!("{prefix}{start}")))
}

pub fn parse_rv(rv: &str) -> ApiResult<Revision> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// A paged or exact-revision list read from the store: (objects, revision, continue token).
async fn list_from_store(
    state: &ApiState,
    target: &Target,
    options: &ListOptions<'_>,
) -> ApiResult<(Vec<Arc<CachedObject>>, Revision, Option<String>)> {
    let resource = &*target.resource;
    let prefix = target.key(&state.root);
    let (mut revision, mut start) = if options.continue_token.is_empty() {
        let rv = match options.resource_version {
            "" | "0" => 0,
            rv if options.resource_version_match == "Exact" => parse_rv(rv)?,
            _ => 0,
        };
        (rv, None)
    } else {
        if !options.resource_version.is_empty() && options.resource_version != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rv, start) = decode_continue(&state.root, &prefix, options.continue_token)?;
        (rv, Some(start))
    };
    let mut objects = Vec::new();
    loop {
        let want = if options.limit == 0 {
            0
        } else {
            options.limit - objects.len()
        };
        let opts = RangeOptions {
            revision,
            start_key: start.clone(),
            limit: want,
        };
        let page = state.store.range(&prefix, opts).await.map_err(|e| match e {
            storage::Error::Compacted { .. } if !options.continue_token.is_empty() => ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            ),
            e => ApiError::from_store(e, &resource.group, &resource.plural, ""),
        })?;
        revision = page.revision;
        let last_key = page.kvs.last().map(|kv| kv.key.clone());
        objects.extend(
            page.kvs
                .iter()
                .filter_map(|kv| CachedObject::from_kv(kv, Some(resource)))
                .filter(|o| options.selects(o))
                .map(Arc::new),
        );
        match last_key {
            Some(last) if page.more => {
                // The next read starts just after the last key seen.
                start = Some(format!("{last}\0"));
                if options.limit > 0 && objects.len() >= options.limit {
                    return Ok((
                        objects,
                        revision,
                        start.map(|s| encode_continue(&state.root, &prefix, revision, &s)),
                    ));
                }
            }
            _ => return Ok((objects, revision, None)),
        }
    }
}
