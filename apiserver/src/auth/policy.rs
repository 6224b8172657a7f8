//! The bootstrap RBAC policy the server creates on start (upstream's bootstrappolicy): the
//! user-facing roles (cluster-admin, admin, edit, view, the latter three aggregated from the
//! `system:aggregate-to-*` roles), discovery and basic-user roles for everyone, the components'
//! roles (system:node, system:node-proxier, system:kube-scheduler,
//! system:kube-controller-manager, one system:controller:* per controller), and the bindings
//! that grant them. Objects that exist are left as they are.

use serde_json::{Value, json};

/// A rule from space-separated lists: `r("get list", "", "pods services")`.
fn r(verbs: &str, groups: &str, resources: &str) -> Value {
    let split = |s: &str| -> Vec<String> {
        if s.is_empty() {
            vec![String::new()]
        } else {
            s.split(' ').map(String::from).collect()
        }
    };
    json!({
        "verbs": verbs.split(' ').collect::<Vec<_>>(),
        "apiGroups": split(groups),
        "resources": resources.split(' ').collect::<Vec<_>>(),
    })
}

/// A rule on non-resource URLs.
fn urls(verbs: &str, paths: &str) -> Value {
    json!({
        "verbs": verbs.split(' ').collect::<Vec<_>>(),
        "nonResourceURLs": paths.split(' ').collect::<Vec<_>>(),
    })
}

/// A rule limited to named objects.
fn named(verbs: &str, groups: &str, resources: &str, names: &str) -> Value {
    let mut rule = r(verbs, groups, resources);
    rule["resourceNames"] = json!(names.split(' ').collect::<Vec<_>>());
    rule
}

const READ: &str = "get list watch";
const WRITE: &str = "create delete deletecollection patch update";
const EVENTS: &str = "create patch update";

fn bootstrap_labels() -> Value {
    json!({ "kubernetes.io/bootstrapping": "rbac-defaults" })
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {
            "name": name, "labels": bootstrap_labels(),
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" },
        },
        "rules": rules,
    })
}

/// An aggregated role: its rules come from the ClusterRoles labeled `aggregate-to-<name>`.
fn aggregated(name: &str, label: &str) -> Value {
    let mut role = cluster_role(name, Vec::new());
    role["aggregationRule"] = json!({
        "clusterRoleSelectors": [{ "matchLabels": { label: "true" } }],
    });
    role
}

fn labelled(mut role: Value, label: &str) -> Value {
    role["metadata"]["labels"][label] = json!("true");
    role
}

fn aggregate_to(name: &str, target: &str, rules: Vec<Value>) -> Value {
    let mut role = cluster_role(name, rules);
    role["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{target}")] =
        json!("true");
    role
}

/// A ClusterRoleBinding of `role` to `subjects` given as `User:name` / `Group:name`.
pub fn cluster_binding(name: &str, role: &str, subjects: &[&str]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|s| {
            let (kind, name) = s.split_once(':').expect("Kind:name");
            json!({ "kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name })
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name, "labels": bootstrap_labels(),
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" },
        },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": subjects,
    })
}

/// What each controller of kube-controller-manager may do (system:controller:NAME).
fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    let events = r(EVENTS, " events.k8s.io", "events");
    let pods_rw = r("create delete get list patch update watch", "", "pods");
    vec![
        (
            "deployment-controller",
            vec![
                r("get list watch update", "apps", "deployments"),
                r(
                    "update",
                    "apps",
                    "deployments/finalizers deployments/status",
                ),
                r(
                    "create delete get list patch update watch",
                    "apps",
                    "replicasets",
                ),
                r("get list update watch", "", "pods"),
                events.clone(),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                r("get list update watch", "apps", "replicasets"),
                r(
                    "update",
                    "apps",
                    "replicasets/finalizers replicasets/status",
                ),
                pods_rw.clone(),
                events.clone(),
            ],
        ),
        (
            "replication-controller",
            vec![
                r("get list update watch", "", "replicationcontrollers"),
                r(
                    "update",
                    "",
                    "replicationcontrollers/finalizers replicationcontrollers/status",
                ),
                pods_rw.clone(),
                events.clone(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                r(READ, "apps", "daemonsets"),
                r("update", "apps", "daemonsets/finalizers daemonsets/status"),
                r(READ, "", "nodes"),
                pods_rw.clone(),
                r("create", "", "pods/binding"),
                r(
                    "create delete get list patch update watch",
                    "apps",
                    "controllerrevisions",
                ),
                events.clone(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                r(READ, "apps", "statefulsets"),
                r(
                    "update",
                    "apps",
                    "statefulsets/finalizers statefulsets/status",
                ),
                pods_rw.clone(),
                r(
                    "create delete get list patch update watch",
                    "apps",
                    "controllerrevisions",
                ),
                r(
                    "create get list patch update watch",
                    "",
                    "persistentvolumeclaims",
                ),
                events.clone(),
            ],
        ),
        (
            "job-controller",
            vec![
                r("get list patch update watch", "batch", "jobs"),
                r("update", "batch", "jobs/finalizers jobs/status"),
                r("create delete get list patch update watch", "", "pods"),
                events.clone(),
            ],
        ),
        (
            "cronjob-controller",
            vec![
                r("get list update watch", "batch", "cronjobs"),
                r("update", "batch", "cronjobs/finalizers cronjobs/status"),
                r("create delete get list patch update watch", "batch", "jobs"),
                r("delete list", "", "pods"),
                events.clone(),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![r("delete get list watch", "batch", "jobs"), events.clone()],
        ),
        (
            "generic-garbage-collector",
            vec![r("delete get list patch update watch", "*", "*")],
        ),
        (
            "namespace-controller",
            vec![
                r("delete get list watch", "", "namespaces"),
                r("update", "", "namespaces/finalize namespaces/status"),
                r("delete deletecollection get list", "*", "*"),
            ],
        ),
        (
            "service-account-controller",
            vec![r("create", "", "serviceaccounts"), events.clone()],
        ),
        (
            "endpoint-controller",
            vec![
                r(READ, "", "services pods"),
                r("create delete get list update", "", "endpoints"),
                r("create", "", "endpoints/restricted"),
                events.clone(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                r(READ, "", "services pods nodes"),
                r(
                    "create delete get list update",
                    "discovery.k8s.io",
                    "endpointslices",
                ),
                events.clone(),
            ],
        ),
        (
            "node-ipam-controller",
            vec![
                r(READ, "", "nodes"),
                r("patch update", "", "nodes nodes/status"),
                events.clone(),
            ],
        ),
        (
            "node-controller",
            vec![
                r("delete get list patch update", "", "nodes"),
                r("patch update", "", "nodes/status"),
                r("delete list", "", "pods"),
                r("patch update", "", "pods/status"),
                r(READ, "coordination.k8s.io", "leases"),
                events.clone(),
            ],
        ),
        (
            "pvc-protection-controller",
            vec![
                r("get list update watch", "", "persistentvolumeclaims"),
                r("list watch get", "", "pods"),
                events.clone(),
            ],
        ),
        (
            "pv-protection-controller",
            vec![
                r("get list update watch", "", "persistentvolumes"),
                events.clone(),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                r("delete list watch", "", "pods"),
                r("list get", "", "nodes"),
                r("patch", "", "pods/status"),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                r(READ, "*", "*"),
                r("update", "", "resourcequotas/status"),
                events.clone(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                r(READ, "apps", "deployments replicasets statefulsets"),
                r(READ, "", "replicationcontrollers"),
                r(READ, "policy", "poddisruptionbudgets"),
                r("update", "policy", "poddisruptionbudgets/status"),
                r("get", "*", "*/scale"),
                r("patch update", "", "pods/status"),
                events.clone(),
            ],
        ),
        (
            "clusterrole-aggregation-controller",
            vec![r(
                "escalate get list patch update watch",
                "rbac.authorization.k8s.io",
                "clusterroles",
            )],
        ),
        (
            "certificate-controller",
            vec![
                r(
                    "delete get list watch",
                    "certificates.k8s.io",
                    "certificatesigningrequests",
                ),
                r(
                    "update",
                    "certificates.k8s.io",
                    "certificatesigningrequests/approval certificatesigningrequests/status",
                ),
                r("approve", "certificates.k8s.io", "signers"),
                r("sign", "certificates.k8s.io", "signers"),
                r("create", "authorization.k8s.io", "subjectaccessreviews"),
                events.clone(),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![r("create update", "", "configmaps"), events.clone()],
        ),
        (
            "taint-eviction-controller",
            vec![
                r("delete get list watch", "", "pods"),
                r("patch", "", "pods/status"),
                events,
            ],
        ),
    ]
}

/// Every bootstrap ClusterRole and ClusterRoleBinding, in creation order.
pub fn objects() -> Vec<Value> {
    let mut out = vec![
        cluster_role("cluster-admin", vec![r("*", "*", "*"), urls("*", "*")]),
        cluster_role(
            "system:discovery",
            vec![urls(
                "get",
                "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/",
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls("get", "/healthz /livez /readyz /version /version/")],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                "get",
                "/healthz /healthz/* /livez /livez/* /readyz /readyz/* /metrics /metrics/slis",
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                r(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews selfsubjectrulesreviews",
                ),
                r("create", "authentication.k8s.io", "selfsubjectreviews"),
            ],
        ),
        aggregated("admin", "rbac.authorization.k8s.io/aggregate-to-admin"),
        // As upstream's: view aggregates into edit, and edit into admin.
        labelled(
            aggregated("edit", "rbac.authorization.k8s.io/aggregate-to-edit"),
            "rbac.authorization.k8s.io/aggregate-to-admin",
        ),
        labelled(
            aggregated("view", "rbac.authorization.k8s.io/aggregate-to-view"),
            "rbac.authorization.k8s.io/aggregate-to-edit",
        ),
        aggregate_to(
            "system:aggregate-to-admin",
            "admin",
            vec![
                r(
                    "create delete deletecollection get list patch update watch",
                    "rbac.authorization.k8s.io",
                    "roles rolebindings",
                ),
                r(
                    "create",
                    "authorization.k8s.io",
                    "localsubjectaccessreviews",
                ),
            ],
        ),
        aggregate_to(
            "system:aggregate-to-edit",
            "edit",
            vec![
                r(
                    READ,
                    "",
                    "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy",
                ),
                r("impersonate", "", "serviceaccounts"),
                r(
                    WRITE,
                    "",
                    "pods pods/attach pods/exec pods/portforward pods/proxy",
                ),
                r("create", "", "pods/eviction"),
                r(
                    WRITE,
                    "",
                    "configmaps events persistentvolumeclaims replicationcontrollers replicationcontrollers/scale secrets serviceaccounts services services/proxy",
                ),
                r("create", "", "serviceaccounts/token"),
                r(
                    WRITE,
                    "apps",
                    "daemonsets deployments deployments/rollback deployments/scale replicasets replicasets/scale statefulsets statefulsets/scale",
                ),
                r(WRITE, "autoscaling", "horizontalpodautoscalers"),
                r(WRITE, "batch", "cronjobs jobs"),
                r(WRITE, "networking.k8s.io", "ingresses networkpolicies"),
                r(WRITE, "policy", "poddisruptionbudgets"),
                r(WRITE, "discovery.k8s.io", "endpointslices"),
            ],
        ),
        aggregate_to(
            "system:aggregate-to-view",
            "view",
            vec![
                r(
                    READ,
                    "",
                    "pods pods/log pods/status configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status replicationcontrollers replicationcontrollers/scale replicationcontrollers/status serviceaccounts services services/status bindings events limitranges namespaces namespaces/status resourcequotas resourcequotas/status",
                ),
                r(
                    READ,
                    "apps",
                    "controllerrevisions daemonsets daemonsets/status deployments deployments/scale deployments/status replicasets replicasets/scale replicasets/status statefulsets statefulsets/scale statefulsets/status",
                ),
                r(
                    READ,
                    "autoscaling",
                    "horizontalpodautoscalers horizontalpodautoscalers/status",
                ),
                r(READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
                r(READ, "discovery.k8s.io", "endpointslices"),
                r(
                    READ,
                    "policy",
                    "poddisruptionbudgets poddisruptionbudgets/status",
                ),
                r(
                    READ,
                    "networking.k8s.io",
                    "ingresses ingresses/status networkpolicies",
                ),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            vec![
                r("list watch", "", "endpoints services"),
                r(READ, "", "nodes"),
                r(EVENTS, " events.k8s.io", "events"),
                r("list watch", "discovery.k8s.io", "endpointslices"),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![r(
                "create get list watch",
                "certificates.k8s.io",
                "certificatesigningrequests",
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![r(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests/nodeclient",
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![r(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests/selfnodeclient",
            )],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                r(EVENTS, " events.k8s.io", "events"),
                r("create", "coordination.k8s.io", "leases"),
                named(
                    "get update",
                    "coordination.k8s.io",
                    "leases",
                    "kube-scheduler",
                ),
                r(READ, "", "nodes namespaces"),
                r("delete get list watch", "", "pods"),
                r("create", "", "bindings pods/binding"),
                r("patch update", "", "pods/status"),
                r("list watch", "", "replicationcontrollers services"),
                r("list watch", "apps", "replicasets statefulsets"),
                r("list watch", "policy", "poddisruptionbudgets"),
                r(
                    "list watch get",
                    "",
                    "persistentvolumeclaims persistentvolumes",
                ),
                r("list watch get", "scheduling.k8s.io", "priorityclasses"),
                r("create", "authentication.k8s.io", "tokenreviews"),
                r("create", "authorization.k8s.io", "subjectaccessreviews"),
                r(
                    READ,
                    "storage.k8s.io",
                    "csinodes csidrivers csistoragecapacities storageclasses",
                ),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                r(EVENTS, " events.k8s.io", "events"),
                r("create", "coordination.k8s.io", "leases"),
                named(
                    "get update",
                    "coordination.k8s.io",
                    "leases",
                    "kube-controller-manager",
                ),
                r("create", "", "secrets serviceaccounts"),
                r("delete get update", "", "secrets"),
                r("get", "", "configmaps namespaces serviceaccounts"),
                r("update", "", "serviceaccounts"),
                r("create", "", "serviceaccounts/token"),
                r("create", "authentication.k8s.io", "tokenreviews"),
                r("create", "authorization.k8s.io", "subjectaccessreviews"),
                r("list watch", "*", "*"),
            ],
        ),
    ];
    let controllers = controller_roles();
    for (name, rules) in &controllers {
        out.push(cluster_role(
            &format!("system:controller:{name}"),
            rules.clone(),
        ));
    }
    out.extend([
        cluster_binding("cluster-admin", "cluster-admin", &["Group:system:masters"]),
        cluster_binding(
            "system:discovery",
            "system:discovery",
            &["Group:system:authenticated"],
        ),
        cluster_binding(
            "system:basic-user",
            "system:basic-user",
            &["Group:system:authenticated"],
        ),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["Group:system:authenticated", "Group:system:unauthenticated"],
        ),
        cluster_binding(
            "system:monitoring",
            "system:monitoring",
            &["Group:system:monitoring"],
        ),
        cluster_binding(
            "system:node-proxier",
            "system:node-proxier",
            &["User:system:kube-proxy"],
        ),
        cluster_binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &["User:system:kube-scheduler"],
        ),
        cluster_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &["User:system:kube-controller-manager"],
        ),
    ]);
    // tetsu's controller-manager runs every controller under its own identity (upstream's
    // --use-service-account-credentials=false): it holds every controller role.
    for (name, _) in &controllers {
        let role = format!("system:controller:{name}");
        out.push(cluster_binding(
            &role,
            &role,
            &["User:system:kube-controller-manager"],
        ));
    }
    out
}

/// What a kubelet may do; the Node authorizer narrows secrets, configmaps, claims and its own
/// Node and Lease to what its pods use.
pub fn node_rules() -> Vec<Value> {
    vec![
        r("create", "authentication.k8s.io", "tokenreviews"),
        r(
            "create",
            "authorization.k8s.io",
            "localsubjectaccessreviews subjectaccessreviews",
        ),
        r(READ, "", "services"),
        r("create get list watch", "", "nodes"),
        r("patch update", "", "nodes/status"),
        r("patch update", "", "nodes"),
        r(EVENTS, " events.k8s.io", "events"),
        r(READ, "", "pods"),
        r("create delete", "", "pods"),
        r("patch update", "", "pods/status"),
        r("create", "", "pods/eviction"),
        r(READ, "", "configmaps secrets"),
        r(
            "get",
            "",
            "persistentvolumeclaims persistentvolumes endpoints",
        ),
        r("update patch", "", "persistentvolumeclaims/status"),
        r(
            "create get list watch",
            "certificates.k8s.io",
            "certificatesigningrequests",
        ),
        r(
            "create delete get patch update",
            "coordination.k8s.io",
            "leases",
        ),
        r("create", "", "serviceaccounts/token"),
        r(READ, "storage.k8s.io", "csidrivers volumeattachments"),
        r(
            "create delete get patch update",
            "storage.k8s.io",
            "csinodes",
        ),
        r(READ, "node.k8s.io", "runtimeclasses"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_is_well_formed() {
        let objects = objects();
        let mut names = std::collections::HashSet::new();
        for o in &objects {
            let typed: Result<k8s_openapi::api::rbac::v1::ClusterRole, _> =
                serde_json::from_value(o.clone());
            let bound: Result<k8s_openapi::api::rbac::v1::ClusterRoleBinding, _> =
                serde_json::from_value(o.clone());
            assert!(typed.is_ok() || bound.is_ok(), "{o}");
            assert!(
                names.insert((o["kind"].clone(), o["metadata"]["name"].clone())),
                "{o}"
            );
        }
        assert!(
            objects
                .iter()
                .any(|o| o["metadata"]["name"] == "system:controller:deployment-controller")
        );
    }
}
