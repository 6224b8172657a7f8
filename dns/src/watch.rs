//! Keeps the zone in step with the cluster: informers on Services, EndpointSlices and
//! Namespaces apply each change to the zone as it arrives (a new Service answers as soon as
//! its event does), and the server is ready once all three have listed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::informer::{Change, Informer, Running};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher;
use parking_lot::RwLock;

use crate::zone::Zone;

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or_default()
}

/// One informer whose changes go into the zone.
fn feed<K: common::informer::Object>(
    zone: &Arc<RwLock<Zone>>,
    changed: fn(&mut Zone, &K),
    deleted: fn(&mut Zone, &K),
) -> Arc<Informer<K>> {
    let informer = Informer::<K>::new();
    let zone = zone.clone();
    informer.on_change(move |change| {
        let mut zone = zone.write();
        match change {
            Change::Added(object) | Change::Updated { new: object, .. } => {
                changed(&mut zone, object)
            }
            Change::Deleted(object) => deleted(&mut zone, object),
        }
        zone.touch(now());
    });
    informer
}

/// Watches the cluster into `zone`; `ready` turns true once everything has been listed.
/// The returned handle keeps the watches running.
pub async fn watch(
    client: kube::Client,
    zone: Arc<RwLock<Zone>>,
    ready: Arc<AtomicBool>,
) -> Running {
    let services = feed(&zone, Zone::service_changed, Zone::service_deleted);
    let slices = feed(&zone, Zone::slice_changed, Zone::slice_deleted);
    let namespaces = feed(&zone, Zone::namespace_changed, Zone::namespace_deleted);
    let mut running = services.spawn(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    running.join(slices.spawn(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    ));
    running.join(namespaces.spawn(Api::<Namespace>::all(client), watcher::Config::default()));
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
