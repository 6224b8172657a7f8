//! One reading of each request, as upstream's RequestInfo: the path, method and query are read
//! once, before authentication's verdict is used, into [`RequestInfo`]. Authorization,
//! admission and the handlers all take their verb, namespace, name, subresource and selectors
//! from it, so what was authorized is exactly what is served.

use crate::auth::attributes::Attributes;
use crate::query::Query;
use crate::status::ApiResult;

/// Everything later steps need to know about what a request asks for.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The authorization attributes (verb, group, version, resource, namespace, name...).
    pub attrs: Attributes,
    /// The query, parsed once with upstream's first-value rule; a malformed query is answered
    /// after authorization, as upstream does.
    pub query: ApiResult<Query>,
    /// The object name the path holds (`attrs.name` may come from a `metadata.name` field
    /// selector of a list or watch instead).
    pub path_name: String,
    /// `/api/v1/watch/...`, upstream's deprecated watch paths.
    pub watch_path: bool,
    /// The resource followed `namespaces/NS/` in the path (a namespaced request), as opposed
    /// to the namespace object itself (`namespaces/NS[/status|finalize]`).
    pub in_namespace: bool,
    /// Path segments after the subresource (the tail of `nodes/NAME/proxy/...`); only
    /// connect subresources accept any.
    pub trailing_segments: usize,
}

impl RequestInfo {
    /// Reads `method path?query`. `path` is the raw (still percent-encoded) URL path: names
    /// are never decoded, so a `%2F` cannot become a separator later.
    pub fn read(method: &str, path: &str, raw_query: &str) -> RequestInfo {
        let query = Query::parse(raw_query);
        let non_resource = |query| RequestInfo {
            attrs: Attributes {
                verb: method.to_ascii_lowercase(),
                path: path.to_owned(),
                ..Attributes::default()
            },
            query,
            path_name: String::new(),
            watch_path: false,
            in_namespace: false,
            trailing_segments: 0,
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_group, api_version, mut rest) = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            _ => return non_resource(query),
        };
        let watch_path = rest.first() == Some(&"watch");
        if watch_path {
            rest = &rest[1..];
        }
        let mut namespace = "";
        let mut in_namespace = false;
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            namespace = rest[1];
            // `namespaces/NAME/status|finalize` is the namespace object's own subresource.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
                in_namespace = true;
            }
        }
        let Some(resource) = rest.first().filter(|r| !r.is_empty()) else {
            return non_resource(query);
        };
        let path_name = rest.get(1).copied().unwrap_or("");
        let subresource = rest.get(2).copied().unwrap_or("");
        let collection = path_name.is_empty();
        // Upstream reads a malformed query's watch alone (its first value) for the verb.
        let watch_param = match &query {
            Ok(q) => q.watch,
            Err(_) => Query::first_value(raw_query, "watch").is_some_and(|v| Query::truthy(&v)),
        };
        // Methods are case-sensitive: `get` is not GET. Any other method on a resource path is
        // a resource request with no verb, which no rule but `*` grants (as upstream's).
        let verb = match method {
            "GET" | "HEAD" if watch_path => "watch",
            "GET" | "HEAD" if collection && watch_param => "watch",
            "GET" | "HEAD" if collection => "list",
            // Streams opened with a GET (WebSocket) act as creates, as upstream authorizes them
            // since 1.31: `get pods/exec` must not be enough to run a command.
            "GET" | "HEAD" if matches!(subresource, "exec" | "attach" | "portforward") => "create",
            "GET" | "HEAD" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if collection => "deletecollection",
            "DELETE" => "delete",
            _ => "",
        };
        let mut name = path_name.to_owned();
        // A list or watch of one object by name is authorized as that object (how kubelets
        // watch the single Secrets and ConfigMaps their pods use); the handler filters with
        // the very same parsed selector.
        if matches!(verb, "list" | "watch")
            && collection
            && let Ok(q) = &query
            && let Some(n) = q.field_selector.exact("metadata.name")
            && is_path_segment_name(n)
        {
            name = n.to_owned();
        }
        let field_selector = match (&query, verb) {
            (Ok(q), "list" | "watch" | "deletecollection") => q.field_selector.clone(),
            _ => Default::default(),
        };
        RequestInfo {
            attrs: Attributes {
                field_selector,
                verb: verb.to_owned(),
                resource_request: true,
                api_group: api_group.to_owned(),
                api_version: api_version.to_owned(),
                resource: resource.to_string(),
                subresource: subresource.to_owned(),
                namespace: namespace.to_owned(),
                name,
                path: path.to_owned(),
            },
            query,
            path_name: path_name.to_owned(),
            watch_path,
            in_namespace,
            trailing_segments: rest.len().saturating_sub(3),
        }
    }
}

/// Upstream's IsValidPathSegmentName: a name that can stand in a URL path.
pub fn is_path_segment_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, url: &str, expected: (&str, &str, &str, &str, &str, &str)) {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let a = RequestInfo::read(method, path, query).attrs;
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
        let r = "resource";
        check("GET", "/api/v1/pods", ("list", "", "pods", "", "", r));
        check(
            "GET",
            "/api/v1/namespaces/ns/pods?watch=true",
            ("watch", "", "pods", "ns", "", r),
        );
        check(
            "GET",
            "/api/v1/watch/namespaces/ns/pods",
            ("watch", "", "pods", "ns", "", r),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets?fieldSelector=metadata.name%3Ds1&watch=1",
            ("watch", "", "secrets", "ns", "s1", r),
        );
        check(
            "POST",
            "/api/v1/namespaces/ns/pods/p/exec",
            ("create", "", "pods/exec", "ns", "p", r),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns/pods/p/exec?command=ls",
            ("create", "", "pods/exec", "ns", "p", r),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns",
            ("get", "", "namespaces", "ns", "ns", r),
        );
        check(
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            ("update", "", "namespaces/finalize", "ns", "ns", r),
        );
        check(
            "DELETE",
            "/apis/apps/v1/namespaces/ns/deployments",
            ("deletecollection", "apps", "deployments", "ns", "", r),
        );
        check(
            "PATCH",
            "/api/v1/nodes/n1/status",
            ("patch", "", "nodes/status", "", "n1", r),
        );
        // Unknown or lower-case methods: a resource request with no verb, never a path.
        check(
            "get",
            "/api/v1/namespaces/ns/pods/p/exec",
            ("", "", "pods/exec", "ns", "p", r),
        );
        check(
            "OPTIONS",
            "/api/v1/nodes/n/proxy",
            ("", "", "nodes/proxy", "", "n", r),
        );
        check(
            "HEAD",
            "/api/v1/namespaces/ns/pods/p/attach",
            ("create", "", "pods/attach", "ns", "p", r),
        );
        check("GET", "/healthz", ("get", "", "", "", "", "path"));
        check("GET", "/apis/apps/v1", ("get", "", "", "", "", "path"));
        check("GET", "/api", ("get", "", "", "", "", "path"));
    }

    /// Thousands of random requests: whatever the handler would serve (its [`Target`] and
    /// verb) is what authorization was asked about.
    #[test]
    fn what_is_served_is_what_was_authorized() {
        use crate::registry::Target;
        let mut generator = crate::testing::random_requests::Generator::new(14);
        let mut served = 0;
        for _ in 0..20_000 {
            let r = generator.request();
            let info = RequestInfo::read(r.method, &r.path, &r.query);
            // A path no resource serves is a 404, a malformed query a 400: nothing served.
            let (Ok(target), Ok(query)) = (
                Target::from_info(&info, &crate::registry::Resources::new()),
                &info.query,
            ) else {
                continue;
            };
            served += 1;
            let a = &info.attrs;
            let case = format!("{} {} -> {a:?}", r.method, r.uri());
            assert!(a.resource_request, "{case}");
            assert_eq!(target.resource.plural, a.resource, "{case}");
            assert_eq!(target.resource.group, a.api_group, "{case}");
            assert_eq!(target.resource.version, a.api_version, "{case}");
            assert_eq!(target.subresource, a.subresource, "{case}");
            if target.resource.namespaced {
                assert_eq!(target.namespace, a.namespace, "{case}");
            } else {
                assert!(target.namespace.is_empty(), "{case}");
            }
            assert_eq!(target.name, info.path_name, "{case}");
            if target.name.is_empty() {
                // A collection: authorized for all of it, or for the one name the very same
                // parsed field selector restricts it to.
                let selected = query.field_selector.exact("metadata.name");
                assert!(
                    a.name.is_empty() || Some(a.name.as_str()) == selected,
                    "{case}"
                );
            } else {
                assert_eq!(target.name, a.name, "{case}");
            }
            // The handler picks list or watch from the same query.
            if r.method == "GET" && target.name.is_empty() {
                let watch = info.watch_path || query.watch;
                assert_eq!(a.verb, if watch { "watch" } else { "list" }, "{case}");
            }
        }
        assert!(served > 1_000, "only {served} requests named a resource");
    }

    #[test]
    fn odd_queries_are_read_as_upstream_reads_them() {
        let r = "resource";
        // The first value of a repeated parameter counts, for the verb and for the name.
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets?watch=false&watch=true",
            ("list", "", "secrets", "ns", "", r),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets?fieldSelector=metadata.name%3Ds1&fieldSelector=",
            ("list", "", "secrets", "ns", "s1", r),
        );
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets?fieldSelector=&fieldSelector=metadata.name%3Ds1",
            ("list", "", "secrets", "ns", "", r),
        );
        // Any watch value but false or 0 (in any case) is a watch; an empty one too.
        for watch in ["True", "yes", "", "TRUE"] {
            check(
                "GET",
                &format!("/api/v1/pods?watch={watch}"),
                ("watch", "", "pods", "", "", r),
            );
        }
        for watch in ["FALSE", "0", "False"] {
            check(
                "GET",
                &format!("/api/v1/pods?watch={watch}"),
                ("list", "", "pods", "", "", r),
            );
        }
        // A name that cannot stand in a path is not taken from the selector.
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets?fieldSelector=metadata.name%3D..",
            ("list", "", "secrets", "ns", "", r),
        );
        // Percent-escapes in the path stay as they are: no new separators.
        check(
            "GET",
            "/api/v1/namespaces/ns/secrets/a%2Fb",
            ("get", "", "secrets", "ns", "a%2Fb", r),
        );
    }
}
