//! Bootstrap tokens (`abcdef.0123456789abcdef`): what `kubeadm join` authenticates with
//! before the node has a certificate, stored as Secrets `bootstrap-token-<id>` of type
//! bootstrap.kubernetes.io/token in kube-system, and the CA certificate hash
//! (`sha256:<hex of the CA's SubjectPublicKeyInfo>`) a joining node pins the cluster with.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rand::Rng;

/// The group kubeadm's default tokens put their users in; the RBAC phase binds it.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// A token's two halves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl std::str::FromStr for Token {
    type Err = anyhow::Error;

    /// Upstream's format: `[a-z0-9]{6}.[a-z0-9]{16}`.
    fn from_str(s: &str) -> anyhow::Result<Token> {
        let ok = |part: &str, len: usize| {
            part.len() == len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        match s.split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(Token {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => anyhow::bail!(
                "the bootstrap token {s:?} was not of the form \"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$\""
            ),
        }
    }
}

impl Token {
    pub fn generate() -> Token {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        Token {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// The Secret that makes the token valid until `ttl` from now (0: forever), for
    /// authentication and signing cluster-info, as upstream's default tokens are.
    pub fn secret_object(&self, ttl: Duration, description: &str) -> Secret {
        let mut data = std::collections::BTreeMap::from([
            ("token-id".to_owned(), self.id.clone()),
            ("token-secret".to_owned(), self.secret.clone()),
            ("usage-bootstrap-authentication".to_owned(), "true".into()),
            ("usage-bootstrap-signing".to_owned(), "true".into()),
            ("auth-extra-groups".to_owned(), DEFAULT_GROUP.into()),
            ("description".to_owned(), description.into()),
        ]);
        if !ttl.is_zero() {
            let expires = chrono::Utc::now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
            data.insert(
                "expiration".into(),
                expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(format!("bootstrap-token-{}", self.id)),
                namespace: Some("kube-system".into()),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.into()),
            string_data: Some(data),
            ..Default::default()
        }
    }
}

/// `sha256:<hex>` of the first certificate's SubjectPublicKeyInfo in `ca_pem`, as
/// --discovery-token-ca-cert-hash takes it.
pub fn ca_cert_hash(ca_pem: &str) -> anyhow::Result<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the CA certificate is not PEM: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("the CA certificate does not parse: {e}"))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Ok(format!(
        "sha256:{}",
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// Checks `ca_pem` against the pins (`sha256:<hex>`, case-insensitive) join was given.
pub fn ca_matches(ca_pem: &str, pins: &[String]) -> anyhow::Result<bool> {
    let actual = ca_cert_hash(ca_pem).context("hashing the cluster CA")?;
    Ok(pins.iter().any(|p| p.eq_ignore_ascii_case(&actual)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_print_in_upstreams_format() {
        let t: Token = "abcdef.0123456789abcdef".parse().unwrap();
        assert_eq!(t.id, "abcdef");
        assert_eq!(t.to_string(), "abcdef.0123456789abcdef");
        for bad in [
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123",
        ] {
            assert!(bad.parse::<Token>().is_err(), "{bad}");
        }
        let g = Token::generate();
        assert_eq!(g.to_string().parse::<Token>().unwrap(), g);
    }

    #[test]
    fn a_token_secret_carries_its_usages_and_expiry() {
        let t: Token = "abcdef.0123456789abcdef".parse().unwrap();
        let s = t.secret_object(DEFAULT_TTL, "x");
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        let data = s.string_data.unwrap();
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["auth-extra-groups"], DEFAULT_GROUP);
        let exp = chrono::DateTime::parse_from_rfc3339(&data["expiration"]).unwrap();
        let left = exp.signed_duration_since(chrono::Utc::now()).num_hours();
        assert!((23..=24).contains(&left), "{left}");
        let forever = t.secret_object(Duration::ZERO, "x").string_data.unwrap();
        assert!(!forever.contains_key("expiration"));
    }
}
