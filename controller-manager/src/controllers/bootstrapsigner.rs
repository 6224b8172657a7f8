//! The bootstrapsigner controller: `kube-public/cluster-info` carries, for every valid
//! bootstrap token that may sign (`usage-bootstrap-signing: "true"`, not expired), a detached
//! JWS of its `kubeconfig` under `jws-kubeconfig-<token-id>`, so `kubeadm join --token` can
//! trust the kubeconfig it read anonymously. Signatures of tokens that are gone, expired or no
//! longer for signing are removed. The ConfigMap is only written when that changes anything,
//! and never created (kubeadm init creates it). Off unless `--controllers` names it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::bootstraptoken::{self as token, Expiry};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};

/// The one key this controller's queue carries.
const KEY: &str = "kube-public/cluster-info";

pub struct BootstrapSigner {
    client: kube::Client,
    configmaps: Arc<Informer<ConfigMap>>,
    secrets: Arc<Informer<Secret>>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(BootstrapSigner {
        client: ctx.client.clone(),
        configmaps: ctx.informers.get::<ConfigMap>(),
        secrets: ctx.informers.get::<Secret>(),
    });
    let queue = WorkQueue::new("bootstrap_signer_queue");
    let q = queue.clone();
    c.configmaps.on_change(move |change| {
        let (Change::Added(cm) | Change::Updated { new: cm, .. } | Change::Deleted(cm)) = change;
        if cm.namespace().as_deref() == Some(token::CLUSTER_INFO_NAMESPACE)
            && cm.name_any() == token::CLUSTER_INFO_NAME
        {
            q.add(KEY.to_owned());
        }
    });
    let q = queue.clone();
    c.secrets.on_change(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        if token::is_token_secret(s) {
            q.add(KEY.to_owned());
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 1))
}

/// The tokens that may sign, id to secret, as upstream's validateSecretForSigning: the name
/// `bootstrap-token-<id>` matches `token-id`, a `token-secret` is set, the token has not
/// expired and `usage-bootstrap-signing` is "true". Also answers when the first of them
/// expires, when the signatures must be looked at again.
pub fn signing_tokens(
    secrets: &[Arc<Secret>],
    now: chrono::DateTime<chrono::Utc>,
) -> (BTreeMap<String, String>, Option<Duration>) {
    let mut tokens = BTreeMap::new();
    let mut next_expiry: Option<Duration> = None;
    for s in secrets {
        if !token::is_token_secret(s) || s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = s.name_any();
        let Some(id) = token::token_id_from_secret_name(&name) else {
            continue;
        };
        if token::data(s, token::TOKEN_ID_KEY).as_deref() != Some(id)
            || token::data(s, token::USAGE_SIGNING_KEY).as_deref() != Some("true")
        {
            continue;
        }
        let Some(secret) = token::data(s, token::TOKEN_SECRET_KEY) else {
            continue;
        };
        match token::expiry(s, now) {
            Expiry::Expired => continue,
            Expiry::In(left) => next_expiry = Some(next_expiry.map_or(left, |n| n.min(left))),
            Expiry::Never => {}
        }
        tokens.insert(id.to_owned(), secret);
    }
    (tokens, next_expiry)
}

/// cluster-info's data signed by exactly `tokens`, or None if `data` already is (also when
/// there is no kubeconfig to sign).
pub fn signed_data(
    data: &BTreeMap<String, String>,
    tokens: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let content = data.get(token::KUBECONFIG_KEY)?;
    let mut wanted: BTreeMap<String, String> = data
        .iter()
        .filter(|(k, _)| !k.starts_with(token::JWS_KEY_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (id, secret) in tokens {
        wanted.insert(
            format!("{}{id}", token::JWS_KEY_PREFIX),
            token::detached_signature(content, id, secret),
        );
    }
    (wanted != *data).then_some(wanted)
}

#[async_trait]
impl Reconcile for BootstrapSigner {
    async fn sync(&self, _key: &str) -> crate::Result<Requeue> {
        let Some(cm) = self
            .configmaps
            .get_in(token::CLUSTER_INFO_NAMESPACE, token::CLUSTER_INFO_NAME)
        else {
            return Ok(None);
        };
        let secrets = self.secrets.list_namespace(token::SECRET_NAMESPACE);
        let (tokens, next_expiry) = signing_tokens(&secrets, chrono::Utc::now());
        // Past the first expiry, that token's signature has to go.
        let requeue = next_expiry.map(|d| d + Duration::from_millis(10));
        let Some(data) = signed_data(&cm.data.clone().unwrap_or_default(), &tokens) else {
            return Ok(requeue);
        };
        tracing::info!(tokens = tokens.len(), "updating cluster-info signatures");
        let mut updated = (*cm).clone();
        updated.data = Some(data);
        // The cached resourceVersion goes along: a concurrent writer makes this a 409, and
        // the retry signs what it wrote.
        Api::<ConfigMap>::namespaced(self.client.clone(), token::CLUSTER_INFO_NAMESPACE)
            .replace(token::CLUSTER_INFO_NAME, &PostParams::default(), &updated)
            .await?;
        Ok(requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::ByteString;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    fn token_secret(name: &str, data: &[(&str, &str)]) -> Arc<Secret> {
        let mut s = Secret {
            type_: Some(token::SECRET_TYPE.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("kube-system".into());
        Arc::new(s)
    }

    fn signing(id: &str, extra: &[(&str, &str)]) -> Arc<Secret> {
        let mut data = vec![
            ("token-id", id),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-signing", "true"),
        ];
        data.extend_from_slice(extra);
        token_secret(&format!("bootstrap-token-{id}"), &data)
    }

    fn ids(secrets: &[Arc<Secret>]) -> (Vec<String>, Option<Duration>) {
        let (tokens, next) = signing_tokens(secrets, now());
        (tokens.into_keys().collect(), next)
    }

    #[test]
    fn only_valid_unexpired_signing_tokens_sign() {
        let mut other_type = (*signing("aaaaa1", &[])).clone();
        other_type.type_ = Some("Opaque".into());
        let mut other_namespace = (*signing("aaaaa2", &[])).clone();
        other_namespace.metadata.namespace = Some("default".into());
        let secrets = [
            signing("abcdef", &[]),
            signing("ghijkl", &[("expiration", "2030-01-01T00:02:00Z")]),
            signing("mnopqr", &[("expiration", "2030-01-01T00:01:00Z")]),
            signing("expird", &[("expiration", "2029-12-31T00:00:00Z")]),
            signing("badexp", &[("expiration", "soon")]),
            signing("nosign", &[("usage-bootstrap-signing", "false")]),
            token_secret("bootstrap-token-noflag", &[("token-id", "noflag")]),
            token_secret(
                "bootstrap-token-nosecr",
                &[("token-id", "nosecr"), ("usage-bootstrap-signing", "true")],
            ),
            token_secret(
                "bootstrap-token-wrongi",
                &[
                    ("token-id", "abcdef"),
                    ("token-secret", "0123456789abcdef"),
                    ("usage-bootstrap-signing", "true"),
                ],
            ),
            token_secret(
                "not-a-token-abcdef",
                &[
                    ("token-id", "abcdef"),
                    ("token-secret", "0123456789abcdef"),
                    ("usage-bootstrap-signing", "true"),
                ],
            ),
            Arc::new(other_type),
            Arc::new(other_namespace),
        ];
        let (tokens, next) = ids(&secrets);
        assert_eq!(tokens, ["abcdef", "ghijkl", "mnopqr"]);
        assert_eq!(next, Some(Duration::from_secs(60)));
        assert_eq!(ids(&[signing("abcdef", &[])]).1, None);
    }

    fn cluster_info(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn signatures_follow_the_tokens_and_the_kubeconfig() {
        let tokens = |ids: &[&str]| -> BTreeMap<String, String> {
            ids.iter()
                .map(|id| (id.to_string(), format!("{id}-secret-000000")))
                .collect()
        };
        let sig = |content: &str, id: &str| {
            token::detached_signature(content, id, &format!("{id}-secret-000000"))
        };
        let unsigned = cluster_info(&[("kubeconfig", "k1")]);

        // A new token: its signature is added.
        let signed = signed_data(&unsigned, &tokens(&["abcdef"])).unwrap();
        assert_eq!(
            signed,
            cluster_info(&[
                ("kubeconfig", "k1"),
                ("jws-kubeconfig-abcdef", &sig("k1", "abcdef"))
            ])
        );
        // Nothing changed: no write.
        assert_eq!(signed_data(&signed, &tokens(&["abcdef"])), None);
        // The kubeconfig changed: signed again.
        let mut changed = signed.clone();
        changed.insert("kubeconfig".into(), "k2".into());
        assert_eq!(
            signed_data(&changed, &tokens(&["abcdef"])).unwrap()["jws-kubeconfig-abcdef"],
            sig("k2", "abcdef")
        );
        // The token is gone: its signature too; other keys stay.
        let mut with_other = signed.clone();
        with_other.insert("other".into(), "x".into());
        assert_eq!(
            signed_data(&with_other, &tokens(&[])).unwrap(),
            cluster_info(&[("kubeconfig", "k1"), ("other", "x")])
        );
        // A forged or stale signature is replaced.
        let mut forged = signed.clone();
        forged.insert("jws-kubeconfig-abcdef".into(), "e30..AAAA".into());
        assert_eq!(signed_data(&forged, &tokens(&["abcdef"])).unwrap(), signed);
        // Nothing to sign without a kubeconfig.
        assert_eq!(
            signed_data(&cluster_info(&[("other", "x")]), &tokens(&["abcdef"])),
            None
        );
    }
}
