//! The Node authorizer: a kubelet (user `system:node:NAME` in `system:nodes`) may do what the
//! system:node role lists, but reads Secrets, ConfigMaps, PersistentVolumeClaims and service
//! account tokens only when a pod bound to its node uses them, and writes only its own Node
//! and Lease, as upstream's node authorizer with its graph of pods.

use std::sync::LazyLock;

use common::selector::{FieldSelector, LabelSelector};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::attributes::Attributes;
use super::{Decision, UserInfo};
use crate::cache::Cache;
use crate::status::ApiError;

/// The system:node rules, parsed once.
pub static NODE_RULES: LazyLock<Vec<PolicyRule>> = LazyLock::new(|| {
    super::policy::node_rules()
        .into_iter()
        .map(|r| serde_json::from_value(r).expect("well-formed bootstrap rule"))
        .collect()
});

/// The node a kubelet's identity names, if the user is one.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix("system:node:")?;
    (!name.is_empty() && user.groups.iter().any(|g| g == "system:nodes")).then_some(name)
}

pub fn authorize(cache: &Cache, user: &UserInfo, attrs: &Attributes) -> Decision {
    let Some(node) = node_name(user) else {
        return Decision::NoOpinion(String::new());
    };
    if !attrs.resource_request {
        return Decision::NoOpinion(String::new());
    }
    let no_relationship = || {
        Decision::NoOpinion(format!(
            "no relationship found between node '{node}' and this object"
        ))
    };
    let resource = attrs.resource.as_str();
    let group = attrs.api_group.as_str();
    match (group, resource) {
        ("", "secrets" | "configmaps" | "persistentvolumeclaims") => {
            if !matches!(attrs.verb.as_str(), "get" | "list" | "watch") || attrs.name.is_empty() {
                return no_relationship();
            }
            if pod_uses(cache, node, &attrs.namespace, |pod| {
                references(pod, resource).any(|n| n == attrs.name)
            }) {
                Decision::Allow(format!("node '{node}' runs a pod that uses it"))
            } else {
                no_relationship()
            }
        }
        ("", "serviceaccounts") if attrs.subresource == "token" => {
            if attrs.verb == "create"
                && pod_uses(cache, node, &attrs.namespace, |pod| {
                    pod["spec"]["serviceAccountName"]
                        .as_str()
                        .unwrap_or("default")
                        == attrs.name
                })
            {
                Decision::Allow(format!("node '{node}' runs a pod of this service account"))
            } else {
                no_relationship()
            }
        }
        ("", "nodes") => authorize_node(node, attrs),
        ("", "pods") => authorize_pod(cache, node, attrs),
        ("coordination.k8s.io", "leases")
            if attrs.namespace != "kube-node-lease"
                || (!attrs.name.is_empty() && attrs.name != node) =>
        {
            Decision::NoOpinion(format!("node '{node}' may only use its own lease"))
        }
        _ if NODE_RULES
            .iter()
            .any(|r| super::rbac::rule_allows(r, attrs)) =>
        {
            Decision::Allow(format!("allowed for node '{node}'"))
        }
        _ => Decision::NoOpinion(String::new()),
    }
}

/// Upstream's Node authorizer for Node objects (with AuthorizeNodeWithSelectors, on by default
/// since 1.32): a kubelet reads only its own Node; its writes are allowed here and limited to
/// its own Node by NodeRestriction ([`admit_write`]).
fn authorize_node(node: &str, attrs: &Attributes) -> Decision {
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => {
            Decision::Allow(format!("node '{node}' writes its own Node"))
        }
        ("", "get" | "list" | "watch") if attrs.name == node => {
            Decision::Allow(format!("node '{node}' reads its own Node"))
        }
        ("", "get" | "list" | "watch") if attrs.name.is_empty() => Decision::NoOpinion(format!(
            "node '{node}' cannot read all nodes, only its own Node object"
        )),
        ("", "get" | "list" | "watch") => Decision::NoOpinion(format!(
            "node '{node}' cannot read '{}', only its own Node object",
            attrs.name
        )),
        _ => Decision::NoOpinion(String::new()),
    }
}

/// Upstream's Node authorizer for pods (with AuthorizeNodeWithSelectors): a kubelet lists and
/// watches only pods with `spec.nodeName=<itself>` and gets only pods bound to it; creates,
/// deletes, status writes and evictions are allowed here and limited by NodeRestriction.
fn authorize_pod(cache: &Cache, node: &str, attrs: &Attributes) -> Decision {
    let bound = || {
        let pods = crate::registry::builtin("", "v1", "pods").expect("pods are served");
        let key = format!(
            "{}{}/{}",
            pods.key_prefix(cache.root()),
            attrs.namespace,
            attrs.name
        );
        cache
            .get(pods, &key)
            .is_some_and(|p| p.field("spec.nodeName") == Some(node))
    };
    let related = || {
        if bound() {
            Decision::Allow(format!("pod is bound to node '{node}'"))
        } else {
            Decision::NoOpinion(format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    };
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        ("", "get") => related(),
        ("", "list" | "watch") => {
            let own = attrs.field_selector.requirements().iter().any(|r| {
                r.field == "spec.nodeName"
                    && r.op == common::selector::FieldOp::Equals
                    && r.value == node
            });
            if own {
                Decision::Allow(format!("pods of node '{node}'"))
            } else if !attrs.name.is_empty() {
                related()
            } else {
                Decision::NoOpinion(
                    "can only list/watch pods with spec.nodeName field selector".into(),
                )
            }
        }
        ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
            Decision::Allow(format!("node '{node}' manages pods bound to it"))
        }
        _ => Decision::NoOpinion(String::new()),
    }
}

/// Creates a kubelet may make only under its own name (upstream's NodeRestriction admission):
/// its Node and its Lease, whose names are in the body rather than the path.
pub fn restricted_create(attrs: &Attributes) -> bool {
    attrs.verb == "create"
        && attrs.subresource.is_empty()
        && matches!(
            (attrs.api_group.as_str(), attrs.resource.as_str()),
            ("", "nodes") | ("coordination.k8s.io", "leases")
        )
}

/// Reads the body of a [`restricted_create`] and refuses another node's name; hands the
/// request on, its body restored, otherwise.
pub async fn admit_create(
    node: &str,
    attrs: &Attributes,
    request: axum::extract::Request,
) -> Result<axum::extract::Request, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::codec::read_bytes(body).await?;
    let content_type = crate::codec::content_type(&parts.headers);
    let object = crate::codec::decode(&bytes, &content_type)?;
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name != node {
        let why = if attrs.resource == "leases" {
            "can only access node lease with the same name as the requesting node".to_owned()
        } else {
            format!("node {node:?} is not allowed to modify node {name:?}")
        };
        return Err(ApiError::forbidden(
            &attrs.api_group,
            &attrs.resource,
            name,
            &why,
        ));
    }
    Ok(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
}

/// NodeRestriction on a write a kubelet makes, with the object it would store (`old` is the
/// current one on update): mirror pods only, bound to itself and referencing nothing secret;
/// status only of its own pods; its own Node without its taints or restricted labels.
pub fn admit_write(
    cache: &Cache,
    node: &str,
    target: &crate::registry::Target,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let resource = &*target.resource;
    // The object's name is the path's on every write but a create, as upstream's a.GetName().
    let name = if target.name.is_empty() {
        obj["metadata"]["name"].as_str().unwrap_or("")
    } else {
        &target.name
    };
    let refuse = |why: String| ApiError::forbidden(&resource.group, &resource.plural, name, &why);
    if resource.group == "certificates.k8s.io" && resource.plural == "certificatesigningrequests" {
        return match old {
            None => admit_node_csr(node, obj).map_err(refuse),
            Some(_) => Ok(()),
        };
    }
    if !resource.group.is_empty() {
        return Ok(());
    }
    match (resource.plural.as_str(), target.subresource.as_str(), old) {
        ("pods", "", None) => {
            // The owner reference must name this Node as it is, uid included.
            let nodes = crate::registry::builtin("", "v1", "nodes").expect("nodes are served");
            let key = format!("{}{node}", nodes.key_prefix(cache.root()));
            let node_uid = cache.get(nodes, &key).map(|n| {
                n.value()["metadata"]["uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            });
            admit_mirror_pod(node, node_uid.as_deref(), obj).map_err(refuse)
        }
        ("pods", "status", Some(old)) => {
            if old["spec"]["nodeName"].as_str() != Some(node) {
                return Err(refuse(format!(
                    "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                )));
            }
            if old["metadata"]["labels"] != obj["metadata"]["labels"] {
                return Err(refuse(format!(
                    "node {node:?} cannot update labels through pod status"
                )));
            }
            Ok(())
        }
        ("pods", sub, _) => Err(refuse(format!(
            "unexpected operation on pods/{sub}, node {node:?} can only create and delete mirror pods"
        ))),
        ("nodes", sub, old) => {
            if name != node {
                return Err(refuse(format!(
                    "node {node:?} is not allowed to modify node {name:?}"
                )));
            }
            // The status subresource writes only status: labels and taints stay as stored.
            if sub == "status" {
                return Ok(());
            }
            let labels = |o: Option<&Value>| {
                o.and_then(|o| o["metadata"]["labels"].as_object())
                    .cloned()
                    .unwrap_or_default()
            };
            let (new_labels, old_labels) = (labels(Some(obj)), labels(old));
            let mut modified: Vec<&String> = new_labels
                .iter()
                .filter(|(k, v)| old_labels.get(*k) != Some(v))
                .chain(
                    old_labels
                        .iter()
                        .filter(|(k, v)| new_labels.get(*k) != Some(v)),
                )
                .map(|(k, _)| k)
                .collect();
            modified.sort();
            modified.dedup();
            // Labels that steer workloads: node-restriction.kubernetes.io/ ones, and
            // kubernetes.io and k8s.io ones outside the kubelet's own set.
            let forbidden: Vec<&str> = modified
                .iter()
                .filter(|k| {
                    is_node_restriction_label(k) || (is_kubernetes_label(k) && !is_kubelet_label(k))
                })
                .map(|k| k.as_str())
                .collect();
            let Some(old) = old else {
                if !obj["spec"]["configSource"].is_null() {
                    return Err(refuse(format!(
                        "node {node:?} is not allowed to create pods with a non-nil configSource"
                    )));
                }
                if !forbidden.is_empty() {
                    return Err(refuse(format!(
                        "node {node:?} is not allowed to set the following labels: {}",
                        forbidden.join(", ")
                    )));
                }
                return Ok(());
            };
            if !obj["spec"]["configSource"].is_null()
                && obj["spec"]["configSource"] != old["spec"]["configSource"]
            {
                return Err(refuse(format!(
                    "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                )));
            }
            if obj["spec"]["taints"] != old["spec"]["taints"] {
                return Err(refuse(format!(
                    "node {node:?} is not allowed to modify taints"
                )));
            }
            if !forbidden.is_empty() {
                return Err(refuse(format!(
                    "is not allowed to modify labels: {}",
                    forbidden.join(", ")
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A kubelet's CSR for the kubelet signers names itself: CN=system:node:<its name>.
fn admit_node_csr(node: &str, csr: &Value) -> Result<(), String> {
    let signer = csr["spec"]["signerName"].as_str().unwrap_or("");
    if !matches!(
        signer,
        "kubernetes.io/kubelet-serving" | "kubernetes.io/kube-apiserver-client-kubelet"
    ) {
        return Ok(());
    }
    use base64::Engine;
    let pem = csr["spec"]["request"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_default();
    let common_name = x509_parser::pem::parse_x509_pem(&pem)
        .ok()
        .and_then(|(_, pem)| {
            use x509_parser::prelude::FromDer;
            let (_, request) =
                x509_parser::certification_request::X509CertificationRequest::from_der(
                    &pem.contents,
                )
                .ok()?;
            request
                .certification_request_info
                .subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok().map(str::to_owned))
        })
        .ok_or_else(|| "unable to parse csr".to_owned())?;
    if common_name != format!("system:node:{node}") {
        return Err(format!(
            "can only create a node CSR with CN=system:node:{node}"
        ));
    }
    Ok(())
}

/// The mirror pods a kubelet may create: annotated, bound to itself, owned by nothing but its
/// Node, and referencing no service account, Secret, ConfigMap or claim.
fn admit_mirror_pod(node: &str, node_uid: Option<&str>, pod: &Value) -> Result<(), String> {
    const MIRROR: &str = "kubernetes.io/config.mirror";
    if pod["metadata"]["annotations"][MIRROR].is_null() {
        return Err(format!(
            "pod does not have {MIRROR:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    if pod["spec"]["nodeName"].as_str() != Some(node) {
        return Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if owners.len() > 1 {
        return Err(format!(
            "node {node:?} can only create pods with a single owner reference set to itself"
        ));
    }
    if let Some(owner) = owners.first() {
        if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
            return Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ));
        }
        if owner["controller"] != true {
            return Err(format!(
                "node {node:?} can only create pods with a controller owner reference set to itself"
            ));
        }
        if owner["blockOwnerDeletion"] == true {
            return Err(format!(
                "node {node:?} must not set blockOwnerDeletion on an owner reference"
            ));
        }
        let claimed = owner["uid"].as_str().unwrap_or("");
        match node_uid {
            None => return Err(format!("nodes {node:?} not found")),
            Some(uid) if uid != claimed => {
                return Err(format!(
                    "node {node} UID mismatch: expected {claimed} got {uid}"
                ));
            }
            Some(_) => {}
        }
    }
    if pod["spec"]["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    let projects_token = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .any(|s| s.get("serviceAccountToken").is_some());
    if projects_token {
        return Err(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    for resource in ["secrets", "configmaps", "persistentvolumeclaims"] {
        if references(pod, resource).next().is_some() {
            return Err(format!(
                "node {node:?} can not create pods that reference {resource}"
            ));
        }
    }
    Ok(())
}

/// The namespace (prefix) of a label key.
fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_namespace(key: &str, domain: &str) -> bool {
    let ns = label_namespace(key);
    ns == domain || ns.ends_with(&format!(".{domain}"))
}

/// `node-restriction.kubernetes.io/`: labels only administrators set, to steer workloads.
fn is_node_restriction_label(key: &str) -> bool {
    in_namespace(key, "node-restriction.kubernetes.io")
}

fn is_kubernetes_label(key: &str) -> bool {
    in_namespace(key, "kubernetes.io") || in_namespace(key, "k8s.io")
}

/// The kubernetes.io labels a kubelet may set on its own Node, as upstream's kubelet label set.
fn is_kubelet_label(key: &str) -> bool {
    const LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    LABELS.contains(&key)
        || in_namespace(key, "kubelet.kubernetes.io")
        || in_namespace(key, "node.kubernetes.io")
}

/// NodeRestriction on the deletes and evictions a kubelet sends: only of pods bound to it.
/// The pod is read from the store, so a pod created a moment ago is judged by what it is.
pub async fn admit_pod_removal(
    state: &crate::state::ApiState,
    node: &str,
    attrs: &Attributes,
) -> Result<(), ApiError> {
    let eviction = match (attrs.verb.as_str(), attrs.subresource.as_str()) {
        ("delete", "") => false,
        ("create", "eviction") => true,
        _ => return Ok(()),
    };
    if !attrs.api_group.is_empty() || attrs.resource != "pods" || attrs.name.is_empty() {
        return Ok(());
    }
    let pods = crate::registry::builtin("", "v1", "pods").expect("pods are served");
    let key = format!(
        "{}{}/{}",
        pods.key_prefix(&state.root),
        attrs.namespace,
        attrs.name
    );
    let stored = state
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::from_store(e, "", "pods", &attrs.name))?;
    // An absent pod is the handler's 404 to answer.
    let Some(kv) = stored else { return Ok(()) };
    let pod: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
    if pod["spec"]["nodeName"].as_str() == Some(node) {
        return Ok(());
    }
    let why = if eviction {
        format!("node {node} can only evict pods with spec.nodeName set to itself")
    } else {
        format!("node {node:?} can only delete pods with spec.nodeName set to itself")
    };
    Err(ApiError::forbidden(
        "",
        &attrs.combined_resource(),
        &attrs.name,
        &why,
    ))
}

/// Whether a pod bound to `node` in `namespace` passes `uses`.
fn pod_uses(cache: &Cache, node: &str, namespace: &str, uses: impl Fn(&Value) -> bool) -> bool {
    let pods = crate::registry::builtin("", "v1", "pods").expect("pods are served");
    let Ok(on_node) = FieldSelector::parse(&format!("spec.nodeName={node}")) else {
        return false;
    };
    let everything = LabelSelector::everything();
    cache
        .list(pods, namespace)
        .objects
        .iter()
        .filter(|p| p.selected(&everything, &on_node))
        .any(|p| uses(&p.value()))
}

/// The names of the objects of `resource` a pod refers to.
fn references<'a>(pod: &'a Value, resource: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let spec = &pod["spec"];
    let list = |v: &'a Value| v.as_array().into_iter().flatten();
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |c| list(&spec[c]));
    let volumes = list(&spec["volumes"]);
    let mut names: Vec<&'a str> = Vec::new();
    let mut push = |v: &'a Value| {
        if let Some(s) = v.as_str() {
            names.push(s);
        }
    };
    match resource {
        "secrets" => {
            for v in volumes {
                push(&v["secret"]["secretName"]);
                for s in list(&v["projected"]["sources"]) {
                    push(&s["secret"]["name"]);
                }
            }
            for c in containers {
                for e in list(&c["env"]) {
                    push(&e["valueFrom"]["secretKeyRef"]["name"]);
                }
                for e in list(&c["envFrom"]) {
                    push(&e["secretRef"]["name"]);
                }
            }
            for s in list(&spec["imagePullSecrets"]) {
                push(&s["name"]);
            }
        }
        "configmaps" => {
            for v in volumes {
                push(&v["configMap"]["name"]);
                for s in list(&v["projected"]["sources"]) {
                    push(&s["configMap"]["name"]);
                }
            }
            for c in containers {
                for e in list(&c["env"]) {
                    push(&e["valueFrom"]["configMapKeyRef"]["name"]);
                }
                for e in list(&c["envFrom"]) {
                    push(&e["configMapRef"]["name"]);
                }
            }
        }
        _ => {
            for v in volumes {
                push(&v["persistentVolumeClaim"]["claimName"]);
            }
        }
    }
    names.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_reference_their_secrets_and_configmaps() {
        let pod = json!({"spec": {
            "volumes": [
                {"secret": {"secretName": "vol-secret"}},
                {"configMap": {"name": "vol-cm"}},
                {"projected": {"sources": [{"secret": {"name": "proj-secret"}}]}},
                {"persistentVolumeClaim": {"claimName": "data"}},
            ],
            "containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "env-secret"}}}],
                            "envFrom": [{"configMapRef": {"name": "envfrom-cm"}}]}],
            "imagePullSecrets": [{"name": "pull"}],
        }});
        let names = |r| references(&pod, r).collect::<Vec<_>>();
        assert_eq!(
            names("secrets"),
            ["vol-secret", "proj-secret", "env-secret", "pull"]
        );
        assert_eq!(names("configmaps"), ["vol-cm", "envfrom-cm"]);
        assert_eq!(names("persistentvolumeclaims"), ["data"]);
    }

    #[test]
    fn only_node_identities_are_nodes() {
        let n = UserInfo::new("system:node:n1", vec!["system:nodes".into()]);
        assert_eq!(node_name(&n), Some("n1"));
        let not = UserInfo::new("system:node:n1", vec![]);
        assert_eq!(node_name(&not), None);
    }
}
