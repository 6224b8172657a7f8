//! The Endpoints controller: the core/v1 Endpoints object of each Service with a selector,
//! named after the Service: ready pod addresses in `addresses`, unready ones in
//! `notReadyAddresses`, one subset per port set, at most 1000 addresses (more are cut and
//! the object is annotated over-capacity, as upstream does).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};

use super::{
    PodEndpoint, Port, endpoints_of, publish_not_ready, service_selector, watch_services_and_pods,
};
use crate::runtime::{Context, Informer, Reconcile, Requeue, WorkQueue, split_key};
use common::api_errors::is_not_found;

const MAX_ADDRESSES: usize = 1000;
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

pub struct EndpointsController {
    client: kube::Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
}

/// Starts the Endpoints controller; the returned future runs its workers.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(EndpointsController {
        client: ctx.client.clone(),
        services: ctx.informers.get::<Service>(),
        pods: ctx.informers.get::<Pod>(),
        endpoints: ctx.informers.get::<Endpoints>(),
    });
    let queue = WorkQueue::new("endpoint");
    watch_services_and_pods(&c.services, &c.pods, &queue);
    Ok(crate::runtime::run_workers(
        queue,
        c,
        ctx.options.concurrent_endpoint_syncs,
    ))
}

fn address(e: &PodEndpoint) -> EndpointAddress {
    EndpointAddress {
        ip: e.ip.clone(),
        hostname: e.hostname.clone(),
        node_name: e.node_name.clone(),
        target_ref: Some(e.target.clone()),
    }
}

/// The subsets for these endpoints: grouped by port set, addresses sorted by IP, cut at
/// `MAX_ADDRESSES` (answers whether it cut).
pub fn subsets(endpoints: &[PodEndpoint], has_ports: bool) -> (Vec<EndpointSubset>, bool) {
    let mut groups: BTreeMap<Vec<Port>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    let mut total = 0;
    let mut truncated = false;
    for e in endpoints {
        // A pod that has none of the Service's ports serves nothing through it.
        if has_ports && e.ports.is_empty() {
            continue;
        }
        if total == MAX_ADDRESSES {
            truncated = true;
            break;
        }
        total += 1;
        let g = groups.entry(e.ports.clone()).or_default();
        if e.ready {
            g.0.push(address(e));
        } else {
            g.1.push(address(e));
        }
    }
    let subsets = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|p| EndpointPort {
                        name: p.name,
                        port: p.port,
                        protocol: Some(p.protocol),
                        app_protocol: p.app_protocol,
                    })
                    .collect()
            }),
        })
        .collect();
    (subsets, truncated)
}

#[async_trait]
impl Reconcile for EndpointsController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get(key) else {
            // The Service is gone: so are its Endpoints.
            if self.endpoints.get(key).is_some() {
                match api.delete(name, &DeleteParams::default()).await {
                    Err(e) if !is_not_found(&e) => return Err(e.into()),
                    _ => {}
                }
            }
            return Ok(None);
        };
        let Some(selector) = service_selector(&svc) else {
            return Ok(None);
        };
        let pods = self.pods.list_namespace(ns);
        let eps = endpoints_of(&svc, &selector, &pods, publish_not_ready(&svc));
        let has_ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|p| !p.is_empty());
        let (subsets, truncated) = subsets(&eps, has_ports);
        let subsets = (!subsets.is_empty()).then_some(subsets);
        let mut labels = svc.labels().clone();
        if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
            labels.insert("service.kubernetes.io/headless".into(), String::new());
        }
        let current = self.endpoints.get(key);
        let mut desired = match &current {
            Some(c) => (**c).clone(),
            None => {
                let mut e = Endpoints::default();
                e.metadata.name = Some(name.into());
                e.metadata.namespace = Some(ns.into());
                e
            }
        };
        let annotations = desired
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        if truncated {
            annotations.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            annotations.remove(OVER_CAPACITY);
        }
        desired.metadata.labels = Some(labels);
        desired.subsets = subsets;
        if current.as_deref() == Some(&desired) {
            return Ok(None);
        }
        let pp = PostParams::default();
        if current.is_some() {
            api.replace(name, &pp, &desired).await?;
        } else {
            api.create(&pp, &desired).await?;
        }
        Ok(None)
    }
}
