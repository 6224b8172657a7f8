//! Authentication and authorization delegated to the apiserver, as upstream's
//! k8s.io/apiserver delegating authenticator and authorizer do it for servers that are not
//! the apiserver: a bearer token is checked with a TokenReview, a request is authorized with
//! a SubjectAccessReview, and both answers are cached. The kubelet API builds its
//! node-subresource checks on these pieces (kubelet/src/server/auth.rs); [`Delegated`] is the
//! whole of it for kube-scheduler's and kube-controller-manager's /healthz, /readyz, /livez
//! and /metrics server, with upstream's defaults for those components:
//!
//! - authentication: a client certificate signed by `--client-ca-file`, else a bearer token
//!   (TokenReview, answers cached 10 s), else `system:anonymous`. Credentials that are
//!   presented but not valid are a 401, never anonymous.
//! - authorization: `--authorization-always-allow-paths` (default /healthz, /readyz, /livez)
//!   and the group `system:masters` are allowed without asking; anything else is a
//!   SubjectAccessReview of the non-resource path and the lowercased method (allowed and
//!   denied answers cached 10 s). A refusal is upstream's 403 Status, e.g.
//!   `forbidden: User "system:anonymous" cannot get path "/metrics"`.
//!
//! Upstream falls back to the extension-apiserver-authentication ConfigMap for the client CA
//! when --client-ca-file is not given; here client certificates are then not asked for.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::tls::PeerIdentity;

/// Who sent a request, as upstream's user.Info.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// An authenticated user: `system:authenticated` is added to its groups.
    pub fn authenticated(name: &str, mut groups: Vec<String>) -> User {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        User {
            name: name.to_owned(),
            uid: String::new(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}

/// Answers kept until they expire. The time is passed in, so tests control it.
pub struct Expiring<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Expiring<K, V> {
    /// Beyond this many entries, expired ones are dropped on insert.
    const PRUNE_ABOVE: usize = 4096;

    pub fn new() -> Expiring<K, V> {
        Expiring {
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock();
        entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: K, value: V, ttl: Duration, now: Instant) {
        let mut entries = self.entries.lock();
        if entries.len() >= Self::PRUNE_ABOVE {
            entries.retain(|_, (_, until)| now < *until);
        }
        entries.insert(key, (value, now + ttl));
    }
}

impl<K: Eq + Hash> Expiring<K, bool> {
    /// The cached authorization decision for `key`, else `review`'s, kept for `allowed_ttl`
    /// or `denied_ttl` (a failed review is not kept).
    pub async fn decide<E>(
        &self,
        key: K,
        allowed_ttl: Duration,
        denied_ttl: Duration,
        review: impl std::future::Future<Output = Result<bool, E>>,
    ) -> Result<bool, E> {
        if let Some(allowed) = self.get(&key, Instant::now()) {
            return Ok(allowed);
        }
        let allowed = review.await?;
        let ttl = if allowed { allowed_ttl } else { denied_ttl };
        self.insert(key, allowed, ttl, Instant::now());
        Ok(allowed)
    }
}

impl<K: Eq + Hash, V: Clone> Default for Expiring<K, V> {
    fn default() -> Self {
        Expiring::new()
    }
}

/// A refused request: 401, 403 or 500, with the text to answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub StatusCode, pub String);

/// The cache key of a bearer token: its SHA-256, so tokens are not kept in memory.
pub fn token_key(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The bearer token of an Authorization header, if it carries one.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A TokenReview: the token's user, or why it is not valid (`Ok(Err(why))`); `Err` when the
/// apiserver could not be asked.
pub async fn review_token(
    client: &kube::Client,
    token: &str,
) -> crate::Result<Result<User, String>> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..Default::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = answer.status.unwrap_or_default();
    let info = status.user.unwrap_or_default();
    match (status.authenticated, info.username) {
        (Some(true), Some(name)) if !name.is_empty() => {
            let mut user = User::authenticated(&name, info.groups.unwrap_or_default());
            user.uid = info.uid.unwrap_or_default();
            user.extra = info.extra.unwrap_or_default();
            Ok(Ok(user))
        }
        _ => Ok(Err(status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "invalid bearer token".into()))),
    }
}

/// What a SubjectAccessReview asks about.
pub enum Access {
    Resource(Box<ResourceAttributes>),
    NonResource { verb: String, path: String },
}

/// A SubjectAccessReview of `user` doing `access`: whether it is allowed.
pub async fn review_access(
    client: &kube::Client,
    user: &User,
    access: Access,
) -> crate::Result<bool> {
    let (resource_attributes, non_resource_attributes) = match access {
        Access::Resource(r) => (Some(*r), None),
        Access::NonResource { verb, path } => (
            None,
            Some(NonResourceAttributes {
                verb: Some(verb),
                path: Some(path),
            }),
        ),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The secure serving and delegated auth flags kube-scheduler and kube-controller-manager
/// share (upstream's SecureServingOptions, DelegatingAuthenticationOptions and
/// DelegatingAuthorizationOptions, as those components default them).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServingFlags {
    /// The x509 serving certificate (PEM). Without it (and --tls-private-key-file) a
    /// self-signed certificate is generated under --cert-dir.
    #[arg(long)]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The key of --tls-cert-file.
    #[arg(long)]
    pub tls_private_key_file: Option<std::path::PathBuf>,
    /// Where the self-signed serving certificate is written and reused when no
    /// --tls-cert-file is given. Default: <temp dir>/<component> (e.g. /tmp/kube-scheduler).
    #[arg(long)]
    pub cert_dir: Option<std::path::PathBuf>,
    /// CAs whose client certificates authenticate callers (CN the user, O the groups).
    #[arg(long)]
    pub client_ca_file: Option<std::path::PathBuf>,
    /// kubeconfig of the apiserver that checks bearer tokens (TokenReview). Default:
    /// --kubeconfig.
    #[arg(long)]
    pub authentication_kubeconfig: Option<std::path::PathBuf>,
    /// kubeconfig of the apiserver that authorizes requests (SubjectAccessReview).
    /// Default: --kubeconfig.
    #[arg(long)]
    pub authorization_kubeconfig: Option<std::path::PathBuf>,
    /// Paths served without authorization; a trailing `*` matches a prefix.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
}

impl ServingFlags {
    /// The TLS configuration: the given certificate, or `<cert-dir>/<component>.crt`
    /// (self-signed for localhost, 127.0.0.1 and the hostname), with --client-ca-file.
    pub fn tls(&self, component: &str) -> crate::Result<crate::tls::TlsServer> {
        let (cert, key) = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (None, None) => {
                let dir = self
                    .cert_dir
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join(component));
                let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                names.extend(crate::tls::hostname());
                crate::tls::self_signed(&dir, component, names)?
            }
            _ => {
                return Err(crate::Error::Invalid(
                    "--tls-cert-file and --tls-private-key-file go together".into(),
                ));
            }
        };
        let client_ca = self
            .client_ca_file
            .as_deref()
            .map(crate::tls::ClientCa::load)
            .transpose()?;
        crate::tls::server(&cert, &key, client_ca)
    }

    /// The authenticator and authorizer; `kubeconfig` is the component's --kubeconfig,
    /// the default for both delegated kubeconfigs.
    pub async fn delegated(
        &self,
        kubeconfig: Option<&std::path::Path>,
    ) -> crate::Result<Delegated> {
        let authn = self.authentication_kubeconfig.as_deref().or(kubeconfig);
        let authz = self.authorization_kubeconfig.as_deref().or(kubeconfig);
        let authn_client = crate::client::client(authn).await?;
        let authz_client = if authz == authn {
            authn_client.clone()
        } else {
            crate::client::client(authz).await?
        };
        Ok(Delegated::new(
            DelegatedConfig {
                always_allow_paths: self.authorization_always_allow_paths.clone(),
                ..DelegatedConfig::default()
            },
            authn_client,
            authz_client,
        ))
    }
}

/// How [`Delegated`] decides; the defaults are upstream's.
#[derive(Clone, Debug)]
pub struct DelegatedConfig {
    pub always_allow_paths: Vec<String>,
    pub always_allow_groups: Vec<String>,
    pub token_ttl: Duration,
    pub allowed_ttl: Duration,
    pub denied_ttl: Duration,
}

impl Default for DelegatedConfig {
    fn default() -> DelegatedConfig {
        DelegatedConfig {
            always_allow_paths: ["/healthz", "/readyz", "/livez"].map(String::from).into(),
            always_allow_groups: vec!["system:masters".into()],
            token_ttl: Duration::from_secs(10),
            allowed_ttl: Duration::from_secs(10),
            denied_ttl: Duration::from_secs(10),
        }
    }
}

/// What reviews bearer tokens: a TokenReview against the apiserver (tests give a fake).
#[async_trait::async_trait]
pub trait TokenReviewer: Send + Sync {
    /// The user a token stands for, or why it does not authenticate; `Err` when the
    /// apiserver could not be asked.
    async fn review(&self, token: &str) -> crate::Result<Result<User, String>>;
}

#[async_trait::async_trait]
impl TokenReviewer for kube::Client {
    async fn review(&self, token: &str) -> crate::Result<Result<User, String>> {
        review_token(self, token).await
    }
}

/// The delegating authenticator: a client certificate's identity (checked during the TLS
/// handshake), else a bearer token's (reviewed, answers cached), else `system:anonymous`
/// where allowed. Credentials that are presented but not valid are a 401, never anonymous.
pub struct Authenticator {
    /// None: bearer tokens are not looked at.
    reviewer: Option<Arc<dyn TokenReviewer>>,
    anonymous: bool,
    ttl: Duration,
    /// sha256(token) -> the review's answer.
    tokens: Expiring<[u8; 32], Result<User, String>>,
}

impl Authenticator {
    pub fn new(reviewer: Option<Arc<dyn TokenReviewer>>, anonymous: bool, ttl: Duration) -> Self {
        Authenticator {
            reviewer,
            anonymous,
            ttl,
            tokens: Expiring::new(),
        }
    }

    /// Who sent the request.
    pub async fn authenticate(
        &self,
        peer: Option<&PeerIdentity>,
        authorization: Option<&str>,
    ) -> Result<User, Refused> {
        let unauthorized = |why: &str| {
            tracing::debug!(reason = why, "unauthorized request");
            Refused(StatusCode::UNAUTHORIZED, "Unauthorized".into())
        };
        let mut failure = None;
        match peer.map(PeerIdentity::now) {
            Some(Ok((user, groups))) => {
                return Ok(User::authenticated(user, groups.to_vec()));
            }
            Some(Err(why)) => failure = Some(why),
            None => {}
        }
        if let Some(reviewer) = &self.reviewer
            && let Some(token) = bearer(authorization)
        {
            let key = token_key(token);
            let answer = match self.tokens.get(&key, Instant::now()) {
                Some(answer) => answer,
                None => {
                    // An apiserver that cannot be asked is not an answer: nothing is cached.
                    let answer = reviewer
                        .review(token)
                        .await
                        .map_err(|e| unauthorized(&format!("TokenReview failed: {e:#}")))?;
                    self.tokens
                        .insert(key, answer.clone(), self.ttl, Instant::now());
                    answer
                }
            };
            return answer.map_err(|why| unauthorized(&why));
        }
        match failure {
            Some(why) => Err(unauthorized(&why)),
            None if self.anonymous => Ok(User::anonymous()),
            None => Err(unauthorized("no credentials")),
        }
    }
}

/// Whether `path` is one of `patterns` (exact, or a prefix ending in `*`).
fn path_matches(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    })
}

/// The delegated authenticator and authorizer of a component's secure port.
pub struct Delegated {
    config: DelegatedConfig,
    authn: Authenticator,
    authz: kube::Client,
    decisions: Expiring<(User, String, String), bool>,
}

impl Delegated {
    pub fn new(config: DelegatedConfig, authn: kube::Client, authz: kube::Client) -> Delegated {
        Delegated {
            authn: Authenticator::new(Some(Arc::new(authn)), true, config.token_ttl),
            config,
            authz,
            decisions: Expiring::new(),
        }
    }

    /// Who sent the request: its certificate's identity, else its bearer token's, else
    /// system:anonymous.
    pub async fn authenticate(
        &self,
        peer: Option<&PeerIdentity>,
        authorization: Option<&str>,
    ) -> Result<User, Refused> {
        self.authn.authenticate(peer, authorization).await
    }

    /// Whether `user` may `verb` the non-resource `path`.
    pub async fn authorize(&self, user: &User, verb: &str, path: &str) -> Result<(), Refused> {
        if path_matches(&self.config.always_allow_paths, path)
            || user
                .groups
                .iter()
                .any(|g| self.config.always_allow_groups.contains(g))
        {
            return Ok(());
        }
        let key = (user.clone(), verb.to_owned(), path.to_owned());
        let access = Access::NonResource {
            verb: verb.to_owned(),
            path: path.to_owned(),
        };
        let review = review_access(&self.authz, user, access);
        let (allowed_ttl, denied_ttl) = (self.config.allowed_ttl, self.config.denied_ttl);
        let allowed = self
            .decisions
            .decide(key, allowed_ttl, denied_ttl, review)
            .await
            .map_err(|e| {
                tracing::warn!(user = %user.name, verb, path, error = %e, "SubjectAccessReview failed");
                Refused(StatusCode::INTERNAL_SERVER_ERROR, format!("authorization error: {e}"))
            })?;
        if allowed {
            Ok(())
        } else {
            Err(Refused(
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
                    user.name
                ),
            ))
        }
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
        // A non-resource request's verb is its lowercased method.
        let verb = method.as_str().to_ascii_lowercase();
        self.authorize(&user, &verb, path).await?;
        Ok(user)
    }
}

/// A refusal as upstream's apiserver library writes it: a Status object.
fn status_response(Refused(code, message): Refused) -> Response {
    let reason = match code {
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "details": {},
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// What a request presents: the client certificate's identity (attached to the connection
/// by `common::tls`) and the Authorization header. Copied out, because a request's body is
/// not Sync and no reference to it may be held across the reviews' awaits.
pub fn credentials(request: &Request) -> (Option<PeerIdentity>, Option<String>) {
    let peer = request
        .extensions()
        .get::<Option<PeerIdentity>>()
        .cloned()
        .flatten();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (peer, authorization)
}

/// The middleware in front of every path of a component's secure port.
pub async fn filter(State(auth): State<Arc<Delegated>>, request: Request, next: Next) -> Response {
    let (peer, authorization) = credentials(&request);
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
        Err(refused) => status_response(refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_allowed_paths() {
        let paths = DelegatedConfig::default().always_allow_paths;
        for (path, allowed) in [
            ("/healthz", true),
            ("/readyz", true),
            ("/livez", true),
            ("/metrics", false),
            ("/healthz/ping", false),
        ] {
            assert_eq!(path_matches(&paths, path), allowed, "{path}");
        }
        assert!(path_matches(&["/healthz*".into()], "/healthz/ping"));
    }

    #[test]
    fn tokens_are_keyed_by_their_digest() {
        assert_ne!(token_key("a"), token_key("b"));
        assert_eq!(bearer(Some("Bearer  t ")), Some("t"));
        assert_eq!(bearer(Some("Basic x")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
    }

    #[test]
    fn answers_expire() {
        let cache = Expiring::new();
        let t0 = Instant::now();
        cache.insert("k", true, Duration::from_secs(30), t0);
        assert_eq!(cache.get(&"k", t0), Some(true));
        assert_eq!(cache.get(&"k", t0 + Duration::from_secs(30)), None);
    }
}
