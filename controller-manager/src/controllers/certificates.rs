//! The certificate controllers of kubelet TLS bootstrapping and rotation. csrapproving
//! approves a node's client CSR (signer kubernetes.io/kube-apiserver-client-kubelet, CN
//! system:node:NAME, O system:nodes, client usages) when a SubjectAccessReview says its
//! requester may create `certificatesigningrequests/nodeclient` (or `selfnodeclient` when
//! renewing its own), and a node's serving CSR (signer kubernetes.io/kubelet-serving) when
//! the node itself asks and every name and address in it is one its Node object reports, as
//! upstream's design for kubelet serving certificates recommends (upstream ships no such
//! approver). csrsigning signs approved CSRs of the kubernetes.io signers with the cluster CA
//! (--cluster-signing-cert-file, --cluster-signing-key-file) after checking what each signer
//! allows, and writes status.certificate.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::runtime::{Context, Informer, Reconcile, Requeue, WorkQueue};

const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The signers csrsigning serves, as upstream's (legacy-unknown included).
const SIGNERS: &[&str] = &[
    "kubernetes.io/kube-apiserver-client",
    KUBELET_CLIENT,
    KUBELET_SERVING,
    "kubernetes.io/legacy-unknown",
];

fn condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

fn queue_all(
    name: &'static str,
    informer: &Arc<Informer<CertificateSigningRequest>>,
) -> Arc<WorkQueue> {
    let queue = WorkQueue::new(name);
    queue.follow_live(informer, |_| true);
    queue
}

/// The CSR's request as PEM text.
fn request_pem(csr: &CertificateSigningRequest) -> crate::Result<String> {
    String::from_utf8(csr.spec.request.0.clone()).map_err(|e| invalid("the request is not PEM", e))
}

/// A request or CA that cannot be used, with what was being done ("parsing the CSR").
fn invalid(what: &str, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Invalid(format!("{what}: {e}"))
}

/// What a CSR's PEM request asks for.
struct Requested {
    cn: String,
    orgs: Vec<String>,
    dns_names: Vec<String>,
    ips: Vec<std::net::IpAddr>,
    /// Email addresses, URIs and other names: never allowed for node certificates.
    other_names: usize,
}

fn requested(csr: &CertificateSigningRequest) -> crate::Result<Requested> {
    let pem = request_pem(csr)?;
    let params = rcgen::CertificateSigningRequestParams::from_pem(&pem)
        .map_err(|e| invalid("parsing the CSR", e))?;
    let mut out = Requested {
        cn: String::new(),
        orgs: Vec::new(),
        dns_names: Vec::new(),
        ips: Vec::new(),
        other_names: 0,
    };
    for (kind, value) in params.params.distinguished_name.iter() {
        let text = dn_text(value);
        match kind {
            rcgen::DnType::CommonName => out.cn = text,
            rcgen::DnType::OrganizationName => out.orgs.push(text),
            _ => {}
        }
    }
    for san in &params.params.subject_alt_names {
        match san {
            rcgen::SanType::DnsName(name) => out.dns_names.push(name.as_str().to_owned()),
            rcgen::SanType::IpAddress(ip) => out.ips.push(*ip),
            _ => out.other_names += 1,
        }
    }
    Ok(out)
}

/// Why a request does not fit the kubelet-serving signer, as upstream's signer checks it:
/// CN system:node:NAME, O exactly system:nodes, only server usages (server auth among them),
/// at least one DNS name or IP address and nothing else among the alternative names.
fn serving_problem(csr: &CertificateSigningRequest, r: &Requested) -> Option<String> {
    let usages = csr.spec.usages.iter().flatten();
    if !r.cn.starts_with("system:node:") || r.cn.len() == "system:node:".len() {
        return Some(format!("CommonName {:?} is not system:node:<name>", r.cn));
    }
    if r.orgs != ["system:nodes"] {
        return Some(format!("Organization {:?} is not [system:nodes]", r.orgs));
    }
    if let Some(u) = usages.clone().find(|u| {
        !matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "server auth"
        )
    }) {
        return Some(format!(
            "usage {u:?} is not allowed for a kubelet serving certificate"
        ));
    }
    if !usages.clone().any(|u| u == "server auth") {
        return Some("a kubelet serving certificate needs the server auth usage".into());
    }
    if r.other_names > 0 {
        return Some(
            "email addresses and URIs are not allowed in a kubelet serving certificate".into(),
        );
    }
    if r.dns_names.is_empty() && r.ips.is_empty() {
        return Some(
            "a kubelet serving certificate needs at least one DNS name or IP address".into(),
        );
    }
    None
}

fn dn_text(value: &rcgen::DnValue) -> String {
    match value {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_owned(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

pub struct Approver {
    client: kube::Client,
    csrs: Arc<Informer<CertificateSigningRequest>>,
    nodes: Arc<Informer<Node>>,
}

/// Starts csrapproving.
pub fn start_approving(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let csrs = ctx.informers.get::<CertificateSigningRequest>();
    let queue = queue_all("csrapproving", &csrs);
    let c = Arc::new(Approver {
        client: ctx.client.clone(),
        csrs,
        nodes: ctx.informers.get::<Node>(),
    });
    Ok(crate::runtime::run_workers(queue, c, 1))
}

/// Whether a CSR is a kubelet's client certificate request, as upstream's isNodeClientCert.
pub fn is_node_client(csr: &CertificateSigningRequest, cn: &str, orgs: &[String]) -> bool {
    let usages_ok = csr.spec.usages.iter().flatten().all(|u| {
        matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "client auth"
        )
    });
    csr.spec.signer_name == KUBELET_CLIENT
        && cn.starts_with("system:node:")
        && orgs == ["system:nodes"]
        && usages_ok
        && csr.spec.usages.iter().flatten().any(|u| u == "client auth")
}

#[async_trait]
impl Reconcile for Approver {
    async fn sync(&self, name: &str) -> crate::Result<Requeue> {
        let Some(csr) = self.csrs.get(name) else {
            return Ok(None);
        };
        if condition(&csr, "Approved") || condition(&csr, "Denied") || issued(&csr) {
            return Ok(None);
        }
        let Ok(requested) = requested(&csr) else {
            return Ok(None);
        };
        if csr.spec.signer_name == KUBELET_SERVING {
            return self.approve_serving(&csr, &requested).await;
        }
        let (cn, orgs) = (&requested.cn, &requested.orgs);
        if !is_node_client(&csr, cn, orgs) {
            return Ok(None);
        }
        let username = csr.spec.username.clone().unwrap_or_default();
        let subresource = if username == *cn {
            "selfnodeclient"
        } else {
            "nodeclient"
        };
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {
                "user": username,
                "uid": csr.spec.uid,
                "groups": csr.spec.groups,
                "extra": csr.spec.extra,
                "resourceAttributes": {
                    "group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                    "subresource": subresource, "verb": "create",
                },
            },
        });
        let request = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&review)?)?;
        let answer: serde_json::Value = self.client.request(request).await?;
        if answer["status"]["allowed"] != true {
            tracing::debug!(csr = name, %username, "not approved: the requester may not create {subresource}");
            return Ok(None);
        }
        self.approve(
            name,
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        )
        .await?;
        tracing::info!(csr = name, node = %cn, "approved a kubelet client certificate");
        Ok(None)
    }
}

impl Approver {
    async fn approve(&self, name: &str, message: &str) -> crate::Result<()> {
        let patch = json!({ "status": { "conditions": [{
            "type": "Approved", "status": "True", "reason": "AutoApproved",
            "message": message,
            "lastUpdateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}});
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        api.patch_approval(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// A kubelet serving request is approved when the node asks for itself and names only
    /// what its Node reports: DNS names among Hostname/InternalDNS/ExternalDNS, IPs among
    /// InternalIP/ExternalIP. Anything else stays pending for an administrator.
    async fn approve_serving(
        &self,
        csr: &CertificateSigningRequest,
        r: &Requested,
    ) -> crate::Result<Requeue> {
        let name = csr.metadata.name.as_deref().unwrap_or_default();
        if let Some(problem) = serving_problem(csr, r) {
            tracing::debug!(csr = name, "not approved: {problem}");
            return Ok(None);
        }
        let requester = csr.spec.username.as_deref().unwrap_or_default();
        let is_node = csr
            .spec
            .groups
            .iter()
            .flatten()
            .any(|g| g == "system:nodes");
        if requester != r.cn || !is_node {
            tracing::debug!(
                csr = name,
                requester,
                "not approved: only the node itself may ask for its serving certificate"
            );
            return Ok(None);
        }
        let node_name = &r.cn["system:node:".len()..];
        let Some(node) = self.nodes.get(node_name) else {
            // The Node may not have reached this informer yet.
            return Ok(Some(Duration::from_millis(500)));
        };
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let reported = |types: &[&str], value: &str| {
            addresses
                .iter()
                .any(|a| types.contains(&a.type_.as_str()) && a.address == value)
        };
        let dns_ok = r
            .dns_names
            .iter()
            .all(|d| reported(&["Hostname", "InternalDNS", "ExternalDNS"], d));
        let ips_ok = r
            .ips
            .iter()
            .all(|ip| reported(&["InternalIP", "ExternalIP"], &ip.to_string()));
        if !dns_ok || !ips_ok {
            tracing::info!(csr = name, node = node_name, dns = ?r.dns_names, ips = ?r.ips, "not approved: the request names addresses the Node does not report");
            return Ok(None);
        }
        self.approve(
            name,
            "Auto approving kubelet serving certificate: the node asked for its own reported addresses.",
        )
        .await?;
        tracing::info!(
            csr = name,
            node = node_name,
            "approved a kubelet serving certificate"
        );
        Ok(None)
    }
}

pub struct Signer {
    client: kube::Client,
    csrs: Arc<Informer<CertificateSigningRequest>>,
    ca_pem: String,
    ca_key_pem: String,
    duration: Duration,
}

/// Starts csrsigning; without a signing CA it only logs that it is idle, as upstream's
/// controller does without --cluster-signing-* files.
pub fn start_signing(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let (Some(cert), Some(key)) = (
        ctx.options.cluster_signing_cert_file.as_ref(),
        ctx.options.cluster_signing_key_file.as_ref(),
    ) else {
        tracing::info!(
            "csrsigning idle: no --cluster-signing-cert-file/--cluster-signing-key-file"
        );
        return Ok(Box::pin(futures::future::pending()));
    };
    let read = |flag, path: &std::path::PathBuf| {
        std::fs::read_to_string(path).map_err(|error| crate::Error::Read {
            flag,
            path: path.clone(),
            error,
        })
    };
    let ca_pem = read("--cluster-signing-cert-file", cert)?;
    let ca_key_pem = read("--cluster-signing-key-file", key)?;
    let csrs = ctx.informers.get::<CertificateSigningRequest>();
    let queue = queue_all("csrsigning", &csrs);
    let c = Arc::new(Signer {
        client: ctx.client.clone(),
        csrs,
        ca_pem,
        ca_key_pem,
        duration: ctx.options.cluster_signing_duration,
    });
    Ok(crate::runtime::run_workers(queue, c, 1))
}

impl Signer {
    /// What the kubelet signers allow, as upstream's signer checks before signing.
    fn validate(&self, csr: &CertificateSigningRequest) -> crate::Result<()> {
        let problem = match csr.spec.signer_name.as_str() {
            KUBELET_SERVING => serving_problem(csr, &requested(csr)?),
            KUBELET_CLIENT => {
                let r = requested(csr)?;
                (!is_node_client(csr, &r.cn, &r.orgs) || r.other_names > 0 || !r.dns_names.is_empty() || !r.ips.is_empty())
                    .then(|| "the request is not a kubelet client certificate (CN system:node:<name>, O system:nodes, client auth usages, no alternative names)".to_owned())
            }
            _ => None,
        };
        match problem {
            Some(p) => Err(crate::Error::Invalid(p)),
            None => Ok(()),
        }
    }

    /// Signs the CSR's request with the CA for its usages and duration.
    fn sign(&self, csr: &CertificateSigningRequest) -> crate::Result<String> {
        let pem = request_pem(csr)?;
        let mut request = rcgen::CertificateSigningRequestParams::from_pem(&pem)
            .map_err(|e| invalid("parsing the CSR", e))?;
        let key = rcgen::KeyPair::from_pem(&self.ca_key_pem)
            .map_err(|e| invalid("parsing the CA key", e))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.ca_pem, key)
            .map_err(|e| invalid("parsing the CA", e))?;
        let wanted = csr
            .spec
            .expiration_seconds
            .map(|s| Duration::from_secs(s.max(600) as u64))
            .unwrap_or(self.duration)
            .min(self.duration);
        let now = time::OffsetDateTime::now_utc();
        let params = &mut request.params;
        // Backdated for clock skew, except short-lived certificates (under 8 hours, as
        // upstream's signer), whose whole lifetime would otherwise shrink.
        let backdate = if wanted < Duration::from_secs(8 * 3600) {
            time::Duration::ZERO
        } else {
            time::Duration::minutes(5)
        };
        params.not_before = now - backdate;
        params.not_after = now + time::Duration::seconds(wanted.as_secs() as i64);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = Vec::new();
        for usage in csr.spec.usages.iter().flatten() {
            match usage.as_str() {
                "key encipherment" => params
                    .key_usages
                    .push(rcgen::KeyUsagePurpose::KeyEncipherment),
                "client auth" => params
                    .extended_key_usages
                    .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => params
                    .extended_key_usages
                    .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
                _ => {}
            }
        }
        params.use_authority_key_identifier_extension = true;
        let cert = request
            .signed_by(&issuer)
            .map_err(|e| invalid("signing", e))?;
        Ok(cert.pem())
    }
}

#[async_trait]
impl Reconcile for Signer {
    async fn sync(&self, name: &str) -> crate::Result<Requeue> {
        let Some(csr) = self.csrs.get(name) else {
            return Ok(None);
        };
        if !condition(&csr, "Approved")
            || condition(&csr, "Denied")
            || condition(&csr, "Failed")
            || issued(&csr)
            || !SIGNERS.contains(&csr.spec.signer_name.as_str())
        {
            return Ok(None);
        }
        let mut signed = (*csr).clone();
        let status = signed.status.get_or_insert_with(Default::default);
        match self.validate(&csr).and_then(|()| self.sign(&csr)) {
            Ok(pem) => status.certificate = Some(k8s_openapi::ByteString(pem.into_bytes())),
            Err(e) => {
                tracing::warn!(csr = name, error = %e, "signing failed");
                status.conditions.get_or_insert_with(Vec::new).push(
                    serde_json::from_value(json!({
                        "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                        "message": e.to_string(),
                    }))
                    .expect("a well-formed condition"),
                );
            }
        }
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        api.replace_status(name, &PostParams::default(), &signed)
            .await?;
        tracing::info!(csr = name, "signed");
        Ok(None)
    }
}
