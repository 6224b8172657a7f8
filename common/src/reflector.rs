//! The list-and-watch loop under every informer, as client-go's Reflector: kube-runtime's
//! watcher lists one kind and follows it (relisting after a lost watch), and the reflector
//! hands what it sees to a [`Store`]. A store learns when a relist starts and ends, so it
//! can drop what a relist no longer holds: a deletion missed while the watch was down.
//!
//! [`crate::informer::Informer`] is the store most components want (a cache of whole
//! objects with indexes and handlers). A consumer that keeps its own compact model of the
//! objects (the cluster DNS's zone) is a store itself and keeps no second copy of them.

use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::watcher::{self, Event};

use crate::informer::Object;

/// Where a reflector puts what it lists and watches (client-go's Store). Calls come from
/// the reflector's one task, in the order the API sent the changes.
pub trait Store<K>: Send + Sync + 'static {
    /// An object was added or changed (or listed, during a relist).
    fn apply(&self, obj: K);
    /// An object was deleted; `obj` is its last state as the API sent it.
    fn delete(&self, obj: K);
    /// A (re)list begins: the objects applied until [`Store::relisted`] are all there is.
    fn relist_started(&self);
    /// The (re)list is complete: what it did not apply is gone. The first call marks the
    /// store as synced.
    fn relisted(&self);
    /// Called every resync period, if the reflector has one.
    fn resync(&self) {}
}

/// Lists and watches through `api` with `config` into `store` until the future is dropped:
/// a lost watch is relisted after a second. With `resync`, [`Store::resync`] is called at
/// that period, between changes.
pub async fn reflect<K: Object, S: Store<K> + ?Sized>(
    store: &S,
    api: Api<K>,
    config: watcher::Config,
    resync: Option<Duration>,
) {
    let what = api.resource_url().to_owned();
    let mut stream = watcher::watcher(api, config).boxed();
    let mut resync = resync.map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p, p));
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = async { resync.as_mut().expect("resync period").tick().await }, if resync.is_some() => {
                store.resync();
                continue;
            }
        };
        let Some(event) = event else { return };
        match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => store.apply(o),
            Ok(Event::Delete(o)) => store.delete(o),
            Ok(Event::Init) => store.relist_started(),
            Ok(Event::InitDone) => {
                store.relisted();
                tracing::debug!(resource = %what, "reflector synced");
            }
            Err(e) => {
                tracing::warn!(resource = %what, error = %e, "watch failed; relisting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
