//! Objects the server itself keeps in place: the four system namespaces, the bootstrap RBAC
//! policy (with RBAC on), and the `kubernetes` Service in `default` with its Endpoints and
//! EndpointSlice pointing at this apiserver.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::registry;
use crate::registry::store::{self, Desired};
use crate::registry::{Target, WriteOptions};
use crate::state::ApiState;
use crate::status::ApiResult;

const NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
const MANAGER: &str = "kube-apiserver";

/// Creates `obj` unless it exists; replaces it when `replace` and it differs.
async fn ensure_object(
    state: &Arc<ApiState>,
    group: &str,
    version: &str,
    plural: &str,
    obj: Value,
    replace: bool,
) -> ApiResult<()> {
    let resource = registry::builtin(group, version, plural).expect("a served resource");
    let target = Target {
        resource: resource.clone(),
        namespace: obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        name: obj["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        subresource: String::new(),
    };
    let options = WriteOptions::default();
    let user = UserInfo::new("system:apiserver", vec!["system:masters".into()]);
    match store::create_object(state, &target, &options, &user, MANAGER, obj.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 && replace => {
            store::guaranteed_update(state, &target, &options, MANAGER, |old| {
                let mut new = old.clone();
                for field in ["subsets", "endpoints", "ports", "addressType"] {
                    if let Some(v) = obj.get(field) {
                        new[field] = v.clone();
                    }
                }
                Ok(Desired {
                    object: new,
                    precondition: false,
                })
            })
            .await
            .map(|_| ())
        }
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn ensure(state: &Arc<ApiState>, address: IpAddr, port: u16) -> ApiResult<()> {
    for ns in NAMESPACES {
        let obj = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
        ensure_object(state, "", "v1", "namespaces", obj, false).await?;
    }
    if state.auth.rbac_enabled() {
        for obj in crate::auth::policy::objects() {
            let plural = match obj["kind"].as_str() {
                Some("ClusterRole") => "clusterroles",
                _ => "clusterrolebindings",
            };
            ensure_object(state, "rbac.authorization.k8s.io", "v1", plural, obj, false).await?;
        }
    }
    for (name, value, description) in [
        (
            "system-node-critical",
            2_000_001_000,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        (
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ] {
        let class = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": { "name": name }, "value": value, "description": description,
            "preemptionPolicy": "PreemptLowerPriority",
        });
        ensure_object(
            state,
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            class,
            false,
        )
        .await?;
    }
    let labels = json!({ "component": "apiserver", "provider": "kubernetes" });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "kubernetes", "namespace": "default", "labels": labels },
        "spec": {
            "clusterIP": state.services.cidr.nth(1).to_string(),
            "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": port }],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    });
    ensure_object(state, "", "v1", "services", service, false).await?;
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": { "name": "kubernetes", "namespace": "default", "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" } },
        "subsets": [{
            "addresses": [{ "ip": address.to_string() }],
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        }],
    });
    ensure_object(state, "", "v1", "endpoints", endpoints, true).await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": { "name": "kubernetes", "namespace": "default", "labels": { "kubernetes.io/service-name": "kubernetes" } },
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{ "addresses": [address.to_string()], "conditions": { "ready": true } }],
        "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
    });
    ensure_object(
        state,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        slice,
        true,
    )
    .await?;
    Ok(())
}
