//! Strategic-merge-patch metadata: which lists merge by which key, as the `patchStrategy` and
//! `patchMergeKey` tags of upstream's Go types say. Lists not named here are replaced whole.

/// How a list field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Items are objects matched by this key; unmatched patch items are appended.
    MergeByKey(&'static str),
    /// A list of scalars merged as a set (e.g. metadata.finalizers).
    MergePrimitives,
    /// The patch's list replaces the original.
    Replace,
}

/// The patch metadata of one kind.
#[derive(Clone, Debug)]
pub struct PatchSchema {
    kind: &'static str,
}

/// Fields that merge by key wherever they appear in the built-in types.
const MERGE_KEYS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("env", "name"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
    ("volumes", "name"),
    ("imagePullSecrets", "name"),
    ("hostAliases", "ip"),
    ("conditions", "type"),
    ("ownerReferences", "uid"),
    ("topologySpreadConstraints", "topologyKey"),
    ("resourceClaims", "name"),
    ("schedulingGates", "name"),
    ("secrets", "name"),
    ("addresses", "type"),
];

impl PatchSchema {
    /// The metadata of kind `K`.
    pub fn for_kind<K: k8s_openapi::Resource>() -> PatchSchema {
        PatchSchema { kind: K::KIND }
    }

    /// No metadata: every list is replaced (unknown types, Scale).
    pub fn empty() -> PatchSchema {
        PatchSchema { kind: "" }
    }

    /// The strategy of the list at `path` (field names from the object's root, list items
    /// skipped), e.g. `["spec", "template", "spec", "containers"]`.
    pub fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        let Some(field) = path.last() else {
            return ListStrategy::Replace;
        };
        if self.kind.is_empty() {
            return ListStrategy::Replace;
        }
        match *field {
            "finalizers" if path.len() == 2 && path[0] == "metadata" => {
                ListStrategy::MergePrimitives
            }
            // A Service's ports are keyed by port; a container's by containerPort.
            "ports" if self.kind == "Service" && path == ["spec", "ports"] => {
                ListStrategy::MergeByKey("port")
            }
            "ports" if path.len() >= 2 && path[path.len() - 2].ends_with("ontainers") => {
                ListStrategy::MergeByKey("containerPort")
            }
            // NodeStatus addresses merge by type; other `addresses` lists are plain lists.
            "addresses" if !(self.kind == "Node" && path == ["status", "addresses"]) => {
                ListStrategy::Replace
            }
            f => MERGE_KEYS
                .iter()
                .find(|(name, _)| *name == f)
                .map(|(_, key)| ListStrategy::MergeByKey(key))
                .unwrap_or(ListStrategy::Replace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod, Service};

    #[test]
    fn strategies_follow_the_go_tags() {
        let pod = PatchSchema::for_kind::<Pod>();
        assert_eq!(
            pod.list_strategy(&["spec", "containers"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            pod.list_strategy(&["spec", "containers", "ports"]),
            ListStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            pod.list_strategy(&["spec", "tolerations"]),
            ListStrategy::Replace
        );
        assert_eq!(
            pod.list_strategy(&["metadata", "finalizers"]),
            ListStrategy::MergePrimitives
        );
        assert_eq!(
            pod.list_strategy(&["spec", "containers", "args"]),
            ListStrategy::Replace
        );
        let svc = PatchSchema::for_kind::<Service>();
        assert_eq!(
            svc.list_strategy(&["spec", "ports"]),
            ListStrategy::MergeByKey("port")
        );
        let node = PatchSchema::for_kind::<Node>();
        assert_eq!(
            node.list_strategy(&["status", "addresses"]),
            ListStrategy::MergeByKey("type")
        );
        assert_eq!(
            PatchSchema::empty().list_strategy(&["spec", "containers"]),
            ListStrategy::Replace
        );
    }
}
