//! Service-account tokens for projected `serviceAccountToken` volume sources, as upstream's
//! kubelet token manager keeps them: a TokenRequest bound to the pod (its name and uid),
//! cached per (namespace, service account, audiences, expiration, pod uid), and requested
//! again once the token is older than 80% of its lifetime or 24 hours, less up to 10 s of
//! jitter so a node's tokens do not all renew at once. When a renewal fails the cached token
//! serves on until it expires.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use parking_lot::Mutex;

/// A token is renewed at the latest this long after it was issued, however long it lives.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_JITTER: Duration = Duration::from_secs(10);

/// What a cached token is for: equal keys may share a token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub namespace: String,
    pub service_account: String,
    /// Empty: the apiserver's own audiences.
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub pod_uid: String,
}

#[derive(Clone, Debug)]
struct Token {
    value: String,
    /// status.expirationTimestamp.
    expires: SystemTime,
    /// The lifetime it was issued for (the answer's spec.expirationSeconds, which the
    /// apiserver may have changed).
    lifetime: Duration,
}

impl Token {
    /// upstream's rule: renew when older than [`MAX_TTL`], or within the last 20% of the
    /// lifetime, each brought forward by `jitter`.
    fn needs_refresh(&self, now: SystemTime, jitter: Duration) -> bool {
        let issued = self.expires - self.lifetime;
        now + jitter > issued + MAX_TTL || now + jitter > self.expires - self.lifetime / 5
    }
}

/// The tokens of the pods on this node.
#[derive(Default)]
pub struct TokenManager {
    tokens: Mutex<HashMap<Key, Token>>,
}

impl TokenManager {
    /// The token for `key`, bound to the pod `pod_name` (whose uid the key holds): the
    /// cached one while it is fresh, else a new one; the error is upstream's message.
    pub async fn token(
        &self,
        client: &kube::Client,
        key: Key,
        pod_name: &str,
    ) -> Result<String, String> {
        let now = SystemTime::now();
        let cached = self.tokens.lock().get(&key).cloned();
        if let Some(t) = &cached
            && !t.needs_refresh(now, jitter())
        {
            return Ok(t.value.clone());
        }
        match request(client, &key, pod_name).await {
            Ok(t) => {
                let value = t.value.clone();
                self.tokens.lock().insert(key, t);
                Ok(value)
            }
            Err(e) => match cached {
                None => Err(format!("failed to fetch token: {e}")),
                Some(t) if t.expires <= now => {
                    Err(format!("token expired and refresh failed: {e}"))
                }
                Some(t) => {
                    tracing::warn!(pod = pod_name, error = %e, "renewing a service-account token failed; the current one serves until it expires");
                    Ok(t.value)
                }
            },
        }
    }

    /// Forgets the tokens of a pod that is gone.
    pub fn forget_pod(&self, uid: &str) {
        self.tokens.lock().retain(|k, _| k.pod_uid != uid);
    }
}

/// Up to [`MAX_JITTER`], at random.
fn jitter() -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(random % MAX_JITTER.as_millis() as u64)
}

/// POST serviceaccounts/NAME/token with the pod as the bound object.
async fn request(client: &kube::Client, key: &Key, pod_name: &str) -> Result<Token, String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &key.namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: key.audiences.clone(),
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name.to_owned()),
                uid: Some(key.pod_uid.clone()),
            }),
        },
        ..Default::default()
    };
    let answer = api
        .create_token_request(&key.service_account, &PostParams::default(), &request)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => s.message.clone(),
            e => e.to_string(),
        })?;
    let status = answer
        .status
        .ok_or("the TokenRequest answer has no status")?;
    let seconds = answer
        .spec
        .expiration_seconds
        .unwrap_or(key.expiration_seconds);
    let expires = status.expiration_timestamp.0.as_second();
    Ok(Token {
        value: status.token,
        expires: SystemTime::UNIX_EPOCH + Duration::from_secs(expires.max(0) as u64),
        lifetime: Duration::from_secs(seconds.max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued: SystemTime, lifetime: u64) -> Token {
        let lifetime = Duration::from_secs(lifetime);
        Token {
            value: "t".into(),
            expires: issued + lifetime,
            lifetime,
        }
    }

    #[test]
    fn renewed_at_80_percent_of_its_life_or_after_a_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let secs = |s: u64| Duration::from_secs(s);
        let hour = token(t0, 3600);
        assert!(!hour.needs_refresh(t0, Duration::ZERO));
        assert!(!hour.needs_refresh(t0 + secs(2879), Duration::ZERO));
        assert!(hour.needs_refresh(t0 + secs(2881), Duration::ZERO));
        // The jitter brings the renewal forward.
        assert!(hour.needs_refresh(t0 + secs(2875), secs(10)));
        // A year-long token is still renewed after 24 hours.
        let year = token(t0, 365 * 24 * 3600);
        assert!(!year.needs_refresh(t0 + secs(23 * 3600), Duration::ZERO));
        assert!(year.needs_refresh(t0 + secs(24 * 3600 + 1), Duration::ZERO));
    }

    #[test]
    fn jitter_stays_below_ten_seconds() {
        for _ in 0..100 {
            assert!(jitter() < MAX_JITTER);
        }
    }
}
