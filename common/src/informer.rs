//! The informer every component watches the API through, as client-go's SharedIndexInformer:
//! the reflector (common::reflector, over kube-runtime's watcher) lists and follows one kind,
//! and the informer, its store, keeps the latest copy of every object, optional indexes over
//! them, and tells registered handlers what changed, with the old object on updates. Objects
//! missing from a relist are reported deleted, so no consumer keeps an object that went away
//! meanwhile. `wait_for_sync` is the initial-sync barrier; `resync_every` re-announces every
//! object.
//!
//! Handlers run on the watch task and must not block: they update an in-memory model or map
//! a change to work-queue keys, and the work happens elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher;
use kube::{Api, Resource};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::reflector::{Store, reflect};

/// What a handler is told. The objects are the informer's own copies: cloning the `Arc`
/// keeps one without copying the object.
pub enum Change<'a, K> {
    Added(&'a Arc<K>),
    Updated { old: &'a Arc<K>, new: &'a Arc<K> },
    Deleted(&'a Arc<K>),
}

impl<'a, K> Change<'a, K> {
    /// The object as it is now, or as it last was for a deletion.
    pub fn object(&self) -> &'a Arc<K> {
        match self {
            Change::Added(o) | Change::Deleted(o) | Change::Updated { new: o, .. } => o,
        }
    }
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// Computes the values an object is indexed under (upstream's IndexFunc).
pub type IndexFn<K> = fn(&K) -> Vec<String>;

/// The bound every kind an informer can watch satisfies.
pub trait Object: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}
impl<K> Object for K where K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

/// "namespace/name" for namespaced objects, "name" for cluster-scoped ones: the key the
/// cache and work queues use, as client-go's MetaNamespaceKeyFunc.
pub fn key_of<K: Resource>(o: &K) -> String {
    let meta = o.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

/// Splits a key into (namespace, name); the namespace is empty for cluster objects.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// One index: the function and, per value, the keys of the objects under it.
struct Index<K> {
    compute: IndexFn<K>,
    keys: HashMap<String, BTreeSet<String>>,
}

impl<K> Index<K> {
    fn add(&mut self, key: &str, obj: &K) {
        for value in (self.compute)(obj) {
            self.keys.entry(value).or_default().insert(key.to_owned());
        }
    }

    fn remove(&mut self, key: &str, obj: &K) {
        for value in (self.compute)(obj) {
            if let Some(keys) = self.keys.get_mut(&value) {
                keys.remove(key);
                if keys.is_empty() {
                    self.keys.remove(&value);
                }
            }
        }
    }
}

/// The cache: objects by key and the indexes over them, changed together.
struct Cache<K> {
    objects: BTreeMap<String, Arc<K>>,
    indexes: HashMap<&'static str, Index<K>>,
}

/// The cached objects of one kind and the handlers interested in them.
pub struct Informer<K> {
    cache: RwLock<Cache<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
    resync: RwLock<Option<Duration>>,
    /// The keys a relist in progress has listed so far.
    relisting: Mutex<Option<HashSet<String>>>,
}

impl<K: Object> Default for Informer<K> {
    fn default() -> Self {
        Informer {
            cache: RwLock::new(Cache {
                objects: BTreeMap::new(),
                indexes: HashMap::new(),
            }),
            handlers: RwLock::new(Vec::new()),
            synced: watch::channel(false).0,
            resync: RwLock::new(None),
            relisting: Mutex::new(None),
        }
    }
}

impl<K: Object> Informer<K> {
    pub fn new() -> Arc<Informer<K>> {
        Arc::new(Informer::default())
    }

    /// Registers a handler; it sees every change from now on (register before `run`).
    pub fn on_change(&self, f: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        self.handlers.write().push(Box::new(f));
    }

    /// Re-announces every cached object to the handlers as an update (old == new) at this
    /// period, so level-driven consumers retry what an earlier failure left undone.
    pub fn resync_every(&self, period: Duration) {
        *self.resync.write() = Some(period);
    }

    /// Adds an index named `name`; objects already cached are indexed at once.
    pub fn add_index(&self, name: &'static str, compute: IndexFn<K>) {
        let mut cache = self.cache.write();
        let mut index = Index {
            compute,
            keys: HashMap::new(),
        };
        for (key, obj) in &cache.objects {
            index.add(key, obj);
        }
        cache.indexes.insert(name, index);
    }

    /// The cached objects whose index `name` has `value` (none for an unknown index).
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        let cache = self.cache.read();
        let Some(keys) = cache.indexes.get(name).and_then(|i| i.keys.get(value)) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| cache.objects.get(k).cloned())
            .collect()
    }

    /// The cached object under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.cache.read().objects.get(key).cloned()
    }

    /// The cached object `name` in `namespace` ("" for cluster-scoped kinds).
    pub fn get_in(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        if namespace.is_empty() {
            self.get(name)
        } else {
            self.get(&format!("{namespace}/{name}"))
        }
    }

    /// Every cached object, in key order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.cache.read().objects.values().cloned().collect()
    }

    /// The cached objects of one namespace (keys are ordered, so this is a range scan).
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let prefix = format!("{namespace}/");
        self.cache
            .read()
            .objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.cache.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first complete list has been cached.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Resolves once the first complete list has been cached and announced.
    pub async fn wait_for_sync(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// A receiver that turns true at the first complete list.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// Caches an added or changed object and tells the handlers. Public so that logic over
    /// a hand-filled cache can be tested without an apiserver.
    pub fn apply(&self, obj: K) {
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let old = {
            let mut cache = self.cache.write();
            let Cache { objects, indexes } = &mut *cache;
            // Indexes first, while the old object is still in place: the key then moves
            // into the map without a copy.
            for index in indexes.values_mut() {
                if let Some(old) = objects.get(&key) {
                    index.remove(&key, old);
                }
                index.add(&key, &obj);
            }
            objects.insert(key, obj.clone())
        };
        match &old {
            Some(old) => self.notify(&Change::Updated { old, new: &obj }),
            None => self.notify(&Change::Added(&obj)),
        }
    }

    /// Forgets a deleted object and tells the handlers.
    pub fn remove(&self, obj: &K) {
        self.remove_key(&key_of(obj), || Arc::new(obj.clone()));
    }

    fn remove_key(&self, key: &str, last_seen: impl FnOnce() -> Arc<K>) {
        let old = {
            let mut cache = self.cache.write();
            let old = cache.objects.remove(key);
            if let Some(old) = &old {
                for index in cache.indexes.values_mut() {
                    index.remove(key, old);
                }
            }
            old
        };
        // The cached state carries the finalizers and owners handlers may need.
        let last = old.unwrap_or_else(last_seen);
        self.notify(&Change::Deleted(&last));
    }

    fn notify(&self, change: &Change<'_, K>) {
        for h in self.handlers.read().iter() {
            h(change);
        }
    }

    fn resync(&self) {
        for obj in self.list() {
            self.notify(&Change::Updated {
                old: &obj,
                new: &obj,
            });
        }
    }

    /// Lists and watches through `api` with `config` until the task is dropped: a lost watch
    /// is relisted after a second, and objects missing from the relist are removed.
    pub async fn run(self: Arc<Self>, api: Api<K>, config: watcher::Config) {
        let period = *self.resync.read();
        reflect(&*self, api, config, period).await
    }

    /// Runs the informer on a task of its own; dropping the answer stops it.
    pub fn spawn(self: &Arc<Self>, api: Api<K>, config: watcher::Config) -> Running {
        Running(vec![tokio::spawn(self.clone().run(api, config))])
    }
}

/// The informer is the reflector's store: the cache and the handlers follow the API.
impl<K: Object> Store<K> for Informer<K> {
    fn apply(&self, obj: K) {
        if let Some(seen) = self.relisting.lock().as_mut() {
            seen.insert(key_of(&obj));
        }
        Informer::apply(self, obj);
    }

    fn delete(&self, obj: K) {
        self.remove(&obj);
    }

    fn relist_started(&self) {
        *self.relisting.lock() = Some(HashSet::new());
    }

    fn relisted(&self) {
        let Some(seen) = self.relisting.lock().take() else {
            return;
        };
        let gone: Vec<(String, Arc<K>)> = self
            .cache
            .read()
            .objects
            .iter()
            .filter(|(k, _)| !seen.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, last) in gone {
            self.remove_key(&key, || last);
        }
        tracing::debug!(objects = self.len(), "informer synced");
        self.synced.send_replace(true);
    }

    fn resync(&self) {
        Informer::resync(self);
    }
}

/// Running informer tasks; dropping this stops them.
#[derive(Default)]
pub struct Running(Vec<tokio::task::JoinHandle<()>>);

impl Running {
    /// Adds the tasks of `other`, which then stop with these.
    pub fn join(&mut self, mut other: Running) {
        self.0.append(&mut other.0);
    }

    /// Stops the tasks with these.
    pub fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(ns: &str, name: &str, node: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        });
        p
    }

    fn node_of(p: &Pod) -> Vec<String> {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .into_iter()
            .collect()
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| key_of(&**p)).collect()
    }

    #[test]
    fn handlers_see_old_and_new_and_the_last_state_of_a_deleted_object() {
        let informer = Informer::<Pod>::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        informer.on_change(move |c| {
            s.lock().push(match c {
                Change::Added(p) => format!("add {}", node_of(p)[0]),
                Change::Updated { old, new } => {
                    format!("update {}->{}", node_of(old)[0], node_of(new)[0])
                }
                Change::Deleted(p) => format!("delete {}", node_of(p)[0]),
            })
        });
        informer.apply(pod("a", "p", "n1"));
        informer.apply(pod("a", "p", "n2"));
        // A deletion seen with a stale copy still reports what the cache held.
        informer.remove(&pod("a", "p", "stale"));
        assert_eq!(
            *seen.lock(),
            ["add n1", "update n1->n2", "delete n2"].map(String::from)
        );
        assert!(informer.is_empty());
    }

    #[test]
    fn indexes_follow_updates_and_deletions() {
        let informer = Informer::<Pod>::new();
        informer.apply(pod("a", "p1", "n1"));
        informer.add_index("node", node_of);
        informer.apply(pod("a", "p2", "n1"));
        informer.apply(pod("b", "p3", "n2"));
        assert_eq!(names(&informer.by_index("node", "n1")), ["a/p1", "a/p2"]);
        informer.apply(pod("a", "p1", "n2"));
        assert_eq!(names(&informer.by_index("node", "n1")), ["a/p2"]);
        assert_eq!(names(&informer.by_index("node", "n2")), ["a/p1", "b/p3"]);
        informer.remove(&pod("b", "p3", "n2"));
        assert_eq!(names(&informer.by_index("node", "n2")), ["a/p1"]);
        assert!(informer.by_index("node", "n3").is_empty());
        assert!(informer.by_index("zone", "n1").is_empty());
        assert_eq!(names(&informer.list_namespace("a")), ["a/p1", "a/p2"]);
        assert_eq!(
            informer.get_in("a", "p2").map(|p| key_of(&*p)),
            Some("a/p2".into())
        );
    }

    #[test]
    fn resync_announces_every_object_as_unchanged() {
        let informer = Informer::<Pod>::new();
        informer.apply(pod("a", "p1", "n1"));
        informer.apply(pod("a", "p2", "n1"));
        let same = Arc::new(Mutex::new(0));
        let s = same.clone();
        informer.on_change(move |c| {
            if let Change::Updated { old, new } = c
                && Arc::ptr_eq(old, new)
            {
                *s.lock() += 1;
            }
        });
        informer.resync();
        assert_eq!(*same.lock(), 2);
    }

    #[test]
    fn keys_are_namespace_slash_name_or_the_name_alone() {
        assert_eq!(key_of(&pod("ns", "p", "n")), "ns/p");
        let mut node = k8s_openapi::api::core::v1::Node::default();
        node.metadata.name = Some("n1".into());
        assert_eq!(key_of(&node), "n1");
        assert_eq!(split_key("ns/p"), ("ns", "p"));
        assert_eq!(split_key("n1"), ("", "n1"));
    }

    /// The edge kube-runtime's watcher meets when a watch is too old: an API that answers
    /// the first watch with 410 Gone and a second list where one pod is gone and another
    /// was replaced under the same name.
    mod relist {
        use super::*;
        use axum::extract::{Query, State};
        use std::collections::HashMap as Params;
        use std::sync::atomic::{AtomicUsize, Ordering};

        fn listed(items: &[(&str, &str)], rv: &str) -> serde_json::Value {
            let items: Vec<_> = items
                .iter()
                .map(|(name, uid)| {
                    serde_json::json!({"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}})
                })
                .collect();
            serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items})
        }

        async fn pods(
            State(lists): State<Arc<AtomicUsize>>,
            Query(q): Query<Params<String, String>>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            if q.get("watch").map(String::as_str) == Some("true") {
                if lists.load(Ordering::SeqCst) == 1 {
                    let gone = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#;
                    return format!("{gone}\n").into_response();
                }
                // The second watch stays open with nothing to say.
                let body = axum::body::Body::from_stream(futures::stream::pending::<
                    Result<bytes::Bytes, std::io::Error>,
                >());
                return body.into_response();
            }
            let n = lists.fetch_add(1, Ordering::SeqCst);
            let list = if n == 0 {
                listed(&[("a", "1"), ("b", "2"), ("c", "3")], "10")
            } else {
                listed(&[("a", "1"), ("c", "4")], "20")
            };
            axum::Json(list).into_response()
        }

        #[tokio::test]
        async fn a_relist_reports_what_went_away_and_what_was_replaced() {
            let app = axum::Router::new()
                .route("/api/v1/pods", axum::routing::get(pods))
                .with_state(Arc::new(AtomicUsize::new(0)));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();

            let informer = Informer::<Pod>::new();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = seen.clone();
            informer.on_change(move |c| {
                let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
                let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
                s.lock().push(match c {
                    Change::Added(p) => format!("add {}:{}", name(p), uid(p)),
                    Change::Updated { old, new } => {
                        format!("update {}:{}->{}", name(new), uid(old), uid(new))
                    }
                    Change::Deleted(p) => format!("delete {}:{}", name(p), uid(p)),
                })
            });
            let _running = informer.spawn(Api::all(client), watcher::Config::default());
            informer.wait_for_sync().await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while seen.lock().len() < 6 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut after_relist = seen.lock().split_off(3);
            after_relist.sort();
            assert_eq!(
                *seen.lock(),
                ["add a:1", "add b:2", "add c:3"].map(String::from)
            );
            assert_eq!(
                after_relist,
                ["delete b:2", "update a:1->1", "update c:3->4"].map(String::from)
            );
            assert_eq!(names(&informer.list()), ["ns/a", "ns/c"]);
        }
    }
}
