//! What the Endpoints and EndpointSlice controllers share: which pods back a Service, the
//! port each Service port reaches on each pod, and the conditions of each pod's endpoint.

pub mod endpoints;
pub mod endpointslice;

use std::sync::Arc;

use common::selector::LabelSelector;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use kube::ResourceExt;

use crate::controllers::podutil;
use crate::runtime::{Change, Informer, WorkQueue, key_of};

/// A Service's selector; `None` for Services without one (their endpoints are managed by
/// hand) and for ExternalName Services.
pub fn service_selector(svc: &Service) -> Option<LabelSelector> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let m = spec.selector.as_ref()?;
    if m.is_empty() {
        return None;
    }
    LabelSelector::from_label_selector_json(&serde_json::json!({ "matchLabels": m })).ok()
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Upstream's ShouldPodBeInEndpoints: a pod with an IP that can still serve (not finished
/// for good); terminating pods only when `include_terminating`.
pub fn should_include(pod: &Pod, include_terminating: bool) -> bool {
    if pod_ip(pod).is_none() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = podutil::phase(pod);
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => phase != "Failed" && phase != "Succeeded",
        Some("OnFailure") => phase != "Succeeded",
        _ => true,
    }
}

pub fn pod_ip(pod: &Pod) -> Option<&str> {
    let s = pod.status.as_ref()?;
    s.pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| s.pod_ips.as_ref()?.first().map(|p| p.ip.as_str()))
}

/// The pod port a Service port reaches: a numeric targetPort as is, a named one looked up
/// among the pod's container ports (same protocol); `None` if the pod has no such port.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// One Service port resolved on one pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub name: Option<String>,
    pub protocol: String,
    pub port: i32,
    pub app_protocol: Option<String>,
}

/// A pod as an endpoint of a Service.
#[derive(Clone, Debug, PartialEq)]
pub struct PodEndpoint {
    pub ip: String,
    pub node_name: Option<String>,
    pub hostname: Option<String>,
    pub target: ObjectReference,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub ports: Vec<Port>,
}

/// The endpoint `pod` gives `svc`, with upstream's conditions: serving follows the pod's
/// readiness; ready too, except that a terminating pod is never ready (unless the Service
/// publishes not-ready addresses).
pub fn endpoint_for(svc: &Service, pod: &Pod) -> Option<PodEndpoint> {
    let ip = pod_ip(pod)?.to_owned();
    let publish = publish_not_ready(svc);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = publish || podutil::is_ready(pod);
    let ready = serving && (!terminating || publish);
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|_| spec.and_then(|s| s.subdomain.as_deref()) == Some(&svc.name_any()));
    let mut ports: Vec<Port> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            Some(Port {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: find_port(pod, sp)?,
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort();
    Some(PodEndpoint {
        ip,
        node_name: spec.and_then(|s| s.node_name.clone()),
        hostname,
        target: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        ready,
        serving,
        terminating,
        ports,
    })
}

/// The pods behind `svc`, as endpoints (terminating ones only when `include_terminating`).
pub fn endpoints_of(
    svc: &Service,
    selector: &LabelSelector,
    pods: &[Arc<Pod>],
    include_terminating: bool,
) -> Vec<PodEndpoint> {
    let mut out: Vec<PodEndpoint> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| selector.matches_map(l))
                && should_include(p, include_terminating)
        })
        .filter_map(|p| endpoint_for(svc, p))
        .collect();
    out.sort_by(|a, b| {
        a.ip.cmp(&b.ip)
            .then_with(|| a.target.name.cmp(&b.target.name))
    });
    out
}

/// Wires the informers both controllers watch: a Service change queues it; a pod change
/// queues every Service in its namespace whose selector matches the pod before or after.
pub fn watch_services_and_pods(
    services: &Arc<Informer<Service>>,
    pods: &Arc<Informer<Pod>>,
    queue: &Arc<WorkQueue>,
) {
    queue.follow(services);
    let (q, svcs) = (queue.clone(), services.clone());
    let queue_matching = move |pod: &Pod| {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for svc in svcs.list_namespace(ns) {
            if service_selector(&svc).is_some_and(|s| s.matches_map(&labels)) {
                q.add(key_of(&*svc));
            }
        }
    };
    pods.on_change(move |change| match change {
        Change::Added(p) | Change::Deleted(p) => queue_matching(p),
        Change::Updated { old, new } => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return;
            }
            queue_matching(new);
            if old.metadata.labels != new.metadata.labels {
                queue_matching(old);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let s = svc(
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}),
        );
        let base = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}});
        let ready = endpoint_for(&s, &pod(base.clone())).unwrap();
        assert_eq!(
            (ready.ready, ready.serving, ready.terminating),
            (true, true, false)
        );
        assert_eq!(ready.ports[0].port, 8080, "named targetPort resolved");

        let mut t = base.clone();
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let term = endpoint_for(&s, &pod(t.clone())).unwrap();
        assert_eq!(
            (term.ready, term.serving, term.terminating),
            (false, true, true)
        );
        assert!(should_include(&pod(t.clone()), true));
        assert!(!should_include(&pod(t), false));

        let mut no_ip = base.clone();
        no_ip["status"]["podIP"] = json!(null);
        assert!(!should_include(&pod(no_ip), true));

        let mut done = base;
        done["spec"]["restartPolicy"] = json!("Never");
        done["status"]["phase"] = json!("Succeeded");
        assert!(!should_include(&pod(done), true));
    }

    #[test]
    fn services_without_selectors_are_not_managed() {
        assert!(service_selector(&svc(json!({"metadata": {"name": "x"}, "spec": {}}))).is_none());
        assert!(
            service_selector(&svc(json!({"metadata": {"name": "x"},
                "spec": {"type": "ExternalName", "selector": {"a": "b"}}})))
            .is_none()
        );
    }
}
