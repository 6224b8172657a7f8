//! Static pods: manifests in --pod-manifest-path that the kubelet runs on its own, read
//! again every 20 s as upstream's file source. Each is named `<name>-<node>`, has a uid
//! derived from its manifest (so a restarted kubelet finds its containers again), and is
//! shown in the API as a mirror pod (annotation kubernetes.io/config.mirror, owned by the
//! Node) that carries its status; deleting the mirror pod does not stop the static pod,
//! the kubelet puts the mirror back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sha2::{Digest, Sha256};

pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// How often the manifest directory is read (upstream's --file-check-frequency).
pub const FILE_CHECK: Duration = Duration::from_secs(20);

/// The mirror pod's manifest hash, if `pod` is a mirror pod.
pub fn mirror_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(CONFIG_MIRROR)
        .map(String::as_str)
}

/// A static pod from one manifest (YAML or JSON) for `node`.
pub fn from_manifest(bytes: &[u8], node: &str) -> crate::Result<Pod> {
    let value: serde_json::Value = serde_yaml::from_slice(bytes)?;
    if value["kind"] != "Pod" {
        crate::error::invalid!("the manifest is a {}, not a Pod", value["kind"]);
    }
    let mut pod: Pod = serde_json::from_value(value)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        crate::error::invalid!("the manifest's pod has no name");
    }
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hasher.update(node.as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    pod.metadata.name = Some(format!("{name}-{node}"));
    pod.metadata.namespace = Some(
        pod.metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
    );
    pod.metadata.uid = Some(uid);
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), hex);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_owned());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    pod.status = None;
    Ok(pod)
}

/// Every static pod in `dir` (files starting with a dot are skipped, as upstream does);
/// a manifest that does not parse is logged and left out.
pub fn read(dir: &Path, node: &str) -> Vec<Pod> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut pods = Vec::new();
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden || !path.is_file() {
            continue;
        }
        match std::fs::read(&path)
            .map_err(crate::error::io(format!("reading {}", path.display())))
            .and_then(|b| from_manifest(&b, node))
        {
            Ok(p) => pods.push(p),
            Err(e) => {
                tracing::warn!(path = %path.display(), "skipping a static pod manifest: {e:#}")
            }
        }
    }
    pods
}

/// The mirror pod that shows `static_pod` in the API, owned by the Node (`node_uid`).
pub fn mirror_of(static_pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut mirror = static_pod.clone();
    let hash = static_pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH))
        .cloned()
        .unwrap_or_default();
    mirror.metadata.uid = None;
    mirror
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_MIRROR.into(), hash);
    mirror.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_owned(),
        uid: node_uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    mirror
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn manifests_become_node_named_pods_with_stable_uids() {
        let p = from_manifest(MANIFEST.as_bytes(), "n1").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let again = from_manifest(MANIFEST.as_bytes(), "n1").unwrap();
        assert_eq!(p.metadata.uid, again.metadata.uid);
        let elsewhere = from_manifest(MANIFEST.as_bytes(), "n2").unwrap();
        assert_ne!(p.metadata.uid, elsewhere.metadata.uid);
        let mirror = mirror_of(&p, "n1", "node-uid");
        assert!(mirror.metadata.uid.is_none());
        assert_eq!(
            mirror_hash(&mirror),
            p.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(CONFIG_HASH)
                .map(String::as_str)
        );
        assert_eq!(mirror.metadata.owner_references.unwrap()[0].kind, "Node");
        assert!(from_manifest(b"kind: Service\nmetadata: {name: x}\n", "n1").is_err());
    }
}
