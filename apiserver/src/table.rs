//! Server-side Table printing: the columns and cells `kubectl get` shows for each built-in kind,
//! as upstream's printers (pkg/printers/internalversion) define them.
//!
//! The apiserver always prints the wide form, as upstream does: every row carries the cells of
//! every column, and kubectl hides the priority-1 columns unless asked for `-o wide`. So load
//! balancer addresses are never clipped here either.
//!
//! Cell values copy upstream's JSON exactly, including its few cells whose JSON type is not the
//! declared column type (a number under a "string" column, say); the consistency test lists them.
//! Upstream prints from the internal type after v1 defaulting and conversion, so where a stored
//! object may lack a defaulted field (spec.replicas, a port's protocol) this reads the default.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// One column of a meta.k8s.io/v1 Table, as upstream's TableColumnDefinition.
pub struct Column {
    pub name: &'static str,
    /// "string", "integer", "boolean" or "date", as upstream declares it.
    pub type_: &'static str,
    /// "name" for the column holding the object's name, else "".
    pub format: &'static str,
    pub description: &'static str,
    /// 0 always shown; 1 only with `-o wide`.
    pub priority: i32,
}

/// How a kind is printed. Each resource of the registry carries its own.
#[derive(Clone)]
pub enum Printer {
    /// A built-in kind's columns and the function filling a row, registered side by side so
    /// the two cannot drift apart.
    Builtin {
        columns: &'static [Column],
        cells: CellsFn,
    },
    /// A custom resource's additionalPrinterColumns.
    Custom(Arc<crate::crd::columns::PrinterColumns>),
}

impl Printer {
    /// The Table's columnDefinitions.
    pub fn column_definitions(&self) -> Vec<Value> {
        match self {
            Printer::Builtin { columns, .. } => columns
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name, "type": c.type_, "format": c.format,
                        "description": c.description, "priority": c.priority
                    })
                })
                .collect(),
            Printer::Custom(custom) => custom.definitions(),
        }
    }

    /// One row's cells for `obj` (the object's JSON), in column order; `now` is for ages
    /// and durations.
    pub fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        match self {
            Printer::Builtin { cells, .. } => cells(obj, now),
            Printer::Custom(custom) => custom.cells(obj, now),
        }
    }
}

#[cfg(test)]
fn columns(group: &str, resource: &str) -> &'static [Column] {
    match printer(group, resource) {
        Printer::Builtin { columns, .. } => columns,
        Printer::Custom(_) => unreachable!("printer() answers built-in printers"),
    }
}

#[cfg(test)]
fn cells(group: &str, resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    printer(group, resource).cells(obj, now)
}

/// Upstream's HumanDuration: two or three significant figures ("5s", "3m2s", "10m", "2d3h", "5y").
/// A duration up to a second negative is clock skew and reads "0s"; anything earlier is invalid.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// Fills one row of a kind's table.
type CellsFn = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// The printer of a kind, by group and plural resource name, e.g. ("", "pods"), as
/// upstream registers its printers.
pub fn printer(group: &str, resource: &str) -> Printer {
    let (columns, cells): (&'static [Column], CellsFn) = match (group, resource) {
        ("", "namespaces") => (&NAMESPACES, namespace),
        ("", "pods") => (&PODS, pod),
        ("", "podtemplates") => (&POD_TEMPLATES, pod_template),
        ("", "nodes") => (&NODES, node),
        ("", "services") => (&SERVICES, service),
        ("", "endpoints") => (&ENDPOINTS, endpoints),
        ("", "configmaps") => (&CONFIG_MAPS, config_map),
        ("", "secrets") => (&SECRETS, secret),
        ("", "serviceaccounts") => (&SERVICE_ACCOUNTS, service_account),
        ("", "events") => (&EVENTS, core_event),
        ("events.k8s.io", "events") => (&EVENTS, events_event),
        ("", "resourcequotas") => (&RESOURCE_QUOTAS, resource_quota),
        // ReplicationControllers print the same columns as ReplicaSets.
        ("", "replicationcontrollers") => (&REPLICA_SETS, replication_controller),
        ("", "persistentvolumes") => (&PERSISTENT_VOLUMES, persistent_volume),
        ("", "persistentvolumeclaims") => (&PERSISTENT_VOLUME_CLAIMS, persistent_volume_claim),
        ("apps", "deployments") => (&DEPLOYMENTS, deployment),
        ("apps", "replicasets") => (&REPLICA_SETS, replica_set),
        ("apps", "statefulsets") => (&STATEFUL_SETS, stateful_set),
        ("apps", "daemonsets") => (&DAEMON_SETS, daemon_set),
        ("apps", "controllerrevisions") => (&CONTROLLER_REVISIONS, controller_revision),
        ("batch", "jobs") => (&JOBS, job),
        ("batch", "cronjobs") => (&CRON_JOBS, cron_job),
        ("discovery.k8s.io", "endpointslices") => (&ENDPOINT_SLICES, endpoint_slice),
        ("coordination.k8s.io", "leases") => (&LEASES, lease),
        ("policy", "poddisruptionbudgets") => (&POD_DISRUPTION_BUDGETS, pod_disruption_budget),
        ("networking.k8s.io", "networkpolicies") => (&NETWORK_POLICIES, network_policy),
        ("networking.k8s.io", "ingresses") => (&INGRESSES, ingress),
        ("networking.k8s.io", "ingressclasses") => (&INGRESS_CLASSES, ingress_class),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            (&ROLE_BINDINGS, role_binding)
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            (&CERTIFICATE_SIGNING_REQUESTS, certificate_signing_request)
        }
        ("storage.k8s.io", "storageclasses") => (&STORAGE_CLASSES, storage_class),
        ("scheduling.k8s.io", "priorityclasses") => (&PRIORITY_CLASSES, priority_class),
        ("node.k8s.io", "runtimeclasses") => (&RUNTIME_CLASSES, runtime_class),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => (&WEBHOOK_CONFIGURATIONS, webhook_configuration),
        // Built-in kinds upstream has no printer for (roles, limitranges, CRDs themselves)
        // fall to the generic store's default convertor.
        _ if BUILTIN_GROUPS.contains(&group) => (&DEFAULT_BUILTIN, default_builtin),
        // Custom resources without printer columns get the default a CRD is given.
        _ => (&DEFAULT_CUSTOM, default_custom),
    };
    Printer::Builtin { columns, cells }
}

/// Groups served by kube-apiserver itself; any other group is a custom resource or aggregated.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

// ---- column definitions -------------------------------------------------------------------

const fn typed(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A string column.
const fn col(name: &'static str, description: &'static str) -> Column {
    typed(name, "string", description)
}

/// A string column shown only with `-o wide`.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, description)
    }
}

const NAME: Column = Column {
    format: "name",
    ..col("Name", "Name, unique for its kind in its namespace.")
};
/// Events lead with when they were seen; their name is only shown wide.
const EVENT_NAME: Column = Column {
    priority: 1,
    ..NAME
};
const AGE: Column = col("Age", "Time since the object was created.");
const CONTAINERS: Column = wide("Containers", "Names of the containers in the pod template.");
const IMAGES: Column = wide("Images", "Images of the containers in the pod template.");
const SELECTOR: Column = wide("Selector", "Selector of the pods managed.");

static NAMESPACES: [Column; 3] = [NAME, col("Status", "Phase of the namespace."), AGE];

static PODS: [Column; 9] = [
    NAME,
    col("Ready", "Containers ready out of all the pod's containers."),
    col("Status", "State of the pod and its containers."),
    col("Restarts", "Container restarts, and when the latest was."),
    AGE,
    wide("IP", "The pod's primary IP address."),
    wide("Node", "Node the pod is bound to."),
    wide("Nominated Node", "Node nominated by preemption."),
    wide("Readiness Gates", "Readiness gates true, out of all."),
];

static POD_TEMPLATES: [Column; 4] = [
    NAME,
    col("Containers", "Names of the containers in the template."),
    col("Images", "Images of the containers in the template."),
    col("Pod Labels", "Labels of the pod template."),
];

static NODES: [Column; 10] = [
    NAME,
    col("Status", "Readiness, and if scheduling is disabled."),
    col("Roles", "Roles from node-role.kubernetes.io/* labels."),
    AGE,
    col("Version", "Version of the node's kubelet."),
    wide("Internal-IP", "The node's first internal address."),
    wide("External-IP", "The node's first external address."),
    wide("OS-Image", "Operating system image reported by the node."),
    wide("Kernel-Version", "Kernel version reported by the node."),
    wide("Container-Runtime", "Container runtime and version."),
];

static SERVICES: [Column; 7] = [
    NAME,
    col("Type", "How the service is exposed."),
    col("Cluster-IP", "The service's primary cluster IP."),
    col("External-IP", "Addresses reachable from outside."),
    col("Port(s)", "Service ports, with node ports, and protocols."),
    AGE,
    wide("Selector", "Labels of the pods the service routes to."),
];

static ENDPOINTS: [Column; 3] = [
    NAME,
    col("Endpoints", "Addresses and ports of the endpoints."),
    AGE,
];

static CONFIG_MAPS: [Column; 3] = [NAME, col("Data", "Number of data keys."), AGE];

static SECRETS: [Column; 4] = [
    NAME,
    col("Type", "Type of the secret."),
    col("Data", "Number of data keys."),
    AGE,
];

static SERVICE_ACCOUNTS: [Column; 3] = [NAME, col("Secrets", "Number of secrets listed."), AGE];

static EVENTS: [Column; 10] = [
    col("Last Seen", "Time since the event was last observed."),
    col("Type", "Type of the event (Normal, Warning)."),
    col("Reason", "Why the event happened, as a short word."),
    col("Object", "The object the event is about."),
    wide("Subobject", "The part of the object the event is about."),
    wide("Source", "Component (and host) that reported it."),
    col("Message", "What happened, for humans."),
    wide("First Seen", "Time since the event was first observed."),
    wide("Count", "How many times the event was observed."),
    EVENT_NAME,
];

static RESOURCE_QUOTAS: [Column; 4] = [
    NAME,
    col("Request", "Used/hard, for all but limits.* resources."),
    col("Limit", "Used/hard, for limits.* resources."),
    AGE,
];

static PERSISTENT_VOLUMES: [Column; 11] = [
    NAME,
    col("Capacity", "Storage capacity of the volume."),
    col("Access Modes", "Ways the volume can be mounted."),
    col("Reclaim Policy", "What happens once the claim is released."),
    col("Status", "Phase of the volume."),
    col("Claim", "The claim bound to the volume."),
    col("StorageClass", "Storage class of the volume."),
    col("VolumeAttributesClass", "Volume attributes class."),
    col("Reason", "Why the volume is in its phase."),
    AGE,
    wide("VolumeMode", "Filesystem or raw block device."),
];

static PERSISTENT_VOLUME_CLAIMS: [Column; 9] = [
    NAME,
    col("Status", "Phase of the claim."),
    col("Volume", "The volume bound to the claim."),
    col("Capacity", "Storage capacity of the bound volume."),
    col("Access Modes", "Ways the bound volume can be mounted."),
    col("StorageClass", "Storage class of the claim."),
    col("VolumeAttributesClass", "Volume attributes class."),
    AGE,
    wide("VolumeMode", "Filesystem or raw block device."),
];

static DEPLOYMENTS: [Column; 8] = [
    NAME,
    col("Ready", "Ready replicas out of desired replicas."),
    col("Up-to-date", "Replicas running the latest pod template."),
    col("Available", "Replicas available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static REPLICA_SETS: [Column; 8] = [
    NAME,
    typed("Desired", "integer", "Number of replicas wanted."),
    typed("Current", "integer", "Number of replicas that exist."),
    typed("Ready", "integer", "Number of replicas that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static STATEFUL_SETS: [Column; 5] = [
    NAME,
    col("Ready", "Ready replicas out of desired replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
];

static DAEMON_SETS: [Column; 11] = [
    NAME,
    typed("Desired", "integer", "Nodes that should run the pod."),
    typed("Current", "integer", "Nodes running the pod."),
    typed("Ready", "integer", "Nodes whose pod is ready."),
    typed("Up-to-date", "integer", "Nodes running the latest pod."),
    typed("Available", "integer", "Nodes whose pod is available."),
    col("Node Selector", "Labels a node needs to run the pod."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static CONTROLLER_REVISIONS: [Column; 4] = [
    NAME,
    col("Controller", "The object controlling this revision."),
    col("Revision", "Revision number of the state held."),
    AGE,
];

static JOBS: [Column; 8] = [
    NAME,
    col("Status", "Status of the job."),
    col("Completions", "Succeeded out of wanted completions."),
    col("Duration", "Time the job took, or has taken so far."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static CRON_JOBS: [Column; 10] = [
    NAME,
    col("Schedule", "Cron schedule of the jobs."),
    col("Timezone", "Time zone the schedule is read in."),
    typed("Suspend", "boolean", "Whether new jobs are held back."),
    typed("Active", "integer", "Number of jobs running."),
    col("Last Schedule", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static ENDPOINT_SLICES: [Column; 5] = [
    NAME,
    col("AddressType", "Kind of addresses in the slice."),
    col("Ports", "Ports of the slice."),
    col("Endpoints", "Addresses of the endpoints."),
    AGE,
];

static LEASES: [Column; 3] = [NAME, col("Holder", "Identity holding the lease."), AGE];

static POD_DISRUPTION_BUDGETS: [Column; 5] = [
    NAME,
    col("Min Available", "Pods that must stay available."),
    col("Max Unavailable", "Pods that may be unavailable."),
    typed("Allowed Disruptions", "integer", "Disruptions allowed now."),
    AGE,
];

static NETWORK_POLICIES: [Column; 3] = [
    NAME,
    col("Pod-Selector", "Pods the policy applies to."),
    AGE,
];

static INGRESSES: [Column; 6] = [
    NAME,
    col("Class", "Ingress class handling the ingress."),
    col("Hosts", "Hosts the rules match."),
    col("Address", "Addresses of the load balancer."),
    col("Ports", "Ports served, 443 when TLS is configured."),
    AGE,
];

static INGRESS_CLASSES: [Column; 4] = [
    NAME,
    col("Controller", "Controller implementing the class."),
    col("Parameters", "Resource holding the class's parameters."),
    AGE,
];

static ROLE_BINDINGS: [Column; 6] = [
    NAME,
    col("Role", "The role bound, as Kind/name."),
    AGE,
    wide("Users", "Users bound."),
    wide("Groups", "Groups bound."),
    wide("ServiceAccounts", "Service accounts, namespace/name."),
];

static CERTIFICATE_SIGNING_REQUESTS: [Column; 6] = [
    NAME,
    AGE,
    col("SignerName", "Signer asked to sign the certificate."),
    col("Requestor", "User who created the request."),
    col("RequestedDuration", "Validity the requestor asked for."),
    col("Condition", "Approval and issuance state."),
];

static STORAGE_CLASSES: [Column; 6] = [
    NAME,
    col("Provisioner", "Provisioner creating the volumes."),
    col("ReclaimPolicy", "Reclaim policy of the volumes created."),
    col("VolumeBindingMode", "When volumes are bound to claims."),
    col("AllowVolumeExpansion", "Whether volumes may be expanded."),
    AGE,
];

static PRIORITY_CLASSES: [Column; 5] = [
    NAME,
    typed("Value", "integer", "Priority of pods in the class."),
    typed("Global-Default", "boolean", "Default class for pods."),
    AGE,
    col("PreemptionPolicy", "Whether pods may preempt others."),
];

static RUNTIME_CLASSES: [Column; 3] = [NAME, col("Handler", "Container runtime handler."), AGE];

static WEBHOOK_CONFIGURATIONS: [Column; 3] = [
    NAME,
    typed("Webhooks", "integer", "Webhooks in the configuration."),
    AGE,
];

static DEFAULT_BUILTIN: [Column; 2] = [
    NAME,
    typed("Created At", "date", "When the object was created."),
];

static DEFAULT_CUSTOM: [Column; 2] = [
    NAME,
    typed("Age", "date", "Time since the object was created."),
];

// ---- reading the object -------------------------------------------------------------------

static NULL: Value = Value::Null;

/// The value at a JSON pointer, or null.
fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&NULL)
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).as_str().unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).as_i64().unwrap_or(0)
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer).as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn present(v: &Value, pointer: &str) -> bool {
    !at(v, pointer).is_null()
}

/// Entries of a map or items of a list: what upstream's len() counts.
fn count(v: &Value, pointer: &str) -> i64 {
    let n = match at(v, pointer) {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    n as i64
}

fn time(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(v, pointer))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() { fallback } else { s }
}

/// Upstream's translateTimestampSince: a missing time is "<unknown>".
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "<unknown>".into(), |t| human_duration(now - t))
}

fn name(o: &Value) -> &str {
    text(o, "/metadata/name")
}

fn age(o: &Value, now: DateTime<Utc>) -> String {
    since(time(o, "/metadata/creationTimestamp"), now)
}

/// True when a condition of `type_` exists and the first such has status True.
fn condition_true(conditions: &[Value], type_: &str) -> bool {
    conditions
        .iter()
        .find(|c| text(c, "/type") == type_)
        .is_some_and(|c| text(c, "/status") == "True")
}

macro_rules! row {
    ($($cell:expr),* $(,)?) => { vec![$(Value::from($cell)),*] };
}

/// Container names and images of a pod spec, each joined with commas.
fn containers(pod_spec: &Value) -> (String, String) {
    let cs = list(pod_spec, "/containers");
    let names: Vec<&str> = cs.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// A label map as `k=v,k2=v2`, keys sorted; upstream's labels.FormatLabels.
fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// A metav1.LabelSelector as upstream's labels.Selector prints it: requirements sorted by key,
/// set values sorted. None when the selector could not be converted (a bad operator).
fn selector_string(selector: &Value) -> Option<String> {
    let mut requirements: Vec<(&str, String)> = Vec::new();
    for (key, value) in selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        requirements.push((key, format!("{key}={}", value.as_str().unwrap_or(""))));
    }
    for expr in list(selector, "/matchExpressions") {
        let key = text(expr, "/key");
        let mut values: Vec<&str> = list(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let printed = match (text(expr, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key, printed));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        requirements
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Upstream's metav1.FormatLabelSelector: "<none>" for a missing or empty selector.
fn format_label_selector(selector: &Value) -> String {
    if selector.is_null() {
        return "<none>".into();
    }
    match selector_string(selector) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// An IntOrString as upstream's String(): the number, or the string.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.as_i64().unwrap_or(0).to_string(),
    }
}

/// `host:port`, bracketing IPv6 hosts as net.JoinHostPort does.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Up to three items joined, then " + N more..."; none is "<unset>". Upstream's listWithMoreString.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    if items.len() > MAX {
        return format!("{} + {} more...", items[..MAX].join(","), items.len() - MAX);
    }
    if items.is_empty() {
        "<unset>".into()
    } else {
        items.join(",")
    }
}

/// Load balancer ingress points, IP else hostname, deduplicated and sorted.
fn load_balancer_addresses(status: &Value) -> String {
    let mut addresses: Vec<&str> = list(status, "/ingress")
        .iter()
        .map(|i| or(text(i, "/ip"), text(i, "/hostname")))
        .filter(|a| !a.is_empty())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    addresses.join(",")
}

/// Access modes in upstream's fixed order and short forms.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let short = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ];
    short
        .iter()
        .filter(|(long, _)| has(long))
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join(",")
}

/// The storage class, preferring the beta annotation that predates the field.
fn storage_class_of(o: &Value) -> &str {
    let annotation = at(o, "/metadata/annotations").get("volume.beta.kubernetes.io/storage-class");
    match annotation.and_then(Value::as_str) {
        Some(class) => class,
        None => text(o, "/spec/storageClassName"),
    }
}

fn replicas(o: &Value) -> i64 {
    // v1 defaults a missing spec.replicas to 1.
    at(o, "/spec/replicas").as_i64().unwrap_or(1)
}

// ---- per-kind cells -----------------------------------------------------------------------

fn namespace(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), text(o, "/status/phase"), age(o, now)]
}

fn pod(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = text(o, "/status/phase");
    let mut reason = or(text(o, "/status/reason"), phase).to_string();
    let conditions = list(o, "/status/conditions");
    if conditions
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let init_specs = list(o, "/spec/initContainers");
    // Sidecars: init containers that keep running, and count as the pod's containers.
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always")
        .count();
    let total = list(o, "/spec/containers").len() + sidecars;
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let mut initializing = false;
    for (i, status) in list(o, "/status/initContainerStatuses").iter().enumerate() {
        let finished = time(status, "/lastState/terminated/finishedAt");
        restarts += int(status, "/restartCount");
        last_restart = last_restart.max(finished);
        let sidecar = is_sidecar(text(status, "/name"));
        if sidecar {
            sidecar_restarts += int(status, "/restartCount");
            last_sidecar_restart = last_sidecar_restart.max(finished);
        }
        let terminated = at(status, "/state/terminated");
        let waiting_reason = text(status, "/state/waiting/reason");
        if !terminated.is_null() && int(terminated, "/exitCode") == 0 {
            continue;
        }
        if sidecar && at(status, "/started").as_bool() == Some(true) {
            if at(status, "/ready").as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if !terminated.is_null() {
            match text(terminated, "/reason") {
                "" if int(terminated, "/signal") != 0 => {
                    format!("Init:Signal:{}", int(terminated, "/signal"))
                }
                "" => format!("Init:ExitCode:{}", int(terminated, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        // Restarts of init containers that ran to completion no longer matter; sidecars' do.
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in list(o, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = last_restart.max(time(status, "/lastState/terminated/finishedAt"));
            let terminated = at(status, "/state/terminated");
            let waiting_reason = text(status, "/state/waiting/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if !terminated.is_null() {
                reason = match text(terminated, "/reason") {
                    "" if int(terminated, "/signal") != 0 => {
                        format!("Signal:{}", int(terminated, "/signal"))
                    }
                    "" => format!("ExitCode:{}", int(terminated, "/exitCode")),
                    r => r.to_string(),
                };
            } else if at(status, "/ready").as_bool() == Some(true)
                && present(status, "/state/running")
            {
                has_running = true;
                ready += 1;
            }
        }
        // One container finished while another still runs: the pod is not completed.
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    if present(o, "/metadata/deletionTimestamp") {
        if text(o, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    // v1 status.podIP is authoritative over podIPs[0] when converting to the internal type.
    let ip = or(text(o, "/status/podIP"), text(o, "/status/podIPs/0/ip"));
    let gates = list(o, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(conditions, text(g, "/conditionType")))
            .count();
        format!("{met}/{}", gates.len())
    };
    row![
        name(o),
        format!("{ready}/{total}"),
        reason,
        restarts,
        age(o, now),
        or(ip, "<none>"),
        or(text(o, "/spec/nodeName"), "<none>"),
        or(text(o, "/status/nominatedNodeName"), "<none>"),
        readiness_gates,
    ]
}

fn pod_template(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = containers(at(o, "/template/spec"));
    row![
        name(o),
        names,
        images,
        format_labels(at(o, "/template/metadata/labels"))
    ]
}

fn node(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Later duplicates of a condition type win, as upstream's map does.
    let ready = list(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if text(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if at(o, "/spec/unschedulable").as_bool() == Some(true) {
        status.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = Vec::new();
    for (key, value) in at(o, "/metadata/labels").as_object().into_iter().flatten() {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.push(role);
            }
        } else if key == "kubernetes.io/role" {
            roles.extend(value.as_str().filter(|v| !v.is_empty()));
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    };

    let address = |type_: &str| {
        list(o, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == type_)
            .map_or("<none>", |a| text(a, "/address"))
    };
    let info = at(o, "/status/nodeInfo");
    row![
        name(o),
        status.join(","),
        roles,
        age(o, now),
        text(info, "/kubeletVersion"),
        address("InternalIP"),
        address("ExternalIP"),
        or(text(info, "/osImage"), "<unknown>"),
        or(text(info, "/kernelVersion"), "<unknown>"),
        or(text(info, "/containerRuntimeVersion"), "<unknown>"),
    ]
}

fn service(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // v1 defaults a missing type to ClusterIP.
    let type_ = at(o, "/spec/type").as_str().unwrap_or("ClusterIP");
    // v1 spec.clusterIP is authoritative over clusterIPs[0] when converting.
    let cluster_ip = or(
        or(text(o, "/spec/clusterIP"), text(o, "/spec/clusterIPs/0")),
        "<none>",
    );
    let external_ips: Vec<&str> = list(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match type_ {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let balancer = load_balancer_addresses(at(o, "/status/loadBalancer"));
            match (balancer.is_empty(), external_ips.is_empty()) {
                (true, true) => "<pending>".into(),
                (false, true) => balancer,
                (true, false) => external_ips.join(","),
                (false, false) => format!("{balancer},{}", external_ips.join(",")),
            }
        }
        "ExternalName" => text(o, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = list(o, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = at(p, "/protocol").as_str().unwrap_or("TCP");
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    row![
        name(o),
        type_,
        cluster_ip,
        external,
        ports,
        age(o, now),
        format_labels(at(o, "/spec/selector")),
    ]
}

fn endpoints(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = list(o, "/subsets");
    let printed = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut shown: Vec<String> = Vec::new();
        let mut total = 0;
        for subset in subsets {
            let addresses = list(subset, "/addresses");
            let ports = list(subset, "/ports");
            // A headless service may have no ports: list bare addresses.
            let ports: Vec<Option<i64>> = if ports.is_empty() {
                vec![None]
            } else {
                ports.iter().map(|p| Some(int(p, "/port"))).collect()
            };
            for port in ports {
                total += addresses.len();
                for address in addresses {
                    if shown.len() == MAX {
                        break;
                    }
                    let ip = text(address, "/ip");
                    shown.push(port.map_or_else(|| ip.to_string(), |p| join_host_port(ip, p)));
                }
            }
        }
        if total > MAX {
            format!("{} + {} more...", shown.join(","), total - MAX)
        } else {
            shown.join(",")
        }
    };
    row![name(o), printed, age(o, now)]
}

fn config_map(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![
        name(o),
        count(o, "/data") + count(o, "/binaryData"),
        age(o, now)
    ]
}

fn secret(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), text(o, "/type"), count(o, "/data"), age(o, now)]
}

fn service_account(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), count(o, "/secrets"), age(o, now)]
}

/// An event's fields as upstream's internal Event holds them, whichever API version stored it.
struct EventFields<'a> {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    count: i64,
    involved: &'a Value,
    source: &'a Value,
    message: &'a str,
}

fn core_event(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let fields = EventFields {
        first: time(o, "/firstTimestamp"),
        last: time(o, "/lastTimestamp"),
        count: int(o, "/count"),
        involved: at(o, "/involvedObject"),
        source: at(o, "/source"),
        message: text(o, "/message"),
    };
    // core/v1 names the reporting controller "reportingComponent".
    event_row(o, &fields, text(o, "/reportingComponent"), now)
}

fn events_event(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let fields = EventFields {
        first: time(o, "/deprecatedFirstTimestamp"),
        last: time(o, "/deprecatedLastTimestamp"),
        count: int(o, "/deprecatedCount"),
        involved: at(o, "/regarding"),
        source: at(o, "/deprecatedSource"),
        message: text(o, "/note"),
    };
    event_row(o, &fields, text(o, "/reportingController"), now)
}

fn event_row(
    o: &Value,
    e: &EventFields,
    reporting_controller: &str,
    now: DateTime<Utc>,
) -> Vec<Value> {
    // Events from the newer API carry only eventTime, and a series instead of a count.
    let first_seen = since(e.first.or_else(|| time(o, "/eventTime")), now);
    let mut last_seen = if e.last.is_some() {
        since(e.last, now)
    } else {
        first_seen.clone()
    };
    let mut count = e.count;
    if present(o, "/series") {
        last_seen = since(time(o, "/series/lastObservedTime"), now);
        count = int(o, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = text(e.involved, "/kind").to_lowercase();
    let object = match text(e.involved, "/name") {
        "" => kind,
        involved => format!("{kind}/{involved}"),
    };
    let component = or(text(e.source, "/component"), reporting_controller);
    let source = match or(text(e.source, "/host"), text(o, "/reportingInstance")) {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    };
    row![
        last_seen,
        text(o, "/type"),
        text(o, "/reason"),
        object,
        text(e.involved, "/fieldPath"),
        source,
        e.message.trim(),
        first_seen,
        count,
        name(o),
    ]
}

fn resource_quota(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let hard = at(o, "/status/hard");
    let mut resources: Vec<&String> = hard
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    resources.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for resource in resources {
        let used = at(o, "/status/used")
            .get(resource.as_str())
            .and_then(Value::as_str)
            .unwrap_or("0");
        let entry = format!(
            "{resource}: {used}/{}",
            hard[resource.as_str()].as_str().unwrap_or("")
        );
        let is_limit = resource
            .split_once('.')
            .is_some_and(|(prefix, _)| prefix == "limits");
        if is_limit {
            limits.push(entry)
        } else {
            requests.push(entry)
        }
    }
    row![name(o), requests.join(", "), limits.join(", "), age(o, now)]
}

fn replication_controller(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = containers(at(o, "/spec/template/spec"));
    row![
        name(o),
        replicas(o),
        int(o, "/status/replicas"),
        int(o, "/status/readyReplicas"),
        age(o, now),
        names,
        images,
        format_labels(at(o, "/spec/selector")),
    ]
}

fn persistent_volume(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let claim = if present(o, "/spec/claimRef") {
        format!(
            "{}/{}",
            text(o, "/spec/claimRef/namespace"),
            text(o, "/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    let phase = if present(o, "/metadata/deletionTimestamp") {
        "Terminating"
    } else {
        text(o, "/status/phase")
    };
    row![
        name(o),
        or(text(o, "/spec/capacity/storage"), "0"),
        access_modes(list(o, "/spec/accessModes")),
        text(o, "/spec/persistentVolumeReclaimPolicy"),
        phase,
        claim,
        storage_class_of(o),
        or(text(o, "/spec/volumeAttributesClassName"), "<unset>"),
        text(o, "/status/reason"),
        age(o, now),
        or(text(o, "/spec/volumeMode"), "<unset>"),
    ]
}

fn persistent_volume_claim(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = if present(o, "/metadata/deletionTimestamp") {
        "Terminating"
    } else {
        text(o, "/status/phase")
    };
    let volume = text(o, "/spec/volumeName");
    // Capacity and modes are the bound volume's, so blank until bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            or(text(o, "/status/capacity/storage"), "0").to_string(),
            access_modes(list(o, "/status/accessModes")),
        )
    };
    row![
        name(o),
        phase,
        volume,
        capacity,
        modes,
        storage_class_of(o),
        or(text(o, "/spec/volumeAttributesClassName"), "<unset>"),
        age(o, now),
        or(text(o, "/spec/volumeMode"), "<unset>"),
    ]
}

fn deployment(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = containers(at(o, "/spec/template/spec"));
    // Unlike the other workloads, upstream prints the bare selector here: "" when empty.
    let selector = at(o, "/spec/selector");
    let selector = if selector.is_null() {
        String::new()
    } else {
        selector_string(selector).unwrap_or_else(|| "<invalid>".into())
    };
    row![
        name(o),
        format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)),
        int(o, "/status/updatedReplicas"),
        int(o, "/status/availableReplicas"),
        age(o, now),
        names,
        images,
        selector,
    ]
}

fn replica_set(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = containers(at(o, "/spec/template/spec"));
    row![
        name(o),
        replicas(o),
        int(o, "/status/replicas"),
        int(o, "/status/readyReplicas"),
        age(o, now),
        names,
        images,
        format_label_selector(at(o, "/spec/selector")),
    ]
}

fn stateful_set(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = containers(at(o, "/spec/template/spec"));
    row![
        name(o),
        format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)),
        age(o, now),
        names,
        images,
    ]
}

fn daemon_set(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = containers(at(o, "/spec/template/spec"));
    row![
        name(o),
        int(o, "/status/desiredNumberScheduled"),
        int(o, "/status/currentNumberScheduled"),
        int(o, "/status/numberReady"),
        int(o, "/status/updatedNumberScheduled"),
        int(o, "/status/numberAvailable"),
        format_labels(at(o, "/spec/template/spec/nodeSelector")),
        age(o, now),
        names,
        images,
        format_label_selector(at(o, "/spec/selector")),
    ]
}

fn controller_revision(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let owner = list(o, "/metadata/ownerReferences")
        .iter()
        .find(|r| at(r, "/controller").as_bool() == Some(true));
    let controller = owner.map_or_else(
        || "<none>".to_string(),
        |r| {
            // "kind.group/name", lower-cased; the core group adds no suffix.
            let group = text(r, "/apiVersion")
                .split_once('/')
                .map_or("", |(g, _)| g);
            let kind = text(r, "/kind");
            let group_kind = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            if group_kind.is_empty() {
                text(r, "/name").to_string()
            } else {
                format!("{}/{}", group_kind.to_lowercase(), text(r, "/name"))
            }
        },
    );
    row![name(o), controller, int(o, "/revision"), age(o, now)]
}

fn job(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(o, "/status/succeeded");
    let completions = match at(o, "/spec/completions").as_i64() {
        Some(wanted) => format!("{succeeded}/{wanted}"),
        None => match int(o, "/spec/parallelism") {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time(o, "/status/startTime"),
        time(o, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let conditions = list(o, "/status/conditions");
    let status = if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if present(o, "/metadata/deletionTimestamp") {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(at(o, "/spec/template/spec"));
    row![
        name(o),
        status,
        completions,
        duration,
        age(o, now),
        names,
        images,
        format_label_selector(at(o, "/spec/selector")),
    ]
}

fn cron_job(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last_schedule = if present(o, "/status/lastScheduleTime") {
        since(time(o, "/status/lastScheduleTime"), now)
    } else {
        "<none>".into()
    };
    // Upstream prints this "boolean" column as text.
    let suspend = match at(o, "/spec/suspend").as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let (names, images) = containers(at(o, "/spec/jobTemplate/spec/template/spec"));
    row![
        name(o),
        text(o, "/spec/schedule"),
        or(text(o, "/spec/timeZone"), "<none>"),
        suspend,
        count(o, "/status/active"),
        last_schedule,
        age(o, now),
        names,
        images,
        format_label_selector(at(o, "/spec/jobTemplate/spec/selector")),
    ]
}

fn endpoint_slice(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports = list(o, "/ports")
        .iter()
        .map(|p| match at(p, "/port").as_i64() {
            Some(port) => port.to_string(),
            None => or(text(p, "/name"), "*").to_string(),
        })
        .collect();
    let addresses = list(o, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    row![
        name(o),
        text(o, "/addressType"),
        list_with_more(ports),
        list_with_more(addresses),
        age(o, now),
    ]
}

fn lease(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), text(o, "/spec/holderIdentity"), age(o, now)]
}

fn pod_disruption_budget(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let bound = |pointer| match at(o, pointer) {
        Value::Null => "N/A".to_string(),
        v => int_or_string(v),
    };
    row![
        name(o),
        bound("/spec/minAvailable"),
        bound("/spec/maxUnavailable"),
        int(o, "/status/disruptionsAllowed"),
        age(o, now),
    ]
}

fn network_policy(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // A missing podSelector is the empty one; both print "<none>".
    row![
        name(o),
        format_label_selector(at(o, "/spec/podSelector")),
        age(o, now)
    ]
}

fn ingress(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = list(o, "/spec/rules");
    // The first three hosts; "more" once a rule follows them, counting hostless rules too.
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        hosts.extend(Some(text(rule, "/host")).filter(|h| !h.is_empty()));
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if list(o, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    row![
        name(o),
        or(text(o, "/spec/ingressClassName"), "<none>"),
        hosts,
        load_balancer_addresses(at(o, "/status/loadBalancer")),
        ports,
        age(o, now),
    ]
}

fn ingress_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = at(o, "/spec/parameters");
    let parameters = if parameters.is_null() {
        "<none>".to_string()
    } else {
        let kind = match at(parameters, "/apiGroup").as_str() {
            Some(group) => format!("{}.{group}", text(parameters, "/kind")),
            None => text(parameters, "/kind").to_string(),
        };
        format!("{kind}/{}", text(parameters, "/name"))
    };
    row![
        name(o),
        text(o, "/spec/controller"),
        parameters,
        age(o, now)
    ]
}

fn role_binding(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(o, "/subjects") {
        let subject_name = text(subject, "/name");
        match text(subject, "/kind") {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => {
                accounts.push(format!("{}/{subject_name}", text(subject, "/namespace")))
            }
            _ => {}
        }
    }
    row![
        name(o),
        format!("{}/{}", text(o, "/roleRef/kind"), text(o, "/roleRef/name")),
        age(o, now),
        users.join(", "),
        groups.join(", "),
        accounts.join(", "),
    ]
}

fn certificate_signing_request(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let conditions = list(o, "/status/conditions");
    let has = |type_: &str| conditions.iter().any(|c| text(c, "/type") == type_);
    // Denied outranks Approved; Failed and Issued are added to either.
    let mut condition = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if !text(o, "/status/certificate").is_empty() {
        condition.push_str(",Issued");
    }
    let requested = match at(o, "/spec/expirationSeconds").as_i64() {
        Some(seconds) => human_duration(Duration::seconds(seconds)),
        None => "<none>".into(),
    };
    row![
        name(o),
        age(o, now),
        or(text(o, "/spec/signerName"), "<none>"),
        text(o, "/spec/username"),
        requested,
        condition,
    ]
}

fn storage_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let annotations = at(o, "/metadata/annotations");
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|a| annotations.get(a).and_then(Value::as_str) == Some("true"));
    let shown_name = if is_default {
        format!("{} (default)", name(o))
    } else {
        name(o).to_string()
    };
    row![
        shown_name,
        text(o, "/provisioner"),
        at(o, "/reclaimPolicy").as_str().unwrap_or("Delete"),
        at(o, "/volumeBindingMode").as_str().unwrap_or("Immediate"),
        at(o, "/allowVolumeExpansion").as_bool().unwrap_or(false),
        age(o, now),
    ]
}

fn priority_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![
        name(o),
        int(o, "/value"),
        at(o, "/globalDefault").as_bool().unwrap_or(false),
        age(o, now),
        text(o, "/preemptionPolicy"),
    ]
}

fn runtime_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), text(o, "/handler"), age(o, now)]
}

fn webhook_configuration(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), count(o, "/webhooks"), age(o, now)]
}

fn default_builtin(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    // RFC 3339 in UTC; upstream formats the zero time when the timestamp is missing.
    let created = time(o, "/metadata/creationTimestamp").map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    row![name(o), created]
}

fn default_custom(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    row![name(o), age(o, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The RFC 3339 time `seconds` before `now()`.
    fn ago(seconds: i64) -> String {
        (now() - Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// `expected` is the row as JSON text, so it shows the cell types that go over the wire.
    #[track_caller]
    fn check(group: &str, resource: &str, obj: Value, expected: &str) {
        let expected: Value = serde_json::from_str(expected).expect("expected cells are JSON");
        let got = cells(group, resource, &obj, now());
        assert_eq!(
            got.len(),
            columns(group, resource).len(),
            "one cell per column"
        );
        assert_eq!(Value::Array(got), expected);
    }

    /// The column names, comma-separated, with a `*` after those shown only with `-o wide`.
    fn header(group: &str, resource: &str) -> String {
        let names: Vec<String> = columns(group, resource)
            .iter()
            .map(|c| format!("{}{}", c.name, if c.priority == 1 { "*" } else { "" }))
            .collect();
        names.join(", ")
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0s"),
            (-1, "0s"),
            (-2, "<invalid>"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (730 * 86400 - 1, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400 - 1, "7y364d"),
            (8 * 365 * 86400, "8y"),
            (9 * 365 * 86400 + 100 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                human_duration(Duration::seconds(seconds)),
                want,
                "{seconds}s"
            );
        }
        // Fractions truncate toward zero: 1.5s of clock skew still reads as now.
        assert_eq!(human_duration(Duration::milliseconds(-1500)), "0s");
        assert_eq!(human_duration(Duration::milliseconds(2999)), "2s");
    }

    /// A pod "web", ten minutes old, with one container "app" unless `spec` lists others.
    fn pod(spec: Value, status: Value) -> Value {
        let mut full_spec = json!({"containers": [{"name": "app", "image": "nginx"}]});
        full_spec
            .as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        json!({"metadata": {"name": "web", "creationTimestamp": ago(600)},
               "spec": full_spec, "status": status})
    }

    /// The pod above with just its one container.
    fn one(status: Value) -> Value {
        pod(json!({}), status)
    }

    fn running(name: &str, ready: bool) -> Value {
        json!({"name": name, "ready": ready, "restartCount": 0, "started": true,
               "state": {"running": {"startedAt": ago(500)}}})
    }

    fn waiting(name: &str, reason: &str) -> Value {
        json!({"name": name, "ready": false, "restartCount": 0,
               "state": {"waiting": {"reason": reason}}})
    }

    fn terminated(name: &str, exit_code: i64, reason: &str) -> Value {
        let mut state = json!({"exitCode": exit_code, "finishedAt": ago(100)});
        if !reason.is_empty() {
            state["reason"] = json!(reason);
        }
        json!({"name": name, "ready": false, "restartCount": 0, "state": {"terminated": state}})
    }

    /// `status` having restarted `restarts` times, last `finished_ago` seconds ago.
    fn restarted(mut status: Value, restarts: i64, finished_ago: i64) -> Value {
        status["restartCount"] = json!(restarts);
        status["lastState"] =
            json!({"terminated": {"exitCode": 1, "finishedAt": ago(finished_ago)}});
        status
    }

    #[test]
    fn pod_ready_status_restarts() {
        let inits = || json!({"initContainers": [{"name": "init-a"}, {"name": "init-b"}]});
        let ready = json!([{"type": "Initialized", "status": "True"},
                           {"type": "Ready", "status": "True"}]);
        let cases = [
            (
                "running and ready",
                one(json!({"phase": "Running", "conditions": ready,
                           "containerStatuses": [running("app", true)]})),
                ["1/1", "Running", "0"],
            ),
            (
                "not yet scheduled",
                one(json!({"phase": "Pending"})),
                ["0/1", "Pending", "0"],
            ),
            (
                "pulling the image",
                one(json!({"phase": "Pending",
                           "containerStatuses": [waiting("app", "ContainerCreating")]})),
                ["0/1", "ContainerCreating", "0"],
            ),
            (
                "crash looping",
                one(json!({"phase": "Running",
                           "containerStatuses": [
                               restarted(waiting("app", "CrashLoopBackOff"), 5, 300)]})),
                ["0/1", "CrashLoopBackOff", "5 (5m ago)"],
            ),
            (
                "completed",
                one(json!({"phase": "Succeeded",
                           "containerStatuses": [terminated("app", 0, "Completed")]})),
                ["0/1", "Completed", "0"],
            ),
            (
                "failed",
                one(json!({"phase": "Failed",
                           "containerStatuses": [terminated("app", 1, "Error")]})),
                ["0/1", "Error", "0"],
            ),
            (
                "exit code without a reason",
                one(json!({"phase": "Failed",
                           "containerStatuses": [terminated("app", 137, "")]})),
                ["0/1", "ExitCode:137", "0"],
            ),
            (
                "killed by a signal",
                one(json!({"phase": "Failed",
                           "containerStatuses": [{"name": "app", "restartCount": 0,
                               "state": {"terminated": {"exitCode": 0, "signal": 9}}}]})),
                ["0/1", "Signal:9", "0"],
            ),
            (
                "evicted",
                one(json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"})),
                ["0/1", "Evicted", "0"],
            ),
            (
                "scheduling gated",
                one(json!({"phase": "Pending",
                           "conditions": [{"type": "PodScheduled", "status": "False",
                                           "reason": "SchedulingGated"}]})),
                ["0/1", "SchedulingGated", "0"],
            ),
            (
                "first init container running",
                pod(
                    inits(),
                    json!({"phase": "Pending",
                    "initContainerStatuses": [running("init-a", false),
                                              waiting("init-b", "PodInitializing")],
                    "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                ["0/1", "Init:0/2", "0"],
            ),
            (
                "second init container running",
                pod(
                    inits(),
                    json!({"phase": "Pending",
                    "initContainerStatuses": [terminated("init-a", 0, "Completed"),
                                              running("init-b", false)],
                    "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                ["0/1", "Init:1/2", "0"],
            ),
            (
                "init container crash looping",
                pod(
                    inits(),
                    json!({"phase": "Pending",
                    "initContainerStatuses": [
                        restarted(waiting("init-a", "CrashLoopBackOff"), 3, 60),
                                              waiting("init-b", "PodInitializing")],
                    "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                ["0/1", "Init:CrashLoopBackOff", "3 (60s ago)"],
            ),
            (
                "init container failed",
                pod(
                    inits(),
                    json!({"phase": "Pending",
                    "initContainerStatuses": [terminated("init-a", 1, "Error")]}),
                ),
                ["0/1", "Init:Error", "0"],
            ),
            (
                "init container exit code",
                pod(
                    inits(),
                    json!({"phase": "Pending",
                    "initContainerStatuses": [terminated("init-a", 0, "Completed"),
                                              terminated("init-b", 2, "")]}),
                ),
                ["0/1", "Init:ExitCode:2", "0"],
            ),
            (
                "initialized, main container starting",
                pod(
                    inits(),
                    json!({"phase": "Pending",
                    "initContainerStatuses": [terminated("init-a", 0, "Completed"),
                                              terminated("init-b", 0, "Completed")],
                    "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                ["0/1", "PodInitializing", "0"],
            ),
            (
                "sidecar counts as a container, and its restarts count",
                pod(
                    json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}]}),
                    json!({"phase": "Running", "conditions": ready,
                           "initContainerStatuses": [
                               restarted(running("proxy", true), 1, 3 * 3600)],
                           "containerStatuses": [running("app", true)]}),
                ),
                ["2/2", "Running", "1 (3h ago)"],
            ),
            (
                "one container done, another running, pod not ready",
                pod(
                    json!({"containers": [{"name": "app"}, {"name": "migrate"}]}),
                    json!({"phase": "Running",
                           "containerStatuses": [running("app", true),
                                                 terminated("migrate", 0, "Completed")]}),
                ),
                ["1/2", "NotReady", "0"],
            ),
            (
                "one container done, another running, pod ready",
                pod(
                    json!({"containers": [{"name": "app"}, {"name": "migrate"}]}),
                    json!({"phase": "Running", "conditions": ready,
                           "containerStatuses": [running("app", true),
                                                 terminated("migrate", 0, "Completed")]}),
                ),
                ["1/2", "Running", "0"],
            ),
            (
                "restarts summed over containers, the latest shown",
                pod(
                    json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                    json!({"phase": "Running",
                           "containerStatuses": [restarted(running("a", true), 2, 7200),
                                                 restarted(running("b", true), 1, 90)]}),
                ),
                ["2/2", "Running", "3 (90s ago)"],
            ),
        ];
        for (case, obj, [ready, status, restarts]) in cases {
            let got = cells("", "pods", &obj, now());
            assert_eq!(
                got[1..4],
                [json!(ready), json!(status), json!(restarts)],
                "{case}"
            );
        }
    }

    #[test]
    fn pod_deletion() {
        let deleted = |mut pod: Value| {
            pod["metadata"]["deletionTimestamp"] = json!(ago(5));
            cells("", "pods", &pod, now())[2].clone()
        };
        let running_pod = |reason: &str| {
            one(json!({"phase": "Running", "reason": reason,
                       "containerStatuses": [running("app", true)]}))
        };
        assert_eq!(deleted(running_pod("")), "Terminating");
        assert_eq!(deleted(running_pod("NodeLost")), "Unknown");
        let done = one(json!({"phase": "Succeeded",
                              "containerStatuses": [terminated("app", 0, "Completed")]}));
        assert_eq!(
            deleted(done),
            "Completed",
            "a finished pod is not terminating"
        );
    }

    #[test]
    fn pod_wide_columns() {
        assert_eq!(
            header("", "pods"),
            "Name, Ready, Status, Restarts, Age, IP*, Node*, Nominated Node*, Readiness Gates*"
        );
        check(
            "",
            "pods",
            pod(
                json!({"nodeName": "node-1",
                       "readinessGates": [{"conditionType": "example.com/lb"},
                                          {"conditionType": "example.com/dns"}]}),
                json!({"phase": "Running", "podIP": "10.244.1.7",
                       "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00::7"}],
                       "nominatedNodeName": "node-2",
                       "conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "example.com/lb", "status": "True"},
                                      {"type": "example.com/dns", "status": "False"}],
                       "containerStatuses": [running("app", true)]}),
            ),
            r#"["web", "1/1", "Running", "0", "10m", "10.244.1.7", "node-1", "node-2", "1/2"]"#,
        );
        check(
            "",
            "pods",
            one(json!({"phase": "Pending"})),
            r#"["web", "0/1", "Pending", "0", "10m", "<none>", "<none>", "<none>", "<none>"]"#,
        );
        check(
            "",
            "pods",
            one(json!({"phase": "Pending", "podIPs": [{"ip": "fd00::9"}]})),
            r#"["web", "0/1", "Pending", "0", "10m", "fd00::9", "<none>", "<none>", "<none>"]"#,
        );
        check(
            "",
            "pods",
            json!({"metadata": {"name": "bare"}}),
            r#"["bare", "0/0", "", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>"]"#,
        );
    }

    /// Node "node-1", three days old, with an internal address and full node info.
    fn node(labels: Value, unschedulable: bool, conditions: Value) -> Value {
        json!({
            "metadata": {"name": "node-1", "creationTimestamp": ago(3 * 86400), "labels": labels},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "node-1"},
                              {"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "InternalIP", "address": "192.168.1.11"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Ubuntu 24.04 LTS",
                             "kernelVersion": "6.8.0-45-generic",
                             "containerRuntimeVersion": "containerd://2.0.4"}
            }
        })
    }

    #[test]
    fn nodes() {
        assert_eq!(
            header("", "nodes"),
            "Name, Status, Roles, Age, Version, \
             Internal-IP*, External-IP*, OS-Image*, Kernel-Version*, Container-Runtime*"
        );
        let ready = json!([{"type": "MemoryPressure", "status": "False"},
                           {"type": "Ready", "status": "True"}]);
        let cases = [
            (
                json!({"node-role.kubernetes.io/control-plane": "",
                       "kubernetes.io/hostname": "node-1"}),
                false,
                ready.clone(),
                "Ready",
                "control-plane",
            ),
            (
                // Both label styles, sorted and deduplicated; an empty role name is ignored.
                json!({"node-role.kubernetes.io/worker": "true", "kubernetes.io/role": "infra",
                       "node-role.kubernetes.io/infra": "", "node-role.kubernetes.io/": ""}),
                false,
                json!([{"type": "Ready", "status": "Unknown"}]),
                "NotReady",
                "infra,worker",
            ),
            (json!({}), true, ready, "Ready,SchedulingDisabled", "<none>"),
            (
                json!({"kubernetes.io/role": ""}),
                true,
                json!([]),
                "Unknown,SchedulingDisabled",
                "<none>",
            ),
        ];
        for (labels, unschedulable, conditions, status, roles) in cases {
            let want = format!(
                r#"["node-1", "{status}", "{roles}", "3d", "v1.33.1", "192.168.1.10", "<none>",
                    "Ubuntu 24.04 LTS", "6.8.0-45-generic", "containerd://2.0.4"]"#
            );
            check("", "nodes", node(labels, unschedulable, conditions), &want);
        }
        check(
            "",
            "nodes",
            json!({"metadata": {"name": "new", "creationTimestamp": ago(30)},
                   "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.9"}]}}),
            r#"["new", "Unknown", "<none>", "30s", "", "<none>", "203.0.113.9",
                "<unknown>", "<unknown>", "<unknown>"]"#,
        );
    }

    #[test]
    fn services() {
        assert_eq!(
            header("", "services"),
            "Name, Type, Cluster-IP, External-IP, Port(s), Age, Selector*"
        );
        let cases = [
            (
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "selector": {"app": "web", "tier": "fe"},
                       "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080},
                                 {"port": 443, "protocol": "TCP"}]}),
                json!({}),
                r#"["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,443/TCP", "5m",
                    "app=web,tier=fe"]"#,
            ),
            (
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.11",
                       "externalIPs": ["198.51.100.1", "198.51.100.2"],
                       "ports": [{"port": 53, "protocol": "UDP"}]}),
                json!({}),
                r#"["web", "ClusterIP", "10.96.0.11", "198.51.100.1,198.51.100.2", "53/UDP", "5m",
                    "<none>"]"#,
            ),
            (
                // Headless; a port stored without its defaulted protocol reads TCP.
                json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 5432}]}),
                json!({}),
                r#"["web", "ClusterIP", "None", "<none>", "5432/TCP", "5m", "<none>"]"#,
            ),
            (
                json!({"type": "NodePort", "clusterIPs": ["10.96.0.12"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                 {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}),
                json!({}),
                r#"["web", "NodePort", "10.96.0.12", "<none>", "80:30080/TCP,443:30443/TCP", "5m",
                    "<none>"]"#,
            ),
            (
                json!({"type": "LoadBalancer", "clusterIP": "10.96.0.13",
                       "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}),
                json!({"loadBalancer": {}}),
                r#"["web", "LoadBalancer", "10.96.0.13", "<pending>", "80:31000/TCP", "5m",
                    "<none>"]"#,
            ),
            (
                // Balancer addresses sorted and deduplicated, then the external IPs.
                json!({"type": "LoadBalancer", "clusterIP": "10.96.0.14",
                       "externalIPs": ["198.51.100.1"],
                       "ports": [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]}),
                json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"},
                                                   {"ip": "203.0.113.7"}, {"ip": "203.0.113.7"}]}}),
                r#"["web", "LoadBalancer", "10.96.0.14", "203.0.113.7,lb.example.com,198.51.100.1",
                    "443:30443/TCP", "5m", "<none>"]"#,
            ),
            (
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
                r#"["web", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"]"#,
            ),
        ];
        for (spec, status, want) in cases {
            let service = json!({"metadata": {"name": "web", "creationTimestamp": ago(300)},
                                 "spec": spec, "status": status});
            check("", "services", service, want);
        }
    }

    #[test]
    fn endpoints_and_slices() {
        let endpoints = |subsets: Value| {
            json!({"metadata": {"name": "web", "creationTimestamp": ago(60)},
                   "subsets": subsets})
        };
        check(
            "",
            "endpoints",
            endpoints(json!([])),
            r#"["web", "<none>", "60s"]"#,
        );
        check(
            "",
            "endpoints",
            endpoints(
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                              "ports": [{"port": 80}, {"port": 443}]}]),
            ),
            r#"["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "60s"]"#,
        );
        check(
            "",
            "endpoints",
            endpoints(json!([{"addresses": [{"ip": "10.0.0.9"}]},
                             {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}])),
            r#"["web", "10.0.0.9,[fd00::1]:53", "60s"]"#,
        );

        let slice = |ports: Value, endpoints: Value| {
            json!({"metadata": {"name": "web-abc", "creationTimestamp": ago(60)},
                   "addressType": "IPv4", "ports": ports, "endpoints": endpoints})
        };
        check(
            "discovery.k8s.io",
            "endpointslices",
            slice(
                json!([{"port": 80}, {"name": "metrics"}, {}, {"port": 9090}]),
                json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}]),
            ),
            r#"["web-abc", "IPv4", "80,metrics,* + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3",
                "60s"]"#,
        );
        check(
            "discovery.k8s.io",
            "endpointslices",
            slice(
                json!([]),
                json!([{"addresses": ["a", "b"]}, {"addresses": ["c", "d", "e"]}]),
            ),
            r#"["web-abc", "IPv4", "<unset>", "a,b,c + 2 more...", "60s"]"#,
        );
    }

    #[test]
    fn config_and_identity() {
        // Two hours reads "120m": minutes stay until three hours.
        let meta = |name: &str| json!({"name": name, "creationTimestamp": ago(7200)});
        let cases = [
            (
                "",
                "namespaces",
                json!({"metadata": meta("prod"), "status": {"phase": "Active"}}),
                r#"["prod", "Active", "120m"]"#,
            ),
            (
                "",
                "configmaps",
                json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"},
                    "binaryData": {"c": "AA=="}}),
                r#"["cfg", 3, "120m"]"#,
            ),
            (
                "",
                "configmaps",
                json!({"metadata": meta("empty")}),
                r#"["empty", 0, "120m"]"#,
            ),
            (
                "",
                "secrets",
                json!({"metadata": meta("tls"), "type": "kubernetes.io/tls",
                    "data": {"tls.crt": "", "tls.key": ""}}),
                r#"["tls", "kubernetes.io/tls", 2, "120m"]"#,
            ),
            (
                "",
                "serviceaccounts",
                json!({"metadata": meta("default"), "secrets": [{"name": "default-token"}]}),
                r#"["default", 1, "120m"]"#,
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": meta("kube-scheduler"),
                       "spec": {"holderIdentity": "cp-1_1234"}}),
                r#"["kube-scheduler", "cp-1_1234", "120m"]"#,
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": meta("free")}),
                r#"["free", "", "120m"]"#,
            ),
        ];
        for (group, resource, obj, want) in cases {
            check(group, resource, obj, want);
        }
    }

    /// A workload an hour old.
    fn workload(name: &str, spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": ago(3600)},
               "spec": spec, "status": status})
    }

    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployments() {
        assert_eq!(
            header("apps", "deployments"),
            "Name, Ready, Up-to-date, Available, Age, Containers*, Images*, Selector*"
        );
        let containers = json!([{"name": "app", "image": "nginx:1.27"},
                                {"name": "proxy", "image": "envoy:v1.31"}]);
        check(
            "apps",
            "deployments",
            workload(
                "web",
                json!({"replicas": 3, "template": template(containers),
                       "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
                           {"key": "tier", "operator": "In", "values": ["frontend", "backend"]},
                           {"key": "canary", "operator": "DoesNotExist"}]}}),
                json!({"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                       "availableReplicas": 2}),
            ),
            r#"["web", "2/3", 3, 2, "60m", "app,proxy", "nginx:1.27,envoy:v1.31",
                "app=web,!canary,tier in (backend,frontend)"]"#,
        );
        // A stored object lacking the defaulted replicas reads 1; no selector prints nothing.
        check(
            "apps",
            "deployments",
            workload("bare", json!({}), json!({})),
            r#"["bare", "0/1", 0, 0, "60m", "", "", ""]"#,
        );
        check(
            "apps",
            "deployments",
            workload(
                "bad",
                json!({"replicas": 0,
                       "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
                json!({}),
            ),
            r#"["bad", "0/0", 0, 0, "60m", "", "", "<invalid>"]"#,
        );
    }

    #[test]
    fn other_workloads() {
        let nginx = || template(json!([{"name": "app", "image": "nginx"}]));
        check(
            "apps",
            "replicasets",
            workload(
                "web-5d4f",
                json!({"replicas": 3, "template": nginx(),
                       "selector": {"matchLabels": {"pod-template-hash": "5d4f", "app": "web"}}}),
                json!({"replicas": 3, "readyReplicas": 2}),
            ),
            r#"["web-5d4f", 3, 3, 2, "60m", "app", "nginx", "app=web,pod-template-hash=5d4f"]"#,
        );
        check(
            "apps",
            "replicasets",
            workload(
                "all",
                json!({"replicas": 1, "template": nginx(), "selector": {}}),
                json!({}),
            ),
            r#"["all", 1, 0, 0, "60m", "app", "nginx", "<none>"]"#,
        );
        check(
            "",
            "replicationcontrollers",
            workload(
                "rc",
                json!({"replicas": 2, "template": nginx(), "selector": {"app": "web"}}),
                json!({"replicas": 2, "readyReplicas": 2}),
            ),
            r#"["rc", 2, 2, 2, "60m", "app", "nginx", "app=web"]"#,
        );
        check(
            "apps",
            "statefulsets",
            workload(
                "db",
                json!({"replicas": 3, "template": nginx()}),
                json!({"replicas": 2, "readyReplicas": 1}),
            ),
            r#"["db", "1/3", "60m", "app", "nginx"]"#,
        );
        check(
            "apps",
            "daemonsets",
            workload(
                "agent",
                json!({"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                             "containers": [{"name": "agent",
                                                             "image": "agent:1"}]}},
                       "selector": {"matchLabels": {"app": "agent"}}}),
                json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                       "updatedNumberScheduled": 1, "numberAvailable": 2}),
            ),
            r#"["agent", 3, 3, 2, 1, 2, "kubernetes.io/os=linux", "60m", "agent", "agent:1",
                "app=agent"]"#,
        );
        let revision = |owners: Value| {
            json!({"metadata": {"name": "db-7c9", "creationTimestamp": ago(3600),
                                "ownerReferences": owners},
                   "revision": 3})
        };
        check(
            "apps",
            "controllerrevisions",
            revision(json!([{"apiVersion": "v1", "kind": "Pod", "name": "other"},
                            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                             "controller": true}])),
            r#"["db-7c9", "statefulset.apps/db", 3, "60m"]"#,
        );
        check(
            "apps",
            "controllerrevisions",
            revision(json!([])),
            r#"["db-7c9", "<none>", 3, "60m"]"#,
        );
    }

    #[test]
    fn jobs() {
        assert_eq!(
            header("batch", "jobs"),
            "Name, Status, Completions, Duration, Age, Containers*, Images*, Selector*"
        );
        let job = |spec: Value, status: Value, deleting: bool| {
            let mut full_spec = json!({
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5"}]}},
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}});
            full_spec
                .as_object_mut()
                .unwrap()
                .extend(spec.as_object().unwrap().clone());
            let mut job = workload("pi", full_spec, status);
            if deleting {
                job["metadata"]["deletionTimestamp"] = json!(ago(1));
            }
            job
        };
        let is = |type_: &str| json!([{"type": type_, "status": "True"}]);
        let cases = [
            (
                "complete",
                job(
                    json!({"completions": 1, "parallelism": 1}),
                    json!({"succeeded": 1, "startTime": ago(600), "completionTime": ago(570),
                           "conditions": is("Complete")}),
                    false,
                ),
                ["Complete", "1/1", "30s"],
            ),
            (
                "running, no completion count, parallel",
                job(
                    json!({"parallelism": 3}),
                    json!({"startTime": ago(125), "active": 3}),
                    false,
                ),
                ["Running", "0/1 of 3", "2m5s"],
            ),
            (
                "not started",
                job(json!({"parallelism": 1}), json!({}), false),
                ["Running", "0/1", ""],
            ),
            (
                "failed",
                job(
                    json!({"completions": 5}),
                    json!({"succeeded": 2, "startTime": ago(3600), "completionTime": ago(60),
                           "conditions": [{"type": "FailureTarget", "status": "True"},
                                          {"type": "Failed", "status": "True"}]}),
                    false,
                ),
                ["Failed", "2/5", "59m"],
            ),
            (
                "terminating",
                job(
                    json!({"completions": 1}),
                    json!({"startTime": ago(30),
                           "conditions": [{"type": "Complete", "status": "False"}]}),
                    true,
                ),
                ["Terminating", "0/1", "30s"],
            ),
            (
                "complete outranks terminating",
                job(
                    json!({"completions": 1}),
                    json!({"succeeded": 1, "conditions": is("Complete")}),
                    true,
                ),
                ["Complete", "1/1", ""],
            ),
            (
                "suspended",
                job(
                    json!({"completions": 2}),
                    json!({"conditions": is("Suspended")}),
                    false,
                ),
                ["Suspended", "0/2", ""],
            ),
            (
                "failure target",
                job(
                    json!({"completions": 2}),
                    json!({"startTime": ago(5), "conditions": is("FailureTarget")}),
                    false,
                ),
                ["FailureTarget", "0/2", "5s"],
            ),
        ];
        for (case, obj, [status, completions, duration]) in cases {
            let got = cells("batch", "jobs", &obj, now());
            let want: Value = serde_json::from_str(&format!(
                r#"["pi", "{status}", "{completions}", "{duration}", "60m", "pi", "perl:5",
                    "batch.kubernetes.io/controller-uid=abc"]"#
            ))
            .unwrap();
            assert_eq!(Value::Array(got), want, "{case}");
        }
    }

    #[test]
    fn cron_jobs() {
        let template = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "job", "image": "busybox"}]}}}});
        check(
            "batch",
            "cronjobs",
            workload(
                "hourly",
                json!({"schedule": "0 * * * *", "suspend": false, "jobTemplate": template}),
                json!({"active": [{"name": "hourly-1"}], "lastScheduleTime": ago(900)}),
            ),
            r#"["hourly", "0 * * * *", "<none>", "False", 1, "15m", "60m", "job", "busybox",
                "<none>"]"#,
        );
        check(
            "batch",
            "cronjobs",
            workload(
                "nightly",
                json!({"schedule": "0 3 * * *", "timeZone": "Europe/Paris",
                       "jobTemplate": template}),
                json!({}),
            ),
            r#"["nightly", "0 3 * * *", "Europe/Paris", "<unset>", 0, "<none>", "60m", "job",
                "busybox", "<none>"]"#,
        );
    }

    #[test]
    fn events() {
        let header_ = "Last Seen, Type, Reason, Object, Subobject*, Source*, Message, \
                       First Seen*, Count*, Name*";
        assert_eq!(header("", "events"), header_);
        assert_eq!(header("events.k8s.io", "events"), header_);
        check(
            "",
            "events",
            json!({"metadata": {"name": "web.17a", "creationTimestamp": ago(3600)},
                   "type": "Warning", "reason": "BackOff",
                   "involvedObject": {"kind": "Pod", "name": "web",
                                      "fieldPath": "spec.containers{app}"},
                   "message": "Back-off restarting failed container\n",
                   "source": {"component": "kubelet", "host": "node-1"},
                   "firstTimestamp": ago(3600), "lastTimestamp": ago(30), "count": 12}),
            r#"["30s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, node-1",
                "Back-off restarting failed container", "60m", 12, "web.17a"]"#,
        );
        // Written through the newer API: eventTime, a series, and the reporting controller.
        check(
            "",
            "events",
            json!({"metadata": {"name": "web.17b"}, "type": "Normal", "reason": "Scheduled",
                   "involvedObject": {"kind": "Pod", "name": "web"},
                   "message": "Assigned default/web to node-1",
                   "eventTime": "2024-06-01T11:55:00.123456Z",
                   "series": {"count": 4, "lastObservedTime": "2024-06-01T11:59:50.000001Z"},
                   "reportingComponent": "default-scheduler",
                   "reportingInstance": "default-scheduler-cp-1"}),
            r#"["9s", "Normal", "Scheduled", "pod/web", "",
                "default-scheduler, default-scheduler-cp-1", "Assigned default/web to node-1",
                "4m59s", 4, "web.17b"]"#,
        );
        // A singleton without timestamps or a count, about a kind with no name.
        check(
            "",
            "events",
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}}),
            r#"["<unknown>", "", "", "node", "", "", "", "<unknown>", 1, "e"]"#,
        );
        check(
            "events.k8s.io",
            "events",
            json!({"metadata": {"name": "node-1.17c"}, "type": "Normal", "reason": "NodeReady",
                   "regarding": {"kind": "Node", "name": "node-1"},
                   "note": "Node node-1 status is now: NodeReady",
                   "deprecatedSource": {"component": "kubelet", "host": "node-1"},
                   "deprecatedFirstTimestamp": ago(7200), "deprecatedLastTimestamp": ago(120),
                   "deprecatedCount": 2}),
            r#"["2m", "Normal", "NodeReady", "node/node-1", "", "kubelet, node-1",
                "Node node-1 status is now: NodeReady", "120m", 2, "node-1.17c"]"#,
        );
        check(
            "events.k8s.io",
            "events",
            json!({"metadata": {"name": "x"}, "regarding": {"kind": "Deployment", "name": "web"},
                   "note": "Scaled up", "eventTime": ago(20),
                   "reportingController": "deployment-controller"}),
            r#"["20s", "", "", "deployment/web", "", "deployment-controller", "Scaled up", "20s",
                1, "x"]"#,
        );
    }

    #[test]
    fn storage() {
        let meta = |name: &str| json!({"name": name, "creationTimestamp": ago(86400)});
        check(
            "",
            "persistentvolumes",
            json!({"metadata": meta("pv-1"),
                   "spec": {"capacity": {"storage": "10Gi"},
                            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                            "volumeMode": "Filesystem",
                            "claimRef": {"namespace": "default", "name": "data"}},
                   "status": {"phase": "Bound"}}),
            r#"["pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "fast", "<unset>", "",
                "24h", "Filesystem"]"#,
        );
        let mut released = json!({"metadata": meta("pv-2"),
            "spec": {"accessModes": ["ReadWriteOncePod"], "persistentVolumeReclaimPolicy": "Delete",
                     "storageClassName": "fast"},
            "status": {"phase": "Failed", "reason": "VolumeFailedDelete"}});
        released["metadata"]["annotations"] =
            json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
        released["metadata"]["deletionTimestamp"] = json!(ago(1));
        check(
            "",
            "persistentvolumes",
            released,
            r#"["pv-2", "0", "RWOP", "Delete", "Terminating", "", "legacy", "<unset>",
                "VolumeFailedDelete", "24h", "<unset>"]"#,
        );
        check(
            "",
            "persistentvolumeclaims",
            json!({"metadata": meta("data"),
                   "spec": {"volumeName": "pv-1", "storageClassName": "fast",
                            "volumeMode": "Filesystem", "volumeAttributesClassName": "gold",
                            "resources": {"requests": {"storage": "5Gi"}}},
                   "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                              "accessModes": ["ReadWriteOnce"]}}),
            r#"["data", "Bound", "pv-1", "10Gi", "RWO", "fast", "gold", "24h", "Filesystem"]"#,
        );
        check(
            "",
            "persistentvolumeclaims",
            json!({"metadata": meta("wait"),
                   "spec": {"resources": {"requests": {"storage": "5Gi"}}},
                   "status": {"phase": "Pending"}}),
            r#"["wait", "Pending", "", "", "", "", "<unset>", "24h", "<unset>"]"#,
        );
        check(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "local", "creationTimestamp": ago(60), "annotations":
                                   {"storageclass.kubernetes.io/is-default-class": "true"}},
                   "provisioner": "rancher.io/local-path",
                   "volumeBindingMode": "WaitForFirstConsumer"}),
            r#"["local (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", false,
                "60s"]"#,
        );
    }

    #[test]
    fn resource_quotas() {
        assert_eq!(header("", "resourcequotas"), "Name, Request, Limit, Age");
        check(
            "",
            "resourcequotas",
            json!({"metadata": {"name": "quota", "creationTimestamp": ago(60)},
                   "status": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi",
                                       "limits.cpu": "8", "requests.memory": "4Gi"},
                              "used": {"pods": "3", "requests.cpu": "1500m", "limits.cpu": "2"}}}),
            r#"["quota", "pods: 3/10, requests.cpu: 1500m/4, requests.memory: 0/4Gi",
                "limits.cpu: 2/8, limits.memory: 0/8Gi", "60s"]"#,
        );
        check(
            "",
            "resourcequotas",
            json!({"metadata": {"name": "new", "creationTimestamp": ago(60)},
                   "spec": {"hard": {"pods": "1"}}}),
            r#"["new", "", "", "60s"]"#,
        );
    }

    #[test]
    fn policy_and_networking() {
        let meta = |name: &str| json!({"name": name, "creationTimestamp": ago(60)});
        check(
            "policy",
            "poddisruptionbudgets",
            json!({"metadata": meta("web"), "spec": {"minAvailable": 2},
                   "status": {"disruptionsAllowed": 1}}),
            r#"["web", "2", "N/A", 1, "60s"]"#,
        );
        check(
            "policy",
            "poddisruptionbudgets",
            json!({"metadata": meta("db"), "spec": {"maxUnavailable": "25%"}}),
            r#"["db", "N/A", "25%", 0, "60s"]"#,
        );
        check(
            "networking.k8s.io",
            "networkpolicies",
            json!({"metadata": meta("deny"), "spec": {"podSelector": {}}}),
            r#"["deny", "<none>", "60s"]"#,
        );
        check(
            "networking.k8s.io",
            "networkpolicies",
            json!({"metadata": meta("db"), "spec": {"podSelector": {
                "matchLabels": {"role": "db"},
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["test", "dev"]},
                                     {"key": "app", "operator": "Exists"}]}}}),
            r#"["db", "app,env notin (dev,test),role=db", "60s"]"#,
        );
        let ingress = |spec: Value, status: Value| {
            json!({"metadata": meta("web"),
                   "spec": spec, "status": status})
        };
        check(
            "networking.k8s.io",
            "ingresses",
            ingress(
                json!({"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                       "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}]}),
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}),
            ),
            r#"["web", "nginx", "a.example.com,b.example.com", "203.0.113.5", "80, 443", "60s"]"#,
        );
        check(
            "networking.k8s.io",
            "ingresses",
            ingress(
                json!({"rules": [{}, {"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}]}),
                json!({}),
            ),
            r#"["web", "<none>", "a,b,c + 2 more...", "", "80", "60s"]"#,
        );
        check(
            "networking.k8s.io",
            "ingresses",
            ingress(json!({}), json!({})),
            r#"["web", "<none>", "*", "", "80", "60s"]"#,
        );
        check(
            "networking.k8s.io",
            "ingressclasses",
            json!({"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx",
                   "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                                  "name": "external-lb"}}}),
            r#"["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb",
                "60s"]"#,
        );
    }

    #[test]
    fn rbac_and_certificates() {
        let binding = json!({"metadata": {"name": "read-pods", "creationTimestamp": ago(3600)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "namespace": "kube-system", "name": "default"},
                         {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"},
                         {"kind": "User", "name": "bob"}]});
        let want = r#"["read-pods", "Role/pod-reader", "60m", "alice, bob", "devs",
                       "kube-system/default, ci/runner"]"#;
        check(
            "rbac.authorization.k8s.io",
            "rolebindings",
            binding.clone(),
            want,
        );
        check(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            binding,
            want,
        );

        let csr = |spec: Value, status: Value| {
            json!({"metadata": {"name": "csr-1", "creationTimestamp": ago(60)},
                   "spec": spec, "status": status})
        };
        let cases = [
            (
                csr(
                    json!({"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice",
                           "expirationSeconds": 86400}),
                    json!({"conditions": [{"type": "Approved", "status": "True"}],
                           "certificate": "LS0t"}),
                ),
                r#"["csr-1", "60s", "kubernetes.io/kube-apiserver-client", "alice", "24h",
                    "Approved,Issued"]"#,
            ),
            (
                csr(json!({"username": "bob"}), json!({})),
                r#"["csr-1", "60s", "<none>", "bob", "<none>", "Pending"]"#,
            ),
            (
                csr(
                    json!({"username": "eve", "expirationSeconds": 600}),
                    json!({"conditions": [{"type": "Approved"}, {"type": "Denied"},
                                          {"type": "Failed"}]}),
                ),
                r#"["csr-1", "60s", "<none>", "eve", "10m", "Denied,Failed"]"#,
            ),
        ];
        for (obj, want) in cases {
            check(
                "certificates.k8s.io",
                "certificatesigningrequests",
                obj,
                want,
            );
        }
    }

    #[test]
    fn classes_and_templates() {
        let meta = |name: &str| json!({"name": name, "creationTimestamp": ago(60)});
        check(
            "scheduling.k8s.io",
            "priorityclasses",
            json!({"metadata": meta("system-node-critical"), "value": 2000001000,
                   "preemptionPolicy": "PreemptLowerPriority"}),
            r#"["system-node-critical", 2000001000, false, "60s", "PreemptLowerPriority"]"#,
        );
        check(
            "node.k8s.io",
            "runtimeclasses",
            json!({"metadata": meta("gvisor"), "handler": "runsc"}),
            r#"["gvisor", "runsc", "60s"]"#,
        );
        check(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            json!({"metadata": meta("policy"), "webhooks": [{"name": "a"}, {"name": "b"}]}),
            r#"["policy", 2, "60s"]"#,
        );
        check(
            "",
            "podtemplates",
            json!({"metadata": meta("tpl"), "template": {
                "metadata": {"labels": {"b": "2", "a": "1"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"},
                                        {"name": "log", "image": "fluent-bit"}]}}}),
            r#"["tpl", "app,log", "nginx,fluent-bit", "a=1,b=2"]"#,
        );
    }

    #[test]
    fn kinds_without_a_printer() {
        // Built-in kinds upstream prints with the generic default: the creation time, not an age.
        let builtin = [
            ("", "limitranges"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ];
        for (group, resource) in builtin {
            assert_eq!(header(group, resource), "Name, Created At");
            assert_eq!(columns(group, resource)[1].type_, "date");
            let obj = json!({"metadata": {"name": "x", "creationTimestamp": ago(300)}});
            check(group, resource, obj, r#"["x", "2024-06-01T11:55:00Z"]"#);
        }
        let undated = json!({"metadata": {"name": "x"}});
        check(
            "",
            "limitranges",
            undated,
            r#"["x", "0001-01-01T00:00:00Z"]"#,
        );
        // Custom resources get a CRD's default columns: name and age.
        assert_eq!(header("stable.example.com", "crontabs"), "Name, Age");
        let crontab = json!({"metadata": {"name": "c", "creationTimestamp": ago(300)}});
        check("stable.example.com", "crontabs", crontab, r#"["c", "5m"]"#);
    }

    /// Every (group, resource) with its own printer, and one of each default.
    const PRINTED: &[(&str, &str)] = &[
        ("", "namespaces"),
        ("", "pods"),
        ("", "podtemplates"),
        ("", "nodes"),
        ("", "services"),
        ("", "endpoints"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "resourcequotas"),
        ("", "replicationcontrollers"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("discovery.k8s.io", "endpointslices"),
        ("coordination.k8s.io", "leases"),
        ("policy", "poddisruptionbudgets"),
        ("networking.k8s.io", "networkpolicies"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("certificates.k8s.io", "certificatesigningrequests"),
        ("storage.k8s.io", "storageclasses"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        ),
        ("", "limitranges"),
        ("example.com", "widgets"),
    ];

    #[test]
    fn cells_have_their_column_types_but_for_upstream_quirks() {
        // Upstream's own mismatches, kept so clients see what a real apiserver sends.
        let quirks = [
            ("configmaps", "Data"),
            ("secrets", "Data"),
            ("serviceaccounts", "Secrets"),
            ("deployments", "Up-to-date"),
            ("deployments", "Available"),
            ("events", "Count"),
            ("controllerrevisions", "Revision"),
            ("cronjobs", "Suspend"),
            ("storageclasses", "AllowVolumeExpansion"),
        ];
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": ago(1)}});
        for &(group, resource) in PRINTED {
            let columns = columns(group, resource);
            let named: Vec<_> = columns.iter().filter(|c| c.format == "name").collect();
            assert!(
                named.len() == 1 && named[0].name == "Name",
                "{resource}: one name column"
            );
            for column in columns {
                assert!(
                    !column.description.is_empty() && column.priority <= 1,
                    "{resource}"
                );
            }
            let row = cells(group, resource, &obj, now());
            assert_eq!(row.len(), columns.len(), "{resource}");
            for (column, cell) in columns.iter().zip(&row) {
                let fits = match column.type_ {
                    "integer" => cell.is_i64(),
                    "boolean" => cell.is_boolean(),
                    "string" | "date" => cell.is_string(),
                    other => panic!("{resource}: unknown column type {other}"),
                };
                let quirk = quirks.contains(&(resource, column.name));
                assert_eq!(fits, !quirk, "{resource} {}: {cell}", column.name);
            }
        }
    }
}
