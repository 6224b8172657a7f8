//! The write path below HTTP, as upstream's generic registry store: create and guaranteed
//! update of any served resource (type and namespace checks, generated names, admission,
//! defaulting, validation, fieldValidation, the compare-and-swap write), for the handlers
//! and for internal callers (bootstrap objects, quota charges) alike. Nothing here knows
//! of requests or responses.

use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{ResourceInfo, Target};
use crate::auth::UserInfo;
use crate::cache::CachedObject;
use crate::meta::{self, metadata_mut};
use crate::state::ApiState;
use crate::status::{self, ApiError, ApiResult, Cause};
use crate::storage::{self, KeyValue};
use crate::validation;

/// fieldValidation: what to do with unknown or duplicate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// How a write is carried out (upstream's CreateOptions/UpdateOptions, less the manager).
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Everything is checked and nothing is written.
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// Fields the body held twice (found while decoding it), for fieldValidation.
    pub duplicate_fields: Vec<String>,
    /// A server-side apply (with its `force`): the write's object is an applied
    /// configuration, merged into the current object by field ownership.
    pub apply: Option<bool>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Warn,
            duplicate_fields: Vec::new(),
            apply: None,
        }
    }
}

/// How many times an unconditional update re-reads and retries after a conflict.
pub const MAX_RETRIES: usize = 16;

/// Checks that a body's apiVersion and kind are the ones the URL serves. Missing ones are
/// taken from the URL, as upstream decodes with the endpoint's kind as the default.
pub fn check_type(resource: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            truncate(&obj.to_string())
        )));
    };
    let expected_version = resource.api_version();
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() {
        map.insert("apiVersion".into(), json!(expected_version));
    } else if api_version != expected_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected_version})"
        )));
    }
    if kind.is_empty() {
        map.insert("kind".into(), json!(resource.kind));
    } else if kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {}: the kind in the data does not match the {} endpoint",
            resource.version, resource.kind, resource.plural
        )));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(256).collect()
}

/// The namespace of the body must agree with the URL's; an absent one is taken from it.
fn check_namespace(target: &Target, obj: &mut Value) -> ApiResult<()> {
    if !target.resource.namespaced {
        metadata_mut(obj).remove("namespace");
        return Ok(());
    }
    let ns = meta::namespace(obj);
    if ns.is_empty() {
        metadata_mut(obj).insert("namespace".into(), json!(target.namespace));
    } else if ns != target.namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Refuses writes into a namespace that does not exist or is being deleted.
async fn check_namespace_open(state: &ApiState, target: &Target) -> ApiResult<()> {
    if !target.resource.namespaced {
        return Ok(());
    }
    let ns = &target.namespace;
    let key = format!("{}/namespaces/{ns}", state.root);
    let namespaces =
        crate::registry::builtin("", "v1", "namespaces").expect("namespaces are served");
    // Some(terminating) when the namespace exists.
    let marked = state.terminating_namespaces.lock().contains(ns.as_str());
    let found = match state.cache.get(namespaces, &key) {
        Some(o) => Some(o.terminating || marked),
        // The cache may trail a namespace created a moment ago; the store is the truth.
        None => state
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, "", "namespaces", ns))?
            .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .map(|v| meta::is_terminating(&v)),
    };
    match found {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(true) => {
            let mut refused = ApiError::forbidden(
                &target.resource.group,
                &target.resource.plural,
                &target.name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            // The cause controllers look for to tell this refusal from a real failure.
            if let Some(details) = refused.details.as_mut() {
                details["causes"] = json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }]);
            }
            Err(refused)
        }
        Some(false) => Ok(()),
    }
}

/// Fields of the body the typed struct dropped: unknown fields, as `spec.foo` paths.
fn unknown_fields(input: &Value, normalized: &Value, out: &mut Vec<String>) {
    unknown_under(input, normalized, &mut Vec::new(), out);
}

/// One step of a path into an object: a key or a list index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// [`unknown_fields`] below `path`. The path is a stack of steps, written out only for an
/// unknown field: most bodies have none, and every field of every write passes here.
fn unknown_under<'a>(
    input: &'a Value,
    normalized: &Value,
    path: &mut Vec<Step<'a>>,
    out: &mut Vec<String>,
) {
    match (input, normalized) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(nv) if nv.is_object() || nv.is_array() => {
                        path.push(Step::Key(k));
                        unknown_under(v, nv, path, out);
                        path.pop();
                    }
                    Some(_) => {}
                    None if v.is_null() => {}
                    None => {
                        path.push(Step::Key(k));
                        out.push(path_string(path));
                        path.pop();
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, nv)) in a.iter().zip(b).enumerate() {
                path.push(Step::Index(i));
                unknown_under(v, nv, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `spec.containers[0].foo`, as upstream's strict decoding names a field.
fn path_string(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// The object's metadata and its kind's rules (`old` on update): 422 with every cause.
pub fn validate(target: &Target, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let resource = &*target.resource;
    let mut causes = validation::validate_metadata(resource, obj);
    if let Some(old) = old {
        causes.extend(validation::validate_metadata_update(obj, old));
    }
    causes.extend(resource.strategy.validate(obj, old));
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &resource.group,
        &resource.kind,
        &target.name,
        causes,
    ))
}

/// Normalizes through the typed struct, enforcing fieldValidation. Returns the warnings.
fn normalize(
    resource: &ResourceInfo,
    options: &WriteOptions,
    obj: Value,
) -> ApiResult<(Value, Vec<String>)> {
    let normalized = resource.normalize(&obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            resource.kind, resource.version, resource.kind
        ))
    })?;
    let mut unknown = Vec::new();
    let mut messages = Vec::new();
    if options.field_validation != FieldValidation::Ignore {
        unknown_fields(&obj, &normalized, &mut unknown);
        messages.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
        messages.extend(
            options
                .duplicate_fields
                .iter()
                .map(|f| format!("duplicate field \"{f}\"")),
        );
    }
    if options.field_validation == FieldValidation::Strict && !messages.is_empty() {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        )));
    }
    Ok((normalized, messages))
}

/// The stored form: no resourceVersion (the store's revision is the truth), in the storage
/// version (a custom resource written through another version: conversion `None` only
/// changes its apiVersion).
pub fn to_stored(resource: &ResourceInfo, obj: &mut Value) -> ApiResult<Bytes> {
    // The caller sets the new revision on the object after the write.
    metadata_mut(obj).remove("resourceVersion");
    let encoded = match resource.storage_api_version() {
        Some(storage) if obj["apiVersion"] != storage => {
            let mut stored = obj.clone();
            stored["apiVersion"] = json!(storage);
            serde_json::to_vec(&stored)
        }
        _ => serde_json::to_vec(obj),
    };
    encoded.map(Bytes::from).map_err(ApiError::internal)
}

pub fn with_revision(obj: &mut Value, revision: i64) {
    metadata_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// Creates an object as a POST by `user` would, writing as `manager`: (the stored object,
/// warnings).
pub async fn create_object(
    state: &Arc<ApiState>,
    target: &Target,
    options: &WriteOptions,
    user: &UserInfo,
    manager: &str,
    mut obj: Value,
) -> ApiResult<(Value, Vec<String>)> {
    let resource = &*target.resource;
    if let Some(why) = resource.strategy.refuses_create() {
        return Err(ApiError::method_not_allowed(why));
    }
    check_type(resource, &mut obj)?;
    let types = resource.apply_types();
    // An apply creating the object: its manager owns what it applied, not what defaults add.
    let applied_fields = match options.apply {
        Some(force) => {
            let writer = writer(target, manager, &*types);
            let created = crate::apply::managed::apply(&json!({}), &obj, force, &writer)?;
            Some(created["metadata"]["managedFields"].clone())
        }
        None => None,
    };
    check_namespace(target, &mut obj)?;
    let name = meta::name(&obj).to_owned();
    let mut names = GeneratedName {
        prefix: meta::meta_str(&obj, "generateName").to_owned(),
        generated: name.is_empty(),
        attempts: 1,
    };
    let meta_map = metadata_mut(&mut obj);
    let name = if name.is_empty() && !names.prefix.is_empty() {
        (state.generate_name)(&names.prefix)
    } else {
        name
    };
    if name.is_empty() {
        return Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            "",
            vec![Cause {
                reason: "FieldValueRequired",
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            }],
        ));
    }
    if meta_map
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    // A name is part of the store key: one that is not a path segment is refused before
    // any key is built from it (the full validation below would refuse it too, later).
    if !crate::request::is_path_segment_name(&name) {
        let causes = meta::validate_name(resource.strategy.name_rule(), &name)
            .into_iter()
            .map(|msg| Cause::invalid("metadata.name", &json!(name), msg))
            .collect();
        return Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            &name,
            causes,
        ));
    }
    meta_map.insert("name".into(), json!(name));
    meta_map.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta_map.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
    for field in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta_map.remove(field);
    }
    if resource.strategy.tracks_generation() {
        meta_map.insert("generation".into(), json!(1));
    } else {
        meta_map.remove("generation");
    }
    let mut target = Target {
        name,
        ..target.clone()
    };
    if state.admission.namespace_lifecycle {
        check_namespace_open(state, &target).await?;
    }
    crate::admission::mutate_create(state, &target, &mut obj).await?;
    resource.strategy.default(&mut obj);
    resource.strategy.prepare_for_create(&mut obj);
    resource.strategy.record_creator(&mut obj, user);
    match applied_fields {
        Some(fields) if !fields.is_null() => {
            metadata_mut(&mut obj).insert("managedFields".into(), fields);
        }
        Some(_) => {}
        None => {
            crate::apply::managed::record_update(None, &mut obj, &writer(&target, manager, &*types))
        }
    }

    // An object known to exist is refused before anything is allocated for it. The cache may
    // still hold an object deleted a moment ago, so a hit is confirmed with the store; the
    // store's create-if-absent remains the real guard.
    let mut key = target.key(&state.root);
    while state.cache.get(resource, &key).is_some()
        && state
            .store
            .get(&key)
            .await
            .map_err(|e| target.store_error(e))?
            .is_some()
    {
        let next = names.after_collision(state, resource, &target.name)?;
        key = rename(state, &mut obj, &mut target, next);
    }
    let allocation = resource.hooks.reserve(state, &mut obj, None)?;
    validate(&target, &obj, None)?;
    let (mut obj, mut warnings) = normalize(resource, options, obj)?;
    warnings.extend(crate::admission::validate(state, &target, &obj, None, options.dry_run).await?);
    if options.dry_run {
        return Ok((obj, warnings));
    }
    let kv = loop {
        match state
            .store
            .create(&key, to_stored(resource, &mut obj)?)
            .await
        {
            Ok(kv) => break kv,
            // Another create took the generated name since the check above: the next one
            // differs only in its random suffix, so what was validated still holds.
            Err(storage::Error::AlreadyExists(_)) => {
                let next = names.after_collision(state, resource, &target.name)?;
                key = rename(state, &mut obj, &mut target, next);
            }
            Err(e) => {
                return Err(ApiError::from_store(
                    e,
                    &resource.group,
                    &resource.plural,
                    &target.name,
                ));
            }
        }
    };
    if let Some(a) = allocation {
        a.commit();
    }
    resource.hooks.created(state, &obj);
    with_revision(&mut obj, kv.mod_revision);
    Ok((obj, warnings))
}

/// Who a write is, for managedFields.
fn writer<'a>(
    target: &'a Target,
    manager: &'a str,
    types: &'a dyn crate::apply::typed::Types,
) -> crate::apply::managed::Writer<'a> {
    crate::apply::managed::Writer {
        manager,
        api_version: target.resource.api_version(),
        subresource: &target.subresource,
        has_status: target.resource.has_subresource("status"),
        types,
    }
}

/// Upstream tries eight generated names in all before giving up on a create.
const MAX_NAME_GENERATION_ATTEMPTS: u32 = 8;

/// The generateName of an object being created, and how many names were tried for it.
struct GeneratedName {
    prefix: String,
    /// The client sent no name, so the server picks (and may re-pick) one.
    generated: bool,
    attempts: u32,
}

impl GeneratedName {
    /// After `name` turned out to exist: the next name to try, or upstream's answer.
    fn after_collision(
        &mut self,
        state: &ApiState,
        resource: &ResourceInfo,
        name: &str,
    ) -> ApiResult<String> {
        if self.prefix.is_empty() {
            return Err(ApiError::already_exists(
                &resource.group,
                &resource.plural,
                name,
            ));
        }
        if !self.generated || self.attempts >= MAX_NAME_GENERATION_ATTEMPTS {
            return Err(ApiError::generate_name_conflict(
                &resource.group,
                &resource.plural,
                name,
            ));
        }
        self.attempts += 1;
        Ok((state.generate_name)(&self.prefix))
    }
}

/// Gives the object being created another name: its new store key.
fn rename(state: &ApiState, obj: &mut Value, target: &mut Target, name: String) -> String {
    metadata_mut(obj).insert("name".into(), json!(name));
    target.name = name;
    target.key(&state.root)
}

/// Reads the current object from the store: (kv, object with resourceVersion, in the
/// target's version).
pub async fn current(state: &ApiState, target: &Target) -> ApiResult<(KeyValue, Value)> {
    let kv = stored(state, target).await?;
    let mut obj = crate::cache::object_with_revision(&kv)
        .ok_or_else(|| ApiError::internal(format!("stored object {} is not JSON", kv.key)))?;
    target.resource.to_served(&mut obj);
    Ok((kv, obj))
}

/// The object as the store holds it now (a consistent read); 404 when there is none.
pub async fn stored(state: &ApiState, target: &Target) -> ApiResult<KeyValue> {
    let resource = &*target.resource;
    state
        .store
        .get(&target.key(&state.root))
        .await
        .map_err(|e| target.store_error(e))?
        .ok_or_else(|| ApiError::not_found(&resource.group, &resource.plural, &target.name))
}

/// What a write computes from the current object.
pub struct Desired {
    pub object: Value,
    /// The client named this resourceVersion: a conflict is the client's to resolve.
    pub precondition: bool,
}

/// The outcome of [`guaranteed_update`].
pub struct Updated {
    pub object: Value,
    pub warnings: Vec<String>,
    /// The write deleted the object (its last finalizer went away while terminating).
    pub deleted: bool,
}

/// Reads the object, computes the desired state with `mutate`, shapes it as `subresource`
/// allows, validates it, and writes it with a compare-and-swap, retrying on conflict when the
/// client gave no resourceVersion. The update path of every verb but create.
pub async fn guaranteed_update(
    state: &Arc<ApiState>,
    target: &Target,
    options: &WriteOptions,
    manager: &str,
    mut mutate: impl FnMut(&Value) -> ApiResult<Desired>,
) -> ApiResult<Updated> {
    let resource = &*target.resource;
    for _ in 0..MAX_RETRIES {
        let (kv, old) = current(state, target).await?;
        let desired = mutate(&old)?;
        let types = resource.apply_types();
        let candidate = match options.apply {
            Some(force) => {
                let writer = writer(target, manager, &*types);
                crate::apply::managed::apply(&old, &desired.object, force, &writer)?
            }
            None => desired.object,
        };
        let applied_fields = options
            .apply
            .map(|_| candidate["metadata"]["managedFields"].clone());
        let mut new = shape_update(target, &old, candidate)?;
        // Shaping for a subresource starts from the current object: the apply's ownership
        // goes with what it kept.
        match applied_fields {
            Some(Value::Null) => {
                metadata_mut(&mut new).remove("managedFields");
            }
            Some(fields) => {
                metadata_mut(&mut new).insert("managedFields".into(), fields);
            }
            None => {}
        }
        resource.strategy.default(&mut new);
        if resource.strategy.tracks_generation() {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed = spec_of(&new) != spec_of(&old);
            metadata_mut(&mut new).insert(
                "generation".into(),
                json!(if changed { generation + 1 } else { generation }),
            );
        }
        let allocation = resource.hooks.reserve(state, &mut new, Some(&old))?;
        validate(target, &new, Some(&old))?;
        let (mut new, mut warnings) = normalize(resource, options, new)?;
        let key = target.key(&state.root);
        // Boxed: charging a quota is itself an update through here.
        warnings.extend(
            Box::pin(crate::admission::validate(
                state,
                target,
                &new,
                Some(&old),
                options.dry_run,
            ))
            .await?,
        );
        if options.apply.is_none() {
            crate::apply::managed::record_update(
                Some(&old),
                &mut new,
                &writer(target, manager, &*types),
            );
        }
        // Nothing changed (ownership included): answer the current object without a write,
        // as upstream does, unless the stored form is stale (a rewrite moves it to the
        // current encryption key).
        if without_volatile(&new) == without_volatile(&old)
            && !state
                .store
                .stale(&key)
                .await
                .map_err(|e| target.store_error(e))?
        {
            return Ok(Updated {
                object: old,
                warnings,
                deleted: false,
            });
        }
        if options.dry_run {
            // Nothing was written: the object keeps the revision it was computed from.
            with_revision(&mut new, kv.mod_revision);
            return Ok(Updated {
                object: new,
                warnings,
                deleted: false,
            });
        }
        let finalized = ready_to_remove(resource, &new);
        let result = if finalized {
            state
                .store
                .delete(&key, Some(kv.mod_revision))
                .await
                .map(|(_, rev)| rev)
        } else {
            state
                .store
                .update(&key, to_stored(resource, &mut new)?, kv.mod_revision)
                .await
                .map(|kv| kv.mod_revision)
        };
        match result {
            Ok(rev) => {
                with_revision(&mut new, rev);
                if let Some(a) = allocation {
                    a.commit();
                }
                return Ok(Updated {
                    object: new,
                    warnings,
                    deleted: finalized,
                });
            }
            Err(storage::Error::Conflict { .. }) if !desired.precondition => continue,
            Err(e) => {
                return Err(target.store_error(e));
            }
        }
    }
    Err(target.stale())
}

/// Upstream's storage-level GuaranteedUpdate: reads the object, lets `mutate` compute the
/// new one, and writes it with a compare-and-swap, retrying on conflict. Nothing else runs:
/// no strategy, validation, admission or field ownership. For the writes a registry makes
/// on its own terms, as upstream's pods/binding writes through its storage directly.
pub async fn update_stored(
    state: &Arc<ApiState>,
    target: &Target,
    options: &WriteOptions,
    mut mutate: impl FnMut(&Value) -> ApiResult<Value>,
) -> ApiResult<Value> {
    let resource = &*target.resource;
    let key = target.key(&state.root);
    for _ in 0..MAX_RETRIES {
        let (kv, old) = current(state, target).await?;
        let mut new = mutate(&old)?;
        if options.dry_run {
            with_revision(&mut new, kv.mod_revision);
            return Ok(new);
        }
        match state
            .store
            .update(&key, to_stored(resource, &mut new)?, kv.mod_revision)
            .await
        {
            Ok(kv) => {
                with_revision(&mut new, kv.mod_revision);
                return Ok(new);
            }
            Err(storage::Error::Conflict { .. }) => continue,
            Err(e) => return Err(target.store_error(e)),
        }
    }
    Err(target.stale())
}

/// Whether a terminating object has nothing left holding it: no finalizers, and nothing
/// its kind holds it by (a namespace's spec finalizers, a pod's grace period).
fn ready_to_remove(resource: &ResourceInfo, obj: &Value) -> bool {
    meta::is_terminating(obj)
        && meta::finalizers(obj).is_empty()
        && !resource.strategy.holds_removal(obj)
}

/// The part of an object whose changes bump metadata.generation.
fn spec_of(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn without_volatile(obj: &Value) -> Value {
    let mut v = obj.clone();
    let meta = metadata_mut(&mut v);
    meta.remove("resourceVersion");
    v
}

/// Applies upstream's update rules: identity metadata is kept, the main resource never changes
/// status, and a subresource changes only its part.
fn shape_update(target: &Target, old: &Value, mut new: Value) -> ApiResult<Value> {
    let resource = &*target.resource;
    check_type(resource, &mut new)?;
    if meta::name(&new) != target.name {
        if meta::name(&new).is_empty() {
            metadata_mut(&mut new).insert("name".into(), json!(target.name));
        } else {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({})",
                meta::name(&new),
                target.name
            )));
        }
    }
    check_namespace(target, &mut new)?;
    let mut shaped = match target.subresource.as_str() {
        "status" => {
            let mut o = old.clone();
            o["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            o
        }
        "approval" => {
            let mut o = old.clone();
            o["status"]["conditions"] = new["status"]["conditions"].clone();
            o
        }
        // Binding sets spec.nodeName and the PodScheduled condition together, as upstream's
        // binding REST does.
        "binding" => new,
        "finalize" => {
            let mut o = old.clone();
            o["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
            o
        }
        _ => {
            if resource.has_subresource("status") {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            new
        }
    };
    let old_meta = meta::metadata(old).cloned().unwrap_or_default();
    let meta = metadata_mut(&mut shaped);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    Ok(shaped)
}

/// How a delete is carried out (upstream's DeleteOptions, as the body and query give it).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    /// The client set orphanDependents=false.
    pub cascading_requested: bool,
    pub propagation: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Debug)]
pub struct Deleted {
    /// What the client is answered: the object while it stays (terminating) or when its
    /// kind answers so, else a Success Status naming it.
    pub answer: Value,
    /// The object stays, terminating, until its finalizers or grace period are done.
    pub pending: bool,
}

/// Deletes one object: preconditions, the propagation policy's finalizer, a pod's grace
/// period, a namespace's termination; the object is marked terminating while anything
/// holds it, else removed.
pub async fn delete(
    state: &Arc<ApiState>,
    target: &Target,
    options: &DeleteOptions,
) -> ApiResult<Deleted> {
    let resource = &*target.resource;
    let strategy = &resource.strategy;
    resource.hooks.may_delete(state, &target.name)?;
    for _ in 0..MAX_RETRIES {
        let (kv, mut obj) = current(state, target).await?;
        if let Some(uid) = &options.uid {
            let actual = meta::meta_str(&obj, "uid");
            if uid != actual {
                return Err(ApiError::conflict(
                    &resource.group,
                    &resource.plural,
                    &target.name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = &options.resource_version {
            let actual = meta::resource_version(&obj);
            if rv != actual {
                return Err(ApiError::conflict(
                    &resource.group,
                    &resource.plural,
                    &target.name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        // Decide between marking the object terminating and removing it now.
        let mut finalizers = meta::finalizers(&obj);
        let policy_finalizer = match options.propagation.as_str() {
            "Orphan" => Some("orphan"),
            "Foreground" => Some("foregroundDeletion"),
            _ => None,
        };
        let mut changed = false;
        if let Some(f) = policy_finalizer
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_owned());
            changed = true;
        }
        let grace = strategy.deletion_grace(&obj, options.grace_period);
        let terminating = meta::is_terminating(&obj);
        let keep = !finalizers.is_empty() || grace > 0 || strategy.deletes_gracefully();
        let pending = |answer| Deleted {
            answer,
            pending: true,
        };
        if keep {
            let meta = metadata_mut(&mut obj);
            if changed {
                meta.insert("finalizers".into(), json!(finalizers));
            }
            let current_grace = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if !terminating || current_grace.is_some_and(|g| grace < g) {
                let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
                meta.insert(
                    "deletionTimestamp".into(),
                    json!(when.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                changed = true;
            }
            changed |= strategy.terminate(&mut obj);
            // An object deleted gracefully that nothing holds goes at once.
            // (Read again: terminating may have added a finalizer.)
            let nothing_holds = strategy.deletes_gracefully()
                && !strategy.holds_removal(&obj)
                && meta::finalizers(&obj).is_empty();
            if !nothing_holds {
                if !changed || options.dry_run {
                    return Ok(pending(obj));
                }
                let key = target.key(&state.root);
                match state
                    .store
                    .update(&key, to_stored(resource, &mut obj)?, kv.mod_revision)
                    .await
                {
                    Ok(kv) => {
                        with_revision(&mut obj, kv.mod_revision);
                        resource.hooks.terminating(state, &obj);
                        return Ok(pending(obj));
                    }
                    Err(storage::Error::Conflict { .. }) => continue,
                    Err(e) => {
                        return Err(target.store_error(e));
                    }
                }
            }
        }
        if options.dry_run {
            return Ok(Deleted {
                answer: deleted_answer(target, obj),
                pending: false,
            });
        }
        let key = target.key(&state.root);
        match state.store.delete(&key, Some(kv.mod_revision)).await {
            Ok((_, rev)) => {
                resource.hooks.removed(state, &obj);
                with_revision(&mut obj, rev);
                return Ok(Deleted {
                    answer: deleted_answer(target, obj),
                    pending: false,
                });
            }
            Err(storage::Error::Conflict { .. }) => continue,
            Err(e) => {
                return Err(target.store_error(e));
            }
        }
    }
    Err(target.stale())
}

/// The answer to a delete that removed `obj` at once: the object itself for kinds with
/// upstream's ReturnDeletedObject, else a Success Status naming it (details.kind is the
/// plural resource, as upstream's finalizeDelete sets it).
fn deleted_answer(target: &Target, obj: Value) -> Value {
    let resource = &*target.resource;
    if resource.strategy.returns_deleted_object() {
        return obj;
    }
    let uid = meta::meta_str(&obj, "uid");
    status::success(&resource.group, &resource.plural, &target.name, Some(uid))
}

/// Deletes every object of the collection `target` names that `select` picks, each as
/// [`delete`] would, and answers the list of them as selected (upstream's
/// Store.DeleteCollection), though the OpenAPI document declares a Status.
pub async fn delete_collection(
    state: &Arc<ApiState>,
    target: &Target,
    options: &DeleteOptions,
    select: impl Fn(&CachedObject) -> bool,
) -> ApiResult<Value> {
    let resource = &*target.resource;
    state
        .cache
        .wait_fresh()
        .await
        .map_err(|e| ApiError::from_store(e, &resource.group, &resource.plural, ""))?;
    let snapshot = state.cache.list(resource, &target.namespace);
    let mut items = Vec::new();
    for object in snapshot.objects.iter().filter(|o| select(o)) {
        let value = object.value();
        let one = Target {
            resource: target.resource.clone(),
            namespace: meta::namespace(&value).to_owned(),
            name: meta::name(&value).to_owned(),
            subresource: String::new(),
        };
        match delete(state, &one, options).await {
            // Upstream answers with the list as selected, objects gone meanwhile included.
            Ok(_) => items.push(value),
            Err(e) if e.code == 404 => items.push(value),
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": resource.list_kind,
        "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": snapshot.revision.to_string() },
        "items": items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_by_their_paths() {
        let input = json!({
            "bogus": 1,
            "gone": null,
            "spec": {"containers": [{"name": "a"}, {"name": "b", "extra": {"x": 1}}],
                     "kept": "v", "also": [1, 2]},
        });
        let normalized = json!({
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "kept": "v"},
        });
        let mut out = Vec::new();
        unknown_fields(&input, &normalized, &mut out);
        assert_eq!(out, ["bogus", "spec.containers[1].extra", "spec.also"]);
        out.clear();
        unknown_fields(&normalized, &normalized, &mut out);
        assert!(out.is_empty());
    }
}
