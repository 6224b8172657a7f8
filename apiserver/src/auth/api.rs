//! The authentication and authorization APIs, which store nothing: access reviews
//! (SelfSubjectAccessReview for `kubectl auth can-i`, SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectRulesReview), SelfSubjectReview (`kubectl auth
//! whoami`), TokenReview, and TokenRequest (`serviceaccounts/NAME/token`).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::attributes::Attributes;
use super::{Decision, UserInfo};
use crate::codec::{read_body, respond};
use crate::query::Query;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

const AUTHZ: &str = "/apis/authorization.k8s.io/v1/";
const AUTHN: &str = "/apis/authentication.k8s.io/v1/";

/// Serves the request if it is one of these APIs; hands it back otherwise.
pub async fn handle(state: &Arc<ApiState>, request: Request) -> Result<Response, Request> {
    let path = request.uri().path();
    let kind = if let Some(rest) = path.strip_prefix(AUTHZ) {
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["selfsubjectaccessreviews"] => Api::SelfSubjectAccessReview,
            ["subjectaccessreviews"] => Api::SubjectAccessReview,
            ["namespaces", ns, "localsubjectaccessreviews"] => {
                Api::LocalSubjectAccessReview(ns.to_string())
            }
            ["selfsubjectrulesreviews"] => Api::SelfSubjectRulesReview,
            _ => return Err(request),
        }
    } else if let Some(rest) = path.strip_prefix(AUTHN) {
        match rest {
            "selfsubjectreviews" => Api::SelfSubjectReview,
            "tokenreviews" => Api::TokenReview,
            _ => return Err(request),
        }
    } else {
        match path
            .strip_prefix("/api/v1/namespaces/")
            .map(|r| r.split('/').collect::<Vec<_>>())
            .as_deref()
        {
            Some([ns, "serviceaccounts", name, "token"]) => {
                Api::TokenRequest(ns.to_string(), name.to_string())
            }
            _ => return Err(request),
        }
    };
    if request.method() != axum::http::Method::POST {
        return Ok(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            request.method()
        ))
        .into_response());
    }
    let user = request
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    let (mut parts, body) = request.into_parts();
    let result = async {
        // The query as the request's one reading parsed it.
        let mut query = match parts.extensions.remove::<crate::request::RequestInfo>() {
            Some(info) => info.query?,
            None => Query::parse(parts.uri.query().unwrap_or(""))?,
        };
        let format = crate::codec::negotiate(&parts.headers, true)?;
        let body = read_body(body, &parts.headers, &mut query).await?;
        let answer = kind.serve(state, &user, body)?;
        Ok::<_, ApiError>(respond(StatusCode::CREATED, format, &answer))
    }
    .await;
    Ok(result.unwrap_or_else(IntoResponse::into_response))
}

enum Api {
    SelfSubjectAccessReview,
    SubjectAccessReview,
    LocalSubjectAccessReview(String),
    SelfSubjectRulesReview,
    SelfSubjectReview,
    TokenReview,
    TokenRequest(String, String),
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// The attributes a review's spec asks about.
fn review_attributes(spec: &Value, namespace_override: Option<&str>) -> ApiResult<Attributes> {
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        return Ok(Attributes {
            verb: s("verb"),
            resource_request: true,
            api_group: s("group"),
            api_version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: namespace_override
                .map(String::from)
                .unwrap_or_else(|| s("namespace")),
            name: s("name"),
            path: String::new(),
            // A review may ask about a list with a field selector (upstream 1.31+).
            field_selector: r["fieldSelector"]["rawSelector"]
                .as_str()
                .and_then(|raw| common::selector::FieldSelector::parse(raw).ok())
                .unwrap_or_default(),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|r| r.is_object()) {
        return Ok(Attributes {
            verb: n["verb"].as_str().unwrap_or("").to_owned(),
            path: n["path"].as_str().unwrap_or("").to_owned(),
            ..Attributes::default()
        });
    }
    Err(ApiError::invalid(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "",
        vec![crate::status::Cause::required("spec.resourceAttributes")],
    ))
}

fn review_status(decision: Decision) -> Value {
    match decision {
        Decision::Allow(reason) => json!({ "allowed": true, "reason": reason }),
        Decision::Deny(reason) => json!({ "allowed": false, "denied": true, "reason": reason }),
        Decision::NoOpinion(reason) => json!({ "allowed": false, "reason": reason }),
    }
}

fn answer(kind: &str, group: &str, metadata: Value, spec: Value, status: Value) -> Value {
    json!({
        "kind": kind, "apiVersion": format!("{group}/v1"),
        "metadata": metadata, "spec": spec, "status": status,
    })
}

fn metadata_of(body: &Value) -> Value {
    let mut m = body["metadata"].clone();
    if !m.is_object() {
        m = json!({});
    }
    m["creationTimestamp"] = Value::Null;
    m
}

impl Api {
    fn serve(&self, state: &Arc<ApiState>, user: &UserInfo, body: Value) -> ApiResult<Value> {
        let spec = body["spec"].clone();
        let metadata = metadata_of(&body);
        let authz = "authorization.k8s.io";
        match self {
            Api::SelfSubjectAccessReview => {
                let attrs = review_attributes(&spec, None)?;
                let status = review_status(state.auth.authorize(&state.cache, user, &attrs));
                Ok(answer(
                    "SelfSubjectAccessReview",
                    authz,
                    metadata,
                    spec,
                    status,
                ))
            }
            Api::SubjectAccessReview | Api::LocalSubjectAccessReview(_) => {
                let namespace = match self {
                    Api::LocalSubjectAccessReview(ns) => Some(ns.as_str()),
                    _ => None,
                };
                let name = spec["user"].as_str().unwrap_or("");
                let groups = strings(&spec["groups"]);
                if name.is_empty() && groups.is_empty() {
                    return Err(ApiError::invalid(
                        authz,
                        "SubjectAccessReview",
                        "",
                        vec![crate::status::Cause::invalid(
                            "spec.user",
                            &json!(""),
                            "at least one of user or group must be specified",
                        )],
                    ));
                }
                let subject = UserInfo {
                    name: name.to_owned(),
                    uid: spec["uid"].as_str().unwrap_or("").to_owned(),
                    groups,
                    extra: Default::default(),
                };
                let attrs = review_attributes(&spec, namespace)?;
                let status = review_status(state.auth.authorize(&state.cache, &subject, &attrs));
                let kind = if namespace.is_some() {
                    "LocalSubjectAccessReview"
                } else {
                    "SubjectAccessReview"
                };
                Ok(answer(kind, authz, metadata, spec, status))
            }
            Api::SelfSubjectRulesReview => {
                let namespace = spec["namespace"].as_str().unwrap_or("");
                let (resource_rules, non_resource_rules) = state.auth.rules_for(user, namespace);
                let status = json!({
                    "resourceRules": resource_rules,
                    "nonResourceRules": non_resource_rules,
                    "incomplete": false,
                });
                Ok(answer(
                    "SelfSubjectRulesReview",
                    authz,
                    metadata,
                    spec,
                    status,
                ))
            }
            Api::SelfSubjectReview => Ok(json!({
                "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": metadata, "status": { "userInfo": user.to_json() },
            })),
            Api::TokenReview => {
                let token = spec["token"].as_str().unwrap_or("");
                let status = match state.auth.authenticate_token(&state.cache, token) {
                    Ok(user) => json!({ "authenticated": true, "user": user.to_json() }),
                    Err(why) => json!({ "authenticated": false, "error": why }),
                };
                Ok(answer(
                    "TokenReview",
                    "authentication.k8s.io",
                    metadata,
                    spec,
                    status,
                ))
            }
            Api::TokenRequest(namespace, name) => {
                token_request(state, user, namespace, name, metadata, spec)
            }
        }
    }
}

/// Upstream's bounds on a token's lifetime: at least 10 minutes, at most 2^32 seconds, and
/// shortened to --service-account-max-token-expiration when that is lower.
fn expiration_seconds(name: &str, spec: &Value, max: Option<i64>) -> ApiResult<i64> {
    let requested = &spec["expirationSeconds"];
    let seconds = match requested {
        Value::Null => 3600,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.expirationSeconds: {v} is not an integer"
            ))
        })?,
    };
    let invalid = |detail: &str| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![crate::status::Cause::invalid(
                "spec.expirationSeconds",
                &json!(seconds),
                detail,
            )],
        )
    };
    if seconds < 600 {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if seconds > 1 << 32 {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    Ok(max.map_or(seconds, |max| seconds.min(max)))
}

/// TokenRequest: a token for a service account, bound to a pod when `boundObjectRef` names one.
fn token_request(
    state: &Arc<ApiState>,
    user: &UserInfo,
    namespace: &str,
    name: &str,
    mut metadata: Value,
    mut spec: Value,
) -> ApiResult<Value> {
    let tokens = state
        .auth
        .service_account_tokens()
        .ok_or_else(ApiError::no_route)?;
    let live = |plural: &str, object: &str| -> Option<Value> {
        let resource = crate::registry::builtin("", "v1", plural)?;
        let key = format!(
            "{}{namespace}/{object}",
            resource.key_prefix(state.cache.root())
        );
        state.cache.get(resource, &key).map(|o| o.value())
    };
    let account = live("serviceaccounts", name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let seconds = expiration_seconds(name, &spec, state.auth.max_token_expiration)?;
    let mut audiences = strings(&spec["audiences"]);
    if audiences.is_empty() {
        audiences = tokens.audiences.clone();
    }
    let bound = &spec["boundObjectRef"];
    let mut pod = None;
    let mut node = None;
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or("");
        let pod_name = bound["name"].as_str().unwrap_or("");
        if kind != "Pod" {
            return Err(ApiError::invalid(
                "authentication.k8s.io",
                "TokenRequest",
                name,
                vec![crate::status::Cause::unsupported(
                    "spec.boundObjectRef.kind",
                    &json!(kind),
                    &["Pod"],
                )],
            ));
        }
        let object =
            live("pods", pod_name).ok_or_else(|| ApiError::not_found("", "pods", pod_name))?;
        if object["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            != name
        {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
            )));
        }
        let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && wanted != uid
        {
            return Err(ApiError::conflict(
                "",
                "pods",
                pod_name,
                &format!(
                    "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        node = object["spec"]["nodeName"].as_str().map(String::from);
        pod = Some((pod_name.to_owned(), uid));
    }
    if let Some(requester) = super::node::node_name(user) {
        // NodeRestriction: a kubelet gets tokens only bound to a pod (uid included) that runs
        // on its node.
        let refuse = |why: &str| ApiError::forbidden("", "serviceaccounts", name, why);
        if bound["apiVersion"] != "v1" || pod.is_none() {
            return Err(refuse("node requested token not bound to a pod"));
        }
        if bound["uid"].as_str().is_none_or(str::is_empty) {
            return Err(refuse(
                "node requested token with a pod binding without a uid",
            ));
        }
        if node.as_deref() != Some(requester) {
            return Err(refuse(
                "node requested token bound to a pod scheduled on a different node",
            ));
        }
    }
    let account_uid = account["metadata"]["uid"].as_str().unwrap_or("");
    let binding = super::tokens::Binding {
        namespace,
        service_account: (name, account_uid),
        pod: pod.as_ref().map(|(n, u)| (n.as_str(), u.as_str())),
        node: node.as_deref(),
    };
    let (token, expires) = tokens
        .issue(&binding, &audiences, seconds)
        .map_err(ApiError::internal)?;
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(namespace);
    metadata["creationTimestamp"] = json!(crate::meta::now_rfc3339());
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(seconds);
    Ok(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata, "spec": spec,
        "status": {
            "token": token,
            "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    }))
}
