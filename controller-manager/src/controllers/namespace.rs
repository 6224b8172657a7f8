//! The namespace controller: when a namespace is deleted, deletes everything in it, every
//! namespaced kind, reporting progress in the namespace's status conditions as upstream
//! does; once nothing is left, removes the `kubernetes` finalizer so the apiserver can
//! remove the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::discovery::verbs;

use crate::runtime::discovery::Resources;
use crate::runtime::{Context, Informer, Reconcile, Requeue, WorkQueue};
use common::api_errors::is_not_found;

const FINALIZER: &str = "kubernetes";

pub struct NamespaceController {
    client: kube::Client,
    namespaces: Arc<Informer<Namespace>>,
}

/// Starts the namespace controller; the returned future runs its workers.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(NamespaceController {
        client: ctx.client.clone(),
        namespaces: ctx.informers.get::<Namespace>(),
    });
    let queue = WorkQueue::new("namespace");
    queue.follow_live(&c.namespaces, |ns| ns.metadata.deletion_timestamp.is_some());
    Ok(crate::runtime::run_workers(
        queue,
        c,
        ctx.options.concurrent_namespace_syncs,
    ))
}

/// What one pass over a terminating namespace found.
#[derive(Debug, Default)]
pub struct Remaining {
    /// "pods" / "deployments.apps" -> objects still present.
    pub resources: BTreeMap<String, usize>,
    /// finalizer -> objects still carrying it.
    pub finalizers: BTreeMap<String, usize>,
    /// Kinds whose delete failed, with the error.
    pub failures: Vec<String>,
    /// The longest grace period among remaining pods, to know when to look again.
    pub max_grace: i64,
}

fn condition(type_: &str, status: &str, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        )),
    }
}

/// The five deletion conditions upstream reports on a terminating namespace.
pub fn conditions(r: &Remaining) -> Vec<NamespaceCondition> {
    let listed = |m: &BTreeMap<String, usize>, what: &str| {
        m.iter()
            .map(|(k, n)| format!("{k} {what} {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        if r.failures.is_empty() {
            condition(
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            condition(
                "NamespaceDeletionContentFailure",
                "True",
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    r.failures.len(),
                    r.failures.join(", ")
                ),
            )
        },
        if r.resources.is_empty() {
            condition(
                "NamespaceContentRemaining",
                "False",
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            condition(
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    listed(&r.resources, "has")
                ),
            )
        },
        if r.finalizers.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            condition(
                "NamespaceFinalizersRemaining",
                "True",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    listed(&r.finalizers, "in")
                ),
            )
        },
    ]
}

impl NamespaceController {
    /// Deletes every namespaced object in `ns` and answers what is still there.
    async fn delete_content(&self, ns: &str) -> crate::Result<Remaining> {
        let resources = Resources::discover(&self.client).await?;
        let mut r = Remaining::default();
        for served in resources
            .all
            .iter()
            .filter(|s| s.namespaced() && s.supports(verbs::DELETE) && s.supports(verbs::LIST))
        {
            let api = served.api(&self.client, ns);
            let name = served.group_resource();
            let deleted = if served.supports(verbs::DELETE_COLLECTION) {
                api.delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await
                    .map(|_| ())
            } else {
                let mut result = Ok(());
                for o in api.list(&ListParams::default()).await?.items {
                    match api.delete(&o.name_any(), &DeleteParams::default()).await {
                        Err(e) if !is_not_found(&e) => result = Err(e),
                        _ => {}
                    }
                }
                result
            };
            if let Err(e) = deleted {
                r.failures.push(format!("{name}: {e}"));
            }
            let left = api.list(&ListParams::default()).await?.items;
            if left.is_empty() {
                continue;
            }
            r.resources.insert(name, left.len());
            for o in &left {
                for f in o.finalizers() {
                    *r.finalizers.entry(f.clone()).or_default() += 1;
                }
                if let Some(g) = o.metadata.deletion_grace_period_seconds {
                    r.max_grace = r.max_grace.max(g);
                }
            }
        }
        Ok(r)
    }

    async fn write_conditions(&self, ns: &Namespace, r: &Remaining) -> crate::Result<()> {
        let mut updated = ns.clone();
        let status = updated.status.get_or_insert_with(Default::default);
        let mut new = conditions(r);
        // Keep the transition time of conditions whose status did not change.
        for c in &mut new {
            if let Some(old) = status
                .conditions
                .iter()
                .flatten()
                .find(|o| o.type_ == c.type_)
                && old.status == c.status
            {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
        let same = status.conditions.as_ref().is_some_and(|old| {
            old.len() == new.len()
                && old.iter().zip(&new).all(|(a, b)| {
                    a.type_ == b.type_ && a.status == b.status && a.message == b.message
                })
        });
        if same {
            return Ok(());
        }
        status.conditions = Some(new);
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api
            .replace_status(&ns.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes our finalizer through the namespace's finalize subresource.
    async fn finalize(&self, ns: &Namespace) -> crate::Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let latest = match api.get_opt(&ns.name_any()).await? {
            Some(n) => n,
            None => return Ok(()),
        };
        let mut updated = latest.clone();
        if let Some(spec) = updated.spec.as_mut() {
            spec.finalizers
                .get_or_insert_with(Vec::new)
                .retain(|f| f != FINALIZER);
        }
        let body = serde_json::to_vec(&updated)?;
        let req = http::Request::put(format!("/api/v1/namespaces/{}/finalize", ns.name_any()))
            .header("content-type", "application/json")
            .body(body)?;
        match self.client.request::<Namespace>(req).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Reconcile for NamespaceController {
    async fn sync(&self, name: &str) -> crate::Result<Requeue> {
        let Some(ns) = self.namespaces.get(name) else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let ours = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
        if !ours {
            return Ok(None);
        }
        let remaining = self.delete_content(name).await?;
        self.write_conditions(&ns, &remaining).await?;
        if !remaining.failures.is_empty() {
            crate::error::unfinished!(
                "deleting the content of namespace {name}: {}",
                remaining.failures.join("; ")
            );
        }
        if !remaining.resources.is_empty() {
            tracing::debug!(namespace = name, remaining = ?remaining.resources, "namespace content remaining");
            // Pods wait out their grace period; other content usually goes within seconds.
            let wait = Duration::from_secs(remaining.max_grace.clamp(1, 60) as u64);
            return Ok(Some(wait));
        }
        self.finalize(&ns).await?;
        tracing::info!(namespace = name, "namespace content deleted; finalized");
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_name_what_remains_as_upstream() {
        let mut r = Remaining::default();
        r.resources.insert("pods".into(), 2);
        r.resources.insert("deployments.apps".into(), 1);
        r.finalizers.insert("example.com/hold".into(), 1);
        let c = conditions(&r);
        let get = |t: &str| c.iter().find(|c| c.type_ == t).unwrap();
        let remaining = get("NamespaceContentRemaining");
        assert_eq!(remaining.status, "True");
        assert_eq!(
            remaining.message.as_deref(),
            Some(
                "Some resources are remaining: deployments.apps has 1 resource instances, pods has 2 resource instances"
            )
        );
        assert_eq!(
            get("NamespaceFinalizersRemaining").message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            )
        );
        let done = conditions(&Remaining::default());
        assert!(done.iter().all(|c| c.status == "False"));
    }
}
