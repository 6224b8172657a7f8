//! Random requests for property tests: paths, queries, headers and bodies built from the
//! pieces that make requests odd (repeated and empty parameters, encoded slashes, dot
//! segments, case variants, wrong content types, broken bodies), from a seed so that a failure
//! can be replayed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One generated request.
#[derive(Clone, Debug)]
pub struct RandomRequest {
    pub method: &'static str,
    pub path: String,
    pub query: String,
    pub content_type: &'static str,
    /// Other headers: Accept variants, impersonation, odd encodings.
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
}

impl RandomRequest {
    /// `path?query`.
    pub fn uri(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
];
const SEGMENTS: &[&str] = &[
    "api",
    "apis",
    "v1",
    "V1",
    "apps",
    "rbac.authorization.k8s.io",
    "namespaces",
    "default",
    "kube-system",
    "pods",
    "secrets",
    "configmaps",
    "status",
    "log",
    "exec",
    "binding",
    "scale",
    "eviction",
    "watch",
    "nodes",
    "proxy",
    "token",
    "serviceaccounts",
    "finalize",
    "roles",
    "deployments",
    "x",
    "..",
    ".",
    "",
    "%2F",
    "a%2Fb",
    "%2e%2e",
    "Pods",
    "s1",
    "%",
    "%ZZ",
    "%C3%A9",
    "a%20b",
];
const PREFIXES: &[&str] = &[
    "/api/v1",
    "/apis/apps/v1",
    "/apis/rbac.authorization.k8s.io/v1",
    "/api",
    "",
    "/apis",
];
const KEYS: &[&str] = &[
    "watch",
    "fieldSelector",
    "labelSelector",
    "limit",
    "continue",
    "resourceVersion",
    "resourceVersionMatch",
    "dryRun",
    "timeoutSeconds",
    "fieldValidation",
    "propagationPolicy",
    "gracePeriodSeconds",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "fieldManager",
    "Watch",
];
const VALUES: &[&str] = &[
    "",
    "true",
    "false",
    "0",
    "1",
    "True",
    "FALSE",
    "metadata.name%3Ds1",
    "metadata.name%3D..",
    "metadata.namespace!%3Ddefault",
    "a%3Db",
    "a+in+(b,c)",
    "!a",
    "%ZZ",
    "-1",
    "99999999999999999999999",
    "All",
    "Strict",
    "Orphan",
    "eyJydiI6MSwic3RhcnQiOiIvIn0",
    "%00",
    "a%2Cb%3D",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "",
];
const BODIES: &[&str] = &[
    "",
    "{}",
    "[]",
    "null",
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}",
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}",
    "{\"metadata\":{\"name\":\"../x\"}}",
    "{\"metadata\":{\"generateName\":\"a/\"}}",
    "[{\"op\":\"copy\",\"from\":\"/metadata\",\"path\":\"/metadata/x\"}]",
    "[{\"op\":\"remove\",\"path\":\"/spec/containers/99\"}]",
    "{\"spec\":{\"containers\":[{\"name\":\"c\",\"$patch\":\"delete\"}]},\"$retainKeys\":[1]}",
    "a: [1, {b: *c}]",
    "{\"a\": ",
    "\u{0}\u{1}\u{2}",
    "k8s\u{0}\u{1}garbage",
];

/// Resources by group/version prefix, with some of their subresources.
const RESOURCES: &[(&str, &str, &[&str])] = &[
    (
        "/api/v1",
        "pods",
        &["status", "log", "exec", "binding", "eviction", "attach"],
    ),
    ("/api/v1", "secrets", &[]),
    ("/api/v1", "configmaps", &[]),
    ("/api/v1", "serviceaccounts", &["token"]),
    ("/api/v1", "nodes", &["status", "proxy"]),
    ("/api/v1", "namespaces", &["status", "finalize"]),
    ("/apis/apps/v1", "deployments", &["scale", "status"]),
    ("/apis/rbac.authorization.k8s.io/v1", "roles", &[]),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", &[]),
];
/// Query values that parse, so that more requests reach a handler.
const GOOD_VALUES: &[&str] = &["", "true", "false", "1", "0", "metadata.name%3Ds1", "a%3Db"];

/// Headers that change how a request is read or answered.
const HEADERS: &[(&str, &str)] = &[
    ("accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),
    ("accept", "application/yaml"),
    ("accept", "application/vnd.kubernetes.protobuf"),
    ("accept", "*/*;q=0.1, text/html"),
    ("impersonate-user", "system:anonymous"),
    ("impersonate-user", "system:serviceaccount:default:x"),
    ("impersonate-group", "system:masters"),
    ("impersonate-user", ""),
    ("content-encoding", "gzip"),
    ("x-remote-user", "admin"),
    ("authorization", "Bearer not-a-token"),
];

/// Generates requests from `seed`.
pub struct Generator(StdRng);

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator(StdRng::seed_from_u64(seed))
    }

    /// A resource path as clients write them, then made odd at random.
    fn resource_path(&mut self) -> String {
        let (prefix, plural, subs) = self.pick(RESOURCES);
        let mut parts: Vec<&str> = Vec::new();
        if self.0.random_bool(0.1) {
            parts.push("watch");
        }
        if self.0.random_bool(0.6) {
            parts.push("namespaces");
            parts.push(self.pick(&["default", "kube-system", "", "a%2Fb", ".."]));
        }
        parts.push(plural);
        if self.0.random_bool(0.6) {
            parts.push(self.pick(&["s1", "default", "x", "", "..", "%2F", "S1"]));
            if !subs.is_empty() && self.0.random_bool(0.4) {
                parts.push(self.pick(subs));
            }
        }
        if self.0.random_bool(0.2) {
            let at = self.0.random_range(0..=parts.len());
            parts.insert(at, self.pick(SEGMENTS));
        }
        let mut path = format!("{prefix}/{}", parts.join("/"));
        if self.0.random_bool(0.1) {
            path.push('/');
        }
        path
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.0.random_range(0..from.len())]
    }

    pub fn request(&mut self) -> RandomRequest {
        let path = if self.0.random_bool(0.7) {
            self.resource_path()
        } else {
            let mut path = self.pick(PREFIXES).to_owned();
            for _ in 0..self.0.random_range(0..6) {
                path.push('/');
                path.push_str(self.pick(SEGMENTS));
            }
            path
        };
        let mut params = Vec::new();
        for _ in 0..self.0.random_range(0..5) {
            let value = if self.0.random_bool(0.5) {
                self.pick(GOOD_VALUES)
            } else {
                self.pick(VALUES)
            };
            params.push(format!("{}={value}", self.pick(KEYS)));
        }
        let body = if self.0.random_bool(0.1) {
            (0..self.0.random_range(0..64))
                .map(|_| self.0.random::<u8>())
                .collect()
        } else {
            self.pick(BODIES).as_bytes().to_vec()
        };
        let headers = (0..self.0.random_range(0..3))
            .map(|_| self.pick(HEADERS))
            .collect();
        RandomRequest {
            method: self.pick(METHODS),
            path,
            query: params.join("&"),
            content_type: self.pick(CONTENT_TYPES),
            headers,
            body,
        }
    }
}
