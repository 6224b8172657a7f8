//! certificates.k8s.io validation: CertificateSigningRequest spec, as upstream's
//! pkg/apis/certificates/validation.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::fields::{items, text};
use crate::meta::{NameRule, validate_name};
use crate::status::Cause;

/// Every key usage upstream knows, in its sorted order.
const USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

pub fn certificate_signing_request(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    request(&spec["request"], &mut causes);
    let usages = items(&spec["usages"]);
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages"));
    }
    let mut seen = HashSet::new();
    for (i, u) in usages.iter().enumerate() {
        let usage = u.as_str().unwrap_or("");
        if !USAGES.contains(&usage) {
            causes.push(Cause::unsupported(format!("spec.usages[{i}]"), u, &USAGES));
        }
        if !seen.insert(usage) {
            causes.push(Cause::duplicate(format!("spec.usages[{i}]"), u));
        }
    }
    let signer = text(spec, "signerName");
    if signer == "kubernetes.io/legacy-unknown" {
        causes.push(Cause::invalid(
            "spec.signerName",
            &json!(signer),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        signer_name("spec.signerName", signer, &mut causes);
    }
    if let Some(secs) = spec["expirationSeconds"].as_i64()
        && secs < 600
    {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(secs),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    causes
}

/// The request must be a PEM CERTIFICATE REQUEST block; upstream prints the bytes as Go does.
fn request(v: &Value, causes: &mut Vec<Cause>) {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .unwrap_or_default();
    let pem = String::from_utf8_lossy(&bytes);
    if pem.contains("-----BEGIN CERTIFICATE REQUEST-----")
        && pem.contains("-----END CERTIFICATE REQUEST-----")
    {
        return;
    }
    let shown = if bytes.is_empty() {
        "[]byte(nil)".to_owned()
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("0x{b:x}")).collect();
        format!("[]byte{{{}}}", hex.join(", "))
    };
    causes.push(Cause::invalid_shown(
        "spec.request",
        &shown,
        "PEM block type must be CERTIFICATE REQUEST",
    ));
}

/// `example.com/signer-name`: a domain of at least two labels, then a path of subdomains.
pub fn signer_name(path: &str, name: &str, causes: &mut Vec<Cause>) {
    if name.is_empty() {
        causes.push(Cause::required(path));
        return;
    }
    let Some((domain, rest)) = name.split_once('/').filter(|(_, r)| !r.contains('/')) else {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    if domain.len() > 253 {
        causes.push(Cause::too_long(path, 253));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        let errs = validate_name(NameRule::Label, label);
        if !errs.is_empty() {
            for msg in errs {
                causes.push(Cause::invalid(
                    path,
                    &json!(domain),
                    format!("validating label \"{label}\": {msg}"),
                ));
            }
            break;
        }
    }
    if labels.len() < 2 {
        causes.push(Cause::invalid(
            path,
            &json!(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    for component in rest.split('.') {
        let errs = validate_name(NameRule::Subdomain, component);
        if !errs.is_empty() {
            for msg in errs {
                causes.push(Cause::invalid(
                    path,
                    &json!(rest),
                    format!("validating component \"{component}\": {msg}"),
                ));
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        )
    }

    fn pairs(obj: &Value) -> Vec<(String, String)> {
        certificate_signing_request(obj)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn csrs() {
        let ok = json!({"spec": {"request": pem(), "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth", "digital signature"], "expirationSeconds": 3600}});
        assert_eq!(pairs(&ok), []);
        let bad = json!({"spec": {"request": "YQ==", "signerName": "example",
            "usages": ["client auth", "client auth", "flying"], "expirationSeconds": 60}});
        let want = [
            (
                "spec.request",
                "Invalid value: []byte{0x61}: PEM block type must be CERTIFICATE REQUEST",
            ),
            ("spec.usages[1]", "Duplicate value: \"client auth\""),
            (
                "spec.usages[2]",
                "Unsupported value: \"flying\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\"",
            ),
            (
                "spec.signerName",
                "Invalid value: \"example\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
            ),
            (
                "spec.expirationSeconds",
                "Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)",
            ),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(pairs(&bad), want);
        let mut causes = Vec::new();
        signer_name("s", "localhost/signer", &mut causes);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"localhost\": should be a domain with at least two segments separated by dots"
        );
    }
}
