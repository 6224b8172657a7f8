//! What a request names in the registry: a resource, and a namespace, name and subresource
//! of it (upstream's RequestInfo, once resolved against the resource table). The HTTP layer
//! reads it from a path (`handlers::Target::from_info`); everything below works on it.

use super::ResourceInfo;
use crate::status::ApiError;

/// A resource, or one object of it (and a subresource of that object).
#[derive(Debug)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
}

impl Target {
    /// A store error about this object, as the Status upstream answers.
    pub fn store_error(&self, e: crate::storage::Error) -> ApiError {
        ApiError::from_store(e, self.resource.group, self.resource.plural, &self.name)
    }

    /// The optimistic-concurrency conflict on this object.
    pub fn stale(&self) -> ApiError {
        ApiError::stale(self.resource.group, self.resource.plural, &self.name)
    }

    /// The store key of the object, or the key prefix of the collection it names (a whole
    /// resource when the namespace is empty).
    pub fn key(&self, root: &str) -> String {
        let mut key = self.resource.key_prefix(root);
        if self.resource.namespaced && !self.namespace.is_empty() {
            key.push_str(&self.namespace);
            key.push('/');
        }
        key.push_str(&self.name);
        key
    }
}
