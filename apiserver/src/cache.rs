//! The watch cache: every served object held in memory, fed by one store watch over the whole
//! registry prefix, as upstream's cacher does per resource. Lists and watches are served from
//! here, so thousands of watchers cost the store nothing.
//!
//! One watch for all resources (rather than one per resource) gives the cache a single revision
//! that advances with every write: a consistent read waits until the cache has reached the
//! store's current revision, without etcd's progress notifications.
//!
//! Lock order: `state` (RwLock) is taken alone; the feeder applies an event and broadcasts it
//! under the write lock, and a new watcher snapshots and subscribes under the read lock, so a
//! watcher sees every event exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::selector::{FieldSelector, LabelSelector};
use futures::StreamExt;
use parking_lot::RwLock;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};

use crate::protobuf::Encoded;
use crate::registry::{ResourceInfo, Resources};
use crate::storage::{self, EventType, KeyValue, RangeOptions, Revision, Store};

/// Recent events kept per resource for watches that resume from a resourceVersion.
const HISTORY: usize = 10_000;
/// Live events a slow watcher may fall behind before its watch is closed.
const WATCHER_BACKLOG: usize = 10_000;
/// Encoded events queued for one watcher's connection (mostly shared with other watchers).
const WATCHER_QUEUE: usize = 64;
/// How long a watcher's full queue may stay full before the watch is closed, as upstream's
/// cacher closes an unresponsive watcher: the client relists, and a watcher that reads nothing
/// holds no more than its queue.
const WATCHER_STALL: Duration = Duration::from_secs(5);

/// One object as stored, with its resourceVersion filled in. Only the JSON bytes are kept,
/// plus what selectors read (labels and the kind's selectable fields): a parsed copy of every
/// object would cost several times the bytes.
pub struct CachedObject {
    pub key: String,
    pub revision: Revision,
    /// The JSON served to clients (metadata.resourceVersion set).
    pub bytes: Bytes,
    labels: Option<Map<String, Value>>,
    /// (field path, value) for metadata.name, metadata.namespace and the selectable fields.
    fields: Box<[(FieldName, String)]>,
    /// metadata.deletionTimestamp is set.
    pub terminating: bool,
    /// The protobuf form, encoded when a protobuf client first reads the object and kept for
    /// the next (None: the object has no protobuf form).
    protobuf: OnceLock<Option<Encoded>>,
}

/// A selectable field's path: a built-in kind's, or one a CustomResourceDefinition declares.
#[derive(Clone)]
enum FieldName {
    Static(&'static str),
    Custom(Arc<str>),
}

impl FieldName {
    fn as_str(&self) -> &str {
        match self {
            FieldName::Static(s) => s,
            FieldName::Custom(s) => s,
        }
    }
}

/// A stored value parsed, with its resourceVersion set from the revision; None if not JSON.
pub fn object_with_revision(kv: &KeyValue) -> Option<Value> {
    let mut value: Value = serde_json::from_slice(&kv.value).ok()?;
    crate::meta::metadata_mut(&mut value).insert(
        "resourceVersion".into(),
        Value::String(kv.mod_revision.to_string()),
    );
    Some(value)
}

impl CachedObject {
    /// Builds the cached form of a stored value of `resource` (None: of a resource not served,
    /// selectable by name and namespace only); None if it is not a JSON object.
    pub fn from_kv(kv: &KeyValue, resource: Option<&ResourceInfo>) -> Option<CachedObject> {
        let value = object_with_revision(kv)?;
        let bytes = Bytes::from(serde_json::to_vec(&value).ok()?);
        Some(CachedObject {
            key: kv.key.clone(),
            revision: kv.mod_revision,
            bytes,
            labels: crate::meta::labels(&value).cloned(),
            fields: selectable_fields(&value, resource),
            terminating: crate::meta::is_terminating(&value),
            protobuf: OnceLock::new(),
        })
    }

    /// The same object with its selectable fields read again for `resource` (whose
    /// definition declared other fields since it was cached).
    fn reindexed(&self, resource: Option<&ResourceInfo>) -> CachedObject {
        CachedObject {
            fields: selectable_fields(&self.value(), resource),
            ..self.with_bytes(self.bytes.clone())
        }
    }

    /// The same object encoded otherwise (another version of a custom resource).
    pub fn with_bytes(&self, bytes: Bytes) -> CachedObject {
        CachedObject {
            key: self.key.clone(),
            revision: self.revision,
            bytes,
            labels: self.labels.clone(),
            fields: self.fields.clone(),
            terminating: self.terminating,
            protobuf: OnceLock::new(),
        }
    }
}

/// (path, value) of metadata.name, metadata.namespace and the kind's selectable fields that
/// `value` has (a resource not served: name and namespace only).
fn selectable_fields(value: &Value, resource: Option<&ResourceInfo>) -> Box<[(FieldName, String)]> {
    let selectable = resource.map_or(&[][..], |r| r.strategy.selectable_fields());
    let custom = resource.map_or(&[][..], |r| r.strategy.custom_selectable_fields());
    let names = ["metadata.name", "metadata.namespace"]
        .iter()
        .chain(selectable)
        .map(|f| FieldName::Static(f))
        .chain(custom.iter().map(|f| FieldName::Custom(f.clone())));
    names
        .filter_map(|f| {
            let v = match resource {
                Some(r) => r.strategy.field(value, f.as_str()),
                None => crate::meta::field_string(value, f.as_str()),
            };
            v.map(|v| (f, v))
        })
        .collect()
}

impl CachedObject {
    /// The object parsed (on demand: tables, YAML and a few writes need it).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The object in protobuf (None: it has no protobuf form, as a custom resource has not).
    pub fn protobuf(&self) -> Option<&Encoded> {
        self.protobuf
            .get_or_init(|| match crate::protobuf::encode_object(&self.value()) {
                Ok(encoded) => Some(encoded),
                Err(e) => {
                    tracing::warn!(key = %self.key, "the object has no protobuf form: {e}");
                    None
                }
            })
            .as_ref()
    }

    /// The value of a selectable field (metadata.name, spec.nodeName, ...), without parsing.
    pub fn field(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name.as_str() == path)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the object passes a request's label and field selectors.
    pub fn selected(&self, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        labels.matches(self.labels.as_ref())
            && (fields.is_everything() || fields.matches(|f| self.field(f).map(str::to_owned)))
    }
}

/// What happened to an object, as a watch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
}

impl WatchEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object. For a delete, `object` is the last state with the delete's revision.
pub struct CacheEvent {
    pub event_type: WatchEventType,
    pub revision: Revision,
    pub object: Arc<CachedObject>,
    pub prev: Option<Arc<CachedObject>>,
    /// The JSON watch line of this event, encoded once for every watcher that sees it as is.
    line: OnceLock<Bytes>,
    /// Its protobuf frame, likewise (None: the object has no protobuf form).
    frame: OnceLock<Option<Bytes>>,
}

impl CacheEvent {
    pub fn new(
        event_type: WatchEventType,
        revision: Revision,
        object: Arc<CachedObject>,
        prev: Option<Arc<CachedObject>>,
    ) -> CacheEvent {
        CacheEvent {
            event_type,
            revision,
            object,
            prev,
            line: OnceLock::new(),
            frame: OnceLock::new(),
        }
    }

    /// The event as a JSON watch line, `{"type":...,"object":...}\n`, shared by all watchers.
    pub fn json_line(&self) -> Bytes {
        self.line
            .get_or_init(|| watch_line(self.event_type.as_str(), &self.object.bytes))
            .clone()
    }

    /// The event as a protobuf watch frame, shared by all watchers.
    pub fn protobuf_frame(&self) -> Option<Bytes> {
        self.frame
            .get_or_init(|| {
                let object = self.object.protobuf()?;
                Some(crate::protobuf::watch_frame(
                    self.event_type.as_str(),
                    &object.bytes,
                ))
            })
            .clone()
    }
}

/// The queue between a watch's producer and its response body.
pub fn watch_queue(
    cache: Arc<Cache>,
    resource: Arc<ResourceInfo>,
) -> (WatchSender, tokio::sync::mpsc::Receiver<Bytes>) {
    let (tx, rx) = tokio::sync::mpsc::channel(WATCHER_QUEUE);
    let sent = cache.sent_counter(&resource);
    (
        WatchSender {
            tx,
            cache,
            resource,
            sent,
        },
        rx,
    )
}

/// Sends a watch's encoded events; fails when the client left or stopped reading.
pub struct WatchSender {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    cache: Arc<Cache>,
    resource: Arc<ResourceInfo>,
    /// Events sent to watchers of this kind (shared by them all).
    sent: Arc<AtomicU64>,
}

/// The watch is over: its client left or fell too far behind.
#[derive(Debug)]
pub struct WatchClosed;

impl WatchSender {
    pub async fn send(&self, line: Bytes) -> Result<(), WatchClosed> {
        use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};
        // A queue with room takes the line at once; only a full one arms the stall timer.
        let line = match self.tx.try_send(line) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(TrySendError::Closed(_)) => return Err(WatchClosed),
            Err(TrySendError::Full(line)) => line,
        };
        match self.tx.send_timeout(line, WATCHER_STALL).await {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(SendTimeoutError::Closed(_)) => Err(WatchClosed),
            Err(SendTimeoutError::Timeout(_)) => {
                tracing::info!(
                    resource = %self.resource.plural,
                    "forcing watcher close due to unresponsiveness"
                );
                *self
                    .cache
                    .terminated
                    .lock()
                    .entry(self.resource.plural.clone())
                    .or_default() += 1;
                Err(WatchClosed)
            }
        }
    }

    /// Completes when the client has left.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// One watch event as a line of JSON.
pub fn watch_line(event_type: &str, object: &[u8]) -> Bytes {
    let mut out = bytes::BytesMut::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(event_type.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    out.freeze()
}

#[derive(Default)]
struct ResourceState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Events at or below this revision may be missing from `history`.
    evicted_upto: Revision,
    live: Live,
}

/// A resource's live events.
struct Live(broadcast::Sender<Arc<CacheEvent>>);

impl Default for Live {
    fn default() -> Live {
        Live(broadcast::channel(WATCHER_BACKLOG).0)
    }
}

struct State {
    /// By storage path (`apps/deployments`): every key under the root is kept, served or not,
    /// so a kind a CustomResourceDefinition starts serving has its objects at once.
    resources: HashMap<String, ResourceState>,
    /// The revision of the last full load: history before it is gone for every resource.
    loaded: Revision,
}

impl State {
    /// Reads the selectable fields of every object under `path` again, for `resource`.
    fn reindex(&mut self, path: &str, resource: Option<&ResourceInfo>) {
        if let Some(r) = self.resources.get_mut(path) {
            for obj in r.objects.values_mut() {
                *obj = Arc::new(obj.reindexed(resource));
            }
        }
    }

    /// The state of the resource stored under `path`, made empty on first use.
    fn resource_mut(&mut self, path: &str) -> &mut ResourceState {
        if !self.resources.contains_key(path) {
            let state = ResourceState {
                evicted_upto: self.loaded,
                ..ResourceState::default()
            };
            self.resources.insert(path.to_owned(), state);
        }
        self.resources.get_mut(path).expect("inserted above")
    }
}

/// The cache of every served resource.
pub struct Cache {
    store: Arc<dyn Store>,
    root: String,
    state: RwLock<State>,
    /// The served resources (custom ones follow the CustomResourceDefinitions the cache sees).
    resources: Arc<Resources>,
    revision: watch::Sender<Revision>,
    /// Watchers closed for not keeping up, by resource (upstream's
    /// apiserver_terminated_watchers_total).
    terminated: parking_lot::Mutex<BTreeMap<String, u64>>,
    /// Events sent to watchers, by group, version and kind (upstream's
    /// apiserver_watch_events_total); each watch holds its kind's counter.
    sent: parking_lot::Mutex<BTreeMap<(String, String, String), Arc<AtomicU64>>>,
}

/// A consistent view of one resource's objects, for a list.
pub struct Snapshot {
    pub objects: Vec<Arc<CachedObject>>,
    pub revision: Revision,
}

/// How a cache watch starts.
pub enum WatchStart {
    /// Synthetic ADDED events for every current object, then changes.
    Snapshot(Vec<Arc<CachedObject>>, Revision),
    /// Changes after a revision (history replay, then live).
    After(Revision),
}

/// An open watch on one resource: replayed events first, then live ones.
pub struct CacheWatch {
    pub initial: Vec<Arc<CachedObject>>,
    pub replay: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The revision the initial state or replay reaches; live events above it follow.
    pub start_revision: Revision,
}

/// A resumed watch the cache cannot serve from its history.
pub enum WatchError {
    /// Older than the cache's history; the store may still have it.
    TooOld,
    /// Newer than the cache after waiting.
    TooNew(Revision),
}

impl Cache {
    /// Builds the cache and starts its feeder; returns once the initial list is loaded.
    pub async fn start(store: Arc<dyn Store>, root: &str) -> storage::Result<Arc<Cache>> {
        let cache = Arc::new(Cache {
            store,
            root: root.to_owned(),
            state: RwLock::new(State {
                resources: HashMap::new(),
                loaded: 0,
            }),
            resources: Arc::new(Resources::new()),
            revision: watch::channel(0).0,
            terminated: Default::default(),
            sent: Default::default(),
        });
        let revision = cache.load().await?;
        tokio::spawn(cache.clone().feed(revision));
        Ok(cache)
    }

    /// The storage path of the resource a store key belongs to: `pods` for
    /// `/registry/pods/ns/name`, `apps/deployments` for `/registry/apps/deployments/ns/name`
    /// (a core resource is always a built-in one).
    fn storage_path_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix('/')?;
        let first = rest.find('/')?;
        // Only built-in kinds are in the core group (a CRD's group has a dot).
        let core = &rest[..first];
        if crate::registry::served::is_core(core) {
            return Some(core);
        }
        let second = rest[first + 1..].find('/')?;
        Some(&rest[..first + 1 + second])
    }

    /// Replaces the cache's contents with a fresh list of the store; returns its revision.
    async fn load(&self) -> storage::Result<Revision> {
        let list = self
            .store
            .range(&format!("{}/", self.root), RangeOptions::default())
            .await?;
        let mut state = self.state.write();
        state.loaded = list.revision;
        for r in state.resources.values_mut() {
            r.objects.clear();
            r.history.clear();
            r.evicted_upto = list.revision;
            // Watchers of the old contents must relist: dropping the sender closes them.
            r.live = Live::default();
        }
        for kv in &list.kvs {
            let Some(path) = self.storage_path_of(&kv.key) else {
                continue;
            };
            let resource = self.resources.stored_at(path);
            let Some(obj) = CachedObject::from_kv(kv, resource.as_deref()) else {
                continue;
            };
            let r = state.resource_mut(path);
            r.objects.insert(kv.key.clone(), Arc::new(obj));
        }
        // Then what the definitions serve (their objects are cached already, by path).
        let definitions = state
            .resources
            .get(crate::crd::STORAGE_PATH)
            .map(|r| {
                r.objects
                    .values()
                    .map(|o| {
                        (
                            crate::crd::name_of_key(&o.key).to_owned(),
                            crate::crd::served(&o.value()),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        self.resources.reset_custom(definitions);
        // Objects cached before their definitions were read lack its selectable fields.
        for r in self.resources.all().iter().filter(|r| r.is_custom()) {
            if !r.strategy.custom_selectable_fields().is_empty() {
                state.reindex(r.storage_path(), Some(r));
            }
        }
        self.revision.send_replace(list.revision);
        drop(state);
        tracing::info!(
            revision = list.revision,
            objects = list.kvs.len(),
            "watch cache loaded"
        );
        Ok(list.revision)
    }

    /// Follows the store forever, reconnecting on errors and reloading after compaction.
    async fn feed(self: Arc<Self>, mut revision: Revision) {
        loop {
            let mut stream = match self.store.watch(&format!("{}/", self.root), revision).await {
                Ok(s) => s,
                Err(e) => {
                    revision = self.recover(e, revision).await;
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => {
                        revision = event.revision();
                        self.apply(event);
                    }
                    Err(e) => {
                        revision = self.recover(e, revision).await;
                        break;
                    }
                }
            }
        }
    }

    async fn recover(&self, e: storage::Error, revision: Revision) -> Revision {
        tracing::warn!(error = %e, revision, "watch cache lost its store watch");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if matches!(e, storage::Error::Compacted { .. }) {
            loop {
                match self.load().await {
                    Ok(r) => return r,
                    Err(e) => {
                        tracing::warn!(error = %e, "watch cache reload failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
        revision
    }

    fn apply(&self, event: storage::Event) {
        let revision = event.revision();
        // The revision is published under the lock, so a list never holds state newer than the
        // revision it reports.
        let mut state = self.state.write();
        if let Some(path) = self.storage_path_of(&event.kv.key) {
            if path == crate::crd::STORAGE_PATH {
                // A definition serves its resources from the next request on, before any
                // write of its objects reaches the cache.
                let name = crate::crd::name_of_key(&event.kv.key);
                let served = match event.event_type {
                    EventType::Put => serde_json::from_slice(&event.kv.value)
                        .map(|v| crate::crd::served(&v))
                        .unwrap_or_default(),
                    EventType::Delete => Vec::new(),
                };
                let kind_path = served.first().map(|r| r.storage_path().to_owned());
                let before = kind_path
                    .as_deref()
                    .and_then(|p| self.resources.stored_at(p));
                self.resources.set_custom(name, served);
                if let Some(kind_path) = kind_path {
                    let after = self.resources.stored_at(&kind_path);
                    let fields = |r: &Option<Arc<ResourceInfo>>| {
                        r.as_ref()
                            .map(|r| r.strategy.custom_selectable_fields().to_vec())
                            .unwrap_or_default()
                    };
                    if fields(&before) != fields(&after) {
                        state.reindex(&kind_path, after.as_deref());
                    }
                }
            }
            let resource = self.resources.stored_at(path);
            let resource = resource.as_deref();
            let r = state.resource_mut(path);
            let prev = r.objects.get(&event.kv.key).cloned();
            let cache_event = match event.event_type {
                EventType::Put => CachedObject::from_kv(&event.kv, resource).map(|obj| {
                    let obj = Arc::new(obj);
                    r.objects.insert(event.kv.key.clone(), obj.clone());
                    let event_type = if prev.is_some() {
                        WatchEventType::Modified
                    } else {
                        WatchEventType::Added
                    };
                    CacheEvent::new(event_type, revision, obj, prev.clone())
                }),
                EventType::Delete => r.objects.remove(&event.kv.key).and_then(|last| {
                    // A deleted object is reported with the delete's resourceVersion.
                    let kv = KeyValue {
                        key: last.key.clone(),
                        value: Bytes::copy_from_slice(&last.bytes),
                        create_revision: 0,
                        mod_revision: revision,
                    };
                    CachedObject::from_kv(&kv, resource).map(|obj| {
                        CacheEvent::new(
                            WatchEventType::Deleted,
                            revision,
                            Arc::new(obj),
                            Some(last),
                        )
                    })
                }),
            };
            if let Some(e) = cache_event {
                let e = Arc::new(e);
                if r.history.len() >= HISTORY
                    && let Some(old) = r.history.pop_front()
                {
                    r.evicted_upto = old.revision;
                }
                r.history.push_back(e.clone());
                let _ = r.live.0.send(e);
            }
        }
        self.revision.send_replace(revision);
        drop(state);
    }

    /// The counter of events sent to watchers of `resource`'s kind.
    fn sent_counter(&self, resource: &ResourceInfo) -> Arc<AtomicU64> {
        let key = (
            resource.group.clone(),
            resource.version.clone(),
            resource.kind.clone(),
        );
        self.sent.lock().entry(key).or_default().clone()
    }

    /// Upstream's counters of events sent to watchers, by kind, and of watchers closed for
    /// not keeping up, by resource.
    pub fn render_watch_metrics(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_watch_events_total Number of events sent in watch clients\n# TYPE apiserver_watch_events_total counter\n",
        );
        for ((group, version, kind), n) in self.sent.lock().iter() {
            out.push_str(&format!(
                "apiserver_watch_events_total{{group=\"{group}\",version=\"{version}\",kind=\"{kind}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&self.render_terminated());
        out
    }

    /// Upstream's counter of watchers closed for not keeping up, by resource.
    fn render_terminated(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_terminated_watchers_total Counter of watchers closed due to unresponsiveness broken by resource type.\n# TYPE apiserver_terminated_watchers_total counter\n",
        );
        for (resource, n) in self.terminated.lock().iter() {
            out.push_str(&format!(
                "apiserver_terminated_watchers_total{{resource=\"{resource}\"}} {n}\n"
            ));
        }
        out
    }

    /// The cache's revision: every write up to it has been applied.
    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    /// Waits until the cache has applied every write up to `revision` (at most `timeout`).
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the cache is as fresh as the store (a consistent read, as upstream's
    /// consistent list from cache).
    pub async fn wait_fresh(&self) -> storage::Result<Revision> {
        let current = self.store.current_revision().await?;
        if !self.wait_for(current, Duration::from_secs(3)).await {
            return Err(storage::Error::Unavailable(format!(
                "the watch cache did not reach revision {current} in time"
            )));
        }
        Ok(current)
    }

    /// The prefix of keys in `namespace` (or of the whole resource when empty).
    fn scope_prefix(&self, resource: &ResourceInfo, namespace: &str) -> String {
        let mut p = resource.key_prefix(&self.root);
        if resource.namespaced && !namespace.is_empty() {
            p.push_str(namespace);
            p.push('/');
        }
        p
    }

    /// The current objects of a resource in a namespace ("" for all), in key order.
    pub fn list(&self, resource: &ResourceInfo, namespace: &str) -> Snapshot {
        let prefix = self.scope_prefix(resource, namespace);
        let state = self.state.read();
        let objects = state
            .resources
            .get(resource.storage_path())
            .map(|r| {
                r.objects
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            objects,
            revision: self.revision(),
        }
    }

    /// What the server serves: the built-in resources and the established
    /// CustomResourceDefinitions' (as far as the cache has seen them).
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The key prefix of every object (`--etcd-prefix`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The revision of the last change to a resource the cache holds (or of its last load):
    /// derived state (the RBAC index) rebuilds only when this moves.
    pub fn last_change(&self, resource: &ResourceInfo) -> Revision {
        let state = self.state.read();
        state.resources.get(resource.storage_path()).map_or(0, |r| {
            r.history.back().map_or(r.evicted_upto, |e| e.revision)
        })
    }

    pub fn get(&self, resource: &ResourceInfo, key: &str) -> Option<Arc<CachedObject>> {
        let state = self.state.read();
        state
            .resources
            .get(resource.storage_path())?
            .objects
            .get(key)
            .cloned()
    }

    /// Opens a watch on one resource. `After(rev)` waits briefly for a revision the cache has
    /// not reached yet.
    pub async fn watch(
        &self,
        resource: &ResourceInfo,
        namespace: &str,
        start: Option<Revision>,
    ) -> Result<CacheWatch, WatchError> {
        if let Some(rev) = start
            && rev > self.revision()
            && !self.wait_for(rev, Duration::from_secs(3)).await
        {
            return Err(WatchError::TooNew(self.revision()));
        }
        let prefix = self.scope_prefix(resource, namespace);
        let mut state = self.state.upgradable_read();
        if !state.resources.contains_key(resource.storage_path()) {
            // A resource with no object yet: its watchers wait on the events to come.
            let mut write = parking_lot::RwLockUpgradableReadGuard::upgrade(state);
            write.resource_mut(resource.storage_path());
            state = parking_lot::RwLockWriteGuard::downgrade_to_upgradable(write);
        }
        let r = &state.resources[resource.storage_path()];
        let live = r.live.0.subscribe();
        let revision = self.revision();
        match start {
            None => {
                let initial = r
                    .objects
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok(CacheWatch {
                    initial,
                    replay: Vec::new(),
                    live,
                    start_revision: revision,
                })
            }
            Some(rev) => {
                if rev < r.evicted_upto {
                    return Err(WatchError::TooOld);
                }
                let replay = r
                    .history
                    .iter()
                    .filter(|e| e.revision > rev && e.object.key.starts_with(&prefix))
                    .cloned()
                    .collect();
                Ok(CacheWatch {
                    initial: Vec::new(),
                    replay,
                    live,
                    start_revision: revision,
                })
            }
        }
    }
}
