//! A container's environment, as upstream's kubelet makes it: envFrom ConfigMaps and
//! Secrets first (with their prefix), then env entries (literal values, downward-API fields,
//! resource fields, ConfigMap and Secret keys), later names overriding earlier ones. A
//! missing required source stops the container with CreateContainerConfigError.

use std::collections::{BTreeMap, HashMap};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;

use super::spec::{field_value, resource_value};

/// The ConfigMaps and Secrets a container refers to, as fetched (absent ones missing).
#[derive(Default)]
pub struct Sources {
    pub configmaps: HashMap<String, BTreeMap<String, String>>,
    pub secrets: HashMap<String, BTreeMap<String, String>>,
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
) -> anyhow::Result<Sources> {
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
}
