//! The resource table: every kind the server serves, described once (names, scope, subresources,
//! verbs) with the strategy that defaults, validates and shapes its objects. The request handlers
//! are generic over it; adding a built-in kind is one line in [`RESOURCES`] plus its strategy.

pub mod hooks;
pub mod read;
pub mod store;
pub mod strategies;
pub mod subresources;
mod target;

use std::sync::{LazyLock, OnceLock};

use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy,
    rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use serde_json::Value;

pub use hooks::Hooks;
pub use store::{FieldValidation, WriteOptions};
pub use strategies::Strategy;
pub use target::Target;

use crate::patch::schema::PatchSchema;

/// One served resource.
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The plural name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    pub singular: String,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    /// Subresources served beside the main resource, e.g. `status`, `scale`, `binding`.
    pub subresources: &'static [&'static str],
    pub strategy: &'static dyn Strategy,
    /// What the kind does around a write with the server's state (most kinds: nothing).
    pub hooks: &'static dyn Hooks,
    /// Its columns in server-side tables (`kubectl get`).
    pub printer: crate::table::Printer,
    /// Parses into the typed struct and back: rejects wrongly typed fields and normalizes JSON.
    normalize: fn(&Value) -> Result<Value, serde_json::Error>,
    /// The JSON schema of the kind (from k8s-openapi's schemars support).
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// Builds the strategic-merge-patch metadata of the kind (cached by `patch_schema`).
    build_patch_schema: fn() -> PatchSchema,
    patch_schema: OnceLock<PatchSchema>,
}

impl std::fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.plural)
    }
}

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store key prefix of all objects of this resource (ends with `/`), under `root`.
    pub fn key_prefix(&self, root: &str) -> String {
        if self.group.is_empty() {
            format!("{root}/{}/", self.plural)
        } else {
            format!("{root}/{}/{}/", self.group, self.plural)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }

    /// The kind's strategic-merge-patch metadata, built on first use.
    pub fn patch_schema(&self) -> &PatchSchema {
        self.patch_schema.get_or_init(self.build_patch_schema)
    }

    /// The kind upstream's OpenAPI document declares for DELETE's answer: the resource's own
    /// where its storage returns the deleted object, else `Status`. Upstream's namespace REST
    /// wraps its store without reporting the store's flag, so namespaces declare a Status,
    /// though every answer is in fact the Namespace.
    pub fn delete_answer_kind(&self) -> &'static str {
        let namespaces = self.group.is_empty() && self.plural == "namespaces";
        if self.strategy.returns_deleted_object() && !namespaces {
            self.kind
        } else {
            "Status"
        }
    }

    /// The same resource with `hooks`.
    fn with_hooks(self, hooks: &'static dyn Hooks) -> ResourceInfo {
        ResourceInfo { hooks, ..self }
    }

    /// Round-trips `obj` through the typed struct. Errors are type errors in the body.
    pub fn normalize(&self, obj: &Value) -> Result<Value, serde_json::Error> {
        (self.normalize)(obj)
    }
}

/// Whether a k8s-openapi scope marker is namespaced.
trait Scope {
    const NAMESPACED: bool;
}
impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn normalize<K: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, serde_json::Error> {
    // Deserializing from a borrowed Value spares copying the object first.
    let typed = K::deserialize(v)?;
    serde_json::to_value(typed)
}

fn schema<K: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<K>()
}

fn resource<K>(
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    strategy: &'static dyn Strategy,
) -> ResourceInfo
where
    K: k8s_openapi::Resource
        + k8s_openapi::ListableResource
        + serde::de::DeserializeOwned
        + serde::Serialize
        + schemars::JsonSchema,
    K::Scope: Scope,
{
    ResourceInfo {
        group: K::GROUP,
        version: K::VERSION,
        kind: K::KIND,
        list_kind: K::LIST_KIND,
        plural: K::URL_PATH_SEGMENT,
        singular: K::KIND.to_lowercase(),
        short_names,
        categories,
        namespaced: <K::Scope as Scope>::NAMESPACED,
        subresources,
        strategy,
        hooks: &hooks::NONE,
        printer: crate::table::printer(K::GROUP, K::URL_PATH_SEGMENT),
        normalize: normalize::<K>,
        schema: schema::<K>,
        build_patch_schema: PatchSchema::for_kind::<K>,
        patch_schema: OnceLock::new(),
    }
}

const ALL: &[&str] = &["all"];
const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["status", "scale"];
const NONE: &[&str] = &[];
const POD_SUBRESOURCES: &[&str] = &[
    "status",
    "binding",
    "eviction",
    "log",
    "exec",
    "attach",
    "portforward",
];

/// Every resource the server serves, in discovery order.
pub static RESOURCES: LazyLock<Vec<ResourceInfo>> = LazyLock::new(|| {
    use strategies::*;
    vec![
        resource::<core::Namespace>(&["ns"], NONE, &["status", "finalize"], &NAMESPACES)
            .with_hooks(&hooks::NAMESPACES),
        resource::<core::Pod>(&["po"], ALL, POD_SUBRESOURCES, &PODS),
        resource::<core::Node>(&["no"], NONE, &["status", "proxy"], &NODES),
        resource::<core::Service>(&["svc"], ALL, STATUS, &SERVICES).with_hooks(&hooks::SERVICES),
        resource::<core::Endpoints>(&["ep"], NONE, NONE, &ENDPOINTS),
        resource::<core::ConfigMap>(&["cm"], NONE, NONE, &CONFIG_MAPS),
        resource::<core::Secret>(NONE, NONE, NONE, &SECRETS),
        resource::<core::ServiceAccount>(&["sa"], NONE, NONE, &SERVICE_ACCOUNTS),
        resource::<core::Event>(&["ev"], NONE, NONE, &EVENTS),
        resource::<core::LimitRange>(&["limits"], NONE, NONE, &LIMIT_RANGES),
        resource::<core::ResourceQuota>(&["quota"], NONE, STATUS, &RESOURCE_QUOTAS),
        resource::<core::ReplicationController>(&["rc"], ALL, STATUS_SCALE, &WORKLOADS),
        resource::<core::PersistentVolume>(&["pv"], NONE, STATUS, &VOLUMES),
        resource::<core::PersistentVolumeClaim>(&["pvc"], NONE, STATUS, &CLAIMS),
        resource::<apps::Deployment>(&["deploy"], ALL, STATUS_SCALE, &DEPLOYMENTS),
        resource::<apps::ReplicaSet>(&["rs"], ALL, STATUS_SCALE, &WORKLOADS),
        resource::<apps::StatefulSet>(&["sts"], ALL, STATUS_SCALE, &STATEFULSETS),
        resource::<apps::DaemonSet>(&["ds"], ALL, STATUS, &DAEMONSETS),
        resource::<apps::ControllerRevision>(NONE, NONE, NONE, &CONTROLLER_REVISIONS),
        resource::<batch::Job>(NONE, ALL, STATUS, &JOBS),
        resource::<batch::CronJob>(&["cj"], ALL, STATUS, &CRONJOBS),
        resource::<discovery::EndpointSlice>(NONE, NONE, NONE, &ENDPOINT_SLICES),
        resource::<coordination::Lease>(NONE, NONE, NONE, &LEASES),
        resource::<events::Event>(&["ev"], NONE, NONE, &NEW_EVENTS),
        resource::<policy::PodDisruptionBudget>(&["pdb"], NONE, STATUS, &BUDGETS),
        resource::<networking::NetworkPolicy>(&["netpol"], NONE, NONE, &NETWORK_POLICIES),
        resource::<networking::Ingress>(&["ing"], NONE, STATUS, &INGRESSES),
        resource::<networking::IngressClass>(NONE, NONE, NONE, &INGRESS_CLASSES),
        resource::<rbac::Role>(NONE, NONE, NONE, &ROLES),
        resource::<rbac::RoleBinding>(NONE, NONE, NONE, &ROLE_BINDINGS),
        resource::<rbac::ClusterRole>(NONE, NONE, NONE, &CLUSTER_ROLES),
        resource::<rbac::ClusterRoleBinding>(NONE, NONE, NONE, &CLUSTER_ROLE_BINDINGS),
        resource::<scheduling::PriorityClass>(&["pc"], NONE, NONE, &PRIORITY_CLASSES),
        resource::<node::RuntimeClass>(NONE, NONE, NONE, &RUNTIME_CLASSES),
        resource::<storage::StorageClass>(&["sc"], NONE, NONE, &STORAGE_CLASSES),
        resource::<certificates::CertificateSigningRequest>(
            &["csr"],
            NONE,
            &["status", "approval"],
            &CSRS,
        ),
    ]
});

/// Finds a served resource by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds the resource serving `apiVersion` and `kind`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The served group versions, `v1` first, in discovery order: (group, version).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
