//! The audit policy kubeadm gives the apiserver (`--audit-policy-file`), and where the log
//! goes: who read or changed what, without the noise of heartbeats and health checks and
//! without the content of Secrets. Upstream kubeadm leaves auditing off.

use std::path::PathBuf;

use crate::config::Layout;

/// Rules in order; the first that matches decides.
pub const DEFAULT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
# ResponseComplete holds everything RequestReceived would: one event per request.
omitStages: [RequestReceived]
rules:
# Node heartbeats: each kubelet renews its Lease every 10 s and posts its status.
- level: None
  userGroups: ["system:nodes"]
  verbs: [get, update, patch]
  namespaces: [kube-node-lease]
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: None
  userGroups: ["system:nodes"]
  verbs: [get, update, patch]
  resources: [{group: "", resources: [nodes/status]}]
# Leader election of the controller-manager and the scheduler (every 2 s).
- level: None
  users: ["system:kube-controller-manager", "system:kube-scheduler"]
  verbs: [get, update]
  namespaces: [kube-system]
  resources: [{group: coordination.k8s.io, resources: [leases]}]
# Health checks, version probes and scrapes.
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/version/", "/metrics"]
# Credentials: who and when, never the content.
- level: Metadata
  resources:
  - {group: "", resources: [secrets, configmaps]}
  - {group: authentication.k8s.io, resources: [tokenreviews]}
# Who may do what: every change in full.
- level: RequestResponse
  verbs: [create, update, patch, delete, deletecollection]
  resources: [{group: rbac.authorization.k8s.io}]
- level: Metadata
"#;

/// The apiserver's audit flags: the policy, and a log rotated at 100 MB keeping 10 backups.
pub fn apiserver_args(layout: &Layout) -> Vec<String> {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    vec![
        "--audit-policy-file".into(),
        path(layout.audit_policy()),
        "--audit-log-path".into(),
        path(layout.audit_log()),
        "--audit-log-maxsize".into(),
        "100".into(),
        "--audit-log-maxbackup".into(),
        "10".into(),
    ]
}

/// Writes the default policy unless a policy is there already (an edited one is kept);
/// answers whether it wrote it.
pub fn write_policy(layout: &Layout) -> anyhow::Result<bool> {
    let path = layout.audit_policy();
    common::files::create_private_dir(&layout.pki())?;
    Ok(common::files::create_private(
        &path,
        DEFAULT_POLICY.as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver::audit::policy::{Level, Policy, Stage};
    use apiserver::auth::UserInfo;
    use apiserver::auth::attributes::Attributes;

    #[test]
    fn the_default_policy_records_what_matters() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        assert!(write_policy(&layout).unwrap());
        std::fs::write(layout.audit_policy(), "edited").unwrap();
        assert!(!write_policy(&layout).unwrap(), "an edited policy is kept");
        std::fs::remove_file(layout.audit_policy()).unwrap();
        write_policy(&layout).unwrap();
        let policy = Policy::load(&layout.audit_policy()).unwrap();

        let kubelet = UserInfo::new("system:node:n1", vec!["system:nodes".into()]);
        let admin = UserInfo::new("kubernetes-admin", vec!["kubeadm:cluster-admins".into()]);
        let scheduler = UserInfo::new("system:kube-scheduler", vec![]);
        let check = |user: &UserInfo, method: &str, path: &str, expected: Level| {
            let attrs = Attributes::from_request(method, path, "");
            let decided = policy.evaluate(user, &attrs);
            assert_eq!(decided.level, expected, "{} {method} {path}", user.name);
            if expected != Level::None {
                assert!(!decided.records(Stage::RequestReceived));
            }
        };
        let lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";
        check(&kubelet, "PUT", lease, Level::None);
        check(&kubelet, "PATCH", "/api/v1/nodes/n1/status", Level::None);
        check(
            &kubelet,
            "GET",
            "/api/v1/namespaces/a/secrets/s",
            Level::Metadata,
        );
        let election = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler";
        check(&scheduler, "PUT", election, Level::None);
        check(&admin, "GET", "/healthz", Level::None);
        check(&admin, "GET", "/readyz/etcd", Level::None);
        check(&admin, "GET", "/metrics", Level::None);
        check(
            &admin,
            "POST",
            "/api/v1/namespaces/a/secrets",
            Level::Metadata,
        );
        check(
            &admin,
            "PUT",
            "/api/v1/namespaces/a/configmaps/c",
            Level::Metadata,
        );
        let review = "/apis/authentication.k8s.io/v1/tokenreviews";
        check(&admin, "POST", review, Level::Metadata);
        let binding = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
        check(&admin, "POST", binding, Level::RequestResponse);
        check(&admin, "GET", binding, Level::Metadata);
        check(
            &admin,
            "DELETE",
            &format!("{binding}/b"),
            Level::RequestResponse,
        );
        check(&admin, "POST", "/api/v1/namespaces/a/pods", Level::Metadata);
        check(&kubelet, "PUT", "/api/v1/nodes/n1", Level::Metadata);
    }
}
