//! core/v1 validation beyond pods and workloads: Service, ConfigMap, Secret, Namespace, Node,
//! Endpoints, ResourceQuota, LimitRange, PersistentVolume and PersistentVolumeClaim, as
//! upstream's pkg/apis/core/validation.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::{self, items, text};
use crate::meta;
use crate::status::Cause;

/// ConfigMaps and Secrets hold at most 1 MiB of data.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

// ---------------------------------------------------------------------------------------------
// Service

pub fn service(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&ty) {
        causes.push(Cause::unsupported("spec.type", &json!(ty), &types));
    }
    let ports = items(&spec["ports"]);
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    if (ty == "NodePort" || ty == "LoadBalancer") && headless {
        causes.push(Cause::invalid(
            "spec.clusterIP",
            &json!("None"),
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    if ty == "LoadBalancer" {
        // Clouds that over-open firewalls would expose the kubelet.
        for (i, p) in ports.iter().enumerate() {
            if p["port"] == 10250 {
                causes.push(Cause::invalid(
                    format!("spec.ports[{i}]"),
                    &p["port"],
                    "may not expose port 10250 externally since it is used by kubelet",
                ));
            }
        }
    }
    if ty == "ExternalName" {
        let name = text(spec, "externalName");
        let clean = name.strip_suffix('.').unwrap_or(name);
        if clean.is_empty() {
            causes.push(Cause::required("spec.externalName"));
        } else {
            for msg in meta::validate_name(meta::NameRule::Subdomain, clean) {
                causes.push(Cause::invalid("spec.externalName", &json!(name), msg));
            }
        }
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        service_port(
            p,
            ports.len() > 1,
            &mut names,
            &format!("spec.ports[{i}]"),
            &mut causes,
        );
    }
    // (protocol, port) and (protocol, nodePort) pairs are unique.
    let mut seen = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let protocol = text(p, "protocol");
        let port = p["port"].as_i64().unwrap_or(0);
        if !seen.insert((protocol, port)) {
            causes.push(Cause::duplicate_shown(
                format!("spec.ports[{i}]"),
                &format!("core.ServicePort{{Name:\"\", Protocol:\"{protocol}\", AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"),
                "",
            ));
        }
        if let Some(node_port) = p["nodePort"].as_i64().filter(|n| *n != 0)
            && !node_ports.insert((protocol, node_port))
        {
            causes.push(Cause::duplicate(
                format!("spec.ports[{i}].nodePort"),
                &json!(node_port),
            ));
        }
    }
    fields::labels(&spec["selector"], "spec.selector", &mut causes);
    match text(spec, "sessionAffinity") {
        "" => causes.push(Cause::required("spec.sessionAffinity")),
        "ClientIP" | "None" => {}
        other => causes.push(Cause::unsupported(
            "spec.sessionAffinity",
            &json!(other),
            &["ClientIP", "None"],
        )),
    }
    let config = &spec["sessionAffinityConfig"];
    match text(spec, "sessionAffinity") {
        "ClientIP" => {
            let timeout = &config["clientIP"]["timeoutSeconds"];
            let path = "spec.sessionAffinityConfig";
            let detail = "when session affinity type is ClientIP";
            if config.is_null() {
                causes.push(Cause::required_detail(path, detail));
            } else if config["clientIP"].is_null() {
                causes.push(Cause::required_detail(format!("{path}.clientIP"), detail));
            } else if timeout.is_null() {
                causes.push(Cause::required_detail(
                    format!("{path}.clientIP.timeoutSeconds"),
                    detail,
                ));
            } else if !timeout.as_i64().is_some_and(|t| (1..=86400).contains(&t)) {
                causes.push(Cause::invalid(
                    format!("{path}.clientIP.timeoutSeconds"),
                    timeout,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        "None" if !config.is_null() => causes.push(Cause::forbidden(
            "spec.sessionAffinityConfig",
            "must not be set when session affinity is None",
        )),
        _ => {}
    }
    for policy in ["externalTrafficPolicy", "internalTrafficPolicy"] {
        if let Some(v) = spec[policy].as_str()
            && v != "Cluster"
            && v != "Local"
        {
            causes.push(Cause::unsupported(
                format!("spec.{policy}"),
                &json!(v),
                &["Cluster", "Local"],
            ));
        }
    }
    for (i, ip) in items(&spec["externalIPs"]).iter().enumerate() {
        fields::ip(
            &format!("spec.externalIPs[{i}]"),
            ip.as_str().unwrap_or(""),
            &mut causes,
        );
    }
    if let Some(old) = old {
        let (new_ip, old_ip) = (&spec["clusterIP"], &old["spec"]["clusterIP"]);
        if !old_ip.is_null() && new_ip != old_ip && ty == old["spec"]["type"].as_str().unwrap_or("")
        {
            causes.push(Cause::invalid(
                "spec.clusterIPs[0]",
                new_ip,
                "may not change once set",
            ));
        }
    }
    causes
}

fn service_port<'a>(
    p: &'a Value,
    require_name: bool,
    names: &mut HashSet<&'a str>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let name = text(p, "name");
    if name.is_empty() {
        if require_name {
            causes.push(Cause::required(format!("{path}.name")));
        }
    } else {
        fields::dns_label(&format!("{path}.name"), name, causes);
        if !names.insert(name) {
            causes.push(Cause::duplicate(format!("{path}.name"), &json!(name)));
        }
    }
    fields::port_number(&format!("{path}.port"), &p["port"], causes);
    protocol(p, path, causes);
    if !p["targetPort"].is_null() {
        fields::port_number_or_name(&format!("{path}.targetPort"), &p["targetPort"], causes);
    }
    if let Some(app) = p["appProtocol"].as_str() {
        fields::qualified_name(&format!("{path}.appProtocol"), app, causes);
    }
}

/// A port's protocol: required, one of SCTP/TCP/UDP.
fn protocol(p: &Value, path: &str, causes: &mut Vec<Cause>) {
    match text(p, "protocol") {
        "" => causes.push(Cause::required(format!("{path}.protocol"))),
        v if PROTOCOLS.contains(&v) => {}
        v => causes.push(Cause::unsupported(
            format!("{path}.protocol"),
            &json!(v),
            &PROTOCOLS,
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and Secret

pub fn config_map(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let data = obj["data"].as_object();
    let binary = obj["binaryData"].as_object();
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        for msg in fields::config_key_errors(k) {
            causes.push(Cause::invalid(format!("data[{k}]"), &json!(k), msg));
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            causes.push(Cause::invalid(
                format!("data[{k}]"),
                &json!(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary.into_iter().flatten() {
        for msg in fields::config_key_errors(k) {
            causes.push(Cause::invalid(format!("binaryData[{k}]"), &json!(k), msg));
        }
        total += decoded_len(v);
    }
    if total > MAX_DATA_BYTES {
        // Upstream names no field: the limit is on the whole object.
        causes.push(Cause::too_long("", MAX_DATA_BYTES));
    }
    if let Some(old) = old.filter(|o| o["immutable"] == true) {
        immutable(obj, old, &["data", "binaryData"], &mut causes);
    }
    causes
}

/// Once `immutable` is true it stays, and so do the listed data fields.
fn immutable(obj: &Value, old: &Value, data_fields: &[&str], causes: &mut Vec<Cause>) {
    if obj["immutable"] != true {
        causes.push(Cause::forbidden("immutable", IMMUTABLE_MSG));
    }
    for f in data_fields {
        if empty_as_null(&obj[*f]) != empty_as_null(&old[*f]) {
            causes.push(Cause::forbidden(*f, IMMUTABLE_MSG));
        }
    }
}

/// An empty map compares equal to an absent one, as upstream's typed objects do.
fn empty_as_null(v: &Value) -> &Value {
    match v.as_object() {
        Some(m) if m.is_empty() => &Value::Null,
        _ => v,
    }
}

/// The byte length of a base64 value, as it counts towards the size limit: computed from its
/// length and padding, not by decoding a megabyte to count it (the typed round trip refuses
/// a value that is not base64).
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("").trim_end();
    let padding = s.bytes().rev().take_while(|b| *b == b'=').count().min(2);
    (s.len() / 4 * 3 + (s.len() % 4 * 3 / 4)).saturating_sub(padding)
}

pub fn secret(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let data = obj["data"].as_object();
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        for msg in fields::config_key_errors(k) {
            causes.push(Cause::invalid(format!("data[{k}]"), &json!(k), msg));
        }
        total += decoded_len(v);
    }
    if total > MAX_DATA_BYTES {
        causes.push(Cause::too_long("data", MAX_DATA_BYTES));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match text(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let sa = obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .unwrap_or("");
            if sa.is_empty() {
                causes.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
        }
        "kubernetes.io/dockercfg" => docker_config(data, ".dockercfg", &mut causes),
        "kubernetes.io/dockerconfigjson" => docker_config(data, ".dockerconfigjson", &mut causes),
        // Either may be empty, but one must be present.
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            causes.push(Cause::required("data[username]"));
            causes.push(Cause::required("data[password]"));
        }
        "kubernetes.io/ssh-auth"
            if data
                .and_then(|d| d.get("ssh-privatekey"))
                .is_none_or(|v| decoded_len(v) == 0) =>
        {
            causes.push(Cause::required("data[ssh-privatekey]"));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    causes.push(Cause::required(format!("data[{key}]")));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        if obj["type"] != old["type"] {
            causes.push(Cause::invalid("type", &obj["type"], "field is immutable"));
        }
        if old["immutable"] == true {
            immutable(obj, old, &["data"], &mut causes);
        }
    }
    causes
}

/// A docker config key must be present and hold a JSON object.
fn docker_config(
    data: Option<&serde_json::Map<String, Value>>,
    key: &str,
    causes: &mut Vec<Cause>,
) {
    use base64::Engine;
    let field = format!("data[{key}]");
    let Some(v) = data.and_then(|d| d.get(key)) else {
        causes.push(Cause::required(field));
        return;
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .unwrap_or_default();
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes) {
        causes.push(Cause::invalid(
            field,
            &json!("<secret contents redacted>"),
            e.to_string(),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Namespace and Node

const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

pub fn namespace(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for f in items(&obj["spec"]["finalizers"]) {
        let name = f.as_str().unwrap_or("");
        fields::qualified_name("spec.finalizers", name, &mut causes);
        if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
            causes.push(Cause::invalid(
                "spec.finalizers",
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    causes
}

/// spec.podCIDRs as the v1 conversion reads it: podCIDR alone stands for podCIDRs[0].
fn pod_cidrs(node: &Value) -> Vec<String> {
    let list: Vec<String> = items(&node["spec"]["podCIDRs"])
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_owned())
        .collect();
    match node["spec"]["podCIDR"].as_str() {
        Some(single) if list.is_empty() && !single.is_empty() => vec![single.to_owned()],
        _ => list,
    }
}

pub fn node(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let cidrs = pod_cidrs(obj);
    let mut families = HashSet::new();
    let mut parsed_all = true;
    for (i, c) in cidrs.iter().enumerate() {
        match fields::cidr(&format!("spec.podCIDRs[{i}]"), c, &mut causes) {
            Some(cidr) => {
                families.insert(cidr.network.is_ipv4());
            }
            None => parsed_all = false,
        }
    }
    if cidrs.len() > 1 && parsed_all && (cidrs.len() > 2 || families.len() != 2) {
        causes.push(Cause::invalid(
            "spec.podCIDRs",
            &json!(cidrs),
            "may specify no more than one CIDR for each IP family",
        ));
    }
    let mut seen = HashSet::new();
    for (i, t) in items(&obj["spec"]["taints"]).iter().enumerate() {
        let path = format!("spec.taints[{i}]");
        let key = text(t, "key");
        fields::label_key(&format!("{path}.key"), key, &mut causes);
        let value = text(t, "value");
        let errs = common::selector::validate_label_value(value);
        if !errs.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.value"),
                &json!(value),
                errs.join(";"),
            ));
        }
        let effect = text(t, "effect");
        taint_effect(effect, &format!("{path}.effect"), &mut causes);
        if !seen.insert((key, effect)) {
            causes.push(Cause::duplicate_shown(
                path,
                &format!(
                    "core.Taint{{Key:\"{key}\", Value:\"{value}\", Effect:\"{effect}\", TimeAdded:(*v1.Time)(nil)}}"
                ),
                "taints must be unique by key and effect pair",
            ));
        }
    }
    if let Some(old) = old {
        let old_cidrs = pod_cidrs(old);
        // The node IPAM controller may assign CIDRs once; they never change after.
        if !old_cidrs.is_empty() && old_cidrs != cidrs {
            causes.push(Cause::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = text(&old["spec"], "providerID");
        if !old_provider.is_empty() && old_provider != text(&obj["spec"], "providerID") {
            causes.push(Cause::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
    causes
}

/// A taint effect: required, NoSchedule, PreferNoSchedule or NoExecute.
pub fn taint_effect(effect: &str, path: &str, causes: &mut Vec<Cause>) {
    let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if effect.is_empty() {
        causes.push(Cause::required(path));
    } else if !effects.contains(&effect) {
        causes.push(Cause::unsupported(path, &json!(effect), &effects));
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints

pub fn endpoints(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, subset) in items(&obj["subsets"]).iter().enumerate() {
        let path = format!("subsets[{i}]");
        let addresses = items(&subset["addresses"]);
        let not_ready = items(&subset["notReadyAddresses"]);
        if addresses.is_empty() && not_ready.is_empty() {
            causes.push(Cause::required_detail(
                &path,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list, addrs) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, a) in addrs.iter().enumerate() {
                let p = format!("{path}.{list}[{j}]");
                fields::ip(&format!("{p}.ip"), text(a, "ip"), &mut causes);
                let hostname = text(a, "hostname");
                if !hostname.is_empty() {
                    fields::dns_label(&format!("{p}.hostname"), hostname, &mut causes);
                }
                if let Some(node) = a["nodeName"].as_str() {
                    fields::dns_subdomain(&format!("{p}.nodeName"), node, &mut causes);
                }
            }
        }
        let ports = items(&subset["ports"]);
        for (j, p) in ports.iter().enumerate() {
            let pp = format!("{path}.ports[{j}]");
            let name = text(p, "name");
            if name.is_empty() {
                if ports.len() > 1 {
                    causes.push(Cause::required(format!("{pp}.name")));
                }
            } else {
                fields::dns_label(&format!("{pp}.name"), name, &mut causes);
            }
            fields::port_number(&format!("{pp}.port"), &p["port"], &mut causes);
            protocol(p, &pp, &mut causes);
            if let Some(app) = p["appProtocol"].as_str() {
                fields::qualified_name(&format!("{pp}.appProtocol"), app, &mut causes);
            }
        }
    }
    causes
}

/// v1 defaults: endpoint ports are TCP.
pub fn default_endpoints(obj: &mut Value) {
    for subset in obj
        .get_mut("subsets")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for port in subset
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            meta::default_field(port, "protocol", json!("TCP"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ResourceQuota, LimitRange, PersistentVolumeClaim

const QUOTA_SCOPES: [&str; 6] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// A resource name: a qualified name, fully qualified unless a standard one.
fn resource_name(path: &str, name: &str, standard: fn(&str) -> bool, causes: &mut Vec<Cause>) {
    let before = causes.len();
    fields::qualified_name(path, name, causes);
    if causes.len() == before && !name.contains('/') && !standard(name) {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "must be a standard resource type or fully qualified",
        ));
    }
}

fn is_standard_resource(name: &str) -> bool {
    let base = name
        .strip_prefix("requests.")
        .or_else(|| name.strip_prefix("limits."))
        .unwrap_or(name);
    matches!(
        base,
        "cpu"
            | "memory"
            | "ephemeral-storage"
            | "storage"
            | "pods"
            | "services"
            | "replicationcontrollers"
            | "resourcequotas"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "services.nodeports"
            | "services.loadbalancers"
    ) || base.starts_with("hugepages-")
}

/// What a quota may count besides fully qualified names (`count/...`, extended resources).
fn is_standard_quota_resource(name: &str) -> bool {
    matches!(
        name,
        "pods"
            | "services"
            | "replicationcontrollers"
            | "resourcequotas"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "services.nodeports"
            | "services.loadbalancers"
            | "cpu"
            | "memory"
            | "ephemeral-storage"
            | "requests.cpu"
            | "requests.memory"
            | "requests.storage"
            | "requests.ephemeral-storage"
            | "limits.cpu"
            | "limits.memory"
            | "limits.ephemeral-storage"
    ) || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

pub fn resource_quota(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for section in ["spec.hard", "status.hard", "status.used"] {
        let (a, b) = section.split_once('.').expect("dotted");
        for (k, v) in obj[a][b].as_object().into_iter().flatten() {
            let path = format!("{section}[{k}]");
            resource_name(&path, k, is_standard_resource, &mut causes);
            if !k.contains('/') && !is_standard_quota_resource(k) {
                causes.push(Cause::invalid(
                    &path,
                    &json!(k),
                    "must be a standard resource for quota",
                ));
            }
            fields::nonnegative_quantity(&path, v, &mut causes);
        }
    }
    let scopes = items(&obj["spec"]["scopes"]);
    if scopes
        .iter()
        .any(|s| !s.as_str().is_some_and(|s| QUOTA_SCOPES.contains(&s)))
    {
        // Upstream shows the whole list, as Go prints a slice.
        let shown = scopes
            .iter()
            .map(|s| format!("\"{}\"", s.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        causes.push(Cause::invalid_shown(
            "spec.scopes",
            &format!("[]core.ResourceQuotaScope{{{shown}}}"),
            "unsupported scope",
        ));
    }
    causes
}

pub fn limit_range(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut types = HashSet::new();
    for (i, limit) in items(&obj["spec"]["limits"]).iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        let ty = text(limit, "type");
        if !types.insert(ty) {
            causes.push(Cause::duplicate(format!("{path}.type"), &json!(ty)));
        }
        for section in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for (k, v) in limit[section].as_object().into_iter().flatten() {
                fields::nonnegative_quantity(&format!("{path}.{section}[{k}]"), v, &mut causes);
            }
        }
        // min <= defaultRequest <= default <= max, per resource.
        let q = |section: &str, k: &str| {
            limit[section][k]
                .as_str()
                .and_then(|s| common::quantity::Quantity::parse(s).ok())
                .map(|q| q.milli_value())
        };
        for (k, _) in limit["max"].as_object().into_iter().flatten() {
            let (max, min) = (q("max", k), q("min", k));
            if let (Some(max), Some(min)) = (max, min)
                && min > max
            {
                let (lo, hi) = (text(&limit["min"], k), text(&limit["max"], k));
                causes.push(Cause::invalid_shown(
                    format!("{path}.min[{k}]"),
                    lo,
                    format!("min value {lo} is greater than max value {hi}"),
                ));
            }
        }
    }
    causes
}

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// Known access modes; ReadWriteOncePod only alone.
fn access_modes(access: &[Value], causes: &mut Vec<Cause>) {
    for m in access {
        if !m.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            causes.push(Cause::unsupported("spec.accessModes", m, &ACCESS_MODES));
        }
    }
    if access.len() > 1 && access.iter().any(|m| m == "ReadWriteOncePod") {
        causes.push(Cause::forbidden(
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn volume_mode(spec: &Value, causes: &mut Vec<Cause>) {
    if let Some(mode) = spec["volumeMode"].as_str()
        && mode != "Block"
        && mode != "Filesystem"
    {
        causes.push(Cause::unsupported(
            "spec.volumeMode",
            &json!(mode),
            &["Block", "Filesystem"],
        ));
    }
}

/// The volume sources a PersistentVolume may name, exactly one at a time.
const PV_SOURCES: [&str; 22] = [
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "flocker",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// v1 defaults: volumes are retained and hold a filesystem.
pub fn default_persistent_volume(obj: &mut Value) {
    let spec = meta::object_at(obj, &["spec"]);
    meta::default_field(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    meta::default_field(spec, "volumeMode", json!("Filesystem"));
}

pub fn persistent_volume(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let access = items(&spec["accessModes"]);
    if access.is_empty() {
        causes.push(Cause::required("spec.accessModes"));
    }
    access_modes(access, &mut causes);
    let capacity = spec["capacity"].as_object();
    if capacity.is_none_or(|c| c.is_empty()) {
        causes.push(Cause::required("spec.capacity"));
    }
    // Sorted, as Go prints a map.
    let mut keys: Vec<&String> = capacity.into_iter().flatten().map(|(k, _)| k).collect();
    keys.sort();
    if keys.len() != 1 || keys[0] != "storage" {
        // Upstream prints the Go map; the keys are what matters.
        let shown = keys
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.capacity".into(),
            message: format!(
                "Unsupported value: core.ResourceList{{{shown}}}: supported values: \"storage\""
            ),
        });
    }
    for (k, v) in capacity.into_iter().flatten() {
        let positive = v
            .as_str()
            .and_then(|s| common::quantity::Quantity::parse(s).ok())
            .is_none_or(|q| q.milli_value() > 0);
        if !positive {
            causes.push(Cause::invalid(
                format!("spec.capacity[{k}]"),
                v,
                "must be greater than zero",
            ));
        }
    }
    if let Some(class) = spec["storageClassName"].as_str().filter(|c| !c.is_empty()) {
        fields::dns_subdomain("spec.storageClassName", class, &mut causes);
    }
    volume_mode(spec, &mut causes);
    if let Some(policy) = spec["persistentVolumeReclaimPolicy"].as_str()
        && !policy.is_empty()
        && !["Delete", "Recycle", "Retain"].contains(&policy)
    {
        causes.push(Cause::unsupported(
            "spec.persistentVolumeReclaimPolicy",
            &json!(policy),
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut sources = 0;
    for source in PV_SOURCES {
        if spec[source].is_null() {
            continue;
        }
        if sources > 0 {
            causes.push(Cause::forbidden(
                format!("spec.{source}"),
                "may not specify more than 1 volume type",
            ));
        }
        sources += 1;
    }
    if sources == 0 {
        causes.push(Cause::required_detail("spec", "must specify a volume type"));
    }
    causes
}

pub fn persistent_volume_claim(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let access = items(&spec["accessModes"]);
    if access.is_empty() {
        causes.push(Cause::required_detail(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    access_modes(access, &mut causes);
    let storage = &spec["resources"]["requests"]["storage"];
    let positive = storage
        .as_str()
        .and_then(|s| common::quantity::Quantity::parse(s).ok())
        .map(|q| q.milli_value() > 0);
    if storage.is_null() {
        causes.push(Cause::required("spec.resources[storage]"));
    } else if positive == Some(false) {
        causes.push(Cause::invalid(
            "spec.resources[storage]",
            storage,
            "must be greater than zero",
        ));
    }
    volume_mode(spec, &mut causes);
    causes
}

#[cfg(test)]
mod tests {
    use super::super::testing::check;
    use super::*;

    #[test]
    fn base64_lengths_are_counted_without_decoding() {
        for (encoded, len) in [
            ("", 0),
            ("YQ==", 1),
            ("aGk=", 2),
            ("aGk", 2),
            ("aGVsbG8=", 5),
        ] {
            assert_eq!(decoded_len(&json!(encoded)), len, "{encoded}");
        }
    }

    fn svc(spec: Value) -> Value {
        let mut s = json!({"metadata": {"name": "s"}, "spec": spec});
        crate::registry::Strategy::default(&crate::registry::strategies::SERVICES, &mut s);
        s
    }

    #[test]
    fn services() {
        let ok = svc(json!({"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "dns", "port": 53, "protocol": "UDP", "appProtocol": "dns"}]}));
        check(service(&ok, None), &[], &ok);
        let sticky = svc(json!({"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}));
        assert_eq!(
            sticky["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        check(service(&sticky, None), &[], &sticky);
        let ext = svc(json!({"type": "ExternalName", "externalName": "example.com."}));
        check(service(&ext, None), &[], &ext);
        let cases: &[(Value, &[(&str, &str)])] = &[
            (
                json!({"ports": [{"port": 99999}]}),
                &[
                    (
                        "spec.ports[0].port",
                        "Invalid value: 99999: must be between 1 and 65535, inclusive",
                    ),
                    (
                        "spec.ports[0].targetPort",
                        "Invalid value: 99999: must be between 1 and 65535, inclusive",
                    ),
                ],
            ),
            (
                json!({"type": "Magic", "ports": [{"port": 80}]}),
                &[(
                    "spec.type",
                    "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                )],
            ),
            (json!({}), &[("spec.ports", "Required value")]),
            (
                json!({"ports": [{"port": 80, "protocol": "ICMP"}]}),
                &[(
                    "spec.ports[0].protocol",
                    "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                )],
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"port": 81}]}),
                &[("spec.ports[1].name", "Required value")],
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 80}]}),
                &[
                    ("spec.ports[1].name", "Duplicate value: \"a\""),
                    (
                        "spec.ports[1]",
                        "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
                    ),
                ],
            ),
            (
                json!({"ports": [{"name": "Web", "port": 80}, {"name": "b", "port": 81, "targetPort": "a--b"}]}),
                &[
                    (
                        "spec.ports[0].name",
                        "Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    ),
                    (
                        "spec.ports[1].targetPort",
                        "Invalid value: \"a--b\": must not contain consecutive hyphens",
                    ),
                ],
            ),
            (
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30001}]}),
                &[("spec.ports[1].nodePort", "Duplicate value: 30001")],
            ),
            (
                json!({"selector": {"app": "a b"}, "sessionAffinity": "Sticky", "ports": [{"port": 80}]}),
                &[
                    (
                        "spec.selector",
                        "Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                    ),
                    (
                        "spec.sessionAffinity",
                        "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
                    ),
                ],
            ),
            (
                json!({"type": "ExternalName"}),
                &[("spec.externalName", "Required value")],
            ),
            (
                json!({"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 10250}]}),
                &[
                    (
                        "spec.clusterIP",
                        "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services",
                    ),
                    (
                        "spec.ports[0]",
                        "Invalid value: 10250: may not expose port 10250 externally since it is used by kubelet",
                    ),
                ],
            ),
            (
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}, "ports": [{"port": 80}]}),
                &[(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    "Invalid value: 0: must be greater than 0 and less than 86400",
                )],
            ),
            (
                json!({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "ports": [{"port": 80}]}),
                &[(
                    "spec.sessionAffinityConfig",
                    "Forbidden: must not be set when session affinity is None",
                )],
            ),
            (
                json!({"externalIPs": ["1.2.3"], "ports": [{"port": 80}]}),
                &[(
                    "spec.externalIPs[0]",
                    "Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )],
            ),
        ];
        for (spec, want) in cases {
            check(service(&svc(spec.clone()), None), want, spec);
        }
    }

    #[test]
    fn config_maps() {
        let ok = json!({"data": {"a.txt": "x"}, "binaryData": {"b": "eHl6"}});
        check(config_map(&ok, None), &[], &ok);
        let bad = json!({"data": {"a/b": "x", "dup": "y"}, "binaryData": {"dup": "eA=="}});
        check(
            config_map(&bad, None),
            &[
                (
                    "data[a/b]",
                    "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ),
                (
                    "data[dup]",
                    "Invalid value: \"dup\": duplicate of key present in binaryData",
                ),
            ],
            &bad,
        );
        let big = json!({"data": {"a": "x".repeat(MAX_DATA_BYTES), "b": "y"}});
        check(
            config_map(&big, None),
            &[("", "Too long: may not be more than 1048576 bytes")],
            &json!("big"),
        );
        let frozen = json!({"immutable": true, "data": {"a": "1"}});
        let changed = json!({"data": {"a": "2"}});
        check(
            config_map(&changed, Some(&frozen)),
            &[
                (
                    "immutable",
                    "Forbidden: field is immutable when `immutable` is set",
                ),
                (
                    "data",
                    "Forbidden: field is immutable when `immutable` is set",
                ),
            ],
            &changed,
        );
        check(config_map(&frozen, Some(&frozen)), &[], &frozen);
    }

    #[test]
    fn secrets() {
        let cases: &[(Value, &[(&str, &str)])] = &[
            (json!({"type": "Opaque", "data": {"k": "eA=="}}), &[]),
            (
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
                &[("data[tls.key]", "Required value")],
            ),
            (
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}),
                &[],
            ),
            (
                json!({"type": "kubernetes.io/service-account-token"}),
                &[(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "Required value",
                )],
            ),
            (
                json!({"type": "kubernetes.io/basic-auth", "data": {}}),
                &[
                    ("data[username]", "Required value"),
                    ("data[password]", "Required value"),
                ],
            ),
            (
                json!({"type": "kubernetes.io/ssh-auth", "data": {"ssh-privatekey": ""}}),
                &[("data[ssh-privatekey]", "Required value")],
            ),
            (
                json!({"type": "kubernetes.io/dockerconfigjson", "data": {}}),
                &[("data[.dockerconfigjson]", "Required value")],
            ),
            (
                json!({"type": "Opaque", "data": {"..x": "eA=="}}),
                &[(
                    "data[..x]",
                    "Invalid value: \"..x\": must not start with '..'",
                )],
            ),
        ];
        for (obj, want) in cases {
            check(secret(obj, None), want, obj);
        }
        let old = json!({"type": "Opaque", "immutable": true, "data": {"k": "eA=="}});
        let new = json!({"type": "kubernetes.io/tls", "immutable": true, "data": {"tls.crt": "eA==", "tls.key": "eA=="}});
        check(
            secret(&new, Some(&old)),
            &[
                (
                    "type",
                    "Invalid value: \"kubernetes.io/tls\": field is immutable",
                ),
                (
                    "data",
                    "Forbidden: field is immutable when `immutable` is set",
                ),
            ],
            &new,
        );
    }

    #[test]
    fn namespaces_and_nodes() {
        check(
            namespace(&json!({"spec": {"finalizers": ["kubernetes", "example.com/x"]}})),
            &[],
            &json!(1),
        );
        check(
            namespace(&json!({"spec": {"finalizers": ["custom"]}})),
            &[(
                "spec.finalizers",
                "Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
            )],
            &json!(2),
        );
        let ok = json!({"spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00::/64"],
            "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}]}});
        check(node(&ok, None), &[], &ok);
        let bad = json!({"spec": {"podCIDRs": ["10.0.0.0/33"], "taints": [
            {"key": "a", "effect": "Sometimes"}, {"key": "b"}, {"key": "c", "effect": "NoSchedule"},
            {"key": "c", "effect": "NoSchedule"}]}});
        check(
            node(&bad, None),
            &[
                (
                    "spec.podCIDRs[0]",
                    "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ),
                (
                    "spec.taints[0].effect",
                    "Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                ),
                ("spec.taints[1].effect", "Required value"),
                (
                    "spec.taints[3]",
                    "Duplicate value: core.Taint{Key:\"c\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
                ),
            ],
            &bad,
        );
        let two_v4 = json!({"spec": {"podCIDRs": ["10.0.0.0/24", "10.0.1.0/24"]}});
        check(
            node(&two_v4, None),
            &[(
                "spec.podCIDRs",
                "Invalid value: [\"10.0.0.0/24\",\"10.0.1.0/24\"]: may specify no more than one CIDR for each IP family",
            )],
            &two_v4,
        );
        let assigned = json!({"spec": {"podCIDR": "10.0.0.0/24", "providerID": "a"}});
        let unassigned = json!({"spec": {}});
        check(node(&assigned, Some(&unassigned)), &[], &assigned);
        let moved = json!({"spec": {"podCIDR": "10.0.1.0/24", "providerID": "b"}});
        check(
            node(&moved, Some(&assigned)),
            &[
                (
                    "spec.podCIDRs",
                    "Forbidden: node updates may not change podCIDR except from \"\" to valid",
                ),
                (
                    "spec.providerID",
                    "Forbidden: node updates may not change providerID except from \"\" to valid",
                ),
            ],
            &moved,
        );
    }

    #[test]
    fn endpoints_subsets() {
        let mut ok = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1", "hostname": "a", "nodeName": "n1"}],
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}]});
        default_endpoints(&mut ok);
        check(endpoints(&ok), &[], &ok);
        let mut bad = json!({"subsets": [{"ports": [{"port": 0}]},
            {"notReadyAddresses": [{"ip": "x"}], "ports": [{"port": 1}, {"port": 2}]}]});
        default_endpoints(&mut bad);
        check(
            endpoints(&bad),
            &[
                (
                    "subsets[0]",
                    "Required value: must specify `addresses` or `notReadyAddresses`",
                ),
                (
                    "subsets[0].ports[0].port",
                    "Invalid value: 0: must be between 1 and 65535, inclusive",
                ),
                (
                    "subsets[1].notReadyAddresses[0].ip",
                    "Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ),
                ("subsets[1].ports[0].name", "Required value"),
                ("subsets[1].ports[1].name", "Required value"),
            ],
            &bad,
        );
    }

    #[test]
    fn quotas_limits_and_claims() {
        let ok = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "2", "count/deployments.apps": "3"},
            "scopes": ["BestEffort"]}});
        check(resource_quota(&ok), &[], &ok);
        let bad =
            json!({"spec": {"hard": {"pods": "-1", "widgets": "1"}, "scopes": ["Sometimes"]}});
        check(
            resource_quota(&bad),
            &[
                (
                    "spec.hard[pods]",
                    "Invalid value: \"-1\": must be greater than or equal to 0",
                ),
                (
                    "spec.hard[widgets]",
                    "Invalid value: \"widgets\": must be a standard resource type or fully qualified",
                ),
                (
                    "spec.hard[widgets]",
                    "Invalid value: \"widgets\": must be a standard resource for quota",
                ),
                (
                    "spec.scopes",
                    "Invalid value: []core.ResourceQuotaScope{\"Sometimes\"}: unsupported scope",
                ),
            ],
            &bad,
        );
        let limits = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}},
            {"type": "Container"}]}});
        check(
            limit_range(&limits),
            &[
                (
                    "spec.limits[0].min[cpu]",
                    "Invalid value: 2: min value 2 is greater than max value 1",
                ),
                ("spec.limits[1].type", "Duplicate value: \"Container\""),
            ],
            &limits,
        );
        let mut pv = json!({"spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/data"}, "storageClassName": "local"}});
        default_persistent_volume(&mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        check(persistent_volume(&pv), &[], &pv);
        let bad_pv = json!({"spec": {"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"],
            "capacity": {"storage": "0", "cpu": "1"}, "hostPath": {"path": "/a"}, "nfs": {"server": "s", "path": "/"},
            "persistentVolumeReclaimPolicy": "Keep"}});
        check(
            persistent_volume(&bad_pv),
            &[
                (
                    "spec.accessModes",
                    "Forbidden: may not use ReadWriteOncePod with other access modes",
                ),
                (
                    "spec.capacity",
                    "Unsupported value: core.ResourceList{\"cpu\", \"storage\"}: supported values: \"storage\"",
                ),
                (
                    "spec.capacity[storage]",
                    "Invalid value: \"0\": must be greater than zero",
                ),
                (
                    "spec.persistentVolumeReclaimPolicy",
                    "Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                ),
                (
                    "spec.nfs",
                    "Forbidden: may not specify more than 1 volume type",
                ),
            ],
            &bad_pv,
        );
        check(
            persistent_volume(
                &json!({"spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}),
            ),
            &[("spec", "Required value: must specify a volume type")],
            &json!("no source"),
        );
        let claim = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        check(persistent_volume_claim(&claim), &[], &claim);
        let bad_claim = json!({"spec": {"accessModes": ["WriteSometimes"], "resources": {"requests": {"storage": "0"}}}});
        check(
            persistent_volume_claim(&bad_claim),
            &[
                (
                    "spec.accessModes",
                    "Unsupported value: \"WriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                ),
                (
                    "spec.resources[storage]",
                    "Invalid value: \"0\": must be greater than zero",
                ),
            ],
            &bad_claim,
        );
    }
}
