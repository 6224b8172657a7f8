//! The serviceaccount controller: every active namespace has a `default` ServiceAccount;
//! it is created when a namespace appears and re-created if deleted.

use common::api_errors::{is_already_exists, is_forbidden};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};

const DEFAULT: &str = "default";

pub struct ServiceAccountsController {
    client: kube::Client,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
}

/// Starts the serviceaccount controller (keyed by namespace).
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(ServiceAccountsController {
        client: ctx.client.clone(),
        namespaces: ctx.informers.get::<Namespace>(),
        accounts: ctx.informers.get::<ServiceAccount>(),
    });
    let queue = WorkQueue::new("serviceaccount");
    queue.follow_live(&c.namespaces, |_| true);
    let q = queue.clone();
    c.accounts.on_change(move |change| {
        if let Change::Deleted(sa) = change
            && sa.name_any() == DEFAULT
        {
            q.add(sa.namespace().unwrap_or_default());
        }
    });
    Ok(crate::runtime::run_workers(
        queue,
        c,
        ctx.options.concurrent_serviceaccount_syncs,
    ))
}

#[async_trait]
impl Reconcile for ServiceAccountsController {
    async fn sync(&self, namespace: &str) -> crate::Result<Requeue> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Ok(None);
        };
        let active = ns.metadata.deletion_timestamp.is_none()
            && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
        if !active || self.accounts.get_in(namespace, DEFAULT).is_some() {
            return Ok(None);
        }
        let mut sa = ServiceAccount::default();
        sa.metadata.name = Some(DEFAULT.into());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => Ok(None),
            // Already there (our cache lags), or the namespace began terminating.
            Err(e) if is_already_exists(&e) || is_forbidden(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
