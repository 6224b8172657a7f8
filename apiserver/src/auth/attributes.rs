//! What a request asks to do, as upstream's RequestInfo reads it from the path, method and
//! query alone (before routing, so a forbidden request never learns whether a resource exists).

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
}

impl Attributes {
    /// Reads the attributes of `method path?query`.
    pub fn from_request(method: &str, path: &str, query: &str) -> Attributes {
        let verb_of_method = method.to_ascii_lowercase();
        let non_resource = || Attributes {
            verb: verb_of_method.clone(),
            path: path.to_owned(),
            ..Attributes::default()
        };
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_group, api_version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest.len()),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                (*group, *version, rest.len())
            }
            _ => return non_resource(),
        };
        parts.drain(..parts.len() - rest);
        let mut watch_path = false;
        if parts.first() == Some(&"watch") {
            watch_path = true;
            parts.remove(0);
        }
        let mut namespace = String::new();
        if parts.first() == Some(&"namespaces") && parts.len() > 1 {
            namespace = parts[1].to_owned();
            // `namespaces/NAME/status|finalize` is the namespace object's own subresource.
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts.drain(..2);
            }
        }
        let Some(resource) = parts.first().filter(|r| !r.is_empty()) else {
            return non_resource();
        };
        let mut name = parts.get(1).copied().unwrap_or("").to_owned();
        let subresource = parts.get(2).copied().unwrap_or("").to_owned();
        let params = || form_urlencoded::parse(query.as_bytes());
        let watch_param = params().any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
        let verb = match method {
            "GET" | "HEAD" if watch_path => "watch",
            "GET" | "HEAD" if name.is_empty() && watch_param => "watch",
            "GET" | "HEAD" if name.is_empty() => "list",
            "GET" | "HEAD" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if name.is_empty() => "deletecollection",
            "DELETE" => "delete",
            _ => verb_of_method.as_str(),
        }
        .to_owned();
        // A list or watch of one object by name is authorized as that object (how kubelets
        // watch the single Secrets and ConfigMaps their pods use).
        if matches!(verb.as_str(), "list" | "watch") && name.is_empty() {
            for (k, v) in params() {
                if k == "fieldSelector"
                    && let Some(n) = v.strip_prefix("metadata.name=")
                    && !n.contains(',')
                {
                    name = n.to_owned();
                }
            }
        }
        Attributes {
            verb,
            resource_request: true,
            api_group: api_group.to_owned(),
            api_version: api_version.to_owned(),
            resource: resource.to_string(),
            subresource,
            namespace,
            name,
            path: path.to_owned(),
        }
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

    fn check(method: &str, url: &str, expected: (&str, &str, &str, &str, &str, &str)) {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let a = Attributes::from_request(method, path, query);
        let got = (
            a.verb.as_str(),
            a.api_group.as_str(),
            a.combined_resource(),
            a.namespace.as_str(),
            a.name.as_str(),
            a.resource_request,
        );
        let (verb, group, resource, ns, name, kind) = expected;
        let want = (
            verb,
            group,
            resource.to_owned(),
            ns,
            name,
            kind == "resource",
        );
        assert_eq!(got, want, "{method} {url}");
    }

    #[test]
    fn reads_attributes_as_upstream() {
        check(
            "GET",
            "/api/v1/pods",
            ("list", "", "pods", "", "", "resource"),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns/pods?watch=true",
            ("watch", "", "pods", "ns", "", "resource"),
        );
        check(
            "GET",
            "/api/v1/watch/namespaces/ns/pods",
            ("watch", "", "pods", "ns", "", "resource"),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets?fieldSelector=metadata.name%3Ds1&watch=1",
            ("watch", "", "secrets", "ns", "s1", "resource"),
        );
        check(
            "POST",
            "/api/v1/namespaces/ns/pods/p/exec",
            ("create", "", "pods/exec", "ns", "p", "resource"),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns",
            ("get", "", "namespaces", "ns", "ns", "resource"),
        );
        check(
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            ("update", "", "namespaces/finalize", "ns", "ns", "resource"),
        );
        check(
            "DELETE",
            "/apis/apps/v1/namespaces/ns/deployments",
            (
                "deletecollection",
                "apps",
                "deployments",
                "ns",
                "",
                "resource",
            ),
        );
        check(
            "PATCH",
            "/api/v1/nodes/n1/status",
            ("patch", "", "nodes/status", "", "n1", "resource"),
        );
        check("GET", "/healthz", ("get", "", "", "", "", "path"));
        check("GET", "/apis/apps/v1", ("get", "", "", "", "", "path"));
        check("GET", "/api", ("get", "", "", "", "", "path"));
    }

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
