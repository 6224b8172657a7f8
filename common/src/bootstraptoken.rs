//! Bootstrap tokens as Secrets (`kube-system/bootstrap-token-<id>`, type
//! `bootstrap.kubernetes.io/token`) and the detached JWS signatures with which the
//! bootstrapsigner controller vouches for the `kube-public/cluster-info` ConfigMap, so that
//! `kubeadm join` can trust the kubeconfig it reads there anonymously: whoever knows the
//! token's secret can check that the cluster that signed it knows it too.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::Secret;

/// The `type` of bootstrap token Secrets.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Their names: this prefix, then the token id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The namespace they live in.
pub const SECRET_NAMESPACE: &str = "kube-system";
/// Data keys of a bootstrap token Secret.
pub const TOKEN_ID_KEY: &str = "token-id";
pub const TOKEN_SECRET_KEY: &str = "token-secret";
/// RFC3339; no key means the token never expires.
pub const EXPIRATION_KEY: &str = "expiration";
/// "true" if the token may sign cluster-info.
pub const USAGE_SIGNING_KEY: &str = "usage-bootstrap-signing";
/// "true" if the token authenticates API requests.
pub const USAGE_AUTHENTICATION_KEY: &str = "usage-bootstrap-authentication";

/// The ConfigMap `kubeadm join` discovers the cluster from, readable by anyone.
pub const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
pub const CLUSTER_INFO_NAME: &str = "cluster-info";
/// Its key holding the kubeconfig that is signed.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// Its keys holding the signatures: this prefix, then the token id.
pub const JWS_KEY_PREFIX: &str = "jws-kubeconfig-";

/// A bootstrap token Secret: in kube-system, of the bootstrap token type.
pub fn is_token_secret(secret: &Secret) -> bool {
    secret.metadata.namespace.as_deref() == Some(SECRET_NAMESPACE)
        && secret.type_.as_deref() == Some(SECRET_TYPE)
}

/// The token id in a Secret's name `bootstrap-token-<id>` (six of `[a-z0-9]`).
pub fn token_id_from_secret_name(name: &str) -> Option<&str> {
    let id = name.strip_prefix(SECRET_PREFIX)?;
    let valid = id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    valid.then_some(id)
}

/// One data value of a Secret as text (absent, empty or not UTF-8: None).
pub fn data(secret: &Secret, key: &str) -> Option<String> {
    let bytes = &secret.data.as_ref()?.get(key)?.0;
    String::from_utf8(bytes.clone())
        .ok()
        .filter(|s| !s.is_empty())
}

/// Where a token stands against its `expiration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No expiration is set.
    Never,
    /// It expires after this long.
    In(Duration),
    /// Its expiration has passed, or cannot be read (as upstream: treated as expired).
    Expired,
}

/// The Secret's [`Expiry`] at `now`.
pub fn expiry(secret: &Secret, now: chrono::DateTime<chrono::Utc>) -> Expiry {
    let Some(expiration) = data(secret, EXPIRATION_KEY) else {
        return Expiry::Never;
    };
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(&expiration) else {
        return Expiry::Expired;
    };
    match (at.with_timezone(&chrono::Utc) - now).to_std() {
        Ok(left) if !left.is_zero() => Expiry::In(left),
        _ => Expiry::Expired,
    }
}

/// The protected header, exactly as upstream's signer (go-jose) writes it.
fn encoded_header(token_id: &str) -> String {
    let header = serde_json::json!({ "alg": "HS256", "kid": token_id });
    URL_SAFE_NO_PAD.encode(header.to_string())
}

fn signing_input(encoded_header: &str, content: &str) -> String {
    format!("{encoded_header}.{}", URL_SAFE_NO_PAD.encode(content))
}

/// The detached JWS (`<header>..<signature>`, the compact serialization without its payload)
/// of `content`: HS256 keyed with `token_secret`, header `{"alg":"HS256","kid":"<token_id>"}`.
/// What bootstrapsigner writes to cluster-info as `jws-kubeconfig-<token_id>`.
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let header = encoded_header(token_id);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let tag = ring::hmac::sign(&key, signing_input(&header, content).as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// True if `signature` is the [`detached_signature`] of `content` for this token: what
/// `kubeadm join` checks before trusting cluster-info. The header must be exactly the one
/// this token's signature carries; the HMAC is compared in constant time.
pub fn verify_detached(signature: &str, content: &str, token_id: &str, token_secret: &str) -> bool {
    let Some((header, tag)) = signature.split_once("..") else {
        return false;
    };
    if header != encoded_header(token_id) {
        return false;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    ring::hmac::verify(&key, signing_input(header, content).as_bytes(), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: \"\"\n";

    /// Computed independently with Python's hmac and base64 modules.
    const KNOWN: &str =
        "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..zzf4KIiytmR0YCdmfiFTptM4WWgqsPITJB8OZZnFNw8";

    #[test]
    fn signature_matches_a_known_vector() {
        assert_eq!(
            detached_signature(KUBECONFIG, "abcdef", "0123456789abcdef"),
            KNOWN
        );
        // The header is `{"alg":"HS256","kid":"abcdef"}`, keys in that order, no spaces.
        let header = KNOWN.split("..").next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"HS256","kid":"abcdef"}"#
        );
    }

    #[test]
    fn verification_needs_the_same_content_token_and_header() {
        let check = |sig: &str, content: &str, id: &str, secret: &str| {
            verify_detached(sig, content, id, secret)
        };
        assert!(check(KNOWN, KUBECONFIG, "abcdef", "0123456789abcdef"));
        assert!(!check(KNOWN, "changed", "abcdef", "0123456789abcdef"));
        assert!(!check(KNOWN, KUBECONFIG, "abcdef", "0123456789abcdeg"));
        assert!(!check(KNOWN, KUBECONFIG, "abcdeg", "0123456789abcdef"));
        let payload = URL_SAFE_NO_PAD.encode(KUBECONFIG);
        let attached = KNOWN.replace("..", &format!(".{payload}."));
        assert!(!check(&attached, KUBECONFIG, "abcdef", "0123456789abcdef"));
        assert!(!check("", KUBECONFIG, "abcdef", "0123456789abcdef"));
        assert!(!check(
            &format!("{KNOWN}="),
            KUBECONFIG,
            "abcdef",
            "0123456789abcdef"
        ));
        let other = detached_signature(KUBECONFIG, "abcdef", "fedcba9876543210");
        assert!(check(&other, KUBECONFIG, "abcdef", "fedcba9876543210"));
        assert_ne!(other, KNOWN);
    }

    #[test]
    fn secret_names_carry_the_token_id() {
        assert_eq!(
            token_id_from_secret_name("bootstrap-token-abc123"),
            Some("abc123")
        );
        assert_eq!(token_id_from_secret_name("bootstrap-token-ABC123"), None);
        assert_eq!(token_id_from_secret_name("bootstrap-token-abc12"), None);
        assert_eq!(token_id_from_secret_name("token-abc123"), None);
    }

    fn secret(expiration: Option<&str>) -> Secret {
        let mut data = std::collections::BTreeMap::new();
        if let Some(e) = expiration {
            data.insert(
                EXPIRATION_KEY.to_owned(),
                k8s_openapi::ByteString(e.as_bytes().to_vec()),
            );
        }
        Secret {
            data: Some(data),
            ..Secret::default()
        }
    }

    #[test]
    fn expiry_follows_upstream() {
        let now = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let check = |expiration, expected| assert_eq!(expiry(&secret(expiration), now), expected);
        check(None, Expiry::Never);
        check(Some(""), Expiry::Never);
        check(
            Some("2030-01-01T00:01:00Z"),
            Expiry::In(Duration::from_secs(60)),
        );
        check(
            Some("2030-01-01T01:00:30+01:00"),
            Expiry::In(Duration::from_secs(30)),
        );
        check(Some("2030-01-01T00:00:00Z"), Expiry::Expired);
        check(Some("2029-12-31T23:59:59.5Z"), Expiry::Expired);
        check(Some("tomorrow"), Expiry::Expired);
    }
}
