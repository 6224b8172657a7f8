//! The informer factory: one `common::informer::Informer` per kind, whatever the number of
//! controllers that read it, as client-go's SharedInformerFactory. Handlers only map a
//! change to queue keys; the work happens in the controllers' workers.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use common::informer::Running;
pub use common::informer::{Change, Informer, key_of, split_key};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use tokio::sync::watch;

/// The kinds controllers watch: typed ones (kube-runtime's dynamic objects go through the
/// garbage collector's own informers).
pub trait Object: common::informer::Object + Resource<DynamicType = ()> {}
impl<K: common::informer::Object + Resource<DynamicType = ()>> Object for K {}

type Starter = Box<dyn FnOnce(Client) -> Running + Send>;

/// `get::<Pod>()` returns the one pod informer every controller shares; `start` begins
/// watching every kind asked for.
pub struct SharedInformers {
    client: Option<Client>,
    informers: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    starters: Mutex<Vec<Starter>>,
    synced: Mutex<Vec<watch::Receiver<bool>>>,
    running: Mutex<Running>,
}

impl SharedInformers {
    /// A factory over `client`; `None` for tests that fill caches by hand.
    pub fn new(client: Option<Client>) -> SharedInformers {
        SharedInformers {
            client,
            informers: Mutex::new(HashMap::new()),
            starters: Mutex::new(Vec::new()),
            synced: Mutex::new(Vec::new()),
            running: Mutex::new(Running::default()),
        }
    }

    /// The shared informer for kind `K`, created on first use.
    pub fn get<K: Object>(&self) -> Arc<Informer<K>> {
        let mut map = self.informers.lock();
        if let Some(i) = map.get(&TypeId::of::<K>()) {
            return i.clone().downcast::<Informer<K>>().expect("informer type");
        }
        let informer = Informer::<K>::new();
        map.insert(TypeId::of::<K>(), informer.clone());
        self.synced.lock().push(informer.synced());
        let i = informer.clone();
        self.starters.lock().push(Box::new(move |client| {
            i.spawn(Api::<K>::all(client), watcher::Config::default())
        }));
        informer
    }

    /// Starts watching every kind requested so far (kinds requested later start on the
    /// next call).
    pub fn start(&self) {
        let Some(client) = &self.client else { return };
        let starters: Vec<Starter> = std::mem::take(&mut *self.starters.lock());
        let mut running = self.running.lock();
        for s in starters {
            running.join(s(client.clone()));
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
