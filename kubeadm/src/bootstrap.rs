//! What `kubeadm init` writes into a new cluster once the apiserver answers, as upstream's
//! phases `upload-config`, `bootstrap-token` and `mark-control-plane` do: the admins'
//! binding, the bindings that let bootstrap tokens join nodes (CSR create, auto-approval,
//! certificate rotation), the public `cluster-info` ConfigMap join discovers the cluster
//! from, the `kubeadm-config` ConfigMap joining nodes read, a bootstrap token, and the
//! control-plane node's label. Everything is created if missing and kept if present, so
//! running init again on the same cluster changes nothing.

use common::api_errors::is_already_exists;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::NodeConfig;
use crate::token::{self, Token};

/// Creates `object` unless it exists.
pub(crate) async fn ensure<K>(api: &Api<K>, object: serde_json::Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object)?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => Err(e).with_context(|| {
            format!(
                "creating {}",
                object.meta().name.clone().unwrap_or_default()
            )
        }),
    }
}

fn cluster_role_binding(name: &str, role: &str, kind: &str, subject: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    })
}

/// The role of the NetworkPolicy enforcement kube-proxy runs (what upstream's
/// kube-network-policies agent is granted): read pods, namespaces and policies.
pub const NETWORK_POLICY_ROLE: &str = "tetsu:network-policy-agent";

/// The RBAC bindings kubeadm adds to the bootstrap policy.
pub async fn rbac(client: &kube::Client) -> anyhow::Result<()> {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    ensure(
        &roles,
        json!({
            "metadata": {"name": NETWORK_POLICY_ROLE},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
            ],
        }),
    )
    .await?;
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    for (name, role, kind, subject) in [
        // kube-proxy enforces NetworkPolicies: as system:kube-proxy on the control plane,
        // with the kubelet's credentials on workers.
        (
            "tetsu:network-policy-agent",
            NETWORK_POLICY_ROLE,
            "User",
            "system:kube-proxy",
        ),
        (
            "tetsu:network-policy-agent-nodes",
            NETWORK_POLICY_ROLE,
            "Group",
            "system:nodes",
        ),
        // admin.conf's group: cluster-admin through a binding, so it can be revoked.
        (
            "kubeadm:cluster-admins",
            "cluster-admin",
            "Group",
            "kubeadm:cluster-admins",
        ),
        // Bootstrap tokens may ask for a node certificate, and get it approved at once.
        (
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            "Group",
            token::DEFAULT_GROUP,
        ),
        (
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "Group",
            token::DEFAULT_GROUP,
        ),
        // Nodes renew their own certificates.
        (
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "Group",
            "system:nodes",
        ),
        // A worker's kube-proxy runs with its kubelet's credentials (upstream runs it as a
        // DaemonSet pod with a service account of its own; tetsu runs it as a process).
        (
            "tetsu:node-proxier",
            "system:node-proxier",
            "Group",
            "system:nodes",
        ),
    ] {
        ensure(&crbs, cluster_role_binding(name, role, kind, subject)).await?;
    }
    Ok(())
}

/// `kube-public/cluster-info` (the apiserver's address and CA, readable by anyone; the
/// bootstrapsigner controller signs it with each token) and `kube-system/kubeadm-config`
/// (the networking a joining node needs), each with the Role and binding that opens it.
pub async fn cluster_info(
    client: &kube::Client,
    cfg: &NodeConfig,
    ca_pem: &str,
) -> anyhow::Result<()> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        cfg.api_server
    );
    let public: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    ensure(
        &public,
        json!({"metadata": {"name": "cluster-info"}, "data": {"kubeconfig": kubeconfig}}),
    )
    .await?;
    let roles: Api<Role> = Api::namespaced(client.clone(), "kube-public");
    ensure(&roles, json!({
        "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}],
    }))
    .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-public");
    ensure(&bindings, json!({
        "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:bootstrap-signer-clusterinfo"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}],
    }))
    .await?;

    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.0\ncontrolPlaneEndpoint: {endpoint}\nnetworking:\n  dnsDomain: {dns}\n  podSubnet: {pods}\n  serviceSubnet: {services}\n",
        endpoint = cfg.api_server.trim_start_matches("https://"),
        dns = cfg.dns_domain,
        pods = cfg.pod_network_cidr,
        services = cfg.service_cidr,
    );
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    ensure(
        &system,
        json!({"metadata": {"name": "kubeadm-config"}, "data": {"ClusterConfiguration": config}}),
    )
    .await?;
    let roles: Api<Role> = Api::namespaced(client.clone(), "kube-system");
    ensure(&roles, json!({
        "metadata": {"name": "kubeadm:nodes-kubeadm-config"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"], "verbs": ["get"]}],
    }))
    .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "kube-system");
    ensure(&bindings, json!({
        "metadata": {"name": "kubeadm:nodes-kubeadm-config"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:nodes-kubeadm-config"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": token::DEFAULT_GROUP},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"},
        ],
    }))
    .await?;
    Ok(())
}

/// Creates a bootstrap token valid for `ttl` (0: forever).
pub async fn create_token(
    client: &kube::Client,
    token: &Token,
    ttl: Duration,
    description: &str,
) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    secrets
        .create(
            &PostParams::default(),
            &token.secret_object(ttl, description),
        )
        .await
        .context("creating the bootstrap token")?;
    Ok(())
}

/// Labels the control-plane node as upstream's mark-control-plane phase does. Upstream also
/// taints it NoSchedule; tetsu leaves it schedulable so a one-node cluster runs workloads.
pub async fn mark_control_plane(client: &kube::Client, node: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": {
        "node-role.kubernetes.io/control-plane": "",
        "node.kubernetes.io/exclude-from-external-load-balancers": "",
    }}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("labelling node {node}"))?;
    Ok(())
}
