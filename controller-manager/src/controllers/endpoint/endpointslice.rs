//! The EndpointSlice controller: for each Service with a selector, EndpointSlices listing
//! its pods (at most 100 endpoints per slice, one set of slices per address type and port
//! set), with ready/serving/terminating conditions. Endpoints stay in the slice they are
//! in, so a change to one pod rewrites one slice, not all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use parking_lot::Mutex;

use super::{PodEndpoint, Port, endpoints_of, service_selector, watch_services_and_pods};
use crate::controllers::podutil;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, split_key};
use common::api_errors::is_not_found;

pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A write whose result the cache must show before the Service is synced again (upstream's
/// EndpointSliceTracker): slice name -> resourceVersion written (None: deleted).
type Written = HashMap<String, (Option<u64>, Instant)>;

pub struct EndpointSliceController {
    client: kube::Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    slices: Arc<Informer<EndpointSlice>>,
    nodes: Arc<Informer<Node>>,
    written: Mutex<HashMap<String, Written>>,
}

/// Starts the EndpointSlice controller; the returned future runs its workers.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(EndpointSliceController {
        client: ctx.client.clone(),
        services: ctx.informers.get::<Service>(),
        pods: ctx.informers.get::<Pod>(),
        slices: ctx.informers.get::<EndpointSlice>(),
        nodes: ctx.informers.get::<Node>(),
        written: Mutex::new(HashMap::new()),
    });
    let queue = WorkQueue::new("endpoint_slice");
    watch_services_and_pods(&c.services, &c.pods, &queue);
    let q = queue.clone();
    c.slices.on_change(move |change| {
        let (Change::Added(s) | Change::Deleted(s) | Change::Updated { new: s, .. }) = change;
        let labels = s.labels();
        if labels.get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
            && let Some(svc) = labels.get(SERVICE_NAME)
        {
            q.add(format!("{}/{svc}", s.namespace().unwrap_or_default()));
        }
    });
    Ok(crate::runtime::run_workers(
        queue,
        c,
        ctx.options.concurrent_service_endpoint_syncs,
    ))
}

fn rv(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn address_type(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

fn to_endpoint(e: &PodEndpoint, zone: Option<String>) -> Endpoint {
    Endpoint {
        addresses: vec![e.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(e.ready),
            serving: Some(e.serving),
            terminating: Some(e.terminating),
        }),
        hostname: e.hostname.clone(),
        node_name: e.node_name.clone(),
        target_ref: Some(e.target.clone()),
        zone,
        ..Default::default()
    }
}

fn slice_ports(ports: &[Port]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            protocol: Some(p.protocol.clone()),
            port: Some(p.port),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

fn ports_of(slice: &EndpointSlice) -> Vec<Port> {
    let mut ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| Port {
            name: p.name.clone().filter(|n| !n.is_empty()),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: p.port.unwrap_or(0),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    ports.sort();
    ports
}

/// The labels every slice of `svc` carries: the Service's own, plus the ones that tie the
/// slice to it and to this controller.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.insert(SERVICE_NAME.into(), svc.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    labels
}

/// The writes that bring a Service's slices to `desired`.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

fn new_slice(svc: &Service, addr: &str, ports: &[Port], endpoints: Vec<Endpoint>) -> EndpointSlice {
    let mut s = EndpointSlice {
        address_type: addr.into(),
        endpoints,
        ports: (!ports.is_empty()).then(|| slice_ports(ports)),
        metadata: Default::default(),
    };
    s.metadata.generate_name = Some(format!("{}-", svc.name_any()));
    s.metadata.namespace = svc.namespace();
    s.metadata.labels = Some(slice_labels(svc));
    s.metadata.owner_references = Some(vec![podutil::owner_ref_to(svc)]);
    s
}

/// Decides the slice writes for `svc` given its endpoints and its current slices.
pub fn reconcile(
    svc: &Service,
    endpoints: &[(PodEndpoint, Option<String>)],
    existing: Vec<EndpointSlice>,
    max_per_slice: usize,
) -> Plan {
    let labels = slice_labels(svc);
    let mut plan = Plan::default();
    // Desired endpoints by (address type, port set), then by address.
    let mut groups: BTreeMap<(&'static str, Vec<Port>), BTreeMap<String, Endpoint>> =
        BTreeMap::new();
    for (e, zone) in endpoints {
        groups
            .entry((address_type(&e.ip), e.ports.clone()))
            .or_default()
            .insert(e.ip.clone(), to_endpoint(e, zone.clone()));
    }
    if groups.is_empty() {
        // No endpoints: one empty placeholder slice says so.
        let mut existing = existing.into_iter();
        match existing.next() {
            Some(mut s) => {
                if !s.endpoints.is_empty()
                    || s.ports.is_some()
                    || s.metadata.labels.as_ref() != Some(&labels)
                {
                    s.endpoints.clear();
                    s.ports = None;
                    s.metadata.labels = Some(labels.clone());
                    plan.update.push(s);
                }
            }
            None => plan.create.push(new_slice(svc, "IPv4", &[], Vec::new())),
        }
        plan.delete.extend(existing);
        return plan;
    }
    let mut by_group: HashMap<(String, Vec<Port>), Vec<EndpointSlice>> = HashMap::new();
    for s in existing {
        let key = (s.address_type.clone(), ports_of(&s));
        if s.endpoints.is_empty()
            || !groups.contains_key(&(address_type_static(&key.0), key.1.clone()))
        {
            plan.delete.push(s);
        } else {
            by_group.entry(key).or_default().push(s);
        }
    }
    for ((addr, ports), mut desired) in groups {
        let mut slices = by_group
            .remove(&(addr.to_owned(), ports.clone()))
            .unwrap_or_default();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        // Keep each endpoint where it is, with its current content.
        let mut kept: Vec<(EndpointSlice, bool)> = Vec::new();
        for mut s in slices {
            let before = s.endpoints.clone();
            s.endpoints = before
                .iter()
                .filter_map(|e| desired.remove(e.addresses.first()?))
                .collect();
            if s.endpoints.is_empty() {
                plan.delete.push(s);
                continue;
            }
            let mut changed = s.endpoints != before;
            if s.metadata.labels.as_ref() != Some(&labels) {
                s.metadata.labels = Some(labels.clone());
                changed = true;
            }
            kept.push((s, changed));
        }
        // New endpoints fill slices with room first, then new slices.
        let mut fresh = desired.into_values();
        for (s, changed) in &mut kept {
            while s.endpoints.len() < max_per_slice {
                match fresh.next() {
                    Some(e) => {
                        s.endpoints.push(e);
                        *changed = true;
                    }
                    None => break,
                }
            }
        }
        plan.update
            .extend(kept.into_iter().filter(|(_, c)| *c).map(|(s, _)| s));
        let rest: Vec<Endpoint> = fresh.collect();
        for chunk in rest.chunks(max_per_slice) {
            plan.create
                .push(new_slice(svc, addr, &ports, chunk.to_vec()));
        }
    }
    plan.delete.extend(by_group.into_values().flatten());
    plan
}

fn address_type_static(s: &str) -> &'static str {
    if s == "IPv6" { "IPv6" } else { "IPv4" }
}

impl EndpointSliceController {
    /// True while a slice this controller wrote is not yet in the cache as written.
    fn cache_is_stale(&self, key: &str, ns: &str) -> bool {
        let mut written = self.written.lock();
        let Some(w) = written.get_mut(key) else {
            return false;
        };
        w.retain(|name, (expect, at)| {
            let cached = self.slices.get_in(ns, name);
            let seen = match expect {
                Some(v) => cached.is_some_and(|s| rv(&s.metadata) >= *v),
                None => cached.is_none(),
            };
            // A write never seen within seconds was overtaken by someone else's.
            !seen && at.elapsed() < Duration::from_secs(5)
        });
        let stale = !w.is_empty();
        if !stale {
            written.remove(key);
        }
        stale
    }

    fn remember(&self, key: &str, name: String, expect: Option<u64>) {
        self.written
            .lock()
            .entry(key.to_owned())
            .or_default()
            .insert(name, (expect, Instant::now()));
    }

    async fn apply(&self, key: &str, ns: &str, plan: Plan) -> crate::Result<()> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let pp = PostParams::default();
        for s in plan.create {
            let created = api.create(&pp, &s).await?;
            self.remember(key, created.name_any(), Some(rv(&created.metadata)));
        }
        for s in plan.update {
            let updated = api.replace(&s.name_any(), &pp, &s).await?;
            self.remember(key, updated.name_any(), Some(rv(&updated.metadata)));
        }
        for s in plan.delete {
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Ok(_) => self.remember(key, s.name_any(), None),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Reconcile for EndpointSliceController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let (ns, name) = split_key(key);
        let Some(svc) = self.services.get(key) else {
            // The slices go with their owner (garbage collector).
            self.written.lock().remove(key);
            return Ok(None);
        };
        if svc.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let Some(selector) = service_selector(&svc) else {
            return Ok(None);
        };
        if self.cache_is_stale(key, ns) {
            return Ok(Some(Duration::from_millis(50)));
        }
        let pods = self.pods.list_namespace(ns);
        let endpoints: Vec<(PodEndpoint, Option<String>)> =
            endpoints_of(&svc, &selector, &pods, true)
                .into_iter()
                .map(|e| {
                    let zone = e.node_name.as_deref().and_then(|n| {
                        self.nodes
                            .get(n)?
                            .labels()
                            .get("topology.kubernetes.io/zone")
                            .cloned()
                    });
                    (e, zone)
                })
                .collect();
        let existing: Vec<EndpointSlice> = self
            .slices
            .list_namespace(ns)
            .into_iter()
            .filter(|s| {
                let l = s.labels();
                l.get(SERVICE_NAME).map(String::as_str) == Some(name)
                    && l.get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
            })
            .map(|s| (*s).clone())
            .collect();
        let plan = reconcile(&svc, &endpoints, existing, MAX_ENDPOINTS_PER_SLICE);
        self.apply(key, ns, plan).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}),
        )
        .unwrap()
    }

    fn ep(i: usize, ready: bool) -> (PodEndpoint, Option<String>) {
        (
            PodEndpoint {
                ip: format!("10.0.{}.{}", i / 250, i % 250),
                node_name: None,
                hostname: None,
                target: Default::default(),
                ready,
                serving: ready,
                terminating: false,
                ports: vec![Port {
                    name: None,
                    protocol: "TCP".into(),
                    port: 80,
                    app_protocol: None,
                }],
            },
            None,
        )
    }

    fn named(mut s: EndpointSlice, name: &str) -> EndpointSlice {
        s.metadata.name = Some(name.into());
        s
    }

    #[test]
    fn slices_hold_at_most_the_maximum_and_changes_touch_one_slice() {
        let eps: Vec<_> = (0..250).map(|i| ep(i, true)).collect();
        let plan = reconcile(&svc(), &eps, Vec::new(), 100);
        assert_eq!(
            plan.create
                .iter()
                .map(|s| s.endpoints.len())
                .collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let existing: Vec<_> = plan
            .create
            .into_iter()
            .enumerate()
            .map(|(i, s)| named(s, &format!("web-{i}")))
            .collect();

        // One endpoint turns unready: only its slice is rewritten.
        let mut changed = eps.clone();
        changed[120].0.ready = false;
        let plan = reconcile(&svc(), &changed, existing.clone(), 100);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        let conds = plan.update[0]
            .endpoints
            .iter()
            .find(|e| e.addresses[0] == changed[120].0.ip)
            .unwrap();
        assert_eq!(conds.conditions.as_ref().unwrap().ready, Some(false));

        // A new endpoint goes into the slice with room.
        let mut more = eps.clone();
        more.push(ep(300, true));
        let plan = reconcile(&svc(), &more, existing, 100);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].endpoints.len(), 51);
    }

    #[test]
    fn no_endpoints_leave_one_empty_slice() {
        let plan = reconcile(&svc(), &[], Vec::new(), 100);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.create[0].endpoints.is_empty());
        let labels = plan.create[0].metadata.labels.clone().unwrap();
        assert_eq!(labels[SERVICE_NAME], "web");
        assert_eq!(labels[MANAGED_BY], CONTROLLER_NAME);
        let owner = &plan.create[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Service", Some(true))
        );
    }
}
