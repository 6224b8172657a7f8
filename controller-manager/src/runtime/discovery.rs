//! API discovery for the controllers that work on every kind (garbage collector,
//! namespace): which resources exist, their scope and verbs, and a dynamic client for each.

use std::collections::HashMap;

use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};

/// One served resource.
#[derive(Clone, Debug)]
pub struct Served {
    pub resource: ApiResource,
    pub caps: ApiCapabilities,
}

impl Served {
    pub fn namespaced(&self) -> bool {
        matches!(self.caps.scope, Scope::Namespaced)
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.caps.supports_operation(verb)
    }

    /// A dynamic client for this resource in `namespace` (ignored for cluster kinds; ""
    /// for all namespaces).
    pub fn api(&self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced() && !namespace.is_empty() {
            Api::namespaced_with(client.clone(), namespace, &self.resource)
        } else {
            Api::all_with(client.clone(), &self.resource)
        }
    }

    /// "plural.group" as upstream's messages name a resource ("pods", "deployments.apps").
    pub fn group_resource(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }
}

/// Every resource the apiserver serves.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    /// Each resource once, at its group's preferred version (what to list and watch).
    pub all: Vec<Served>,
    /// Every (apiVersion, kind) served, for resolving references in any version.
    by_kind: HashMap<(String, String), Served>,
}

impl Resources {
    pub async fn discover(client: &kube::Client) -> crate::Result<Resources> {
        let discovery = Discovery::new(client.clone()).run().await?;
        let mut out = Resources::default();
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, caps) in group.versioned_resources(version) {
                    let key = (resource.api_version.clone(), resource.kind.clone());
                    out.by_kind.insert(key, Served { resource, caps });
                }
            }
            for (resource, caps) in group.recommended_resources() {
                out.all.push(Served { resource, caps });
            }
        }
        Ok(out)
    }

    /// The resource serving `kind` in `api_version` ("apps/v1", "v1").
    pub fn find(&self, api_version: &str, kind: &str) -> Option<&Served> {
        self.by_kind.get(&(api_version.to_owned(), kind.to_owned()))
    }
}
