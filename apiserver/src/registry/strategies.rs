//! Per-kind strategies: the defaulting, validation and update rules upstream keeps in
//! pkg/registry/<group>/<kind>/strategy.go and pkg/apis/<group>/validation. Each is a pure
//! function of the object (and the old object on update), so it is tested without a server.

use common::quantity::Quantity;
use common::scheduling::qos::{container_qos, pod_qos};
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::meta::{self, NameRule, default_field, object_at, validate_label_field};
use crate::status::Cause;
use crate::validation;

/// What makes one kind behave as upstream's; every method has the generic default.
pub trait Strategy: Sync + Send {
    /// Whether metadata.generation starts at 1 and is bumped on every spec change.
    fn tracks_generation(&self) -> bool {
        false
    }
    /// The rule object names follow.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }
    /// Field selectors served beyond metadata.name and metadata.namespace.
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[]
    }
    /// Field selectors a CustomResourceDefinition declares (selectableFields), without dots.
    fn custom_selectable_fields(&self) -> &[std::sync::Arc<str>] {
        &[]
    }
    /// The value a field selector compares for `field` (one of `selectable_fields` or
    /// metadata.name/namespace); a missing field reads as absent.
    fn field(&self, obj: &Value, field: &str) -> Option<String> {
        meta::field_string(obj, field)
    }
    /// Upstream's `ReturnDeletedObject`: whether a DELETE that removes the object at once
    /// answers with the object (true) or a Success Status naming it. A delete that only marks
    /// the object terminating answers with the updated object either way.
    fn returns_deleted_object(&self) -> bool {
        false
    }
    /// Defaults applied to every object written (create and update), as upstream's defaulters.
    fn default(&self, _obj: &mut Value) {}
    /// Create-only preparation after defaulting (initial status, generated fields).
    fn prepare_for_create(&self, _obj: &mut Value) {}
    /// What the kind records of the user creating it, which the server sets and never takes
    /// from the client (a CertificateSigningRequest's requester).
    fn record_creator(&self, _obj: &mut Value, _user: &UserInfo) {}
    /// Problems with an object about to be stored; `old` is set on update.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        Vec::new()
    }
    /// Upstream's graceful deletion: the seconds a delete leaves the object terminating
    /// before it goes (`asked`: the client's gracePeriodSeconds). 0: at once, unless
    /// finalizers hold it.
    fn deletion_grace(&self, _obj: &Value, _asked: Option<i64>) -> i64 {
        0
    }
    /// Whether a delete always marks the object terminating first (a namespace, until its
    /// contents are gone).
    fn deletes_gracefully(&self) -> bool {
        false
    }
    /// Marks a terminating object as its kind shows it (a namespace's phase); answers
    /// whether it changed.
    fn terminate(&self, _obj: &mut Value) -> bool {
        false
    }
    /// Whether something beyond metadata.finalizers still holds a terminating object (a
    /// namespace's spec.finalizers, a pod's grace period its kubelet has yet to confirm).
    fn holds_removal(&self, _obj: &Value) -> bool {
        false
    }
    /// The object as stored for a kind with no typed struct to normalize it (a custom
    /// resource): without the fields its schema does not know.
    fn prune(&self, obj: &Value) -> Value {
        obj.clone()
    }
    /// Where the kind keeps what its scale subresource shows.
    fn scale_paths(&self) -> super::subresources::ScalePaths<'_> {
        super::subresources::WORKLOAD_SCALE
    }
    /// Why no object of the kind may be created now (its definition is being deleted).
    fn refuses_create(&self) -> Option<&'static str> {
        None
    }
}

/// Kinds with a status subresource and nothing else special.
pub struct WithStatus;
pub static WITH_STATUS: WithStatus = WithStatus;
impl Strategy for WithStatus {
    fn tracks_generation(&self) -> bool {
        true
    }
}

/// The four RBAC kinds: path-segment names, and rules or roleRef/subjects validated.
pub enum Rbac {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}
pub static ROLES: Rbac = Rbac::Role;
pub static CLUSTER_ROLES: Rbac = Rbac::ClusterRole;
pub static ROLE_BINDINGS: Rbac = Rbac::RoleBinding;
pub static CLUSTER_ROLE_BINDINGS: Rbac = Rbac::ClusterRoleBinding;
impl Strategy for Rbac {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn default(&self, obj: &mut Value) {
        if matches!(self, Rbac::RoleBinding | Rbac::ClusterRoleBinding) {
            validation::rbac::default_binding(obj);
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        match self {
            Rbac::Role => validation::rbac::role(obj, old, true),
            Rbac::ClusterRole => validation::rbac::role(obj, old, false),
            Rbac::RoleBinding => validation::rbac::binding(obj, old, true),
            Rbac::ClusterRoleBinding => validation::rbac::binding(obj, old, false),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// core/v1

pub struct Namespaces;
pub static NAMESPACES: Namespaces = Namespaces;
impl Strategy for Namespaces {
    // Upstream's namespace store sets ReturnDeletedObject, though its REST wrapper hides the
    // flag from the OpenAPI document, which declares a Status.
    fn returns_deleted_object(&self) -> bool {
        true
    }
    // A namespace terminates until the namespace controller has emptied it and removed
    // its spec.finalizers; one without any is removed by the delete itself.
    fn deletes_gracefully(&self) -> bool {
        true
    }
    fn terminate(&self, obj: &mut Value) -> bool {
        let changed = obj["status"]["phase"] != "Terminating";
        obj["status"]["phase"] = json!("Terminating");
        changed
    }
    fn holds_removal(&self, obj: &Value) -> bool {
        obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    }
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
    fn default(&self, obj: &mut Value) {
        let name = meta::name(obj).to_owned();
        object_at(obj, &["metadata", "labels"])
            .insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        object_at(obj, &["spec"]).insert("finalizers".into(), json!(["kubernetes"]));
        obj["status"] = json!({ "phase": "Active" });
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::core::namespace(obj)
    }
}

/// core/v1 Events: selectable by the object they are about, as `kubectl describe` asks.
pub struct Events;
pub static EVENTS: Events = Events;
impl Strategy for Events {
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }
    fn field(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "source" => meta::field_string(obj, "source.component"),
            "reportingComponent" => meta::field_string(obj, "reportingComponent"),
            other => meta::field_string(obj, other),
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::events::event(obj, true)
    }
}

/// events.k8s.io/v1 Events: the strict, new-style validation.
pub struct NewEvents;
pub static NEW_EVENTS: NewEvents = NewEvents;
impl Strategy for NewEvents {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::events::event(obj, false)
    }
}

pub struct Secrets;
pub static SECRETS: Secrets = Secrets;
impl Strategy for Secrets {
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["type"]
    }
    fn default(&self, obj: &mut Value) {
        if let Some(map) = obj.as_object_mut() {
            default_field(map, "type", json!("Opaque"));
            // stringData is write-only: its keys go into data (base64), overriding data's.
            if let Some(Value::Object(strings)) = map.remove("stringData") {
                use base64::Engine;
                let data = map.entry("data").or_insert_with(|| json!({}));
                if !data.is_object() {
                    *data = json!({});
                }
                for (k, v) in strings {
                    let text = v.as_str().unwrap_or_default();
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                    data[k.as_str()] = json!(encoded);
                }
            }
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::core::secret(obj, old)
    }
}

pub struct ConfigMaps;
pub static CONFIG_MAPS: ConfigMaps = ConfigMaps;
impl Strategy for ConfigMaps {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::core::config_map(obj, old)
    }
}

pub struct Endpoints;
pub static ENDPOINTS: Endpoints = Endpoints;
impl Strategy for Endpoints {
    fn default(&self, obj: &mut Value) {
        validation::core::default_endpoints(obj);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::core::endpoints(obj)
    }
}

pub struct ServiceAccounts;
pub static SERVICE_ACCOUNTS: ServiceAccounts = ServiceAccounts;
impl Strategy for ServiceAccounts {
    fn returns_deleted_object(&self) -> bool {
        true
    }
}

pub struct ResourceQuotas;
pub static RESOURCE_QUOTAS: ResourceQuotas = ResourceQuotas;
impl Strategy for ResourceQuotas {
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::core::resource_quota(obj)
    }
}

pub struct LimitRanges;
pub static LIMIT_RANGES: LimitRanges = LimitRanges;
impl Strategy for LimitRanges {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::core::limit_range(obj)
    }
}

pub struct Volumes;
pub static VOLUMES: Volumes = Volumes;
impl Strategy for Volumes {
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        validation::core::default_persistent_volume(obj);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::core::persistent_volume(obj)
    }
}

pub struct Claims;
pub static CLAIMS: Claims = Claims;
impl Strategy for Claims {
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::core::persistent_volume_claim(obj)
    }
}

pub struct Nodes;
pub static NODES: Nodes = Nodes;
impl Strategy for Nodes {
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::core::node(obj, old)
    }
}

pub struct Pods;
pub static PODS: Pods = Pods;
impl Strategy for Pods {
    /// 0 for pods never scheduled or already finished; else what the client asked, or
    /// the pod's terminationGracePeriodSeconds (30 by default).
    fn deletion_grace(&self, pod: &Value, asked: Option<i64>) -> i64 {
        let unscheduled = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
        let finished = matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        if unscheduled || finished {
            return 0;
        }
        asked
            .unwrap_or_else(|| {
                pod["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            })
            .max(0)
    }
    /// Its kubelet confirms the containers stopped with a delete of grace 0.
    fn holds_removal(&self, pod: &Value) -> bool {
        pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            > 0
    }
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        default_pod_spec(object_at(obj, &["spec"]));
        let spec = object_at(obj, &["spec"]);
        default_field(spec, "serviceAccountName", json!("default"));
        let sa = spec["serviceAccountName"].clone();
        default_field(spec, "serviceAccount", sa);
        default_field(spec, "priority", json!(0));
        default_field(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        add_default_tolerations(spec);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        let qos = qos_class(&obj["spec"]);
        obj["status"] = json!({ "phase": "Pending", "qosClass": qos });
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validate_pod_spec(&obj["spec"], "spec");
        if let Some(old) = old {
            causes.extend(validate_pod_update(&obj["spec"], &old["spec"]));
        }
        causes
    }
}

/// upstream's DefaultTolerationSeconds admission: tolerate not-ready/unreachable for 300 s.
fn add_default_tolerations(spec: &mut serde_json::Map<String, Value>) {
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = list.iter().any(|t| {
            t.get("key").and_then(Value::as_str) == Some(key)
                || (t.get("key").is_none()
                    && t.get("operator").and_then(Value::as_str) == Some("Exists"))
        });
        if !present {
            list.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300
            }));
        }
    }
}

/// Defaults of a PodSpec shared by pods and every pod template.
pub fn default_pod_spec(spec: &mut serde_json::Map<String, Value>) {
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "enableServiceLinks", json!(true));
    validation::pods::default_volumes(spec);
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
}

fn default_container(c: &mut serde_json::Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    // `:latest` or no tag pulls Always; a tag or digest pulls IfNotPresent.
    let last = image.rsplit('/').next().unwrap_or("");
    let policy = if image.contains('@') {
        "IfNotPresent"
    } else {
        match last.split_once(':') {
            Some((_, "latest")) | None => "Always",
            Some(_) => "IfNotPresent",
        }
    };
    default_field(c, "imagePullPolicy", json!(policy));
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    default_field(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(p, "protocol", json!("TCP"));
        }
    }
}

/// The pod's QoS class (common's, upstream's ComputePodQOS), read from the JSON spec in place:
/// converting every created pod's spec to the typed PodSpec would cost more than the answer.
pub fn qos_class(spec: &Value) -> &'static str {
    let quantity = |v: &Value| match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    };
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten();
    pod_qos(containers.map(|c| {
        let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        let set = |m: &Value| m.as_object().is_some_and(|m| !m.is_empty());
        container_qos(
            set(requests) || set(limits),
            |r| requests.get(r).and_then(quantity),
            |r| limits.get(r).and_then(quantity),
        )
    }))
    .as_str()
}

fn validate_pod_spec(spec: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(Cause::required(format!("{path}.containers")));
    }
    let mut names = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("{path}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{field}.name"))),
                Some(name) => {
                    validate_label_field(&format!("{field}.name"), name, &mut causes);
                    if !names.insert(name.to_owned()) {
                        causes.push(Cause::duplicate(format!("{field}.name"), &json!(name)));
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(format!("{field}.image")));
            }
        }
    }
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str) {
        let supported = ["Always", "OnFailure", "Never"];
        if !supported.contains(&policy) {
            causes.push(Cause::unsupported(
                format!("{path}.restartPolicy"),
                &json!(policy),
                &supported,
            ));
        }
    }
    causes.extend(validation::pods::pod_spec(spec, path));
    causes
}

/// Pod specs are immutable except a few fields, as upstream's ValidatePodUpdate enforces.
fn validate_pod_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut a = new.clone();
    let mut b = old.clone();
    for spec in [&mut a, &mut b] {
        let Some(map) = spec.as_object_mut() else {
            continue;
        };
        for field in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            map.remove(field);
        }
        for list in ["initContainers", "containers"] {
            if let Some(cs) = map.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    // nodeName may be set once, by binding.
    if old.get("nodeName").is_none()
        && let Some(map) = a.as_object_mut()
    {
        map.remove("nodeName");
    }
    if a == b {
        return Vec::new();
    }
    vec![Cause::forbidden(
        "spec",
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    )]
}

pub struct Services;
pub static SERVICES: Services = Services;
impl Strategy for Services {
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }
    fn default(&self, obj: &mut Value) {
        let spec = object_at(obj, &["spec"]);
        default_field(spec, "type", json!("ClusterIP"));
        default_field(spec, "sessionAffinity", json!("None"));
        if spec["sessionAffinity"] == "ClientIP" {
            default_field(
                spec,
                "sessionAffinityConfig",
                json!({ "clientIP": { "timeoutSeconds": 10800 } }),
            );
        }
        let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
        if ty != "ExternalName" {
            default_field(spec, "internalTrafficPolicy", json!("Cluster"));
            default_field(spec, "ipFamilies", json!(["IPv4"]));
            default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            default_field(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                default_field(p, "protocol", json!("TCP"));
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                default_field(p, "targetPort", port);
            }
        }
        object_at(obj, &["status", "loadBalancer"]);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::core::service(obj, old)
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads: apps/v1, batch/v1, core/v1 ReplicationController

/// Defaults and validates the pod template at spec.template.
fn default_template(obj: &mut Value) {
    default_pod_spec(object_at(obj, &["spec", "template", "spec"]));
}

fn validate_workload(obj: &Value, old: Option<&Value>, selector_required: bool) -> Vec<Cause> {
    let spec = &obj["spec"];
    let mut causes = validate_pod_spec(&spec["template"]["spec"], "spec.template.spec");
    if let Some(replicas) = spec.get("replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        causes.push(Cause::invalid(
            "spec.replicas",
            &json!(replicas),
            "must be greater than or equal to 0",
        ));
    }
    let selector = &spec["selector"];
    if selector_required {
        if selector.is_null() || selector.as_object().is_some_and(|m| m.is_empty()) {
            causes.push(Cause::required("spec.selector"));
        } else if let Ok(sel) = common::selector::LabelSelector::from_label_selector_json(selector)
        {
            if sel.is_everything() {
                causes.push(Cause::invalid(
                    "spec.selector",
                    selector,
                    "empty selector is invalid for deployment",
                ));
            }
            let labels = spec["template"]["metadata"]["labels"].as_object();
            if !sel.matches(labels) {
                causes.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    &spec["template"]["metadata"]["labels"],
                    "`selector` does not match template `labels`",
                ));
            }
        }
        if let Some(old) = old
            && old["spec"]["selector"] != *selector
        {
            causes.push(Cause::invalid(
                "spec.selector",
                selector,
                "field is immutable",
            ));
        }
    }
    causes
}

pub struct Workloads;
pub static WORKLOADS: Workloads = Workloads;
impl Strategy for Workloads {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }
    fn default(&self, obj: &mut Value) {
        default_field(object_at(obj, &["spec"]), "replicas", json!(1));
        default_template(obj);
        // A ReplicationController without a selector selects its template's labels.
        if obj["kind"] == "ReplicationController" {
            let labels = obj["spec"]["template"]["metadata"]["labels"].clone();
            default_field(object_at(obj, &["spec"]), "selector", labels);
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({ "replicas": 0 });
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validate_workload(obj, old, obj["kind"] != "ReplicationController");
        validation::apps::template_restarts_always(&obj["spec"], &mut causes);
        validation::fields::nonnegative(&obj["spec"], "minReadySeconds", "spec", &mut causes);
        causes
    }
}

pub struct Deployments;
pub static DEPLOYMENTS: Deployments = Deployments;
impl Strategy for Deployments {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let spec = object_at(obj, &["spec"]);
        default_field(spec, "replicas", json!(1));
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_field(spec, "progressDeadlineSeconds", json!(600));
        let strategy = object_at(obj, &["spec", "strategy"]);
        default_field(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let rolling = object_at(obj, &["spec", "strategy", "rollingUpdate"]);
            default_field(rolling, "maxUnavailable", json!("25%"));
            default_field(rolling, "maxSurge", json!("25%"));
        }
        default_template(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validate_workload(obj, old, true);
        causes.extend(validation::apps::deployment_spec(&obj["spec"]));
        causes
    }
}

pub struct StatefulSets;
pub static STATEFULSETS: StatefulSets = StatefulSets;
impl Strategy for StatefulSets {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let spec = object_at(obj, &["spec"]);
        default_field(spec, "replicas", json!(1));
        default_field(spec, "podManagementPolicy", json!("OrderedReady"));
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_field(
            spec,
            "persistentVolumeClaimRetentionPolicy",
            json!({ "whenDeleted": "Retain", "whenScaled": "Retain" }),
        );
        let update = object_at(obj, &["spec", "updateStrategy"]);
        default_field(update, "type", json!("RollingUpdate"));
        if update["type"] == "RollingUpdate" {
            default_field(
                object_at(obj, &["spec", "updateStrategy", "rollingUpdate"]),
                "partition",
                json!(0),
            );
        }
        default_template(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({ "replicas": 0, "availableReplicas": 0 });
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        // Its pods also get a volume per claim template, which the containers may mount.
        let mut with_claims = obj.clone();
        let claims: Vec<Value> = obj["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let name = t["metadata"]["name"].clone();
                json!({ "name": name, "persistentVolumeClaim": { "claimName": name } })
            })
            .collect();
        let spec = object_at(&mut with_claims, &["spec", "template", "spec"]);
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(list) = volumes.as_array_mut() {
            list.extend(claims);
        }
        let mut causes = validate_workload(&with_claims, old, true);
        causes.extend(validation::apps::stateful_set_spec(&obj["spec"]));
        causes
    }
}

pub struct DaemonSets;
pub static DAEMONSETS: DaemonSets = DaemonSets;
impl Strategy for DaemonSets {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        default_field(object_at(obj, &["spec"]), "revisionHistoryLimit", json!(10));
        let update = object_at(obj, &["spec", "updateStrategy"]);
        default_field(update, "type", json!("RollingUpdate"));
        if update["type"] == "RollingUpdate" {
            let rolling = object_at(obj, &["spec", "updateStrategy", "rollingUpdate"]);
            default_field(rolling, "maxUnavailable", json!(1));
            default_field(rolling, "maxSurge", json!(0));
        }
        default_template(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({
            "currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0
        });
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validate_workload(obj, old, true);
        causes.extend(validation::apps::daemon_set_spec(&obj["spec"]));
        causes
    }
}

pub struct Jobs;
pub static JOBS: Jobs = Jobs;
impl Strategy for Jobs {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.successful"]
    }
    fn default(&self, obj: &mut Value) {
        let spec = object_at(obj, &["spec"]);
        if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
            spec.insert("completions".into(), json!(1));
        }
        default_field(spec, "parallelism", json!(1));
        default_field(spec, "backoffLimit", json!(6));
        default_field(spec, "completionMode", json!("NonIndexed"));
        default_field(spec, "suspend", json!(false));
        default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
        default_template(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        // The controller-uid selector upstream generates, so a Job owns exactly its pods.
        let uid = meta::meta_str(obj, "uid").to_owned();
        let name = meta::name(obj).to_owned();
        if obj["spec"]["selector"].is_null() {
            obj["spec"]["selector"] =
                json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": uid } });
            let labels = object_at(obj, &["spec", "template", "metadata", "labels"]);
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("job-name", &name),
            ] {
                labels.insert(k.into(), json!(v));
            }
        }
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validate_pod_spec(&obj["spec"]["template"]["spec"], "spec.template.spec");
        causes.extend(validation::batch::job_spec(&obj["spec"], "spec"));
        let policy = &obj["spec"]["template"]["spec"]["restartPolicy"];
        if policy != "OnFailure" && policy != "Never" {
            causes.push(Cause::unsupported(
                "spec.template.spec.restartPolicy",
                policy,
                &["OnFailure", "Never"],
            ));
        }
        if let Some(old) = old
            && old["spec"]["template"] != obj["spec"]["template"]
            && old["spec"]["suspend"] != true
        {
            causes.push(Cause::invalid(
                "spec.template",
                &obj["spec"]["template"],
                "field is immutable",
            ));
        }
        causes
    }
}

pub struct CronJobs;
pub static CRONJOBS: CronJobs = CronJobs;
impl Strategy for CronJobs {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let spec = object_at(obj, &["spec"]);
        default_field(spec, "concurrencyPolicy", json!("Allow"));
        default_field(spec, "suspend", json!(false));
        default_field(spec, "successfulJobsHistoryLimit", json!(3));
        default_field(spec, "failedJobsHistoryLimit", json!(1));
        default_pod_spec(object_at(
            obj,
            &["spec", "jobTemplate", "spec", "template", "spec"],
        ));
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validation::batch::cron_job_spec(&obj["spec"]);
        causes.extend(validate_pod_spec(
            &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            "spec.jobTemplate.spec.template.spec",
        ));
        causes
    }
}

// ---------------------------------------------------------------------------------------------
// networking.k8s.io

pub struct NetworkPolicies;
pub static NETWORK_POLICIES: NetworkPolicies = NetworkPolicies;
impl Strategy for NetworkPolicies {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        validation::networking::default_network_policy(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::networking::network_policy(obj, old)
    }
}

pub struct Ingresses;
pub static INGRESSES: Ingresses = Ingresses;
impl Strategy for Ingresses {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::networking::ingress(obj, old)
    }
}

pub struct Csrs;
pub static CSRS: Csrs = Csrs;
impl Strategy for Csrs {
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.signerName"]
    }
    fn record_creator(&self, obj: &mut Value, user: &UserInfo) {
        let Some(spec) = obj
            .as_object_mut()
            .map(|o| o.entry("spec").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        spec.insert("username".into(), json!(user.name));
        spec.insert("uid".into(), json!(user.uid));
        spec.insert("groups".into(), json!(user.groups));
        spec.insert("extra".into(), json!(user.extra));
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::certificates::certificate_signing_request(obj)
    }
}

// ---------------------------------------------------------------------------------------------
// The other groups' kinds

pub struct ControllerRevisions;
pub static CONTROLLER_REVISIONS: ControllerRevisions = ControllerRevisions;
impl Strategy for ControllerRevisions {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::apps::controller_revision(obj, old)
    }
}

pub struct EndpointSlices;
pub static ENDPOINT_SLICES: EndpointSlices = EndpointSlices;
impl Strategy for EndpointSlices {
    fn default(&self, obj: &mut Value) {
        validation::discovery::default_endpoint_slice(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::discovery::endpoint_slice(obj, old)
    }
}

pub struct Leases;
pub static LEASES: Leases = Leases;
impl Strategy for Leases {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validation::coordination::lease(obj)
    }
}

pub struct Budgets;
pub static BUDGETS: Budgets = Budgets;
impl Strategy for Budgets {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::policy::pod_disruption_budget(obj, old)
    }
}

pub struct PriorityClasses;
pub static PRIORITY_CLASSES: PriorityClasses = PriorityClasses;
impl Strategy for PriorityClasses {
    fn default(&self, obj: &mut Value) {
        validation::scheduling::default_priority_class(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::scheduling::priority_class(obj, old)
    }
}

pub struct RuntimeClasses;
pub static RUNTIME_CLASSES: RuntimeClasses = RuntimeClasses;
impl Strategy for RuntimeClasses {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::node::runtime_class(obj, old)
    }
}

pub struct IngressClasses;
pub static INGRESS_CLASSES: IngressClasses = IngressClasses;
impl Strategy for IngressClasses {
    fn default(&self, obj: &mut Value) {
        validation::networking::default_ingress_class(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::networking::ingress_class(obj, old)
    }
}

pub struct StorageClasses;
pub static STORAGE_CLASSES: StorageClasses = StorageClasses;
impl Strategy for StorageClasses {
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        validation::storage::default_storage_class(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::storage::storage_class(obj, old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csr_records_its_requester_whatever_the_client_sent() {
        let user = UserInfo::new(
            "system:bootstrap:abcdef",
            vec!["system:bootstrappers".into()],
        );
        let mut csr = json!({"spec": {"username": "someone-else", "groups": ["system:masters"],
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet"}});
        CSRS.record_creator(&mut csr, &user);
        assert_eq!(csr["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(
            csr["spec"]["groups"],
            json!(["system:bootstrappers", "system:authenticated"])
        );
        assert_eq!(csr["spec"]["extra"], json!({}));
        assert_eq!(
            csr["spec"]["signerName"],
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
        let mut bare = json!({});
        CSRS.record_creator(&mut bare, &user);
        assert_eq!(bare["spec"]["username"], "system:bootstrap:abcdef");
        // Other kinds record nothing.
        let mut cm = json!({"data": {}});
        CONFIG_MAPS.record_creator(&mut cm, &user);
        assert_eq!(cm, json!({"data": {}}));
    }

    #[test]
    fn pods_and_namespaces_delete_gracefully_as_upstream() {
        let running = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 10},
            "status": {"phase": "Running"}});
        assert_eq!(PODS.deletion_grace(&running, None), 10);
        assert_eq!(PODS.deletion_grace(&running, Some(3)), 3);
        assert_eq!(PODS.deletion_grace(&running, Some(-5)), 0);
        assert_eq!(
            PODS.deletion_grace(&json!({"spec": {}}), Some(30)),
            0,
            "never scheduled"
        );
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(PODS.deletion_grace(&done, Some(30)), 0, "finished");
        assert_eq!(
            PODS.deletion_grace(&json!({"spec": {"nodeName": "n1"}}), None),
            30
        );
        assert!(PODS.holds_removal(&json!({"metadata": {"deletionGracePeriodSeconds": 30}})));
        assert!(!PODS.holds_removal(&json!({"metadata": {"deletionGracePeriodSeconds": 0}})));
        assert!(!PODS.deletes_gracefully());

        assert!(NAMESPACES.deletes_gracefully());
        let mut ns = json!({"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        assert!(NAMESPACES.holds_removal(&ns));
        assert!(NAMESPACES.terminate(&mut ns));
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(!NAMESPACES.terminate(&mut ns), "already terminating");
        assert!(!NAMESPACES.holds_removal(&json!({"spec": {"finalizers": []}})));
        assert_eq!(NAMESPACES.deletion_grace(&ns, Some(30)), 0);

        // Every other kind: removed at once unless finalizers hold it.
        let cm = json!({"metadata": {"deletionGracePeriodSeconds": 30}});
        assert_eq!(CONFIG_MAPS.deletion_grace(&cm, Some(30)), 0);
        assert!(!CONFIG_MAPS.holds_removal(&cm));
        assert!(!CONFIG_MAPS.deletes_gracefully());
    }

    fn check_qos(spec: Value, expected: &str) {
        assert_eq!(qos_class(&spec), expected, "{spec}");
    }

    #[test]
    fn qos_classes() {
        check_qos(json!({"containers": [{"name": "a"}]}), "BestEffort");
        check_qos(
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
            "Guaranteed",
        );
        check_qos(
            json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}),
            "Burstable",
        );
        // Quantities compare by value, and may be JSON numbers.
        check_qos(
            json!({"containers": [{"resources": {"requests": {"cpu": 1, "memory": "1024Mi"},
                                                 "limits": {"cpu": "1000m", "memory": "1Gi"}}}]}),
            "Guaranteed",
        );
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eQ=="},
                                "stringData": {"b": "s3cret"}});
        SECRETS.default(&mut secret);
        assert_eq!(secret["type"], "Opaque");
        assert_eq!(secret["data"], json!({"a": "eA==", "b": "czNjcmV0"}));
        assert!(secret.get("stringData").is_none());
    }

    #[test]
    fn pod_defaults() {
        let mut pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        PODS.default(&mut pod);
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        // Defaulting twice changes nothing (it runs on every update).
        let again = {
            let mut p = pod.clone();
            PODS.default(&mut p);
            p
        };
        assert_eq!(again, pod);
    }

    #[test]
    fn pod_validation_reports_fields() {
        let pod = json!({"spec": {"containers": [{"name": "Bad_Name"}]}});
        let fields: Vec<_> = PODS
            .validate(&pod, None)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            ["spec.containers[0].name", "spec.containers[0].image"]
        );
    }

    #[test]
    fn stateful_set_containers_may_mount_claim_templates() {
        let mut sts = json!({"kind": "StatefulSet", "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [
                {"name": "c", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}}});
        STATEFULSETS.default(&mut sts);
        assert_eq!(STATEFULSETS.validate(&sts, None), []);
        sts["spec"]["volumeClaimTemplates"] = json!([]);
        let causes = STATEFULSETS.validate(&sts, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].message, "Not found: \"data\"");
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let mut d = json!({"kind": "Deployment", "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        DEPLOYMENTS.default(&mut d);
        let causes = DEPLOYMENTS.validate(&d, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    }
}
