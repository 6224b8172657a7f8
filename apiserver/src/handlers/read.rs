//! get, list and watch as HTTP verbs. `registry::read` finds what get and list answer
//! (the watch cache, or the store for consistent gets, paged and exact-revision lists);
//! here it is encoded as JSON from the cached bytes, YAML or a Table. Watches are served
//! from the watch cache, or from the store for a revision the cache no longer holds.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{Format, Query, Target, raw_response, respond};
use crate::cache::{CacheEvent, CachedObject, WatchError, WatchEventType};
use crate::codec::PROTOBUF;
use crate::registry::{self, ResourceInfo};
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};
use crate::storage::{self, Revision};

/// GET of one object.
pub async fn get(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    format: Format,
) -> ApiResult<Response> {
    let resource = &*target.resource;
    let object = registry::read::get(state, target, &query.resource_version).await?;
    match format {
        Format::Table => Ok(respond(
            StatusCode::OK,
            Format::Json,
            &render_table(resource, &[object], query, true, ""),
        )),
        Format::Protobuf if let Some(encoded) = object.protobuf() => Ok(raw_response(
            StatusCode::OK,
            PROTOBUF,
            encoded.bytes.clone(),
        )),
        Format::Json | Format::Protobuf => {
            // The cached encoding, ended with upstream's newline.
            let mut body = BytesMut::with_capacity(object.bytes.len() + 1);
            body.put_slice(&object.bytes);
            body.put_u8(b'\n');
            Ok(raw_response(
                StatusCode::OK,
                "application/json",
                body.freeze(),
            ))
        }
        Format::Yaml | Format::PartialJson | Format::PartialProtobuf => {
            Ok(respond(StatusCode::OK, format, &object.value()))
        }
    }
}

/// LIST of a collection.
pub async fn list(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    format: Format,
) -> ApiResult<Response> {
    let resource = &*target.resource;
    let registry::read::List {
        objects,
        revision,
        continue_token,
    } = registry::read::list(state, target, &query.list_options()).await?;
    match format {
        Format::Table => Ok(respond(
            StatusCode::OK,
            Format::Json,
            &with_list_meta(
                render_table(resource, &objects, query, true, ""),
                revision,
                &continue_token,
            ),
        )),
        Format::Protobuf
            if let Some(list) = protobuf_list(resource, &objects, revision, &continue_token) =>
        {
            Ok(raw_response(StatusCode::OK, PROTOBUF, list))
        }
        Format::Json | Format::Protobuf => Ok(raw_response(
            StatusCode::OK,
            "application/json",
            list_bytes(resource, &objects, revision, &continue_token),
        )),
        Format::Yaml | Format::PartialJson | Format::PartialProtobuf => {
            let bytes = list_bytes(resource, &objects, revision, &continue_token);
            let value: Value = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
            Ok(respond(StatusCode::OK, format, &value))
        }
    }
}

fn with_list_meta(mut table: Value, revision: Revision, continue_token: &str) -> Value {
    table["metadata"]["resourceVersion"] = json!(revision.to_string());
    if !continue_token.is_empty() {
        table["metadata"]["continue"] = json!(continue_token);
    }
    table
}

/// A list's metadata: its revision and the token of its next page.
fn list_meta(revision: Revision, continue_token: &str) -> Value {
    let mut meta = json!({ "resourceVersion": revision.to_string() });
    if !continue_token.is_empty() {
        meta["continue"] = json!(continue_token);
    }
    meta
}

/// The list in protobuf from each object's cached message (None: one has no protobuf form).
fn protobuf_list(
    resource: &ResourceInfo,
    objects: &[Arc<CachedObject>],
    revision: Revision,
    continue_token: &str,
) -> Option<Bytes> {
    let items: Vec<&crate::protobuf::Encoded> = objects
        .iter()
        .map(|o| o.protobuf())
        .collect::<Option<_>>()?;
    crate::protobuf::list(
        &resource.api_version(),
        &resource.list_kind,
        &list_meta(revision, continue_token),
        items.iter().map(|e| e.raw()),
    )
    .inspect_err(|e| tracing::warn!(kind = %resource.list_kind, "answering JSON: {e}"))
    .ok()
}

/// `{"kind":"PodList",...,"items":[...]}` assembled from the cached bytes without re-encoding.
fn list_bytes(
    resource: &ResourceInfo,
    objects: &[Arc<CachedObject>],
    revision: Revision,
    continue_token: &str,
) -> Bytes {
    let size: usize = objects.iter().map(|o| o.bytes.len() + 1).sum();
    let mut out = BytesMut::with_capacity(size + 160);
    let meta = list_meta(revision, continue_token);
    out.put_slice(
        format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            resource.list_kind,
            resource.api_version(),
            meta
        )
        .as_bytes(),
    );
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(&o.bytes);
    }
    out.put_slice(b"]}\n");
    out.freeze()
}

/// A meta.k8s.io/v1 Table of `objects`; `with_columns` false leaves columnDefinitions empty
/// (watch events after the first).
fn render_table(
    resource: &ResourceInfo,
    objects: &[Arc<CachedObject>],
    query: &Query,
    with_columns: bool,
    revision: &str,
) -> Value {
    let now = chrono::Utc::now();
    let columns: Vec<Value> = if with_columns {
        resource.printer.column_definitions()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let value = o.value();
            let object = match query.include_object.as_str() {
                "None" => Value::Null,
                "Object" => value.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": value.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            json!({
                "cells": resource.printer.cells(&value, now),
                "object": object,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": revision },
        "columnDefinitions": columns,
        "rows": rows,
    })
}

use crate::cache::watch_line as event_line;

/// Encodes watch events for one client, in its format.
struct Encoder {
    resource: Arc<ResourceInfo>,
    format: Format,
    /// Whether the Table columns were sent yet.
    sent_columns: bool,
}

impl Encoder {
    /// A cache event as the watcher sees it (`event_type` after selector filtering).
    fn event(&mut self, event_type: WatchEventType, event: &CacheEvent, query: &Query) -> Bytes {
        // The line every watcher shares, unless this watcher's version shows the object
        // otherwise (a custom resource stored in another version).
        if matches!(self.format, Format::Json | Format::Yaml | Format::Protobuf)
            && event_type == event.event_type
            && Arc::ptr_eq(&self.resource.served_object(&event.object), &event.object)
        {
            if self.format != Format::Protobuf {
                return event.json_line();
            }
            if let Some(frame) = event.protobuf_frame() {
                return frame;
            }
        }
        self.object(event_type.as_str(), &event.object, query)
    }

    /// An event carrying `object` (a JSON value the server made: a bookmark, a Status, an
    /// object reduced to its metadata).
    fn line(&self, event_type: &str, object: &Value) -> Bytes {
        let reduced;
        let object = if self.format.is_partial() {
            reduced = crate::codec::partial(object);
            &reduced
        } else {
            object
        };
        if matches!(self.format, Format::Protobuf | Format::PartialProtobuf)
            && let Ok(encoded) = crate::protobuf::encode_object(object)
        {
            return crate::protobuf::watch_frame(event_type, &encoded.bytes);
        }
        event_line(event_type, object.to_string().as_bytes())
    }

    /// An ERROR event with the failure's Status.
    fn error(&self, err: &ApiError) -> Bytes {
        self.line("ERROR", &err.to_status())
    }

    fn object(&mut self, event_type: &str, object: &Arc<CachedObject>, query: &Query) -> Bytes {
        let object = &self.resource.served_object(object);
        match self.format {
            Format::Table => {
                let table = render_table(
                    &self.resource,
                    std::slice::from_ref(object),
                    query,
                    !self.sent_columns,
                    &object.revision.to_string(),
                );
                self.sent_columns = true;
                event_line(event_type, table.to_string().as_bytes())
            }
            Format::Protobuf => match object.protobuf() {
                Some(encoded) => crate::protobuf::watch_frame(event_type, &encoded.bytes),
                // Never for an object the server validated; the client's watch restarts.
                None => self.error(&ApiError::internal(format!(
                    "{} has no protobuf form",
                    object.key
                ))),
            },
            Format::PartialJson | Format::PartialProtobuf => self.line(event_type, &object.value()),
            Format::Json | Format::Yaml => event_line(event_type, &object.bytes),
        }
    }

    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": revision.to_string() });
        if initial_events_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(),
            "metadata": meta,
        });
        self.line("BOOKMARK", &object)
    }
}

/// How one cache event looks to a watcher with selectors: an object entering the selection is
/// ADDED, one leaving it is DELETED, as upstream's cacher reports.
fn filtered(query: &Query, event: &CacheEvent) -> Option<WatchEventType> {
    let selection = query.list_options();
    let now = selection.selects(&event.object);
    let before = event.prev.as_ref().is_some_and(|p| selection.selects(p));
    match event.event_type {
        WatchEventType::Added => now.then_some(WatchEventType::Added),
        WatchEventType::Deleted => before.then_some(WatchEventType::Deleted),
        WatchEventType::Modified => match (before, now) {
            (true, true) => Some(WatchEventType::Modified),
            (false, true) => Some(WatchEventType::Added),
            (true, false) => Some(WatchEventType::Deleted),
            (false, false) => None,
        },
    }
}

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// WATCH of a collection: a chunked stream of JSON watch events.
pub async fn watch(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    format: Format,
) -> ApiResult<Response> {
    let resource = &*target.resource;
    registry::read::check_field_selector(resource, &query.field_selector)?;
    let rv = query.resource_version.as_str();
    let send_initial = query
        .send_initial_events
        .unwrap_or(rv.is_empty() || rv == "0");
    if query.send_initial_events == Some(true) && !query.allow_watch_bookmarks {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![crate::status::Cause::forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks required when sendInitialEvents is true",
            )],
        ));
    }
    let start = match rv {
        "" | "0" => None,
        rv => Some(registry::read::parse_rv(rv)?),
    };
    let (tx, rx) = crate::cache::watch_queue(state.cache.clone(), target.resource.clone());
    let body = Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
    );
    let timeout = state.limits.watch_timeout(query.timeout_seconds);
    let mut encoder = Encoder {
        resource: target.resource.clone(),
        format,
        sent_columns: false,
    };
    let query = Arc::new(query.clone());
    if start.is_none() {
        // No resourceVersion: the initial state is a consistent read, as upstream's, so the
        // cache first catches up with everything the store has acknowledged. "0" may be
        // served from any state upstream, but a client that just wrote expects to see its
        // write (kube-rs's streaming list asks for "0"), and catching up costs one read.
        state
            .cache
            .wait_fresh()
            .await
            .map_err(|e| ApiError::from_store(e, &resource.group, &resource.plural, ""))?;
    }
    let opened = state.cache.watch(resource, &target.namespace, start).await;
    let state = state.clone();
    let prefix = target.key(&state.root);
    let resource = target.resource.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut cache_watch = match opened {
            Ok(w) => w,
            Err(WatchError::TooNew(current)) => {
                let err = ApiError::timeout(format!(
                    "Too large resource version: {}, current: {current}",
                    start.unwrap_or_default()
                ));
                let _ = tx.send(encoder.error(&err)).await;
                return;
            }
            Err(WatchError::TooOld) => {
                let from = start.unwrap_or_default();
                watch_from_store(
                    &state,
                    &resource,
                    &prefix,
                    from,
                    &query,
                    &mut encoder,
                    &tx,
                    deadline,
                )
                .await;
                return;
            }
        };
        if send_initial {
            let selection = query.list_options();
            for object in &cache_watch.initial {
                if selection.selects(object)
                    && tx
                        .send(encoder.object("ADDED", object, &query))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
        if query.send_initial_events == Some(true) {
            let _ = tx
                .send(encoder.bookmark(cache_watch.start_revision, true))
                .await;
        }
        for event in &cache_watch.replay {
            if let Some(t) = filtered(&query, event)
                && tx.send(encoder.event(t, event, &query)).await.is_err()
            {
                return;
            }
        }
        let mut bookmarks = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmarks.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = bookmarks.tick(), if query.allow_watch_bookmarks => {
                    let rev = state.cache.revision();
                    if tx.send(encoder.bookmark(rev, false)).await.is_err() {
                        return;
                    }
                }
                event = cache_watch.live.recv() => match event {
                    Ok(event) => {
                        if let Some(t) = filtered(&query, &event)
                            && tx.send(encoder.event(t, &event, &query)).await.is_err()
                        {
                            return;
                        }
                    }
                    // Too slow or the cache was reloaded: end the watch; the client resumes.
                    Err(_) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    let content_type = match format {
        Format::Protobuf | Format::PartialProtobuf => {
            "application/vnd.kubernetes.protobuf;stream=watch"
        }
        _ => "application/json",
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    Ok(resp)
}

/// Serves a watch older than the cache's history straight from the store's history.
#[allow(clippy::too_many_arguments)]
async fn watch_from_store(
    state: &Arc<ApiState>,
    resource: &ResourceInfo,
    prefix: &str,
    from: Revision,
    query: &Query,
    encoder: &mut Encoder,
    tx: &crate::cache::WatchSender,
    deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) {
    let mut stream = match state.store.watch(prefix, from).await {
        Ok(s) => s,
        Err(e) => {
            let _ = tx
                .send(encoder.error(&ApiError::from_store(
                    e,
                    &resource.group,
                    &resource.plural,
                    "",
                )))
                .await;
            return;
        }
    };
    tokio::pin!(deadline);
    loop {
        let item = tokio::select! {
            _ = &mut deadline => return,
            item = stream.next() => item,
        };
        let event = match item {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let _ = tx
                    .send(encoder.error(&ApiError::from_store(
                        e,
                        &resource.group,
                        &resource.plural,
                        "",
                    )))
                    .await;
                return;
            }
            None => return,
        };
        let (event_type, kv) = match event.event_type {
            storage::EventType::Put if event.prev.is_none() => {
                (WatchEventType::Added, event.kv.clone())
            }
            storage::EventType::Put => (WatchEventType::Modified, event.kv.clone()),
            storage::EventType::Delete => {
                let Some(mut prev) = event.prev.clone() else {
                    continue;
                };
                prev.mod_revision = event.kv.mod_revision;
                (WatchEventType::Deleted, prev)
            }
        };
        let Some(object) = CachedObject::from_kv(&kv, Some(resource)).map(Arc::new) else {
            continue;
        };
        let prev = event
            .prev
            .as_ref()
            .and_then(|kv| CachedObject::from_kv(kv, Some(resource)))
            .map(Arc::new);
        let cache_event = CacheEvent::new(event_type, kv.mod_revision, object, prev);
        if let Some(t) = filtered(query, &cache_event)
            && tx
                .send(encoder.event(t, &cache_event, query))
                .await
                .is_err()
        {
            return;
        }
    }
}
