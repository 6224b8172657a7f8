//! A container's environment, as upstream's kubelet makes it: envFrom ConfigMaps and
//! Secrets first (with their prefix), then env entries (literal values, downward-API fields,
//! resource fields, ConfigMap and Secret keys), later names overriding earlier ones, then
//! the Services' variables the container does not set itself (KUBERNETES_SERVICE_HOST and
//! the docker-link style ones). A missing required source stops the container with
//! CreateContainerConfigError.

use std::collections::{BTreeMap, HashMap};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, ListParams};

use super::spec::{field_value, resource_value};

/// The ConfigMaps and Secrets a container refers to, as fetched (absent ones missing).
#[derive(Default)]
pub struct Sources {
    pub configmaps: HashMap<String, BTreeMap<String, String>>,
    pub secrets: HashMap<String, BTreeMap<String, String>>,
    /// The Services' variables, in order ([`service_env`]).
    pub services: Vec<(String, String)>,
}

/// (ConfigMap names, Secret names) the container's env and envFrom use.
pub fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for f in c.env_from.iter().flatten() {
        if let Some(r) = &f.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &f.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.push(r.name.clone());
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Fetches what `c` refers to from the apiserver.
pub async fn fetch(
    client: &kube::Client,
    namespace: &str,
    c: &Container,
) -> crate::Result<Sources> {
    let (cms, secrets) = references(c);
    let mut out = Sources::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in cms {
        if let Some(cm) = cm_api.get_opt(&name).await? {
            let mut data = cm.data.unwrap_or_default();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            out.configmaps.insert(name, data);
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in secrets {
        if let Some(s) = secret_api.get_opt(&name).await? {
            let mut data: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            data.extend(s.string_data.unwrap_or_default());
            out.secrets.insert(name, data);
        }
    }
    Ok(out)
}

/// The Services whose variables the pod's containers get, by name: with enableServiceLinks
/// (the default) every Service of the pod's namespace, and always the `kubernetes` Service of
/// the default namespace unless the pod's namespace has its own. Upstream's kubelet reads them
/// from a Service informer; this lists them when a container is created.
pub async fn fetch_services(client: &kube::Client, pod: &Pod) -> crate::Result<Vec<Service>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut by_name: BTreeMap<String, Service> = BTreeMap::new();
    let mut add = |list: Vec<Service>, replace: bool| {
        for s in list {
            let name = s.metadata.name.clone().unwrap_or_default();
            if replace || !by_name.contains_key(&name) {
                by_name.insert(name, s);
            }
        }
    };
    if links {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        add(api.list(&ListParams::default()).await?.items, true);
    }
    if !(links && namespace == "default") {
        let api: Api<Service> = Api::namespaced(client.clone(), "default");
        let master = ListParams::default().fields("metadata.name=kubernetes");
        add(api.list(&master).await?.items, false);
    }
    Ok(by_name.into_values().collect())
}

/// upstream's variables for Services with a cluster IP: NAME_SERVICE_HOST, NAME_SERVICE_PORT
/// (the first port) and NAME_SERVICE_PORT_PORTNAME, then docker's links: NAME_PORT (the first
/// port's URL) and NAME_PORT_<port>_<PROTO> with its _PROTO, _PORT and _ADDR.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let var = |s: &str| s.replace('-', "_").to_uppercase();
    let mut out = Vec::new();
    for s in services {
        let Some(spec) = &s.spec else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or("");
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        if ip.is_empty() || ip == "None" || ports.is_empty() {
            continue;
        }
        let prefix = var(s.metadata.name.as_deref().unwrap_or(""));
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_owned()));
        out.push((format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", var(name)),
                    p.port.to_string(),
                ));
            }
        }
        let host = |port: i32| match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]:{port}"),
            _ => format!("{ip}:{port}"),
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let url = format!("{}://{}", proto.to_lowercase(), host(p.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((port_prefix.clone(), url));
            out.push((format!("{port_prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
        }
    }
    out
}

/// A C identifier-ish name, as environment variable names must be (upstream allows any
/// printable ASCII except '=' since 1.30; keep its older, stricter check for envFrom keys).
fn valid_env_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('=') && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The environment, or upstream's message for what is missing.
pub fn resolve(
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    host_ip: &str,
    sources: &Sources,
) -> Result<Vec<cri::KeyValue>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut set = |k: String, v: String| {
        if !values.contains_key(&k) {
            order.push(k.clone());
        }
        values.insert(k, v);
    };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (data, optional, what, name) = if let Some(r) = &f.config_map_ref {
            (
                sources.configmaps.get(&r.name),
                r.optional.unwrap_or(false),
                "configmap",
                &r.name,
            )
        } else if let Some(r) = &f.secret_ref {
            (
                sources.secrets.get(&r.name),
                r.optional.unwrap_or(false),
                "secret",
                &r.name,
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    let key = format!("{prefix}{k}");
                    if valid_env_name(&key) {
                        set(key, v.clone());
                    }
                }
            }
            None if optional => {}
            None => return Err(format!("{what} {name:?} not found")),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, pod_ip, host_ip).unwrap_or_default()
                } else if let Some(r) = &from.resource_field_ref {
                    let target = match &r.container_name {
                        Some(n) if !n.is_empty() => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|x| &x.name == n))
                            .unwrap_or(c),
                        _ => c,
                    };
                    resource_value(
                        target,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                    )
                    .unwrap_or_default()
                } else if let Some(r) = &from.config_map_key_ref {
                    match sources.configmaps.get(&r.name).map(|d| d.get(&r.key)) {
                        Some(Some(v)) => v.clone(),
                        _ if r.optional.unwrap_or(false) => continue,
                        None => return Err(format!("configmap {:?} not found", r.name)),
                        Some(None) => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            ));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match sources.secrets.get(&r.name).map(|d| d.get(&r.key)) {
                        Some(Some(v)) => v.clone(),
                        _ if r.optional.unwrap_or(false) => continue,
                        None => return Err(format!("secret {:?} not found", r.name)),
                        Some(None) => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            ));
                        }
                    }
                } else {
                    String::new()
                }
            }
        };
        set(e.name.clone(), value);
    }
    for (k, v) in &sources.services {
        if !values.contains_key(k) {
            order.push(k.clone());
            values.insert(k.clone(), v.clone());
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let value = values.remove(&k).unwrap_or_default();
            cri::KeyValue { key: k, value }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_from_sources_fields_and_resources() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c",
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "env": [
                    {"name": "CFG_MODE", "value": "override"},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                    {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}}]}]}}))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let mut sources = Sources::default();
        sources.configmaps.insert(
            "cfg".into(),
            [
                ("MODE".to_owned(), "fast".to_owned()),
                ("LEVEL".to_owned(), "3".to_owned()),
            ]
            .into(),
        );
        sources.secrets.insert(
            "sec".into(),
            [("token".to_owned(), "s3cret".to_owned())].into(),
        );
        let env: Vec<(String, String)> = resolve(&pod, c, "", "", &sources)
            .unwrap()
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        assert_eq!(
            env,
            [
                ("CFG_LEVEL".into(), "3".into()),
                ("CFG_MODE".into(), "override".into()),
                ("TOKEN".into(), "s3cret".into()),
                ("APP".into(), "web".into()),
                ("CPU".into(), "500".into()),
                ("MEM_MI".into(), "64".into()),
            ]
        );
        sources.secrets.clear();
        assert_eq!(
            resolve(&pod, c, "", "", &sources).unwrap_err(),
            "secret \"sec\" not found"
        );
    }

    #[test]
    fn services_as_upstream_names_them() {
        let services: Vec<Service> = serde_json::from_value(json!([
            {"metadata": {"name": "kubernetes"}, "spec": {"clusterIP": "10.96.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}},
            {"metadata": {"name": "my-dns"}, "spec": {"clusterIP": "10.96.0.10",
                "ports": [{"port": 53, "protocol": "UDP"}]}},
            {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None",
                "ports": [{"port": 80}]}},
        ]))
        .unwrap();
        let env = service_env(&services);
        let expected = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
            ("MY_DNS_SERVICE_HOST", "10.96.0.10"),
            ("MY_DNS_SERVICE_PORT", "53"),
            ("MY_DNS_PORT", "udp://10.96.0.10:53"),
            ("MY_DNS_PORT_53_UDP", "udp://10.96.0.10:53"),
            ("MY_DNS_PORT_53_UDP_PROTO", "udp"),
            ("MY_DNS_PORT_53_UDP_PORT", "53"),
            ("MY_DNS_PORT_53_UDP_ADDR", "10.96.0.10"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(env, expected);

        // The container's own variables win; the Services' come after them.
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}]}]}}))
        .unwrap();
        let sources = Sources {
            services: env,
            ..Default::default()
        };
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let got = resolve(&pod, c, "", "", &sources).unwrap();
        assert_eq!(got.len(), 15);
        assert_eq!(
            (got[0].key.as_str(), got[0].value.as_str()),
            ("KUBERNETES_SERVICE_HOST", "mine")
        );
        assert_eq!(got[1].key, "KUBERNETES_SERVICE_PORT");
    }
}
