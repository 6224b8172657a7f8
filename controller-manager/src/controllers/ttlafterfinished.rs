//! The TTL-after-finished controller: a finished Job with spec.ttlSecondsAfterFinished is
//! deleted (with its pods, in the foreground) that many seconds after it finished.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};

use crate::controllers::podutil;
use crate::runtime::{Context, Informer, Reconcile, Requeue, WorkQueue};
use common::api_errors::is_not_found;

pub struct TtlAfterFinished {
    client: kube::Client,
    jobs: Arc<Informer<Job>>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(TtlAfterFinished {
        client: ctx.client.clone(),
        jobs: ctx.informers.get::<Job>(),
    });
    let queue = WorkQueue::new("ttl_jobs_to_delete");
    queue.follow_live(&c.jobs, |j| ttl(j).is_some() && finished_at(j).is_some());
    Ok(crate::runtime::run_workers(queue, c, 5))
}

fn ttl(job: &Job) -> Option<i32> {
    job.spec.as_ref()?.ttl_seconds_after_finished
}

/// When the Job finished: its Complete or Failed condition's transition time.
pub fn finished_at(job: &Job) -> Option<chrono::DateTime<chrono::Utc>> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(podutil::to_chrono)
}

#[async_trait]
impl Reconcile for TtlAfterFinished {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(job) = self.jobs.get(key) else {
            return Ok(None);
        };
        let (Some(ttl), Some(done)) = (ttl(&job), finished_at(&job)) else {
            return Ok(None);
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let due = done + chrono::Duration::seconds(ttl.into());
        let now = chrono::Utc::now();
        if due > now {
            return Ok(Some(
                (due - now).to_std().unwrap_or_default() + Duration::from_millis(10),
            ));
        }
        tracing::info!(
            job = key,
            "deleting finished job past its ttlSecondsAfterFinished"
        );
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&job.name_any(), &dp).await {
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
