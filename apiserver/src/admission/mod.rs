//! Admission: what upstream's admission plugins decide about a write, in upstream's order.
//! NamespaceLifecycle (no content in a missing or terminating namespace, `default`,
//! `kube-system` and `kube-public` never deleted; the checks live in the write handlers),
//! [`limit_ranger`] (LimitRange defaults and bounds), TaintNodesByCondition (new nodes start
//! tainted not-ready), ServiceAccount and Priority (here: the
//! pod's service account, its token volume and image pull secrets; priorityClassName to
//! spec.priority), then the validating [`pod_security`] (the Pod Security Standards a
//! namespace's labels choose), [`runtime_class`] (its overhead and scheduling),
//! [`default_class`] (the default StorageClass and IngressClass), the [`certificates`]
//! plugins (who may approve, sign and ask for what), and last [`resource_quota`] (refuses
//! what would exceed a quota, charges the quota). [`Plugins`] says which run
//! (--enable-admission-plugins,
//! --disable-admission-plugins).

pub mod certificates;
pub mod claim_resize;
pub mod default_class;
pub mod limit_ranger;
pub mod pod_security;
pub mod resource_quota;
pub mod runtime_class;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::meta;
use crate::registry;
use crate::registry::Target;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// The admission plugins that can be switched off, by upstream's names. The other admission
/// behaviour tetsu has (NodeRestriction, DefaultTolerationSeconds) always runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugins {
    pub namespace_lifecycle: bool,
    pub limit_ranger: bool,
    pub taint_nodes_by_condition: bool,
    pub service_account: bool,
    pub priority: bool,
    pub runtime_class: bool,
    pub default_storage_class: bool,
    pub default_ingress_class: bool,
    pub storage_object_in_use_protection: bool,
    pub claim_resize: bool,
    pub certificates: certificates::Enabled,
    pub pod_security: bool,
    /// PodSecurity's defaults and exemptions (--admission-control-config-file).
    pub pod_security_config: std::sync::Arc<pod_security::Configuration>,
    pub resource_quota: bool,
}

/// Plugin names upstream knows that tetsu does as part of other code or not at all: accepted
/// in the flags (kubeadm passes `--enable-admission-plugins=NodeRestriction`), switching nothing.
const ALWAYS_ON: &[&str] = &["NodeRestriction", "DefaultTolerationSeconds"];

/// Namespaces NamespaceLifecycle never lets go.
pub const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

impl Plugins {
    /// upstream's default set, as the kube-apiserver binary starts.
    pub fn upstream() -> Plugins {
        Plugins {
            namespace_lifecycle: true,
            limit_ranger: true,
            taint_nodes_by_condition: true,
            service_account: true,
            priority: true,
            runtime_class: true,
            default_storage_class: true,
            default_ingress_class: true,
            storage_object_in_use_protection: true,
            claim_resize: true,
            certificates: certificates::Enabled {
                approval: true,
                signing: true,
                subject_restriction: true,
            },
            pod_security: true,
            pod_security_config: Default::default(),
            resource_quota: true,
        }
    }

    /// upstream's default set with `enable` added and `disable` taken away; a name in both
    /// is an error, as upstream's. Names tetsu does not implement are logged and ignored.
    pub fn from_flags(enable: &[String], disable: &[String]) -> Result<Plugins, String> {
        let mut plugins = Plugins::upstream();
        for name in enable.iter().chain(disable) {
            if enable.contains(name) && disable.contains(name) {
                return Err(format!(
                    "{name} was found in both --enable-admission-plugins and --disable-admission-plugins"
                ));
            }
            let on = enable.contains(name);
            match name.as_str() {
                "NamespaceLifecycle" => plugins.namespace_lifecycle = on,
                "LimitRanger" => plugins.limit_ranger = on,
                "TaintNodesByCondition" => plugins.taint_nodes_by_condition = on,
                "ServiceAccount" => plugins.service_account = on,
                "Priority" => plugins.priority = on,
                "PodSecurity" => plugins.pod_security = on,
                "ResourceQuota" => plugins.resource_quota = on,
                "RuntimeClass" => plugins.runtime_class = on,
                "DefaultStorageClass" => plugins.default_storage_class = on,
                "DefaultIngressClass" => plugins.default_ingress_class = on,
                "StorageObjectInUseProtection" => plugins.storage_object_in_use_protection = on,
                "PersistentVolumeClaimResize" => plugins.claim_resize = on,
                "CertificateApproval" => plugins.certificates.approval = on,
                "CertificateSigning" => plugins.certificates.signing = on,
                "CertificateSubjectRestriction" => plugins.certificates.subject_restriction = on,
                n if ALWAYS_ON.contains(&n) => {}
                n => tracing::warn!(plugin = n, "admission plugin not implemented; ignored"),
            }
        }
        Ok(plugins)
    }

    /// The plugins' configuration from --admission-control-config-file, when given.
    pub fn with_config_file(mut self, path: Option<&std::path::Path>) -> Result<Plugins, String> {
        if let Some(path) = path {
            let config = pod_security::Configuration::load(path)?;
            self.pod_security_config = std::sync::Arc::new(config);
        }
        Ok(self)
    }
}

/// What an in-process server (tests, benchmarks) runs: Priority, not ServiceAccount. No
/// controller creates the `default` service accounts there, so every pod would be refused;
/// upstream's integration tests run `--disable-admission-plugins=ServiceAccount` likewise.
impl Default for Plugins {
    fn default() -> Plugins {
        Plugins {
            service_account: false,
            // No node lifecycle controller lifts the not-ready taint of nodes that tests
            // and benchmarks create; upstream's scheduler_perf turns it off likewise.
            taint_nodes_by_condition: false,
            // Its finalizers would keep deleted claims and volumes: no pvc-protection or
            // pv-protection controller runs beside an in-process server either.
            storage_object_in_use_protection: false,
            ..Plugins::upstream()
        }
    }
}

/// The mutating plugins on a create, in upstream's order (NamespaceLifecycle has run): the
/// pod's LimitRanger defaults, ServiceAccount, Priority and RuntimeClass; the storage
/// objects' protection finalizers; the default StorageClass and IngressClass.
pub async fn mutate_create(state: &ApiState, target: &Target, obj: &mut Value) -> ApiResult<()> {
    let resource = &*target.resource;
    let enabled = &state.admission;
    match (resource.group.as_str(), resource.plural.as_str()) {
        ("", "pods") => {
            if enabled.limit_ranger {
                limit_ranger::admit_pod(state, &target.namespace, obj)?;
            }
            if enabled.service_account {
                service_account(state, &target.namespace, obj).await?;
            }
            if enabled.priority {
                pod_priority(state, obj)?;
            }
            if enabled.runtime_class {
                runtime_class::admit_pod(state, obj)?;
            }
        }
        ("", "nodes") if enabled.taint_nodes_by_condition => taint_not_ready(obj),
        ("", "persistentvolumeclaims") if enabled.default_storage_class => {
            default_class::storage_class(state, obj);
        }
        ("networking.k8s.io", "ingresses") if enabled.default_ingress_class => {
            default_class::ingress_class(state, obj);
        }
        _ => {}
    }
    if enabled.storage_object_in_use_protection {
        protect_storage_object(resource, obj);
    }
    Ok(())
}

/// The validating plugins on a create (`old` None) or update, after the object's own
/// validation, in upstream's order: PodSecurity, PersistentVolumeClaimResize, LimitRanger's
/// claim bounds, and last ResourceQuota, which charges the quota unless `dry_run`. An update
/// of a subresource, or of an object being deleted, meets PodSecurity only. The warnings to
/// answer with.
pub async fn validate(
    state: &Arc<ApiState>,
    target: &Target,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> ApiResult<Vec<String>> {
    let enabled = &state.admission;
    let mut warnings = Vec::new();
    if enabled.pod_security {
        warnings = pod_security::admit(state, target, obj, old).await?;
    }
    if !target.subresource.is_empty() || old.is_some_and(meta::is_terminating) {
        return Ok(warnings);
    }
    let resource = &*target.resource;
    if resource.group.is_empty() && resource.plural == "persistentvolumeclaims" {
        if let Some(old) = old
            && enabled.claim_resize
        {
            claim_resize::admit(state, obj, old)?;
        }
        if enabled.limit_ranger {
            limit_ranger::admit_claim(state, &target.namespace, obj)?;
        }
    }
    if enabled.resource_quota {
        resource_quota::admit(state, target, obj, old, dry_run).await?;
    }
    Ok(warnings)
}

/// The taint a new node starts with (TaintNodesByCondition): nothing is scheduled there
/// until the node lifecycle controller sees it Ready and lifts it.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// Upstream's TaintNodesByCondition: a node is created with the not-ready NoSchedule taint
/// (unless it has it already), so no pod lands on it before its kubelet reports Ready.
pub fn taint_not_ready(node: &mut Value) {
    let spec = meta::object_at(node, &["spec"]);
    let taints = spec.entry("taints").or_insert_with(|| json!([]));
    if !taints.is_array() {
        // Validation refuses it with the field's message.
        return;
    }
    let list = taints.as_array_mut().expect("checked");
    let present = list
        .iter()
        .any(|t| t["key"] == NOT_READY_TAINT && t["effect"] == "NoSchedule");
    if !present {
        list.push(json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"}));
    }
}

/// Upstream's StorageObjectInUseProtection: claims and volumes are created with the
/// finalizer the pvc-protection and pv-protection controllers lift once nothing uses them.
pub fn protect_storage_object(resource: &registry::ResourceInfo, obj: &mut Value) {
    let finalizer = match (resource.group.as_str(), resource.plural.as_str()) {
        ("", "persistentvolumeclaims") => "kubernetes.io/pvc-protection",
        ("", "persistentvolumes") => "kubernetes.io/pv-protection",
        _ => return,
    };
    let metadata = meta::object_at(obj, &["metadata"]);
    let finalizers = metadata.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

/// Where every container finds its service-account token, the cluster's CA and its namespace.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name is this plus five random characters.
const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// The lifetime the token volume asks for: upstream's 3607 s, one hour plus a marker the
/// apiserver may use to issue longer-lived tokens and warn when old ones are used.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// Marks a mirror pod (a static pod's copy in the API, created by its kubelet).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// A service account with this annotation "true" limits the pod to the secrets it lists.
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";

/// upstream's ServiceAccount admission on create: spec.serviceAccountName defaults to
/// `default`, the account must exist, its token, CA and namespace are mounted into every
/// container (unless automountServiceAccountToken is false on the pod, or else on the
/// account), and its imagePullSecrets are the pod's when the pod names none. Mirror pods are
/// left as they are but may not use service accounts or secrets.
pub async fn service_account(state: &ApiState, namespace: &str, pod: &mut Value) -> ApiResult<()> {
    let pod_name = meta::name(pod).to_owned();
    let forbidden = |why: &str| ApiError::forbidden("", "pods", &pod_name, why);
    if pod["metadata"]["annotations"]
        .get(MIRROR_ANNOTATION)
        .is_some()
    {
        return mirror_references(&pod["spec"]).map_err(forbidden);
    }
    let spec = meta::object_at(pod, &["spec"]);
    let named = |field: &str| {
        spec.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    // The deprecated serviceAccount names the account when serviceAccountName does not.
    let account_name = named("serviceAccountName")
        .or_else(|| named("serviceAccount"))
        .unwrap_or_else(|| "default".to_owned());
    spec.insert("serviceAccountName".into(), json!(account_name));
    let account = lookup_service_account(state, namespace, &account_name)
        .await
        .map_err(|e| {
            forbidden(&format!(
                "error looking up service account {namespace}/{account_name}: {e}"
            ))
        })?;
    if should_automount(spec, &account) {
        mount_token(spec);
    }
    let no_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_pull_secrets
        && let Some(secrets) = account["imagePullSecrets"]
            .as_array()
            .filter(|s| !s.is_empty())
    {
        let names: Vec<Value> = secrets
            .iter()
            .map(|s| json!({ "name": s["name"] }))
            .collect();
        spec.insert("imagePullSecrets".into(), Value::Array(names));
    }
    if enforces_mountable_secrets(&account) {
        limit_secret_references(&pod["spec"], &account).map_err(|why| forbidden(&why))?;
    }
    Ok(())
}

/// The service account from the watch cache or, when it is not there (yet), from the store;
/// `default` is asked for ten times over about 1.5 s, since the service-account controller
/// creates it just after its namespace.
async fn lookup_service_account(
    state: &ApiState,
    namespace: &str,
    name: &str,
) -> Result<Value, String> {
    let accounts = registry::builtin("", "v1", "serviceaccounts").expect("served");
    let key = format!("{}{namespace}/{name}", accounts.key_prefix(&state.root));
    if let Some(found) = state.cache.get(accounts, &key) {
        return Ok(found.value());
    }
    let attempts = if name == "default" { 10 } else { 1 };
    let pause = Duration::from_millis(rand::random_range(100..200));
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(pause).await;
        }
        match state.store.get(&key).await {
            Ok(Some(kv)) => return serde_json::from_slice(&kv.value).map_err(|e| e.to_string()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("serviceaccount {name:?} not found"))
}

/// The pod's automountServiceAccountToken wins, then the account's; true when neither says.
fn should_automount(spec: &Map<String, Value>, account: &Value) -> bool {
    spec.get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// Mounts the token volume at [`SERVICE_ACCOUNT_MOUNT_PATH`] in every init and app container
/// that mounts nothing there, adding the volume when one of them needs it and the pod has no
/// `kube-api-access-*` volume yet.
fn mount_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with(TOKEN_VOLUME_PREFIX))
        .map(String::from);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| meta::generate_name(TOKEN_VOLUME_PREFIX));
    let mount = json!({
        "name": volume_name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH,
    });
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for c in containers
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if !mounts
                .iter()
                .any(|m| m["mountPath"] == SERVICE_ACCOUNT_MOUNT_PATH)
            {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if existing.is_none() && needed {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(token_volume(&volume_name));
        }
    }
}

/// The projected volume of a pod's API access: a bound token, the cluster's CA (the
/// kube-root-ca.crt ConfigMap every namespace has) and the pod's namespace.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// A mirror pod must not reach what its kubelet could not vouch for: no service account,
/// no secret, no service-account token projection.
fn mirror_references(spec: &Value) -> Result<(), &'static str> {
    if spec["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("a mirror pod may not reference service accounts");
    }
    if secret_references(spec).next().is_some() {
        return Err("a mirror pod may not reference secrets");
    }
    let projections = list(&spec["volumes"]).flat_map(|v| list(&v["projected"]["sources"]));
    if projections
        .into_iter()
        .any(|s| s.get("serviceAccountToken").is_some_and(Value::is_object))
    {
        return Err("a mirror pod may not use ServiceAccountToken volume projections");
    }
    Ok(())
}

fn list(v: &Value) -> impl Iterator<Item = &Value> + Clone {
    v.as_array().into_iter().flatten()
}

/// Every Secret name the pod spec refers to: volumes, projections, env, envFrom, pull secrets.
fn secret_references(spec: &Value) -> impl Iterator<Item = &str> {
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |l| list(&spec[l]));
    let volumes = list(&spec["volumes"]).flat_map(|v| {
        std::iter::once(&v["secret"]["secretName"])
            .chain(list(&v["projected"]["sources"]).map(|s| &s["secret"]["name"]))
    });
    let env = containers.flat_map(|c| {
        list(&c["env"])
            .map(|e| &e["valueFrom"]["secretKeyRef"]["name"])
            .chain(list(&c["envFrom"]).map(|e| &e["secretRef"]["name"]))
    });
    let pull = list(&spec["imagePullSecrets"]).map(|s| &s["name"]);
    volumes.chain(env).chain(pull).filter_map(Value::as_str)
}

/// The account's `kubernetes.io/enforce-mountable-secrets` annotation, read as Go's ParseBool.
fn enforces_mountable_secrets(account: &Value) -> bool {
    matches!(
        account["metadata"]["annotations"][ENFORCE_MOUNTABLE_SECRETS].as_str(),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// With mountable secrets enforced, the pod may use only the secrets its account lists
/// (and only its image pull secrets to pull).
fn limit_secret_references(spec: &Value, account: &Value) -> Result<(), String> {
    let account_name = account["metadata"]["name"].as_str().unwrap_or("");
    let names = |field: &str| -> Vec<&str> {
        list(&account[field])
            .filter_map(|s| s["name"].as_str())
            .collect()
    };
    let (mountable, pull) = (names("secrets"), names("imagePullSecrets"));
    for v in list(&spec["volumes"]) {
        if let Some(secret) = v["secret"]["secretName"].as_str()
            && !mountable.contains(&secret)
        {
            return Err(format!(
                "volume with secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"
            ));
        }
    }
    for (list_name, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for c in list(&spec[list_name]) {
            let container = c["name"].as_str().unwrap_or("");
            for e in list(&c["env"]) {
                if let Some(secret) = e["valueFrom"]["secretKeyRef"]["name"].as_str()
                    && !mountable.contains(&secret)
                {
                    let var = e["name"].as_str().unwrap_or("");
                    return Err(format!(
                        "{what} {container} with envVar {var} referencing secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"
                    ));
                }
            }
            for e in list(&c["envFrom"]) {
                if let Some(secret) = e["secretRef"]["name"].as_str()
                    && !mountable.contains(&secret)
                {
                    return Err(format!(
                        "{what} {container} with envFrom referencing secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"
                    ));
                }
            }
        }
    }
    for (i, s) in list(&spec["imagePullSecrets"]).enumerate() {
        let secret = s["name"].as_str().unwrap_or("");
        if !pull.contains(&secret) {
            return Err(format!(
                "imagePullSecrets[{i}].name=\"{secret}\" is not allowed because service account {account_name} does not reference that imagePullSecret"
            ));
        }
    }
    Ok(())
}

/// upstream's Priority admission: spec.priority (and preemptionPolicy) come from the pod's
/// PriorityClass, or the global default class, or are 0.
pub fn pod_priority(state: &ApiState, pod: &mut Value) -> ApiResult<()> {
    let classes = registry::builtin("scheduling.k8s.io", "v1", "priorityclasses").expect("served");
    let name = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let class = if name.is_empty() {
        state
            .cache
            .list(classes, "")
            .objects
            .iter()
            .map(|o| o.value())
            .find(|c| c["globalDefault"] == true)
    } else {
        let key = format!("{}{name}", classes.key_prefix(&state.root));
        match state.cache.get(classes, &key) {
            Some(c) => Some(c.value()),
            None => {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    meta::name(pod),
                    &format!("no PriorityClass with name {name} was found"),
                ));
            }
        }
    };
    let (value, policy) = match &class {
        Some(c) => (
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_owned(),
        ),
        None => (0, "PreemptLowerPriority".to_owned()),
    };
    if let Some(given) = pod["spec"]["priority"].as_i64()
        && given != value
    {
        return Err(ApiError::forbidden(
            "",
            "pods",
            meta::name(pod),
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    let spec = meta::object_at(pod, &["spec"]);
    if let Some(c) = &class {
        spec.insert("priorityClassName".into(), c["metadata"]["name"].clone());
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http::HttpClient;

    fn spec(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    fn token_mount(volume: &str) -> Value {
        json!({"name": volume, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH})
    }

    #[test]
    fn the_token_is_mounted_where_nothing_else_is() {
        let mut s = spec(json!({
            "initContainers": [{"name": "i"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
                {"name": "own", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}],
        }));
        mount_token(&mut s);
        let volumes = s["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().unwrap().to_owned();
        assert!(
            name.starts_with(TOKEN_VOLUME_PREFIX) && name.len() == 21,
            "{name}"
        );
        assert_eq!(volumes[1], token_volume(&name));
        assert_eq!(volumes[1]["projected"]["defaultMode"], 420);
        assert_eq!(
            s["initContainers"][0]["volumeMounts"],
            json!([token_mount(&name)])
        );
        assert_eq!(
            s["containers"][0]["volumeMounts"],
            json!([token_mount(&name)])
        );
        assert_eq!(
            s["containers"][1]["volumeMounts"].as_array().unwrap().len(),
            1
        );
        // Admitting the same spec again changes nothing: the volume is found by its prefix.
        let before = s.clone();
        mount_token(&mut s);
        assert_eq!(s, before);
        // No container needs it: no volume.
        let mut own = spec(json!({"containers": [{"name": "b", "volumeMounts": [
            {"name": "own", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]}]}));
        mount_token(&mut own);
        assert!(own.get("volumes").is_none());
    }

    #[test]
    fn the_pod_decides_automounting_then_its_account() {
        let quiet = json!({"automountServiceAccountToken": false});
        let plain = json!({});
        let pod = |v: Value| spec(json!({ "automountServiceAccountToken": v }));
        assert!(should_automount(&spec(json!({})), &plain));
        assert!(!should_automount(&spec(json!({})), &quiet));
        assert!(should_automount(&pod(json!(true)), &quiet));
        assert!(!should_automount(&pod(json!(false)), &plain));
    }

    #[test]
    fn mirror_pods_reach_no_account_and_no_secret() {
        let ok = json!({"containers": [{"name": "c"}]});
        assert_eq!(mirror_references(&ok), Ok(()));
        let cases = [
            (
                json!({"serviceAccountName": "x"}),
                "a mirror pod may not reference service accounts",
            ),
            (
                json!({"containers": [{"envFrom": [{"secretRef": {"name": "s"}}]}]}),
                "a mirror pod may not reference secrets",
            ),
            (
                json!({"volumes": [{"projected": {"sources": [{"secret": {"name": "s"}}]}}]}),
                "a mirror pod may not reference secrets",
            ),
            (
                json!({"volumes": [{"projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                "a mirror pod may not use ServiceAccountToken volume projections",
            ),
        ];
        for (spec, why) in cases {
            assert_eq!(mirror_references(&spec), Err(why), "{spec}");
        }
    }

    #[test]
    fn mountable_secrets_when_the_account_enforces_them() {
        let account = json!({"metadata": {"name": "sa", "annotations": {ENFORCE_MOUNTABLE_SECRETS: "true"}},
            "secrets": [{"name": "ok"}], "imagePullSecrets": [{"name": "pull"}]});
        assert!(enforces_mountable_secrets(&account));
        assert!(!enforces_mountable_secrets(&json!({})));
        let allowed = json!({"volumes": [{"secret": {"secretName": "ok"}}],
            "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "ok"}}}]}],
            "imagePullSecrets": [{"name": "pull"}]});
        assert_eq!(limit_secret_references(&allowed, &account), Ok(()));
        let env = json!({"containers": [{"name": "c", "env": [
            {"name": "E", "valueFrom": {"secretKeyRef": {"name": "other"}}}]}]});
        assert_eq!(
            limit_secret_references(&env, &account).unwrap_err(),
            "container c with envVar E referencing secret.secretName=\"other\" is not allowed because service account sa does not reference that secret"
        );
        let pull = json!({"imagePullSecrets": [{"name": "ok"}]});
        assert_eq!(
            limit_secret_references(&pull, &account).unwrap_err(),
            "imagePullSecrets[0].name=\"ok\" is not allowed because service account sa does not reference that imagePullSecret"
        );
    }

    #[test]
    fn plugins_from_upstream_flags() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(Plugins::from_flags(&[], &[]), Ok(Plugins::upstream()));
        let off = Plugins::from_flags(&s(&["NodeRestriction"]), &s(&["ServiceAccount"])).unwrap();
        assert!(!off.service_account && off.priority);
        assert!(Plugins::from_flags(&s(&["Priority"]), &s(&["Priority"])).is_err());
        assert!(!Plugins::default().service_account);
        let off = Plugins::from_flags(
            &[],
            &s(&[
                "NamespaceLifecycle",
                "LimitRanger",
                "ResourceQuota",
                "CertificateApproval",
                "CertificateSigning",
                "CertificateSubjectRestriction",
            ]),
        )
        .unwrap();
        assert!(!off.namespace_lifecycle && !off.limit_ranger && !off.resource_quota);
        assert!(!off.certificates.approval && !off.certificates.signing);
        assert!(!off.certificates.subject_restriction && off.service_account);
        assert!(Plugins::upstream().pod_security && Plugins::default().pod_security);
        let no_pss = Plugins::from_flags(&[], &s(&["PodSecurity"])).unwrap();
        assert!(!no_pss.pod_security && no_pss.resource_quota);
        assert!(Plugins::from_flags(&s(&["PodSecurity"]), &s(&["PodSecurity"])).is_err());
        assert!(Plugins::upstream().taint_nodes_by_condition);
        assert!(!Plugins::default().taint_nodes_by_condition);
        let untainted = Plugins::from_flags(&[], &s(&["TaintNodesByCondition"])).unwrap();
        assert!(!untainted.taint_nodes_by_condition);
    }

    #[test]
    fn new_nodes_are_tainted_not_ready_once() {
        let mut bare = json!({"metadata": {"name": "n"}});
        taint_not_ready(&mut bare);
        assert_eq!(
            bare["spec"]["taints"],
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
        );
        let before = bare.clone();
        taint_not_ready(&mut bare);
        assert_eq!(bare, before, "not added twice");
        // The same key with another effect is not the same taint.
        let mut other = json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}});
        taint_not_ready(&mut other);
        assert_eq!(other["spec"]["taints"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn pods_get_their_service_account_and_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let server = crate::testing::spawn_with(dir.path(), |c| {
            c.admission.service_account = true;
        })
        .await;
        let http = HttpClient::new(&server.url());
        let pods = "/api/v1/namespaces/default/pods";
        let accounts = "/api/v1/namespaces/default/serviceaccounts";
        let pod = |name: &str, extra: Value| {
            let mut p = json!({"metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
            for (k, v) in extra.as_object().unwrap() {
                p["spec"][k] = v.clone();
            }
            p
        };

        // No default account yet: refused once the retries are over, as upstream.
        let (code, status) = http.post(pods, &pod("p1", json!({}))).await.unwrap();
        assert_eq!(code, 403, "{status}");
        assert_eq!(
            status["message"],
            "pods \"p1\" is forbidden: error looking up service account default/default: serviceaccount \"default\" not found"
        );

        let default =
            json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "reg"}]});
        assert_eq!(http.post(accounts, &default).await.unwrap().0, 201);
        let (code, p1) = http.post(pods, &pod("p1", json!({}))).await.unwrap();
        assert_eq!(code, 201, "{p1}");
        let spec = &p1["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "reg"}]));
        let volume = spec["volumes"][0]["name"].as_str().unwrap();
        assert_eq!(spec["volumes"][0], token_volume(volume));
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([token_mount(volume)])
        );

        // The pod says no; an account that says no; the pod overriding its account.
        let no = json!({"automountServiceAccountToken": false});
        let (_, p2) = http.post(pods, &pod("p2", no)).await.unwrap();
        assert!(p2["spec"].get("volumes").is_none(), "{p2}");
        let quiet = json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false});
        assert_eq!(http.post(accounts, &quiet).await.unwrap().0, 201);
        let (_, p3) = http
            .post(pods, &pod("p3", json!({"serviceAccountName": "quiet"})))
            .await
            .unwrap();
        assert!(p3["spec"].get("volumes").is_none(), "{p3}");
        let yes = json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true});
        let (_, p4) = http.post(pods, &pod("p4", yes)).await.unwrap();
        assert_eq!(p4["spec"]["volumes"].as_array().unwrap().len(), 1, "{p4}");

        // Another missing account is refused at once.
        let (code, status) = http
            .post(pods, &pod("p5", json!({"serviceAccountName": "absent"})))
            .await
            .unwrap();
        assert_eq!(code, 403);
        assert_eq!(
            status["message"],
            "pods \"p5\" is forbidden: error looking up service account default/absent: serviceaccount \"absent\" not found"
        );

        // Mirror pods are left alone, and may not name an account.
        let mut mirror = pod("m1", json!({}));
        mirror["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: "hash"});
        let (code, m1) = http.post(pods, &mirror).await.unwrap();
        assert_eq!(code, 201, "{m1}");
        assert!(m1["spec"].get("volumes").is_none(), "{m1}");
        mirror["metadata"]["name"] = json!("m2");
        mirror["spec"]["serviceAccountName"] = json!("default");
        let (code, status) = http.post(pods, &mirror).await.unwrap();
        assert_eq!(code, 403);
        assert_eq!(
            status["message"],
            "pods \"m2\" is forbidden: a mirror pod may not reference service accounts"
        );
        server.stop();
    }
}
