//! The served resource table: the built-in kinds and the kinds CustomResourceDefinitions
//! define. A definition's change swaps the table whole, so a request reads it without waiting
//! on a writer and never sees half a definition. Lookups by URL and by storage path are hashed:
//! every request and every watch-cache event makes one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use super::{BUILTIN, ResourceInfo};

/// Resources indexed by plural (then a few group-versions) and by storage path.
#[derive(Default)]
struct Index {
    by_plural: HashMap<String, Vec<Arc<ResourceInfo>>>,
    by_path: HashMap<String, Arc<ResourceInfo>>,
}

impl Index {
    fn add(&mut self, r: &Arc<ResourceInfo>) {
        self.by_plural
            .entry(r.plural.clone())
            .or_default()
            .push(r.clone());
        // The first version listed (the preferred one) stands for the path.
        self.by_path
            .entry(r.storage_path().to_owned())
            .or_insert_with(|| r.clone());
    }

    fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_plural
            .get(plural)?
            .iter()
            .find(|r| r.version == version && r.group == group)
    }
}

static BUILTIN_INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut index = Index::default();
    BUILTIN.iter().for_each(|r| index.add(r));
    index
});

/// The custom part of the table: each definition's served versions, and their index.
#[derive(Default)]
struct Custom {
    by_definition: BTreeMap<String, Vec<Arc<ResourceInfo>>>,
    index: Index,
}

impl Custom {
    fn new(by_definition: BTreeMap<String, Vec<Arc<ResourceInfo>>>) -> Custom {
        let mut index = Index::default();
        by_definition.values().flatten().for_each(|r| index.add(r));
        Custom {
            by_definition,
            index,
        }
    }
}

/// What the server serves, as discovery shows it.
#[derive(Default)]
pub struct Resources {
    custom: RwLock<Arc<Custom>>,
}

impl Resources {
    pub fn new() -> Resources {
        Resources::default()
    }

    fn custom(&self) -> Arc<Custom> {
        self.custom.read().clone()
    }

    /// The resource serving `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        if let Some(r) = BUILTIN_INDEX.find(group, version, plural) {
            return Some(r.clone());
        }
        self.custom().index.find(group, version, plural).cloned()
    }

    /// The resource serving `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let matches =
            |r: &&Arc<ResourceInfo>| r.kind == kind && r.version == version && r.group == group;
        if let Some(r) = BUILTIN.iter().find(matches) {
            return Some(r.clone());
        }
        self.custom()
            .by_definition
            .values()
            .flatten()
            .find(matches)
            .cloned()
    }

    /// Every served resource: the built-in ones in discovery order, then the custom ones.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        let custom = self.custom();
        BUILTIN
            .iter()
            .chain(custom.by_definition.values().flatten())
            .cloned()
            .collect()
    }

    /// The served group versions, `v1` first, in discovery order: (group, version).
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for r in self.all() {
            if !out.iter().any(|(g, v)| *g == r.group && *v == r.version) {
                out.push((r.group.clone(), r.version.clone()));
            }
        }
        out
    }

    /// Serves the versions a CustomResourceDefinition defines, in place of what it served
    /// before (none: it serves nothing).
    pub fn set_custom(&self, definition: &str, versions: Vec<Arc<ResourceInfo>>) {
        let mut custom = self.custom.write();
        let mut next = custom.by_definition.clone();
        if versions.is_empty() {
            next.remove(definition);
        } else {
            next.insert(definition.to_owned(), versions);
        }
        *custom = Arc::new(Custom::new(next));
    }

    /// Serves what each of `definitions` (name, served versions) defines, and nothing else
    /// custom (after the cache reloaded every definition).
    pub fn reset_custom(
        &self,
        definitions: impl IntoIterator<Item = (String, Vec<Arc<ResourceInfo>>)>,
    ) {
        let next = definitions
            .into_iter()
            .filter(|(_, versions)| !versions.is_empty())
            .collect();
        *self.custom.write() = Arc::new(Custom::new(next));
    }

    /// The served versions of the definition named `definition`, preferred first.
    pub fn defined_by(&self, definition: &str) -> Vec<Arc<ResourceInfo>> {
        self.custom()
            .by_definition
            .get(definition)
            .cloned()
            .unwrap_or_default()
    }

    /// The resource whose objects are kept under `storage_path` (for a custom resource: its
    /// preferred version, whose strategy reads every version's fields alike).
    pub fn stored_at(&self, storage_path: &str) -> Option<Arc<ResourceInfo>> {
        if let Some(r) = BUILTIN_INDEX.by_path.get(storage_path) {
            return Some(r.clone());
        }
        self.custom().index.by_path.get(storage_path).cloned()
    }
}

/// Whether `plural` names a built-in core (group "") resource.
pub fn is_core(plural: &str) -> bool {
    BUILTIN_INDEX.by_path.contains_key(plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_and_custom_kinds_are_found_by_url_and_by_path() {
        let table = Resources::new();
        assert_eq!(
            table.find("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert!(table.find("apps", "v2", "deployments").is_none());
        assert_eq!(table.stored_at("pods").unwrap().kind, "Pod");
        assert!(is_core("pods") && !is_core("apps"));
        assert!(table.find("example.com", "v1", "widgets").is_none());
        let crd = serde_json::json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]},
            "status": {"acceptedNames": {"plural": "widgets", "kind": "Widget"},
                       "conditions": [{"type": "Established", "status": "True"}]}
        });
        table.set_custom("widgets.example.com", crate::crd::served(&crd));
        assert_eq!(
            table.find("example.com", "v1", "widgets").unwrap().kind,
            "Widget"
        );
        assert_eq!(
            table.stored_at("example.com/widgets").unwrap().version,
            "v1"
        );
        assert_eq!(
            table.find_kind("example.com/v1", "Widget").unwrap().plural,
            "widgets"
        );
        table.set_custom("widgets.example.com", Vec::new());
        assert!(table.find("example.com", "v1", "widgets").is_none());
    }
}
