//! Discovery: /api, /apis, /api/v1, /apis/GROUP[/VERSION] (the legacy, unaggregated form that
//! every client falls back to) and /version. All computed from the resource table.

use serde_json::{Value, json};

use crate::registry::{ResourceInfo, Resources};

/// The version the server reports (k8s-openapi's v1_33 types).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0-tetsu.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, arch()),
    })
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_json(resources: &Resources, group: &str) -> Value {
    let versions: Vec<Value> = resources
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn api_groups(resources: &Resources) -> Value {
    let mut groups = Vec::new();
    for (g, _) in resources.group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().map(|g| group_json(resources, g)).collect::<Vec<_>>(),
    })
}

/// /apis/GROUP, if served.
pub fn api_group(resources: &Resources, group: &str) -> Option<Value> {
    resources
        .group_versions()
        .iter()
        .any(|(g, _)| *g == group)
        .then(|| {
            let mut g = group_json(resources, group);
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        })
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn subresource_entry(r: &ResourceInfo, sub: &str) -> Value {
    let (kind, group, version, verbs): (&str, &str, &str, &[&str]) = match sub {
        "scale" => ("Scale", "autoscaling", "v1", &["get", "patch", "update"]),
        "binding" => ("Binding", "", "v1", &["create"]),
        "eviction" => ("Eviction", "policy", "v1", &["create"]),
        "finalize" => (&r.kind, &r.group, &r.version, &["update"]),
        "log" => ("Pod", "", "v1", &["get"]),
        "exec" => ("PodExecOptions", "", "v1", &["create", "get"]),
        "attach" => ("PodAttachOptions", "", "v1", &["create", "get"]),
        "portforward" => ("PodPortForwardOptions", "", "v1", &["create", "get"]),
        "proxy" => (
            "NodeProxyOptions",
            "",
            "v1",
            &["create", "delete", "get", "patch", "update"],
        ),
        _ => (&r.kind, &r.group, &r.version, &["get", "patch", "update"]),
    };
    let mut e = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if (group, version) != (r.group.as_str(), r.version.as_str()) {
        e["group"] = json!(group);
        e["version"] = json!(version);
    }
    e
}

/// /api/v1 or /apis/GROUP/VERSION, if served.
pub fn resource_list(served: &Resources, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in served
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        for sub in r.subresources.iter().copied() {
            resources.push(subresource_entry(r, sub));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_apps_are_discoverable() {
        let served = Resources::new();
        let core = resource_list(&served, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"pods/binding")
        );
        let apps = resource_list(&served, "apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(
            (scale["group"].as_str(), scale["kind"].as_str()),
            (Some("autoscaling"), Some("Scale"))
        );
        let groups = api_groups(&served);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "rbac.authorization.k8s.io")
        );
        assert!(resource_list(&served, "apps", "v2").is_none());
    }
}
