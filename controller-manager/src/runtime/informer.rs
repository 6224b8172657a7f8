//! Shared informers: one watch per resource kind, whatever the number of controllers that
//! read it. Each informer keeps the latest copy of every object (the lister controllers read
//! from) and tells registered handlers what changed, with the old object on updates, as
//! client-go's SharedIndexInformer does. Handlers only map a change to queue keys; the work
//! happens in the controllers' workers.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What a handler is told.
pub enum Change<'a, K> {
    Added(&'a K),
    Updated { old: &'a K, new: &'a K },
    Deleted(&'a K),
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// The bound every kind an informer can watch satisfies.
pub trait Object:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Object for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// "namespace/name" for namespaced objects, "name" for cluster-scoped ones: the key work
/// queues carry, as client-go's MetaNamespaceKeyFunc.
pub fn key_of<K: Resource>(o: &K) -> String {
    let meta = o.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    }
}

/// Splits a queue key into (namespace, name); the namespace is empty for cluster objects.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The cached objects of one kind and the handlers interested in them.
pub struct Informer<K> {
    objects: RwLock<BTreeMap<String, Arc<K>>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

impl<K: Object> Default for Informer<K> {
    fn default() -> Self {
        Informer {
            objects: RwLock::new(BTreeMap::new()),
            handlers: RwLock::new(Vec::new()),
            synced: watch::channel(false).0,
        }
    }
}

impl<K: Object> Informer<K> {
    /// Registers a handler; it sees every change from now on (register before `start`).
    pub fn on_change(&self, f: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        self.handlers.write().push(Box::new(f));
    }

    /// The cached object under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.objects.read().get(key).cloned()
    }

    /// The cached object `name` in `namespace` ("" for cluster-scoped kinds).
    pub fn get_in(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        if namespace.is_empty() {
            self.get(name)
        } else {
            self.get(&format!("{namespace}/{name}"))
        }
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects.read().values().cloned().collect()
    }

    /// The cached objects of one namespace (keys are ordered, so this is a range scan).
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let prefix = format!("{namespace}/");
        self.objects
            .read()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.objects.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first complete list has been stored.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Stores an added or changed object and tells the handlers. Public so that reconcile
    /// logic can be tested over a hand-filled cache.
    pub fn apply(&self, obj: K) {
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let old = self.objects.write().insert(key, obj.clone());
        let change = match &old {
            Some(old) => Change::Updated {
                old: &**old,
                new: &*obj,
            },
            None => Change::Added(&*obj),
        };
        self.notify(&change);
    }

    /// Forgets a deleted object and tells the handlers.
    pub fn remove(&self, obj: &K) {
        let key = key_of(obj);
        let old = self.objects.write().remove(&key);
        // The last cached state carries the finalizers and owners handlers may need.
        let last = old.as_deref().unwrap_or(obj);
        self.notify(&Change::Deleted(last));
    }

    fn notify(&self, change: &Change<'_, K>) {
        for h in self.handlers.read().iter() {
            h(change);
        }
    }

    /// Watches the kind until the task is aborted: lists, then follows the watch, relisting
    /// (and reporting objects gone meanwhile as deleted) whenever the watch is lost.
    async fn run(self: Arc<Self>, api: Api<K>) {
        let kind = K::kind(&()).to_string();
        let mut relisted: HashMap<String, ()> = HashMap::new();
        let config = watcher::Config::default();
        let mut stream = watcher::watcher(api, config).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(o)) => self.apply(o),
                Ok(Event::Delete(o)) => self.remove(&o),
                Ok(Event::Init) => relisted.clear(),
                Ok(Event::InitApply(o)) => {
                    relisted.insert(key_of(&o), ());
                    self.apply(o);
                }
                Ok(Event::InitDone) => {
                    let gone: Vec<Arc<K>> = self
                        .objects
                        .read()
                        .iter()
                        .filter(|(k, _)| !relisted.contains_key(*k))
                        .map(|(_, v)| v.clone())
                        .collect();
                    for o in gone {
                        self.remove(&o);
                    }
                    relisted.clear();
                    tracing::debug!(%kind, objects = self.len(), "informer synced");
                    self.synced.send_replace(true);
                }
                Err(e) => {
                    tracing::warn!(%kind, error = %e, "watch failed; relisting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

type Starter = Box<dyn FnOnce(Client) -> tokio::task::JoinHandle<()> + Send>;

/// The informer factory: `get::<Pod>()` returns the one pod informer every controller
/// shares; `start` begins watching every kind asked for.
pub struct SharedInformers {
    client: Option<Client>,
    informers: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    starters: Mutex<Vec<Starter>>,
    synced: Mutex<Vec<watch::Receiver<bool>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl SharedInformers {
    /// A factory over `client`; `None` for tests that fill caches by hand.
    pub fn new(client: Option<Client>) -> SharedInformers {
        SharedInformers {
            client,
            informers: Mutex::new(HashMap::new()),
            starters: Mutex::new(Vec::new()),
            synced: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The shared informer for kind `K`, created on first use.
    pub fn get<K: Object>(&self) -> Arc<Informer<K>> {
        let mut map = self.informers.lock();
        if let Some(i) = map.get(&TypeId::of::<K>()) {
            return i.clone().downcast::<Informer<K>>().expect("informer type");
        }
        let informer = Arc::new(Informer::<K>::default());
        map.insert(TypeId::of::<K>(), informer.clone());
        self.synced.lock().push(informer.synced.subscribe());
        let i = informer.clone();
        self.starters.lock().push(Box::new(move |client| {
            tokio::spawn(i.run(Api::<K>::all(client)))
        }));
        informer
    }

    /// Starts watching every kind requested so far (kinds requested later start on the
    /// next call).
    pub fn start(&self) {
        let Some(client) = &self.client else { return };
        let starters: Vec<Starter> = std::mem::take(&mut *self.starters.lock());
        let mut tasks = self.tasks.lock();
        for s in starters {
            tasks.push(s(client.clone()));
        }
    }

    /// Waits until every started informer has listed once.
    pub async fn wait_for_sync(&self) {
        let receivers: Vec<watch::Receiver<bool>> = self.synced.lock().clone();
        for mut rx in receivers {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

impl Drop for SharedInformers {
    fn drop(&mut self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}
