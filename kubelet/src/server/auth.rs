//! Who may use the kubelet API, decided as upstream's kubelet decides it: every request is
//! authenticated (a client certificate from --client-ca-file, else a bearer token checked
//! with a TokenReview when --authentication-token-webhook is on, else system:anonymous if
//! --anonymous-auth allows it), then authorized (--authorization-mode AlwaysAllow, or
//! Webhook: a SubjectAccessReview per request). A request maps to attributes on the Node
//! object as pkg/kubelet/server/auth.go maps it: the verb from the HTTP method, resource
//! `nodes`, the node's name, and a subresource from the path (`stats`, `metrics`, `log`,
//! `spec`, `checkpoint`, else `proxy`; with v1.33's KubeletFineGrainedAuthz, on by default,
//! /pods, /runningpods, /healthz and /configz are first checked as `pods`, `healthz` and
//! `configz`, then as `proxy`). No credentials where they are needed is 401 "Unauthorized";
//! a refusal is 403 with upstream's words. Webhook answers are cached as upstream caches
//! them: tokens 2 minutes, allowed decisions 5 minutes, denied ones 30 seconds.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use common::delegated_auth;
pub use common::delegated_auth::{Expiring, Refused, User};
use common::tls::PeerIdentity;
use k8s_openapi::api::authorization::v1::ResourceAttributes;

/// --authorization-mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every authenticated request (anonymous ones included) is allowed: upstream's default.
    AlwaysAllow,
    /// A SubjectAccessReview asks the apiserver about each request.
    Webhook,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            "Webhook" => Ok(Mode::Webhook),
            _ => Err(format!(
                "unknown authorization mode {s:?}: AlwaysAllow or Webhook"
            )),
        }
    }
}

/// The kubelet's authentication and authorization flags.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// --anonymous-auth: requests without credentials are system:anonymous (else 401).
    pub anonymous: bool,
    /// --authentication-token-webhook: bearer tokens are checked with a TokenReview.
    pub token_webhook: bool,
    /// --authentication-token-webhook-cache-ttl.
    pub token_cache_ttl: Duration,
    /// --authorization-mode.
    pub mode: Mode,
    /// --authorization-webhook-cache-authorized-ttl.
    pub authorized_ttl: Duration,
    /// --authorization-webhook-cache-unauthorized-ttl.
    pub unauthorized_ttl: Duration,
}

impl Default for AuthConfig {
    /// Upstream's defaults: anyone may do anything.
    fn default() -> AuthConfig {
        AuthConfig {
            anonymous: true,
            token_webhook: false,
            token_cache_ttl: Duration::from_secs(120),
            mode: Mode::AlwaysAllow,
            authorized_ttl: Duration::from_secs(300),
            unauthorized_ttl: Duration::from_secs(30),
        }
    }
}

/// What a request asks of the Node: the verb and the subresources to try, in order (the
/// first one allowed lets it through). Resource `nodes`, group "", version v1 and the
/// node's name are implied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub verb: &'static str,
    pub subresources: Vec<&'static str>,
}

/// Whether `path` is `prefix` or below it (`/stats` and `/stats/summary` are under `/stats/`).
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Attributes {
    pub fn of(method: &Method, path: &str) -> Attributes {
        let verb = match *method {
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        };
        let mut subresources = Vec::with_capacity(2);
        // KubeletFineGrainedAuthz: a narrower permission first, `proxy` still enough.
        if under(path, "/pods") || under(path, "/runningpods/") {
            subresources.push("pods");
        } else if under(path, "/healthz") {
            subresources.push("healthz");
        } else if under(path, "/configz") {
            subresources.push("configz");
        }
        subresources.push(if under(path, "/stats/") {
            "stats"
        } else if under(path, "/metrics") {
            "metrics"
        } else if under(path, "/logs/") {
            // "log", as pods/log.
            "log"
        } else if under(path, "/spec/") {
            "spec"
        } else if under(path, "/checkpoint") {
            "checkpoint"
        } else {
            "proxy"
        });
        Attributes { verb, subresources }
    }

    /// The 403 text upstream's kubelet writes.
    pub fn forbidden(&self, user: &User) -> String {
        format!(
            "Forbidden (user={}, verb={}, resource=nodes, subresource(s)=[{}])\n",
            user.name,
            self.verb,
            self.subresources.join(" ")
        )
    }
}

/// The questions the webhooks put to the apiserver: TokenReviews (the supertrait) and
/// SubjectAccessReviews. `kube::Client` asks them for real.
#[async_trait::async_trait]
pub trait Reviews: delegated_auth::TokenReviewer {
    /// A SubjectAccessReview of `user` doing `verb` on `nodes/<subresource>` of `node`.
    async fn access(
        &self,
        user: &User,
        verb: &str,
        node: &str,
        subresource: &str,
    ) -> crate::Result<bool>;
}

#[async_trait::async_trait]
impl Reviews for kube::Client {
    async fn access(
        &self,
        user: &User,
        verb: &str,
        node: &str,
        subresource: &str,
    ) -> crate::Result<bool> {
        let attributes = ResourceAttributes {
            verb: Some(verb.to_owned()),
            group: Some(String::new()),
            version: Some("v1".into()),
            resource: Some("nodes".into()),
            subresource: Some(subresource.to_owned()),
            name: Some(node.to_owned()),
            namespace: Some(String::new()),
            ..Default::default()
        };
        delegated_auth::review_access(
            self,
            user,
            delegated_auth::Access::Resource(Box::new(attributes)),
        )
        .await
        .map_err(crate::Error::component)
    }
}

/// The kubelet API's authenticator and authorizer.
pub struct Auth {
    config: AuthConfig,
    node_name: String,
    reviews: Option<Arc<dyn Reviews>>,
    authn: delegated_auth::Authenticator,
    /// (user, verb, subresource) -> allowed.
    decisions: Expiring<(User, &'static str, &'static str), bool>,
}

impl Auth {
    /// Authentication and authorization as configured. The webhooks ask through `reviews`
    /// (the kubelet's API client); they fail to start without it.
    pub fn new(
        config: AuthConfig,
        node_name: &str,
        reviews: Option<Arc<dyn Reviews>>,
    ) -> crate::Result<Auth> {
        if reviews.is_none() && (config.token_webhook || config.mode == Mode::Webhook) {
            crate::error::invalid!(
                "--authentication-token-webhook and --authorization-mode Webhook need an API client (--kubeconfig)"
            );
        }
        // Without --authentication-token-webhook, a bearer token is not looked at.
        let reviewer = reviews
            .clone()
            .filter(|_| config.token_webhook)
            .map(|r| r as Arc<dyn delegated_auth::TokenReviewer>);
        Ok(Auth {
            authn: delegated_auth::Authenticator::new(
                reviewer,
                config.anonymous,
                config.token_cache_ttl,
            ),
            config,
            node_name: node_name.to_owned(),
            reviews,
            decisions: Expiring::new(),
        })
    }

    /// Upstream's defaults: anonymous allowed, AlwaysAllow.
    pub fn always_allow(node_name: &str) -> Auth {
        Auth::new(AuthConfig::default(), node_name, None).expect("no webhook to configure")
    }

    /// Who sent the request: its certificate's identity, else its bearer token's, else
    /// anonymous where allowed. Presented credentials that are not valid are a 401, never
    /// anonymous.
    pub async fn authenticate(
        &self,
        peer: Option<&PeerIdentity>,
        authorization: Option<&str>,
    ) -> Result<User, Refused> {
        self.authn.authenticate(peer, authorization).await
    }

    /// Whether `user` may do what `attrs` describe: any one subresource allowed is enough.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<(), Refused> {
        let Some(reviews) = self
            .reviews
            .as_ref()
            .filter(|_| self.config.mode == Mode::Webhook)
        else {
            return Ok(());
        };
        for &subresource in &attrs.subresources {
            let key = (user.clone(), attrs.verb, subresource);
            let review = reviews.access(user, attrs.verb, &self.node_name, subresource);
            let (allowed_ttl, denied_ttl) =
                (self.config.authorized_ttl, self.config.unauthorized_ttl);
            let allowed = self
                .decisions
                .decide(key, allowed_ttl, denied_ttl, review)
                .await
                .map_err(|e| {
                    tracing::warn!(user = %user.name, verb = attrs.verb, subresource, error = %e, "SubjectAccessReview failed");
                    Refused(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!(
                            "Authorization error (user={}, verb={}, resource=nodes, subresource={subresource})",
                            user.name, attrs.verb
                        ),
                    )
                })?;
            if allowed {
                return Ok(());
            }
        }
        tracing::info!(user = %user.name, verb = attrs.verb, subresources = ?attrs.subresources, "forbidden kubelet API request");
        Err(Refused(StatusCode::FORBIDDEN, attrs.forbidden(user)))
    }

    /// Authenticates and authorizes one request.
    pub async fn check(
        &self,
        peer: Option<&PeerIdentity>,
        authorization: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<User, Refused> {
        let user = self.authenticate(peer, authorization).await?;
        self.authorize(&user, &Attributes::of(method, path)).await?;
        Ok(user)
    }
}

/// The middleware in front of every kubelet API path.
pub async fn filter(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let (peer, authorization) = delegated_auth::credentials(&request);
    let checked = auth
        .check(
            peer.as_ref(),
            authorization.as_deref(),
            request.method(),
            request.uri().path(),
        )
        .await;
    match checked {
        Ok(_) => next.run(request).await,
        Err(Refused(status, text)) => super::error(status, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn check(method: Method, path: &str, verb: &str, subresources: &[&str]) {
        let attrs = Attributes::of(&method, path);
        assert_eq!(
            (attrs.verb, attrs.subresources.as_slice()),
            (verb, subresources),
            "{method} {path}"
        );
    }

    #[test]
    fn requests_map_to_node_subresources() {
        check(Method::GET, "/stats/summary", "get", &["stats"]);
        check(Method::GET, "/stats", "get", &["stats"]);
        check(Method::GET, "/statsx", "get", &["proxy"]);
        check(Method::GET, "/metrics", "get", &["metrics"]);
        check(Method::GET, "/metrics/cadvisor", "get", &["metrics"]);
        check(Method::GET, "/logs/", "get", &["log"]);
        check(Method::GET, "/logs/syslog", "get", &["log"]);
        check(Method::GET, "/spec/", "get", &["spec"]);
        check(
            Method::POST,
            "/checkpoint/ns/p/c",
            "create",
            &["checkpoint"],
        );
        check(Method::GET, "/pods", "get", &["pods", "proxy"]);
        check(Method::GET, "/runningpods/", "get", &["pods", "proxy"]);
        check(Method::GET, "/healthz", "get", &["healthz", "proxy"]);
        check(Method::GET, "/configz", "get", &["configz", "proxy"]);
        check(Method::POST, "/exec/ns/p/c", "create", &["proxy"]);
        check(Method::GET, "/exec/ns/p/c", "get", &["proxy"]);
        check(Method::POST, "/portForward/ns/p", "create", &["proxy"]);
        check(Method::GET, "/containerLogs/ns/p/c", "get", &["proxy"]);
        check(Method::PUT, "/run/ns/p/c", "update", &["proxy"]);
        check(Method::PATCH, "/x", "patch", &["proxy"]);
        check(Method::DELETE, "/x", "delete", &["proxy"]);
        check(Method::HEAD, "/pods", "get", &["pods", "proxy"]);
        check(Method::OPTIONS, "/", "", &["proxy"]);
    }

    #[test]
    fn the_forbidden_text_is_upstreams() {
        let user = User::authenticated("alice", vec!["dev".into()]);
        assert_eq!(
            Attributes::of(&Method::GET, "/pods").forbidden(&user),
            "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
        );
        assert_eq!(
            Attributes::of(&Method::POST, "/exec/a/b/c").forbidden(&user),
            "Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy])\n"
        );
    }

    #[test]
    fn answers_expire() {
        let cache = Expiring::new();
        let t0 = tokio::time::Instant::now();
        cache.insert("k", true, Duration::from_secs(30), t0);
        assert_eq!(cache.get(&"k", t0), Some(true));
        assert_eq!(cache.get(&"k", t0 + Duration::from_secs(29)), Some(true));
        assert_eq!(cache.get(&"k", t0 + Duration::from_secs(30)), None);
        assert_eq!(cache.get(&"other", t0), None);
    }

    /// Counts the questions; allows `allowed` users on `subresource`; knows one token.
    struct Fake {
        allowed: (&'static str, &'static str),
        token_calls: AtomicUsize,
        access_calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl delegated_auth::TokenReviewer for Fake {
        async fn review(&self, token: &str) -> common::Result<Result<User, String>> {
            self.token_calls.fetch_add(1, Ordering::SeqCst);
            Ok(match token {
                "good" => Ok(User::authenticated("bob", vec![])),
                _ => Err("invalid bearer token".into()),
            })
        }
    }

    #[async_trait::async_trait]
    impl Reviews for Fake {
        async fn access(
            &self,
            user: &User,
            _verb: &str,
            node: &str,
            subresource: &str,
        ) -> crate::Result<bool> {
            assert_eq!(node, "n1");
            self.access_calls.fetch_add(1, Ordering::SeqCst);
            Ok((user.name.as_str(), subresource) == self.allowed)
        }
    }

    fn webhook(config: AuthConfig) -> (Arc<Fake>, Auth) {
        let fake = Arc::new(Fake {
            allowed: ("bob", "proxy"),
            token_calls: AtomicUsize::new(0),
            access_calls: AtomicUsize::new(0),
        });
        let auth = Auth::new(config, "n1", Some(fake.clone())).unwrap();
        (fake, auth)
    }

    fn secured() -> AuthConfig {
        AuthConfig {
            anonymous: false,
            token_webhook: true,
            mode: Mode::Webhook,
            ..AuthConfig::default()
        }
    }

    #[tokio::test]
    async fn authentication_order_and_refusals() {
        let (fake, auth) = webhook(secured());
        let unauthorized = Err(Refused(StatusCode::UNAUTHORIZED, "Unauthorized".into()));
        assert_eq!(auth.authenticate(None, None).await, unauthorized);
        let cert = PeerIdentity::Verified {
            user: "alice".into(),
            groups: vec!["dev".into()],
            not_after: i64::MAX,
        };
        let alice = auth.authenticate(Some(&cert), None).await.unwrap();
        assert_eq!(alice.groups, ["dev", "system:authenticated"]);
        // A certificate from another CA is refused, not anonymous; a token may still do.
        let foreign = PeerIdentity::Rejected("unknown authority".into());
        assert_eq!(auth.authenticate(Some(&foreign), None).await, unauthorized);
        let bob = auth
            .authenticate(Some(&foreign), Some("Bearer good"))
            .await
            .unwrap();
        assert_eq!(bob.name, "bob");
        // Token answers are cached, good and bad alike.
        assert_eq!(
            auth.authenticate(None, Some("Bearer bad")).await,
            unauthorized
        );
        assert_eq!(
            auth.authenticate(None, Some("Bearer bad")).await,
            unauthorized
        );
        auth.authenticate(None, Some("Bearer good")).await.unwrap();
        assert_eq!(fake.token_calls.load(Ordering::SeqCst), 2);
        // Anonymous where allowed; a bad token is never anonymous.
        let (_, open) = webhook(AuthConfig {
            anonymous: true,
            ..secured()
        });
        assert_eq!(open.authenticate(None, None).await, Ok(User::anonymous()));
        assert_eq!(
            open.authenticate(None, Some("Bearer bad")).await,
            unauthorized
        );
        // Without the token webhook a bearer token is not looked at.
        let (_, no_tokens) = webhook(AuthConfig {
            anonymous: true,
            token_webhook: false,
            ..secured()
        });
        assert_eq!(
            no_tokens.authenticate(None, Some("Bearer good")).await,
            Ok(User::anonymous())
        );
    }

    #[tokio::test]
    async fn authorization_tries_each_subresource_and_caches() {
        let (fake, auth) = webhook(secured());
        let bob = User::authenticated("bob", vec![]);
        let pods = Attributes::of(&Method::GET, "/pods");
        // "pods" is not allowed, "proxy" is.
        auth.authorize(&bob, &pods).await.unwrap();
        assert_eq!(fake.access_calls.load(Ordering::SeqCst), 2);
        auth.authorize(&bob, &pods).await.unwrap();
        assert_eq!(fake.access_calls.load(Ordering::SeqCst), 2);
        let alice = User::authenticated("alice", vec![]);
        let refused = auth.authorize(&alice, &pods).await.unwrap_err();
        assert_eq!(refused.0, StatusCode::FORBIDDEN);
        assert_eq!(
            refused.1,
            "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
        );
        auth.authorize(&alice, &pods).await.unwrap_err();
        assert_eq!(fake.access_calls.load(Ordering::SeqCst), 4);
        // AlwaysAllow asks nothing.
        let (fake, open) = webhook(AuthConfig::default());
        open.authorize(&alice, &pods).await.unwrap();
        assert_eq!(fake.access_calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn webhooks_need_a_client() {
        assert!(Auth::new(secured(), "n1", None).is_err());
        assert_eq!("Webhook".parse::<Mode>(), Ok(Mode::Webhook));
        assert!("RBAC".parse::<Mode>().is_err());
    }
}
