//! The root-ca-cert-publisher controller: every active namespace has a ConfigMap
//! `kube-root-ca.crt` holding the cluster CA (--root-ca-file), which pods read to verify the
//! apiserver (projected service-account volumes mount it). Re-created if deleted, repaired if
//! changed. Idle without --root-ca-file.

use common::api_errors::{is_already_exists, is_conflict, is_forbidden};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};

const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc.";

pub struct RootCaPublisher {
    client: kube::Client,
    namespaces: Arc<Informer<Namespace>>,
    configmaps: Arc<Informer<ConfigMap>>,
    ca: String,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let Some(path) = ctx.options.root_ca_file.as_ref() else {
        tracing::info!("root-ca-cert-publisher idle: no --root-ca-file");
        return Ok(Box::pin(futures::future::pending()));
    };
    let ca = std::fs::read_to_string(path).map_err(|error| crate::Error::Read {
        flag: "--root-ca-file",
        path: path.clone(),
        error,
    })?;
    let c = Arc::new(RootCaPublisher {
        client: ctx.client.clone(),
        namespaces: ctx.informers.get::<Namespace>(),
        configmaps: ctx.informers.get::<ConfigMap>(),
        ca,
    });
    let queue = WorkQueue::new("root_ca_cert_publisher");
    let q = queue.clone();
    c.namespaces.on_change(move |change| {
        if let Change::Added(ns) | Change::Updated { new: ns, .. } = change {
            q.add(ns.name_any());
        }
    });
    let q = queue.clone();
    c.configmaps.on_change(move |change| {
        let cm = match change {
            Change::Added(cm) | Change::Deleted(cm) => cm,
            Change::Updated { new, .. } => new,
        };
        if cm.name_any() == NAME {
            q.add(cm.namespace().unwrap_or_default());
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 1))
}

#[async_trait]
impl Reconcile for RootCaPublisher {
    async fn sync(&self, namespace: &str) -> crate::Result<Requeue> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let current = self.configmaps.get_in(namespace, NAME);
        let wanted = |mut cm: ConfigMap| {
            cm.metadata.name = Some(NAME.into());
            cm.annotations_mut()
                .insert("kubernetes.io/description".into(), DESCRIPTION.into());
            cm.data = Some([("ca.crt".to_owned(), self.ca.clone())].into());
            cm
        };
        let result = match current {
            None => {
                api.create(&PostParams::default(), &wanted(ConfigMap::default()))
                    .await
            }
            Some(cm) if cm.data.as_ref().and_then(|d| d.get("ca.crt")) != Some(&self.ca) => {
                api.replace(NAME, &PostParams::default(), &wanted((*cm).clone()))
                    .await
            }
            Some(_) => return Ok(None),
        };
        match result {
            Ok(_) => Ok(None),
            // Our cache lags (409), or the namespace began terminating (403 with
            // upstream's message); any other refusal is an error worth retrying and logging.
            Err(e)
                if is_already_exists(&e)
                    || is_conflict(&e)
                    || (is_forbidden(&e) && e.to_string().contains("being terminated")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
