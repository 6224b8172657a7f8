//! `kubeadm init`'s addon phase: the cluster DNS, as upstream's CoreDNS addon installs it
//! (the `coredns` ServiceAccount, ClusterRole `system:coredns` and its binding, the
//! `coredns` Deployment in kube-system and the `kube-dns` Service on the service CIDR's
//! 10th address), served by tetsu's kube-dns. Objects are created if missing and kept if
//! present, so running init again changes nothing a user edited.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::Api;
use serde_json::{Value, json};

use crate::bootstrap::ensure;
use crate::config::{DNS_IMAGE, NodeConfig};

/// The label every DNS object and pod carries, as upstream's.
const DNS_APP: &str = "kube-dns";
/// The name of the Deployment, its ServiceAccount and its RBAC objects (upstream's).
const DNS_NAME: &str = "coredns";

/// Installs the cluster DNS.
pub async fn dns(client: &kube::Client, cfg: &NodeConfig) -> anyhow::Result<()> {
    let ip = cfg.cluster_dns()?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    ensure(&accounts, json!({"metadata": {"name": DNS_NAME}})).await?;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    ensure(&roles, cluster_role()).await?;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    ensure(
        &bindings,
        json!({
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": DNS_NAME, "namespace": "kube-system"}],
        }),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    ensure(&deployments, deployment(&cfg.dns_domain)).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    ensure(&services, service(&ip.to_string())).await?;
    Ok(())
}

/// What the DNS server reads: Services, their endpoints and namespaces (upstream's rules).
fn cluster_role() -> Value {
    json!({
        "metadata": {"name": "system:coredns", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    })
}

/// Two replicas that never share a node, so losing one node leaves one serving (a
/// one-node cluster runs one and keeps the other Pending until a second node joins).
/// They resolve outside names through the node's resolv.conf (dnsPolicy Default).
fn deployment(domain: &str) -> Value {
    let labels = json!({"k8s-app": DNS_APP});
    json!({
        "metadata": {"name": DNS_NAME, "labels": labels},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": DNS_NAME,
                    "dnsPolicy": "Default",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"},
                    ]}},
                    "containers": [{
                        "name": DNS_NAME,
                        "image": DNS_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--cluster-domain", domain],
                        "resources": {
                            "limits": {"memory": "170Mi"},
                            "requests": {"cpu": "100m", "memory": "70Mi"},
                        },
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                            {"name": "liveness-probe", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "readiness-probe", "containerPort": 8181, "protocol": "TCP"},
                        ],
                        "livenessProbe": {
                            "httpGet": {"path": "/health", "port": "liveness-probe"},
                            "initialDelaySeconds": 60, "timeoutSeconds": 5, "failureThreshold": 5,
                        },
                        // Ready once the cluster's Services are listed; checked often so a
                        // new cluster's names resolve within seconds.
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": "readiness-probe"},
                            "periodSeconds": 2,
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                            "readOnlyRootFilesystem": true,
                        },
                    }],
                },
            },
        },
    })
}

/// The `kube-dns` Service, with upstream's name, labels and ports, at the address kubelets
/// give pods as their nameserver.
fn service(cluster_ip: &str) -> Value {
    json!({
        "metadata": {
            "name": "kube-dns",
            "labels": {"k8s-app": DNS_APP, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
        },
        "spec": {
            "clusterIP": cluster_ip,
            "selector": {"k8s-app": DNS_APP},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_are_valid_and_named_as_upstream_names_them() {
        let d: Deployment = serde_json::from_value(deployment("example.org")).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some(DNS_IMAGE));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &["--cluster-domain", "example.org"]
        );
        let s: Service = serde_json::from_value(service("10.96.0.10")).unwrap();
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".into(), 53, "UDP".into()),
                ("dns-tcp".into(), 53, "TCP".into()),
                ("metrics".into(), 9153, "TCP".into())
            ]
        );
        let _: ClusterRole = serde_json::from_value(cluster_role()).unwrap();
    }
}
