//! Keeps the zone in step with the cluster: a reflector on each of Services, EndpointSlices
//! and Namespaces applies every change to the zone as it arrives (a new Service answers as
//! soon as its event does), and the server is ready once all three have listed.
//!
//! The zone is the reflectors' store: no informer cache holds a second, full copy of the
//! objects (for 10,000 Services with a slice each that copy took about 140 MiB, some twenty
//! times the zone). A relist is compared with the zone's own marks. Objects are decoded slim
//! (crate::objects): only the fields the zone reads.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::informer::{Object, Running};
use common::reflector::{Store, reflect};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::objects::Slim;
use crate::zone::{Kind, Zone};

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or_default()
}

/// What the zone does with one kind of object.
trait InZone: Object {
    const KIND: Kind;
    fn changed(zone: &mut Zone, obj: &Self);
    fn remove(zone: &mut Zone, namespace: &str, name: &str);
}

impl InZone for Slim<Service> {
    const KIND: Kind = Kind::Service;
    fn changed(zone: &mut Zone, obj: &Self) {
        zone.service_changed(&obj.0)
    }
    fn remove(zone: &mut Zone, namespace: &str, name: &str) {
        zone.remove_service(namespace, name)
    }
}

impl InZone for Slim<EndpointSlice> {
    const KIND: Kind = Kind::Slice;
    fn changed(zone: &mut Zone, obj: &Self) {
        zone.slice_changed(&obj.0)
    }
    fn remove(zone: &mut Zone, namespace: &str, name: &str) {
        zone.remove_slice(namespace, name)
    }
}

impl InZone for Slim<Namespace> {
    const KIND: Kind = Kind::Namespace;
    fn changed(zone: &mut Zone, obj: &Self) {
        zone.namespace_changed(&obj.0)
    }
    fn remove(zone: &mut Zone, _: &str, name: &str) {
        zone.remove_namespace(name)
    }
}

/// One kind's way into the zone: the reflector's store for that kind.
struct Feed<K> {
    zone: Arc<RwLock<Zone>>,
    synced: watch::Sender<bool>,
    kind: PhantomData<fn(K)>,
}

impl<K: InZone> Feed<K> {
    fn new(zone: &Arc<RwLock<Zone>>) -> Arc<Feed<K>> {
        Arc::new(Feed {
            zone: zone.clone(),
            synced: watch::channel(false).0,
            kind: PhantomData,
        })
    }

    fn spawn(self: &Arc<Self>, api: Api<K>) -> Running {
        let feed = self.clone();
        let mut running = Running::default();
        // Pages of 25: a page's body (1-5 KiB an object) stays under the 128 KiB from which
        // glibc's malloc maps a block on its own. Freeing such a block raises that
        // threshold to its size, and blocks up to it then come out of the heap, where
        // they stay resident as holes between the zone's entries: with pages of 100,
        // 10,000 Services listed at start left kube-dns 3.1-4.0 MiB resident, with 25,
        // 2.5-3.0 MiB (kube's default of 500: 3 MiB more).
        let config = watcher::Config::default().page_size(25);
        running.push(tokio::spawn(async move {
            reflect(&*feed, api, config, None).await
        }));
        running
    }

    async fn wait_for_sync(&self) {
        let _ = self.synced.subscribe().wait_for(|s| *s).await;
    }

    fn len(&self) -> usize {
        self.zone.read().count(K::KIND)
    }
}

impl<K: InZone> Store<K> for Feed<K> {
    fn apply(&self, obj: K) {
        let mut zone = self.zone.write();
        K::changed(&mut zone, &obj);
        zone.touch(now());
    }

    fn delete(&self, obj: K) {
        let meta = obj.meta();
        let mut zone = self.zone.write();
        K::remove(
            &mut zone,
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        );
        zone.touch(now());
    }

    fn relist_started(&self) {
        self.zone.write().relist_started(K::KIND);
    }

    fn relisted(&self) {
        let mut zone = self.zone.write();
        if zone.relisted(K::KIND) > 0 {
            zone.touch(now());
        }
        drop(zone);
        self.synced.send_replace(true);
    }
}

/// Watches the cluster into `zone`; `ready` turns true once everything has been listed.
/// The returned handle keeps the watches running.
pub async fn watch(
    client: kube::Client,
    zone: Arc<RwLock<Zone>>,
    ready: Arc<AtomicBool>,
) -> Running {
    let services = Feed::<Slim<Service>>::new(&zone);
    let slices = Feed::<Slim<EndpointSlice>>::new(&zone);
    let namespaces = Feed::<Slim<Namespace>>::new(&zone);
    let mut running = services.spawn(Api::all(client.clone()));
    running.join(slices.spawn(Api::all(client.clone())));
    running.join(namespaces.spawn(Api::all(client)));
    services.wait_for_sync().await;
    slices.wait_for_sync().await;
    namespaces.wait_for_sync().await;
    ready.store(true, Ordering::Release);
    tracing::info!(
        services = services.len(),
        slices = slices.len(),
        namespaces = namespaces.len(),
        "the cluster zone is ready"
    );
    running
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RecordType};

    use crate::zone::Lookup;

    fn service(ns: &str, name: &str) -> Slim<Service> {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]},
        }))
        .unwrap()
    }

    fn answers(zone: &RwLock<Zone>, name: &str) -> bool {
        let name = Name::from_ascii(name).unwrap();
        matches!(
            zone.read().lookup(&name, RecordType::A),
            Lookup::Records { .. }
        )
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_lists() {
        let zone = Arc::new(RwLock::new(Zone::new("cluster.local", 30).unwrap()));
        let namespaces = Feed::<Slim<Namespace>>::new(&zone);
        let services = Feed::<Slim<Service>>::new(&zone);
        for ns in ["a", "b"] {
            namespaces.apply(
                serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
            );
        }
        services.apply(service("a", "kept"));
        services.apply(service("a", "gone"));
        services.apply(service("b", "kept"));
        assert!(answers(&zone, "gone.a.svc.cluster.local."));
        assert!(!*services.synced.borrow());

        // The watch was lost while a/gone was deleted: the relist no longer has it.
        services.relist_started();
        services.apply(service("a", "kept"));
        services.apply(service("b", "kept"));
        services.relisted();
        assert!(*services.synced.borrow());
        assert!(!answers(&zone, "gone.a.svc.cluster.local."));
        assert!(answers(&zone, "kept.a.svc.cluster.local."));
        assert!(answers(&zone, "kept.b.svc.cluster.local."));
        assert_eq!(services.len(), 2);

        // Namespaces are keyed by name alone; a deletion while watching takes one.
        namespaces.relist_started();
        namespaces
            .apply(serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).unwrap());
        namespaces.relisted();
        assert_eq!(namespaces.len(), 1);
        services.delete(service("a", "kept"));
        assert!(!answers(&zone, "kept.a.svc.cluster.local."));
        assert_eq!(services.len(), 1);

        // Slices: the endpoint of the one the relist lacks goes with it.
        let slices = Feed::<Slim<EndpointSlice>>::new(&zone);
        let slice = |name: &str, ip: &str| -> Slim<EndpointSlice> {
            serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": "b", "name": name,
                    "labels": {"kubernetes.io/service-name": "kept"}},
                "addressType": "IPv4", "endpoints": [{"addresses": [ip]}]}))
            .unwrap()
        };
        slices.apply(slice("kept-1", "10.244.0.1"));
        slices.apply(slice("kept-2", "10.244.0.2"));
        assert!(answers(&zone, "10-244-0-2.kept.b.svc.cluster.local."));
        slices.relist_started();
        slices.apply(slice("kept-1", "10.244.0.1"));
        slices.relisted();
        assert!(answers(&zone, "10-244-0-1.kept.b.svc.cluster.local."));
        assert!(!answers(&zone, "10-244-0-2.kept.b.svc.cluster.local."));
        assert_eq!(slices.len(), 1);
    }
}
