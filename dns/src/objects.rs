//! Services, EndpointSlices and Namespaces as the zone reads them: decoded from the API with
//! only the fields DNS answers from (names, the service-name label, ClusterIPs, ports,
//! ready endpoints and hostnames) and everything else skipped unread. A listed object then
//! costs a few small allocations instead of its managed fields, annotations and status,
//! which keeps a relist of many thousands of objects from scattering garbage through the
//! heap the zone lives in (and saves the decoding).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};

/// `K` with only what DNS reads decoded; the rest of the object is left at its defaults.
#[derive(Clone, Debug)]
pub struct Slim<K>(pub K);

impl<K: Resource> Resource for Slim<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// The metadata every kind keeps: identity, version (the watch resumes from it) and labels
/// (a slice names its Service in one).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            resource_version: m.resource_version,
            labels: m.labels,
            ..Default::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i32>,
}

impl<'de> Deserialize<'de> for Slim<Namespace> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            metadata: Meta,
        }
        let w = Wire::deserialize(d)?;
        Ok(Slim(Namespace {
            metadata: w.metadata.into(),
            ..Default::default()
        }))
    }
}

impl<'de> Deserialize<'de> for Slim<Service> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            #[serde(rename = "type")]
            type_: Option<String>,
            #[serde(rename = "clusterIP")]
            cluster_ip: Option<String>,
            #[serde(rename = "clusterIPs")]
            cluster_ips: Option<Vec<String>>,
            external_name: Option<String>,
            ports: Option<Vec<Port>>,
        }
        #[derive(Deserialize)]
        struct Wire {
            metadata: Meta,
            spec: Option<Spec>,
        }
        let w = Wire::deserialize(d)?;
        let spec = w.spec.map(|s| ServiceSpec {
            type_: s.type_,
            cluster_ip: s.cluster_ip,
            cluster_ips: s.cluster_ips,
            external_name: s.external_name,
            ports: s.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| ServicePort {
                        name: p.name,
                        protocol: p.protocol,
                        port: p.port.unwrap_or_default(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        });
        Ok(Slim(Service {
            metadata: w.metadata.into(),
            spec,
            status: None,
        }))
    }
}

impl<'de> Deserialize<'de> for Slim<EndpointSlice> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Conditions {
            ready: Option<bool>,
        }
        #[derive(Deserialize)]
        struct Wire {
            addresses: Vec<String>,
            conditions: Option<Conditions>,
            hostname: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Slice {
            metadata: Meta,
            address_type: Option<String>,
            #[serde(default)]
            endpoints: Vec<Wire>,
            ports: Option<Vec<Port>>,
        }
        let w = Slice::deserialize(d)?;
        Ok(Slim(EndpointSlice {
            metadata: w.metadata.into(),
            address_type: w.address_type.unwrap_or_default(),
            endpoints: w
                .endpoints
                .into_iter()
                .map(|e| Endpoint {
                    addresses: e.addresses,
                    conditions: e.conditions.map(|c| EndpointConditions {
                        ready: c.ready,
                        ..Default::default()
                    }),
                    hostname: e.hostname,
                    ..Default::default()
                })
                .collect(),
            ports: w.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| EndpointPort {
                        name: p.name,
                        protocol: p.protocol,
                        port: p.port,
                        ..Default::default()
                    })
                    .collect()
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_dns_reads_is_decoded_and_it_matches_the_full_decoding() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "app", "resourceVersion": "7",
                "annotations": {"big": "x".repeat(1000)},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                "selector": {"app": "web"}, "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}
        });
        let slim: Slim<Service> = serde_json::from_value(service.clone()).unwrap();
        let full: Service = serde_json::from_value(service).unwrap();
        assert_eq!(slim.0.metadata.name, full.metadata.name);
        assert_eq!(slim.0.metadata.resource_version.as_deref(), Some("7"));
        assert!(slim.0.metadata.annotations.is_none());
        assert!(slim.0.metadata.managed_fields.is_none());
        let (s, f) = (slim.0.spec.unwrap(), full.spec.unwrap());
        assert_eq!(
            (&s.type_, &s.cluster_ip, &s.cluster_ips),
            (&f.type_, &f.cluster_ip, &f.cluster_ips)
        );
        let port = &s.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 80));
        assert!(port.target_port.is_none() && s.selector.is_none());

        let slice: Slim<EndpointSlice> = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "app",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": false, "serving": true},
                "hostname": "web-0", "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-0"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let e = &slice.0.endpoints[0];
        assert_eq!(e.addresses, ["10.244.1.5"]);
        assert_eq!(e.conditions.as_ref().and_then(|c| c.ready), Some(false));
        assert_eq!(e.hostname.as_deref(), Some("web-0"));
        assert!(e.node_name.is_none() && e.target_ref.is_none());
        assert_eq!(
            slice.0.metadata.labels.unwrap()["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(slice.0.ports.unwrap()[0].port, Some(8080));
    }
}
