//! What a request names in the registry: a resource, and a namespace, name and subresource
//! of it (upstream's RequestInfo, once resolved against the resource table). The HTTP layer
//! reads it from a path (`handlers::Target::from_info`); everything below works on it.

use std::sync::Arc;

use super::{ResourceInfo, Resources};
use crate::request::RequestInfo;
use crate::status::{ApiError, ApiResult};

/// A resource, or one object of it (and a subresource of that object).
#[derive(Clone, Debug)]
pub struct Target {
    pub resource: Arc<ResourceInfo>,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
}

impl Target {
    /// The object itself, for a target naming one of its subresources.
    pub fn main(&self) -> Target {
        Target {
            subresource: String::new(),
            ..self.clone()
        }
    }

    /// A store error about this object, as the Status upstream answers.
    pub fn store_error(&self, e: crate::storage::Error) -> ApiError {
        ApiError::from_store(e, &self.resource.group, &self.resource.plural, &self.name)
    }

    /// The optimistic-concurrency conflict on this object.
    pub fn stale(&self) -> ApiError {
        ApiError::stale(&self.resource.group, &self.resource.plural, &self.name)
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

impl Target {
    /// The resource, namespace, name and subresource a request's reading names; 404 for a
    /// path no resource serves. It reads only [`RequestInfo`] (and what `resources` serves),
    /// so it names exactly what was authorized.
    pub fn from_info(info: &RequestInfo, resources: &Resources) -> ApiResult<Target> {
        let attrs = &info.attrs;
        if !attrs.resource_request || info.trailing_segments > 0 {
            return Err(ApiError::no_route());
        }
        let resource = resources
            .find(&attrs.api_group, &attrs.api_version, &attrs.resource)
            .ok_or_else(ApiError::no_route)?;
        // A namespaced resource is named inside a namespace, or listed across all of them;
        // a cluster-scoped one never follows `namespaces/NS/`.
        let scope_ok = match (resource.namespaced, info.in_namespace) {
            (true, true) => !attrs.namespace.is_empty(),
            (true, false) => info.path_name.is_empty(),
            (false, in_namespace) => !in_namespace,
        };
        if !scope_ok {
            return Err(ApiError::no_route());
        }
        let subresource = attrs.subresource.clone();
        if !subresource.is_empty()
            && (info.path_name.is_empty() || !resource.has_subresource(&subresource))
        {
            return Err(ApiError::no_route());
        }
        Ok(Target {
            namespace: if resource.namespaced {
                attrs.namespace.clone()
            } else {
                String::new()
            },
            name: info.path_name.clone(),
            subresource,
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` into a target.
    fn parse_path(path: &str) -> ApiResult<Target> {
        Target::from_info(&RequestInfo::read("GET", path, ""), &Resources::new())
    }

    fn check(path: &str, expected: Option<(&str, &str, &str, &str)>) {
        let got = parse_path(path).ok().map(|t| {
            (
                t.resource.plural.clone(),
                t.namespace.clone(),
                t.name.clone(),
                t.subresource.clone(),
            )
        });
        let expected =
            expected.map(|(r, ns, n, s)| (r.to_owned(), ns.to_owned(), n.to_owned(), s.to_owned()));
        assert_eq!(got, expected, "{path}");
    }

    #[test]
    fn paths() {
        check("/api/v1/pods", Some(("pods", "", "", "")));
        check(
            "/api/v1/namespaces/default/pods/p/status",
            Some(("pods", "default", "p", "status")),
        );
        check("/api/v1/namespaces", Some(("namespaces", "", "", "")));
        check(
            "/api/v1/namespaces/kube-system",
            Some(("namespaces", "", "kube-system", "")),
        );
        check(
            "/api/v1/namespaces/x/finalize",
            Some(("namespaces", "", "x", "finalize")),
        );
        check(
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            Some(("deployments", "a", "d", "scale")),
        );
        check("/api/v1/namespaces/a/nodes", None);
        check("/apis/apps/v1/widgets", None);
        check("/api/v1/namespaces/a/pods/p/bogus", None);
    }
}
