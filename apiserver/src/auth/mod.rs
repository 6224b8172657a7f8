//! Authentication and authorization, the first steps of every request: who sent it
//! ([`authn`]: client certificate, bearer token, or anonymous), then whether they may do what it
//! asks (the --authorization-mode chain: [`node`], [`rbac`], AlwaysAllow, AlwaysDeny). A request
//! without valid credentials gets 401 Unauthorized, one that no authorizer allows 403
//! Forbidden, both as Statuses with upstream's messages. [`api`] serves the review and token
//! APIs; [`policy`] holds the bootstrap roles.

pub mod api;
pub mod attributes;
pub mod authn;
pub mod escalation;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod tokens;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::tls::PeerIdentity;
use serde_json::{Value, json};

use attributes::Attributes;
use authn::{Authenticated, Authenticators};
use tokens::ServiceAccountTokens;

use crate::cache::Cache;
use crate::request::RequestInfo;
use crate::state::ApiState;
use crate::status::ApiError;

/// The authenticated user of a request, as upstream's user.Info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// An authenticated user: `system:authenticated` is added to its groups.
    pub fn new(name: &str, mut groups: Vec<String>) -> UserInfo {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        UserInfo {
            name: name.to_owned(),
            uid: String::new(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }

    /// The user of the trusted local listeners (--insecure-port, in-process servers).
    pub fn loopback() -> UserInfo {
        UserInfo::new("system:apiserver", vec!["system:masters".into()])
    }

    /// As the `userInfo` of TokenReview and SelfSubjectReview.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "username": self.name, "groups": self.groups });
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// One authorizer's answer, with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
    NoOpinion(String),
}

/// An entry of --authorization-mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Node,
    Rbac,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            "AlwaysDeny" => Ok(Mode::AlwaysDeny),
            "Node" => Ok(Mode::Node),
            "RBAC" => Ok(Mode::Rbac),
            other => Err(format!(
                "authorization-mode {other:?} is not supported (AlwaysAllow, AlwaysDeny, Node, RBAC)"
            )),
        }
    }
}

/// The flags authentication and authorization are built from.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub client_ca_file: Option<PathBuf>,
    pub token_auth_file: Option<PathBuf>,
    pub enable_bootstrap_token_auth: bool,
    /// Anonymous requests to non-resource paths (health, version, discovery) and kubeadm
    /// join's GET of kube-public/cluster-info; other resource requests without credentials
    /// get 401 unless the only authorizer is AlwaysAllow.
    pub anonymous_auth: bool,
    pub authorization_modes: Vec<Mode>,
    pub service_account_issuer: Option<String>,
    pub service_account_key_files: Vec<PathBuf>,
    pub service_account_signing_key_file: Option<PathBuf>,
    pub api_audiences: Vec<String>,
    /// --service-account-max-token-expiration: TokenRequests asking longer are shortened.
    pub service_account_max_token_expiration: Option<std::time::Duration>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            client_ca_file: None,
            token_auth_file: None,
            enable_bootstrap_token_auth: false,
            anonymous_auth: true,
            authorization_modes: vec![Mode::AlwaysAllow],
            service_account_issuer: None,
            service_account_key_files: Vec::new(),
            service_account_signing_key_file: None,
            api_audiences: Vec::new(),
            service_account_max_token_expiration: None,
        }
    }
}

/// Authentication and authorization, built once at startup.
pub struct Auth {
    authenticators: Authenticators,
    /// The longest token lifetime TokenRequest issues, in seconds.
    pub max_token_expiration: Option<i64>,
    anonymous: bool,
    modes: Vec<Mode>,
    rbac: Option<rbac::Rbac>,
}

/// Marks requests of the trusted local listeners: they act as [`UserInfo::loopback`].
#[derive(Clone, Copy, Debug)]
pub struct Trusted;

impl Auth {
    pub fn new(config: &AuthConfig, cache: Arc<Cache>) -> crate::Result<Auth> {
        let service_accounts = if config.service_account_signing_key_file.is_some()
            || !config.service_account_key_files.is_empty()
        {
            let issuer = config.service_account_issuer.clone().ok_or_else(|| {
                crate::Error::Invalid(
                    "--service-account-issuer is required with service-account keys".into(),
                )
            })?;
            Some(ServiceAccountTokens::load(
                config.service_account_signing_key_file.as_deref(),
                &config.service_account_key_files,
                issuer,
                config.api_audiences.clone(),
            )?)
        } else {
            None
        };
        let authenticators = Authenticators::new(
            config.token_auth_file.as_deref(),
            config.enable_bootstrap_token_auth,
            service_accounts,
        )?;
        if config.authorization_modes.is_empty() {
            return Err(crate::Error::Invalid(
                "--authorization-mode needs at least one mode".into(),
            ));
        }
        let rbac = config
            .authorization_modes
            .contains(&Mode::Rbac)
            .then(|| rbac::Rbac::new(cache));
        Ok(Auth {
            authenticators,
            max_token_expiration: config
                .service_account_max_token_expiration
                .map(|d| d.as_secs() as i64),
            anonymous: config.anonymous_auth,
            modes: config.authorization_modes.clone(),
            rbac,
        })
    }

    pub fn rbac_enabled(&self) -> bool {
        self.rbac.is_some()
    }

    /// The RBAC rules `user` holds in `namespace` (cluster-wide ones included); none without
    /// RBAC.
    pub fn rbac_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
        self.rbac
            .as_ref()
            .map(|r| r.rules_for(user, namespace))
            .unwrap_or_default()
    }

    /// The rules of the role a roleRef names, if RBAC is on and the role exists.
    pub fn role_rules(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<[k8s_openapi::api::rbac::v1::PolicyRule]>> {
        self.rbac.as_ref()?.role_rules(kind, namespace, name)
    }

    pub fn service_account_tokens(&self) -> Option<&ServiceAccountTokens> {
        self.authenticators.service_accounts.as_ref()
    }

    /// Authenticates a bearer token alone (TokenReview).
    pub fn authenticate_token(&self, cache: &Cache, token: &str) -> Result<UserInfo, String> {
        match self
            .authenticators
            .authenticate(cache, None, Some(&format!("Bearer {token}")))
        {
            Authenticated::User(u) => Ok(u),
            Authenticated::Invalid(why) => Err(why),
            Authenticated::Anonymous => Err("no token".into()),
        }
    }

    /// Runs the authorizer chain: the first Allow or Deny decides; members of system:masters
    /// are always allowed, as upstream's privileged-group authorizer.
    pub fn authorize(&self, cache: &Cache, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Decision::Allow("system:masters".into());
        }
        let mut reasons = Vec::new();
        for mode in &self.modes {
            let decision = match mode {
                Mode::AlwaysAllow => Decision::Allow(String::new()),
                Mode::AlwaysDeny => Decision::Deny("Everything is forbidden.".into()),
                Mode::Node => node::authorize(cache, user, attrs),
                Mode::Rbac => self
                    .rbac
                    .as_ref()
                    .map_or(Decision::NoOpinion(String::new()), |r| {
                        r.authorize(user, attrs)
                    }),
            };
            match decision {
                Decision::NoOpinion(reason) => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
                decided => return decided,
            }
        }
        Decision::NoOpinion(reasons.join(", "))
    }

    /// The RBAC rules of `user` in `namespace`, split as SelfSubjectRulesReview reports them.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Value, Value) {
        let mut rules = match &self.rbac {
            Some(r) => r.rules_for(user, namespace),
            None => Vec::new(),
        };
        if node::node_name(user).is_some() {
            rules.extend(node::NODE_RULES.iter().cloned());
        }
        let (mut resource, mut non_resource) = (Vec::new(), Vec::new());
        for r in rules {
            if let Some(urls) = &r.non_resource_urls {
                non_resource.push(json!({ "verbs": r.verbs, "nonResourceURLs": urls }));
            }
            if r.resources.as_ref().is_some_and(|r| !r.is_empty()) {
                let mut rule = json!({
                    "verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources,
                });
                if let Some(names) = r.resource_names.filter(|n| !n.is_empty()) {
                    rule["resourceNames"] = json!(names);
                }
                resource.push(rule);
            }
        }
        (json!(resource), json!(non_resource))
    }
}

fn unauthorized() -> Response {
    ApiError::new(401, "Unauthorized", "Unauthorized").into_response()
}

fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let mut why = attrs.forbidden_text(&user.name);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    if attrs.resource_request {
        ApiError::forbidden(
            &attrs.api_group,
            &attrs.combined_resource(),
            &attrs.name,
            &why,
        )
    } else {
        ApiError::new(403, "Forbidden", format!("forbidden: {why}"))
    }
}

/// The middleware: authenticates, authorizes the request's one reading ([`RequestInfo`]), and
/// passes the request on with its [`UserInfo`] and that reading.
pub async fn filter(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    // metrics::track read the request; a router without it reads here.
    let info = request
        .extensions_mut()
        .remove::<RequestInfo>()
        .unwrap_or_else(|| {
            RequestInfo::read(
                request.method().as_str(),
                request.uri().path(),
                request.uri().query().unwrap_or(""),
            )
        });
    // With auditing on, the audit filter's context hears who the user is and what was decided.
    let audit = request
        .extensions()
        .get::<Arc<crate::audit::AuditContext>>()
        .cloned();
    let user = if request.extensions().get::<Trusted>().is_some() {
        UserInfo::loopback()
    } else {
        let peer = request
            .extensions()
            .get::<Option<PeerIdentity>>()
            .and_then(Option::as_ref);
        let authorization = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match state
            .auth
            .authenticators
            .authenticate(&state.cache, peer, authorization)
        {
            Authenticated::User(user) => user,
            Authenticated::Invalid(why) => {
                tracing::debug!(path = request.uri().path(), reason = %why, "unauthorized");
                if let Some(audit) = &audit {
                    audit.unauthenticated(&request, &info);
                }
                return unauthorized();
            }
            Authenticated::Anonymous => {
                // Resource requests need credentials, unless nothing is secured at all
                // (AlwaysAllow alone: upstream's default, where anonymous may do anything)
                // or it is kubeadm join's discovery read, which the authorizers decide.
                let open = state.auth.modes == [Mode::AlwaysAllow];
                let discovery = is_cluster_info_get(request.method().as_str(), &info);
                if !state.auth.anonymous || (info.attrs.resource_request && !open && !discovery) {
                    if let Some(audit) = &audit {
                        audit.unauthenticated(&request, &info);
                    }
                    return unauthorized();
                }
                UserInfo::anonymous()
            }
        }
    };
    if let Some(audit) = &audit {
        audit.authenticated(&request, &user, &info);
    }
    let user = match impersonate(&state, user, request.headers()) {
        Ok(user) => user,
        Err(refused) => {
            if let Some(audit) = &audit {
                audit.decided(false, "");
            }
            return refused.into_response();
        }
    };
    if let Some(audit) = &audit
        && request.headers().contains_key("impersonate-user")
    {
        audit.impersonated(&user);
    }
    // system:masters may do anything: the loopback and admin paths skip the authorizers.
    let privileged = user.groups.iter().any(|g| g == "system:masters");
    if !privileged || node::node_name(&user).is_some() {
        let attrs = &info.attrs;
        match state.auth.authorize(&state.cache, &user, attrs) {
            Decision::Allow(reason) => {
                if let Some(audit) = &audit {
                    audit.decided(true, &reason);
                }
            }
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                tracing::debug!(user = %user.name, verb = %attrs.verb, path = %attrs.path, "forbidden");
                if let Some(audit) = &audit {
                    audit.decided(false, &reason);
                }
                return forbidden(&user, attrs, &reason).into_response();
            }
        }
        if let Some(node) = node::node_name(&user) {
            if node::restricted_create(attrs) {
                request = match node::admit_create(node, attrs, request).await {
                    Ok(request) => request,
                    Err(refused) => return refused.into_response(),
                };
            }
            if let Err(refused) = node::admit_pod_removal(&state, node, attrs).await {
                return refused.into_response();
            }
        }
    }
    if let Some(audit) = &audit {
        if privileged && node::node_name(&user).is_none() {
            // system:masters is allowed without asking the authorizers, as upstream's
            // privileged-group authorizer allows it.
            audit.decided(true, "");
        }
        request = audit.capture_request_body(request);
    }
    request.extensions_mut().insert(user);
    request.extensions_mut().insert(info);
    next.run(request).await
}

/// `GET /api/v1/namespaces/kube-public/configmaps/cluster-info`, which `kubeadm join` sends
/// before it has credentials: the one resource request that reaches the authorizers as
/// system:anonymous (kubeadm's Role `kubeadm:bootstrap-signer-clusterinfo` allows it). Only a
/// get of that object, not a list or watch of it.
fn is_cluster_info_get(method: &str, info: &RequestInfo) -> bool {
    use common::bootstraptoken::{CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE};
    let attrs = &info.attrs;
    method == "GET"
        && attrs.resource_request
        && attrs.verb == "get"
        && attrs.api_group.is_empty()
        && attrs.api_version == "v1"
        && attrs.resource == "configmaps"
        && attrs.subresource.is_empty()
        && attrs.namespace == CLUSTER_INFO_NAMESPACE
        && attrs.name == CLUSTER_INFO_NAME
        && info.path_name == CLUSTER_INFO_NAME
        && !info.watch_path
        && info.query.as_ref().is_ok_and(|q| !q.watch)
}

/// Acts as the user of the Impersonate-User and Impersonate-Group headers (`kubectl --as`,
/// `--as-group`) when the requester may `impersonate` each of them, as upstream's filter.
fn impersonate(
    state: &ApiState,
    requester: UserInfo,
    headers: &axum::http::HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    let groups = values("impersonate-group");
    let Some(name) = values("impersonate-user").into_iter().next() else {
        if groups.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups without a user",
        ));
    };
    let check = |resource: &str, namespace: &str, object: &str| -> Result<(), ApiError> {
        let attrs = Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            resource: resource.into(),
            namespace: namespace.into(),
            name: object.into(),
            ..Attributes::default()
        };
        match state.auth.authorize(&state.cache, &requester, &attrs) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                Err(forbidden(&requester, &attrs, &reason))
            }
        }
    };
    let mut impersonated_groups = groups.clone();
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, account)) => {
            check("serviceaccounts", namespace, account)?;
            impersonated_groups.push("system:serviceaccounts".into());
            impersonated_groups.push(format!("system:serviceaccounts:{namespace}"));
        }
        None => check("users", "", &name)?,
    }
    for group in &groups {
        check("groups", "", group)?;
    }
    Ok(if name == "system:anonymous" {
        // As upstream: the anonymous user keeps system:unauthenticated.
        if !impersonated_groups
            .iter()
            .any(|g| g == "system:unauthenticated")
        {
            impersonated_groups.push("system:unauthenticated".into());
        }
        UserInfo {
            groups: impersonated_groups,
            ..UserInfo::anonymous()
        }
    } else {
        UserInfo::new(&name, impersonated_groups)
    })
}

tokio::task_local! {
    /// The user a resource request acts as, for admission that exempts users (PodSecurity).
    pub static REQUESTING_USER: String;
}

/// The name of the user the request being served acts as; None outside a request (or for
/// an unauthenticated one).
pub fn requesting_user() -> Option<String> {
    REQUESTING_USER
        .try_with(Clone::clone)
        .ok()
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cluster_info_get_is_kubeadm_discovery() {
        let check = |method: &str, url: &str, expected: bool| {
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            let info = RequestInfo::read(method, path, query);
            assert_eq!(
                is_cluster_info_get(method, &info),
                expected,
                "{method} {url}"
            );
        };
        let cluster_info = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
        check("GET", cluster_info, true);
        check("GET", &format!("{cluster_info}?resourceVersion=0"), true);
        check("GET", &format!("{cluster_info}?watch=true"), false);
        check("HEAD", cluster_info, false);
        check("PUT", cluster_info, false);
        check("DELETE", cluster_info, false);
        check("GET", &format!("{cluster_info}/status"), false);
        check(
            "GET",
            "/api/v1/namespaces/kube-public/configmaps/other",
            false,
        );
        check(
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/cluster-info",
            false,
        );
        check(
            "GET",
            "/api/v1/namespaces/kube-public/secrets/cluster-info",
            false,
        );
        check("GET", "/api/v1/namespaces/kube-public/configmaps", false);
        check(
            "GET",
            "/api/v1/namespaces/kube-public/configmaps?fieldSelector=metadata.name%3Dcluster-info",
            false,
        );
        check(
            "GET",
            "/api/v1/watch/namespaces/kube-public/configmaps/cluster-info",
            false,
        );
        check(
            "GET",
            "/apis/example.com/v1/namespaces/kube-public/configmaps/cluster-info",
            false,
        );
    }
}
