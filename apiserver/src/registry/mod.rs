//! The resource table: every kind the server serves, described once (names, scope, subresources,
//! verbs) with the strategy that defaults, validates and shapes its objects. The request handlers
//! are generic over it; adding a built-in kind is one line in [`BUILTIN`] plus its strategy, and
//! [`Resources`] adds and drops the kinds CustomResourceDefinitions define while serving.

pub mod hooks;
pub mod read;
pub mod served;
pub mod store;
pub mod strategies;
pub mod subresources;
mod target;

use std::sync::{Arc, LazyLock, OnceLock};

use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy,
    rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde_json::Value;

pub use hooks::Hooks;
pub use served::Resources;
pub use store::{FieldValidation, WriteOptions};
pub use strategies::Strategy;
pub use target::Target;

use crate::patch::schema::PatchSchema;

/// One served resource (one version of it).
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    /// The plural name used in URLs, e.g. `deployments`.
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Subresources served beside the main resource, e.g. `status`, `scale`, `binding`.
    pub subresources: &'static [&'static str],
    pub strategy: StrategyRef,
    /// What the kind does around a write with the server's state (most kinds: nothing).
    pub hooks: &'static dyn Hooks,
    /// Its columns in server-side tables (`kubectl get`).
    pub printer: crate::table::Printer,
    /// Parses into the typed struct and back: rejects wrongly typed fields and normalizes JSON
    /// (None: a custom resource, kept as its strategy leaves it).
    normalize: Option<Normalize>,
    /// The JSON schema of the kind.
    pub schema: Schema,
    /// Builds the strategic-merge-patch metadata of the kind (cached by `patch_schema`); None
    /// for custom resources, which take no strategic merge patch.
    build_patch_schema: Option<fn() -> PatchSchema>,
    patch_schema: OnceLock<PatchSchema>,
    /// Where its objects are kept below the store's root: `apps/deployments`, `pods`.
    storage_path: String,
    /// The apiVersion its objects are stored in, when that may differ from its own (a
    /// custom resource's served version other than the storage version).
    storage_api_version: Option<String>,
}

/// Round-trips an object through its typed struct.
type Normalize = fn(&Value) -> Result<Value, serde_json::Error>;

/// A kind's strategy: a built-in's static one, or one a CustomResourceDefinition made.
#[derive(Clone)]
pub enum StrategyRef {
    Static(&'static dyn Strategy),
    Owned(Arc<dyn Strategy>),
}

impl std::ops::Deref for StrategyRef {
    type Target = dyn Strategy;
    fn deref(&self) -> &(dyn Strategy + 'static) {
        match self {
            StrategyRef::Static(s) => *s,
            StrategyRef::Owned(s) => &**s,
        }
    }
}

/// Where a kind's JSON schema comes from.
pub enum Schema {
    /// k8s-openapi's schemars support, for a built-in kind.
    Typed(fn(&mut schemars::SchemaGenerator) -> schemars::Schema),
    /// A CustomResourceDefinition's openAPIV3Schema (or None when it declares none), shared
    /// with the kind's strategy.
    Custom(Option<Arc<JSONSchemaProps>>),
}

impl std::fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.plural)
    }
}

impl ResourceInfo {
    /// Whether its objects have a protobuf form: built-in kinds have, custom resources not.
    pub fn has_protobuf(&self) -> bool {
        self.normalize.is_some()
    }

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
        format!("{root}/{}/", self.storage_path)
    }

    /// Where its objects are kept below the store's root (`apps/deployments`; every version
    /// of a resource shares it).
    pub fn storage_path(&self) -> &str {
        &self.storage_path
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }

    /// Objects of this resource are stored in `version` of its group.
    pub fn set_storage_version(&mut self, version: &str) {
        self.storage_api_version = Some(format!("{}/{version}", self.group));
    }

    /// The apiVersion its objects are stored in, if not always its own.
    pub fn storage_api_version(&self) -> Option<&str> {
        self.storage_api_version.as_deref()
    }

    /// Shows a stored object in this resource's version (conversion `None`: its apiVersion).
    pub fn to_served(&self, obj: &mut Value) {
        if !self.is_custom() {
            return;
        }
        let own = self.api_version();
        if obj.get("apiVersion").and_then(Value::as_str) != Some(own.as_str())
            && let Some(m) = obj.as_object_mut()
        {
            m.insert("apiVersion".into(), Value::String(own));
        }
    }

    /// A cached object as this resource's version shows it: itself unless it was stored in
    /// another version of a custom resource.
    pub fn served_object(
        &self,
        object: &Arc<crate::cache::CachedObject>,
    ) -> Arc<crate::cache::CachedObject> {
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(rename = "apiVersion", borrow)]
            api_version: std::borrow::Cow<'a, str>,
        }
        if !self.is_custom() {
            return object.clone();
        }
        let own = self.api_version();
        match serde_json::from_slice::<Head>(&object.bytes) {
            Ok(head) if head.api_version != own => {
                let mut value = object.value();
                self.to_served(&mut value);
                match serde_json::to_vec(&value) {
                    Ok(bytes) => Arc::new(object.with_bytes(bytes.into())),
                    Err(_) => object.clone(),
                }
            }
            _ => object.clone(),
        }
    }

    /// The kind's shapes for server-side apply: its list and map markers, or its schema's.
    pub fn apply_types(&self) -> Box<dyn crate::apply::typed::Types> {
        match &self.schema {
            Schema::Typed(_) => Box::new(crate::apply::typed::Builtin {
                kind: builtin_kind(&self.kind),
            }),
            Schema::Custom(schema) => Box::new(crate::apply::typed::Structural {
                root: schema.clone(),
            }),
        }
    }

    /// Whether the kind is a CustomResourceDefinition's.
    pub fn is_custom(&self) -> bool {
        matches!(self.schema, Schema::Custom(_))
    }

    /// The kind's strategic-merge-patch metadata, built on first use; None for a custom
    /// resource.
    pub fn patch_schema(&self) -> Option<&PatchSchema> {
        let build = self.build_patch_schema?;
        Some(self.patch_schema.get_or_init(build))
    }

    /// The kind upstream's OpenAPI document declares for DELETE's answer: the resource's own
    /// where its storage returns the deleted object, else `Status`. Upstream's namespace REST
    /// wraps its store without reporting the store's flag, so namespaces declare a Status,
    /// though every answer is in fact the Namespace.
    pub fn delete_answer_kind(&self) -> &str {
        let namespaces = self.group.is_empty() && self.plural == "namespaces";
        if self.strategy.returns_deleted_object() && !namespaces {
            &self.kind
        } else {
            "Status"
        }
    }

    /// The same resource with `hooks`.
    fn with_hooks(self, hooks: &'static dyn Hooks) -> ResourceInfo {
        ResourceInfo { hooks, ..self }
    }

    /// Round-trips `obj` through the typed struct (a custom resource: pruned by its schema).
    /// Errors are type errors in the body.
    pub fn normalize(&self, obj: &Value) -> Result<Value, serde_json::Error> {
        match self.normalize {
            Some(normalize) => normalize(obj),
            None => Ok(self.strategy.prune(obj)),
        }
    }

    /// The served description of a CustomResourceDefinition's version.
    #[allow(clippy::too_many_arguments)]
    pub fn custom(
        names: CustomNames,
        version: &str,
        namespaced: bool,
        subresources: &'static [&'static str],
        strategy: Arc<dyn Strategy>,
        schema: Option<Arc<JSONSchemaProps>>,
    ) -> ResourceInfo {
        ResourceInfo {
            storage_api_version: None,
            printer: crate::table::printer(&names.group, &names.plural),
            storage_path: format!("{}/{}", names.group, names.plural),
            group: names.group,
            version: version.to_owned(),
            kind: names.kind,
            list_kind: names.list_kind,
            plural: names.plural,
            singular: names.singular,
            short_names: names.short_names,
            categories: names.categories,
            namespaced,
            subresources,
            strategy: StrategyRef::Owned(strategy),
            hooks: &hooks::NONE,
            normalize: None,
            schema: Schema::Custom(schema),
            build_patch_schema: None,
            patch_schema: OnceLock::new(),
        }
    }
}

/// The names a CustomResourceDefinition gives its kind (spec.group and spec.names).
#[derive(Clone, Debug, Default)]
pub struct CustomNames {
    pub group: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
}

/// A built-in kind's name as a static string (the shapes table matches on it).
fn builtin_kind(kind: &str) -> &'static str {
    BUILTIN
        .iter()
        .find(|r| r.kind == kind)
        .map_or("", |r| r.kind.as_str())
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
    short_names: &[&str],
    categories: &[&str],
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
    let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    ResourceInfo {
        group: K::GROUP.to_owned(),
        version: K::VERSION.to_owned(),
        kind: K::KIND.to_owned(),
        list_kind: K::LIST_KIND.to_owned(),
        plural: K::URL_PATH_SEGMENT.to_owned(),
        singular: K::KIND.to_lowercase(),
        short_names: owned(short_names),
        categories: owned(categories),
        namespaced: <K::Scope as Scope>::NAMESPACED,
        subresources,
        strategy: StrategyRef::Static(strategy),
        hooks: &hooks::NONE,
        printer: crate::table::printer(K::GROUP, K::URL_PATH_SEGMENT),
        normalize: Some(normalize::<K>),
        schema: Schema::Typed(schema::<K>),
        build_patch_schema: Some(PatchSchema::for_kind::<K>),
        patch_schema: OnceLock::new(),
        storage_path: if K::GROUP.is_empty() {
            K::URL_PATH_SEGMENT.to_owned()
        } else {
            format!("{}/{}", K::GROUP, K::URL_PATH_SEGMENT)
        },
        storage_api_version: None,
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

/// Every built-in resource, in discovery order.
pub static BUILTIN: LazyLock<Vec<Arc<ResourceInfo>>> = LazyLock::new(|| {
    use strategies::*;
    [
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
        resource::<CustomResourceDefinition>(
            &["crd", "crds"],
            &["api-extensions"],
            STATUS,
            &crate::crd::DEFINITIONS,
        ),
        resource::<certificates::CertificateSigningRequest>(
            &["csr"],
            NONE,
            &["status", "approval"],
            &CSRS,
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect()
});

/// Finds a built-in resource by group, version and plural name (those a CRD adds are found
/// through [`Resources`]).
pub fn builtin(group: &str, version: &str, plural: &str) -> Option<&'static Arc<ResourceInfo>> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}
