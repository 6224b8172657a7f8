//! The tokencleaner controller: a bootstrap token Secret (kube-system, type
//! `bootstrap.kubernetes.io/token`) is deleted once its `expiration` has passed (an unreadable
//! expiration counts as passed, as upstream); one that expires later is looked at again then.
//! Off unless `--controllers` names it.

use common::api_errors::{is_conflict, is_not_found};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::bootstraptoken::{self as token, Expiry};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};

use crate::runtime::{Context, Informer, Reconcile, Requeue, WorkQueue};

pub struct TokenCleaner {
    client: kube::Client,
    secrets: Arc<Informer<Secret>>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(TokenCleaner {
        client: ctx.client.clone(),
        secrets: ctx.informers.get::<Secret>(),
    });
    let queue = WorkQueue::new("token_cleaner");
    queue.follow_live(&c.secrets, token::is_token_secret);
    Ok(crate::runtime::run_workers(queue, c, 1))
}

#[async_trait]
impl Reconcile for TokenCleaner {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(secret) = self.secrets.get(key) else {
            return Ok(None);
        };
        if !token::is_token_secret(&secret) || secret.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        match token::expiry(&secret, chrono::Utc::now()) {
            Expiry::Never => return Ok(None),
            Expiry::In(left) => return Ok(Some(left + Duration::from_millis(10))),
            Expiry::Expired => {}
        }
        tracing::info!(secret = key, "deleting expired bootstrap token");
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), token::SECRET_NAMESPACE);
        match api.delete(&secret.name_any(), &dp).await {
            Ok(_) => Ok(None),
            // Already gone (404), or replaced by a new Secret of that name (409: the uid).
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
