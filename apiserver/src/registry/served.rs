//! The served resource table: the built-in kinds and the kinds CustomResourceDefinitions
//! define. A definition's change swaps the custom part whole, so a request reads the table
//! without waiting on a writer and never sees half a definition.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{BUILTIN, ResourceInfo};

/// What the server serves, as discovery shows it.
#[derive(Default)]
pub struct Resources {
    /// The served versions of each established CustomResourceDefinition, by its name.
    custom: RwLock<Arc<BTreeMap<String, Vec<Arc<ResourceInfo>>>>>,
}

impl Resources {
    pub fn new() -> Resources {
        Resources::default()
    }

    /// The resource serving `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let matches =
            |r: &&Arc<ResourceInfo>| r.plural == plural && r.version == version && r.group == group;
        if let Some(r) = BUILTIN.iter().find(matches) {
            return Some(r.clone());
        }
        self.custom.read().values().flatten().find(matches).cloned()
    }

    /// The resource serving `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let matches =
            |r: &&Arc<ResourceInfo>| r.kind == kind && r.version == version && r.group == group;
        if let Some(r) = BUILTIN.iter().find(matches) {
            return Some(r.clone());
        }
        self.custom.read().values().flatten().find(matches).cloned()
    }

    /// Every served resource: the built-in ones in discovery order, then the custom ones.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        let custom = self.custom.read().clone();
        BUILTIN
            .iter()
            .chain(custom.values().flatten())
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
        let mut next = (**custom).clone();
        if versions.is_empty() {
            next.remove(definition);
        } else {
            next.insert(definition.to_owned(), versions);
        }
        *custom = Arc::new(next);
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
        *self.custom.write() = Arc::new(next);
    }

    /// The served versions of the definition named `definition`, preferred first.
    pub fn defined_by(&self, definition: &str) -> Vec<Arc<ResourceInfo>> {
        self.custom
            .read()
            .get(definition)
            .cloned()
            .unwrap_or_default()
    }

    /// The resource whose objects are kept under `storage_path` (for a custom resource: its
    /// first served version, whose strategy reads every version's fields alike).
    pub fn stored_at(&self, storage_path: &str) -> Option<Arc<ResourceInfo>> {
        let matches = |r: &&Arc<ResourceInfo>| r.storage_path() == storage_path;
        if let Some(r) = BUILTIN.iter().find(matches) {
            return Some(r.clone());
        }
        self.custom.read().values().flatten().find(matches).cloned()
    }
}
