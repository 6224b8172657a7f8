//! Upstream's certificate admission plugins, which keep a signer's certificates in the hands
//! of whoever RBAC says may issue them:
//! - CertificateApproval: approving or denying a CSR (its `approval` subresource) needs the
//!   `approve` verb on `signers` for the CSR's signerName (or `<domain>/*`).
//! - CertificateSigning: setting a CSR's certificate (its `status`) needs `sign` likewise.
//! - CertificateSubjectRestriction: no CSR for the kube-apiserver-client signer may ask for
//!   the system:masters group, which no authorizer can ever refuse.
//!
//! Without them anyone allowed to update `certificatesigningrequests/approval` could approve
//! a client certificate for any signer.

use serde_json::Value;

use crate::auth::attributes::Attributes;
use crate::auth::{Decision, UserInfo};
use crate::registry::Target;
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

const GROUP: &str = "certificates.k8s.io";
const API_SERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// Which of the plugins run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enabled {
    pub approval: bool,
    pub signing: bool,
    pub subject_restriction: bool,
}

/// Admits a create (`old` None) or update of a CertificateSigningRequest by `user`.
pub fn admit(
    state: &ApiState,
    enabled: Enabled,
    user: &UserInfo,
    target: &Target,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let resource = &*target.resource;
    if resource.group != GROUP || resource.plural != "certificatesigningrequests" {
        return Ok(());
    }
    // An update's signer is the stored one: the body of a subresource update could name
    // another, but only the stored spec is kept.
    let signer = old.unwrap_or(obj)["spec"]["signerName"]
        .as_str()
        .unwrap_or_default();
    // A create is admitted before its target is named: the name is the object's (or its
    // generateName), as upstream's admission names it.
    let name = match target.name.as_str() {
        "" if crate::meta::name(obj).is_empty() => crate::meta::meta_str(obj, "generateName"),
        "" => crate::meta::name(obj),
        named => named,
    };
    let forbidden = |why: String| ApiError::forbidden(GROUP, &resource.plural, name, &why);
    match (old, target.subresource.as_str()) {
        (None, "")
            if enabled.subject_restriction
                && signer == API_SERVER_CLIENT
                && requests_masters(obj) =>
        {
            return Err(forbidden(format!(
                "use of {API_SERVER_CLIENT} signer with system:masters group is not allowed"
            )));
        }
        (Some(_), "approval")
            if enabled.approval && !authorized_for_signer(state, user, "approve", signer) =>
        {
            return Err(forbidden(format!(
                "user not permitted to approve requests with signerName {signer:?}"
            )));
        }
        (Some(old), "status") if enabled.signing => {
            let issued = &obj["status"]["certificate"];
            if issued != &old["status"]["certificate"]
                && !authorized_for_signer(state, user, "sign", signer)
            {
                return Err(forbidden(format!(
                    "user not permitted to sign requests with signerName {signer:?}"
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Upstream's IsAuthorizedForSignerName: `verb` on the signer by name, or on `<domain>/*`.
fn authorized_for_signer(state: &ApiState, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let domain_wildcard = signer
        .split_once('/')
        .map(|(domain, _)| format!("{domain}/*"));
    std::iter::once(signer.to_owned())
        .chain(domain_wildcard)
        .any(|name| {
            let attrs = Attributes {
                verb: verb.to_owned(),
                resource_request: true,
                api_group: GROUP.to_owned(),
                api_version: "*".to_owned(),
                resource: "signers".to_owned(),
                name,
                ..Default::default()
            };
            matches!(
                state.auth.authorize(&state.cache, user, &attrs),
                Decision::Allow(_)
            )
        })
}

/// Whether the CSR's subject names the system:masters organization (a CSR that does not
/// parse is left to validation, which refuses it).
fn requests_masters(csr: &Value) -> bool {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let Some(pem) = csr["spec"]["request"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
    else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    let Ok((_, request)) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
    else {
        return false;
    };
    request
        .certification_request_info
        .subject
        .iter_organization()
        .any(|o| o.as_str() == Ok("system:masters"))
}
