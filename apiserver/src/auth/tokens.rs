//! Service-account tokens: JWTs (ES256) signed with --service-account-signing-key-file, issued by
//! the TokenRequest API (`serviceaccounts/NAME/token`) and checked on every request that
//! carries one: signature, issuer, audience, expiry, and that the service account (and the pod
//! it is bound to) still exist with the same uid, as upstream's bound tokens.

use std::path::Path;

use crate::Error;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::error::Context as _;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};
use x509_parser::prelude::FromDer;

use super::UserInfo;
use crate::cache::Cache;

/// Signs and verifies service-account tokens.
pub struct ServiceAccountTokens {
    /// The key that signs new tokens; None on a server that only verifies.
    signer: Option<EcdsaKeyPair>,
    /// Uncompressed P-256 points of the keys that verify tokens.
    verifiers: Vec<Vec<u8>>,
    /// --service-account-issuer: the `iss` of tokens issued and accepted.
    pub issuer: String,
    /// --api-audiences: a token must name one of them (the issuer when not given).
    pub audiences: Vec<String>,
}

/// What a token is bound to, from a TokenRequest.
pub struct Binding<'a> {
    pub namespace: &'a str,
    pub service_account: (&'a str, &'a str),
    /// (name, uid) of the pod the token is bound to.
    pub pod: Option<(&'a str, &'a str)>,
    pub node: Option<&'a str>,
}

/// A key file the apiserver cannot use.
fn invalid(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {why}", path.display()))
}

fn pem_der(path: &Path, label: &str) -> crate::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).io(|| format!("reading {}", path.display()))?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with(&format!("-----BEGIN {label}")))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err(invalid(path, format!("no {label} PEM block")));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| invalid(path, format!("decoding: {e}")))
}

impl ServiceAccountTokens {
    /// Loads the signing key (PKCS#8 P-256) and the verifying keys (public keys or private keys).
    pub fn load(
        signing_key: Option<&Path>,
        key_files: &[std::path::PathBuf],
        issuer: String,
        audiences: Vec<String>,
    ) -> crate::Result<ServiceAccountTokens> {
        let rng = ring::rand::SystemRandom::new();
        let signer = signing_key
            .map(|path| {
                let der = pem_der(path, "PRIVATE KEY")?;
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                    .map_err(|e| invalid(path, format!("not a P-256 PKCS#8 key: {e}")))
            })
            .transpose()?;
        let mut verifiers = Vec::new();
        for path in key_files {
            let text =
                std::fs::read_to_string(path).io(|| format!("reading {}", path.display()))?;
            if text.contains("PRIVATE KEY") {
                let der = pem_der(path, "PRIVATE KEY")?;
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &rng,
                )
                .map_err(|e| invalid(path, e))?;
                verifiers.push(pair.public_key().as_ref().to_vec());
            } else {
                let der = pem_der(path, "PUBLIC KEY")?;
                let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der)
                    .map_err(|e| invalid(path, e))?;
                verifiers.push(spki.subject_public_key.data.to_vec());
            }
        }
        if let Some(s) = &signer
            && verifiers.is_empty()
        {
            verifiers.push(s.public_key().as_ref().to_vec());
        }
        let audiences = if audiences.is_empty() {
            vec![issuer.clone()]
        } else {
            audiences
        };
        Ok(ServiceAccountTokens {
            signer,
            verifiers,
            issuer,
            audiences,
        })
    }

    /// Issues a token for `binding`, valid from now for `seconds`, for `audiences`.
    pub fn issue(
        &self,
        binding: &Binding<'_>,
        audiences: &[String],
        seconds: i64,
    ) -> Result<(String, chrono::DateTime<chrono::Utc>), String> {
        let signer = self
            .signer
            .as_ref()
            .ok_or("no --service-account-signing-key-file: this server cannot issue tokens")?;
        let now = chrono::Utc::now();
        let expires = now + chrono::Duration::seconds(seconds);
        let mut kubernetes = json!({
            "namespace": binding.namespace,
            "serviceaccount": {
                "name": binding.service_account.0,
                "uid": binding.service_account.1,
            },
        });
        if let Some((name, uid)) = binding.pod {
            kubernetes["pod"] = json!({ "name": name, "uid": uid });
        }
        if let Some(node) = binding.node {
            kubernetes["node"] = json!({ "name": node });
        }
        let claims = json!({
            "aud": audiences,
            "exp": expires.timestamp(),
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "iss": self.issuer,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": format!(
                "system:serviceaccount:{}:{}",
                binding.namespace, binding.service_account.0
            ),
            "kubernetes.io": kubernetes,
        });
        let header = json!({ "alg": "ES256", "typ": "JWT" });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = signer
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| "signing the token failed".to_owned())?;
        Ok((
            format!("{signing_input}.{}", B64.encode(sig.as_ref())),
            expires,
        ))
    }

    /// Checks a token and names its service account, as upstream's service-account
    /// authenticator (legacy tokens without the `kubernetes.io` claim are refused).
    pub fn authenticate(&self, cache: &Cache, token: &str) -> Result<UserInfo, String> {
        let claims = self.verify(token)?;
        let now = chrono::Utc::now().timestamp();
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Err("token issuer is not accepted".into());
        }
        let audiences: Vec<&str> = match &claims["aud"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences
            .iter()
            .any(|a| self.audiences.iter().any(|b| b == a))
        {
            return Err("token audiences are not accepted".into());
        }
        if claims["exp"].as_i64().is_none_or(|exp| exp < now) {
            return Err("token has expired".into());
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
            return Err("token is not valid yet".into());
        }
        let k = &claims["kubernetes.io"];
        let namespace = k["namespace"].as_str().ok_or("token has no namespace")?;
        let sa_name = k["serviceaccount"]["name"]
            .as_str()
            .ok_or("token has no service account")?;
        let sa_uid = k["serviceaccount"]["uid"].as_str().unwrap_or("");
        if current_uid(cache, "serviceaccounts", namespace, sa_name).as_deref() != Some(sa_uid) {
            return Err(format!(
                "service account {namespace}/{sa_name} no longer exists"
            ));
        }
        let mut user = UserInfo::new(
            &format!("system:serviceaccount:{namespace}:{sa_name}"),
            vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
            ],
        );
        user.uid = sa_uid.to_owned();
        if let (Some(pod), Some(uid)) = (k["pod"]["name"].as_str(), k["pod"]["uid"].as_str()) {
            if current_uid(cache, "pods", namespace, pod).as_deref() != Some(uid) {
                return Err(format!(
                    "the pod {namespace}/{pod} the token is bound to no longer exists"
                ));
            }
            user.extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![pod.into()],
            );
            user.extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![uid.into()],
            );
        }
        Ok(user)
    }

    /// The claims of a token signed by one of the verifying keys.
    fn verify(&self, token: &str) -> Result<Value, String> {
        let bad = || "invalid service-account token".to_owned();
        let (signing_input, sig) = token.rsplit_once('.').ok_or_else(bad)?;
        let (header, claims) = signing_input.split_once('.').ok_or_else(bad)?;
        let header: Value =
            serde_json::from_slice(&B64.decode(header).map_err(|_| bad())?).map_err(|_| bad())?;
        if header["alg"] != "ES256" {
            return Err(bad());
        }
        let sig = B64.decode(sig).map_err(|_| bad())?;
        let valid = self.verifiers.iter().any(|key| {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key)
                .verify(signing_input.as_bytes(), &sig)
                .is_ok()
        });
        if !valid {
            return Err(bad());
        }
        serde_json::from_slice(&B64.decode(claims).map_err(|_| bad())?).map_err(|_| bad())
    }
}

/// The uid of a live object in the watch cache.
fn current_uid(cache: &Cache, plural: &str, namespace: &str, name: &str) -> Option<String> {
    let resource = crate::registry::builtin("", "v1", plural)?;
    let key = format!("{}{namespace}/{name}", resource.key_prefix(cache.root()));
    cache.get(resource, &key)?.value()["metadata"]["uid"]
        .as_str()
        .map(String::from)
}
