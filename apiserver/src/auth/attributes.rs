//! What a request asks to do, as authorizers see it: read from the path, method and query
//! alone (before routing, so a forbidden request never learns whether a resource exists).

/// The authorization attributes of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection; for non-resource
    /// requests the lowercased HTTP method.
    pub verb: String,
    /// A request under /api or /apis naming a resource; otherwise a non-resource path.
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path (for non-resource requests).
    pub path: String,
    /// A list's or watch's field selector (upstream's AuthorizeWithSelectors): the Node
    /// authorizer lets a kubelet list only pods with `spec.nodeName=<itself>`.
    pub field_selector: common::selector::FieldSelector,
}

impl Attributes {
    /// Reads the attributes of `method path?query` (see [`crate::request::RequestInfo`]).
    pub fn from_request(method: &str, path: &str, query: &str) -> Attributes {
        crate::request::RequestInfo::read(method, path, query).attrs
    }

    /// `pods` or `pods/log`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Upstream's text after "forbidden: ", e.g. `User "bob" cannot list resource "pods" in
    /// API group "" in the namespace "default"`.
    pub fn forbidden_text(&self, user: &str) -> String {
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        format!(
            "User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
            self.verb,
            self.combined_resource(),
            self.api_group
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_text_names_the_scope() {
        let a = Attributes::from_request("GET", "/api/v1/namespaces/default/pods", "");
        assert_eq!(
            a.forbidden_text("bob"),
            r#"User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let a = Attributes::from_request("GET", "/api/v1/nodes", "");
        assert!(a.forbidden_text("bob").ends_with("at the cluster scope"));
        let a = Attributes::from_request("GET", "/logs", "");
        assert_eq!(
            a.forbidden_text("bob"),
            r#"User "bob" cannot get path "/logs""#
        );
    }
}
