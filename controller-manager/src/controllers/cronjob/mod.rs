//! The CronJob controller: creates a Job for each time the schedule comes round (in the
//! CronJob's time zone), honouring startingDeadlineSeconds, concurrencyPolicy (Allow,
//! Forbid, Replace) and suspend; tracks the active Jobs and the last schedule and success
//! times in status; and deletes finished Jobs beyond the history limits.

pub mod schedule;

use common::api_errors::is_already_exists;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use common::events::{Involved, Recorder};
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};

use crate::controllers::podutil;
use crate::runtime::worker::api_message;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};
use common::api_errors::is_not_found;
use schedule::Schedule;

pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Past this many missed activations upstream gives up counting and says so.
const MAX_MISSED: usize = 100;

pub struct CronJobController {
    client: kube::Client,
    cronjobs: Arc<Informer<CronJob>>,
    jobs: Arc<Informer<Job>>,
    recorder: Arc<Recorder>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(CronJobController {
        client: ctx.client.clone(),
        cronjobs: ctx.informers.get::<CronJob>(),
        jobs: ctx.informers.get::<Job>(),
        recorder: ctx.recorder("cronjob-controller"),
    });
    let queue = WorkQueue::new("cronjob");
    queue.follow(&c.cronjobs);
    let q = queue.clone();
    c.jobs.on_change(move |change| {
        let (Change::Added(j) | Change::Deleted(j) | Change::Updated { new: j, .. }) = change;
        if let Some(r) = podutil::controller_ref(&j.metadata).filter(|r| r.kind == "CronJob") {
            q.add(format!("{}/{}", j.namespace().unwrap_or_default(), r.name));
        }
    });
    Ok(crate::runtime::run_workers(
        queue,
        c,
        ctx.options.concurrent_cron_job_syncs,
    ))
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or_default())
}

/// The Job's terminal condition type ("Complete" or "Failed"), if finished.
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// The activation to run now: the latest schedule time after the last one run (or the
/// CronJob's creation) and not after `now`, with how many were missed in between.
pub fn most_recent(
    sched: &Schedule,
    tz: Tz,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, usize) {
    let mut last = None;
    let mut missed = 0;
    let mut t = since;
    while let Some(next) = sched.next_after(t, tz) {
        if next > now {
            break;
        }
        last = Some(next);
        missed += 1;
        if missed > MAX_MISSED {
            // Jump close to now: only the latest activation matters.
            t = now - chrono::Duration::minutes(1);
            continue;
        }
        t = next;
    }
    (last, missed)
}

/// The name of the Job for an activation: the CronJob's name and the minutes since the
/// epoch, so one activation never makes two Jobs.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp() / 60)
}

impl CronJobController {
    fn jobs_api(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn delete_job(&self, cj: &CronJob, job: &Job) -> crate::Result<()> {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match self
            .jobs_api(&job.namespace().unwrap_or_default())
            .delete(&job.name_any(), &dp)
            .await
        {
            Ok(_) => {
                self.recorder.normal(
                    &Involved::of(cj),
                    "SuccessfulDelete",
                    format!("Deleted job {}", job.name_any()),
                );
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the oldest finished Jobs beyond the successful and failed history limits.
    async fn cleanup(&self, cj: &CronJob, jobs: &[Arc<Job>]) -> crate::Result<()> {
        let spec = cj.spec.clone().unwrap_or_default();
        for (kind, limit) in [
            ("Complete", spec.successful_jobs_history_limit),
            ("Failed", spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Arc<Job>> =
                jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
            done.sort_by_key(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .or(j.metadata.creation_timestamp.as_ref())
                    .map(|t| t.0)
            });
            let excess = done.len().saturating_sub(limit.max(0) as usize);
            for j in &done[..excess] {
                self.delete_job(cj, j).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Reconcile for CronJobController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(cached) = self.cronjobs.get(key) else {
            return Ok(None);
        };
        let mut cj = (*cached).clone();
        let ns = cj.namespace().unwrap_or_default();
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .list_namespace(&ns)
            .into_iter()
            .filter(|j| podutil::controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        let mut status = cj.status.clone().unwrap_or_default();
        // Active jobs: the unfinished ones; finished ones leave the list once.
        let before = status.clone();
        let mut active: Vec<ObjectReference> = Vec::new();
        for j in &jobs {
            match finished(j) {
                None => active.push(ObjectReference {
                    api_version: Some("batch/v1".into()),
                    kind: Some("Job".into()),
                    name: j.metadata.name.clone(),
                    namespace: j.metadata.namespace.clone(),
                    uid: j.metadata.uid.clone(),
                    resource_version: j.metadata.resource_version.clone(),
                    ..Default::default()
                }),
                Some(kind) => {
                    let was_active = before
                        .active
                        .iter()
                        .flatten()
                        .any(|r| r.uid == j.metadata.uid);
                    if was_active {
                        self.recorder.normal(
                            &Involved::of(&cj),
                            "SawCompletedJob",
                            format!("Saw completed job: {}, condition: {kind}", j.name_any()),
                        );
                    }
                    if kind == "Complete"
                        && let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.clone())
                        && status
                            .last_successful_time
                            .as_ref()
                            .is_none_or(|l| l.0 < t.0)
                    {
                        status.last_successful_time = Some(t);
                    }
                }
            }
        }
        active.sort_by(|a, b| a.name.cmp(&b.name));
        status.active = (!active.is_empty()).then_some(active);
        let write_status = |cj: &mut CronJob, status| {
            cj.status = Some(status);
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
            let (name, body) = (cj.name_any(), cj.clone());
            async move {
                api.replace_status(&name, &PostParams::default(), &body)
                    .await
            }
        };
        if status != before {
            cj = write_status(&mut cj, status.clone()).await?;
        }
        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        self.cleanup(&cj, &jobs).await?;
        let spec = cj.spec.clone().unwrap_or_default();
        if spec.suspend.unwrap_or(false) {
            return Ok(None);
        }
        let sched = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.recorder.warning(
                    &Involved::of(&cj),
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        let tz: Tz = match spec.time_zone.as_deref() {
            None => Tz::UTC,
            Some(name) => match name.parse() {
                Ok(tz) => tz,
                Err(_) => {
                    self.recorder.warning(
                        &Involved::of(&cj),
                        "UnknownTimeZone",
                        format!("invalid timeZone: {name:?}"),
                    );
                    return Ok(None);
                }
            },
        };
        let now = Utc::now();
        let created = cj
            .metadata
            .creation_timestamp
            .as_ref()
            .map(podutil::to_chrono)
            .unwrap_or(now);
        let mut since = status
            .last_schedule_time
            .as_ref()
            .map(podutil::to_chrono)
            .unwrap_or(created);
        if let Some(deadline) = spec.starting_deadline_seconds {
            since = since.max(now - chrono::Duration::seconds(deadline));
        }
        let next_wake = |from: DateTime<Utc>| {
            sched
                .next_after(from, tz)
                .map(|n| (n - now).to_std().unwrap_or_default() + Duration::from_millis(100))
        };
        let (scheduled, missed) = most_recent(&sched, tz, since, now);
        if missed > MAX_MISSED {
            self.recorder.warning(&Involved::of(&cj), "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into());
        }
        let Some(scheduled) = scheduled else {
            return Ok(next_wake(now));
        };
        if let Some(deadline) = spec.starting_deadline_seconds
            && scheduled + chrono::Duration::seconds(deadline) < now
        {
            self.recorder.warning(
                &Involved::of(&cj),
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.to_rfc3339()
                ),
            );
            return Ok(next_wake(now));
        }
        let name = job_name(&cj.name_any(), scheduled);
        if jobs.iter().any(|j| j.name_any() == name) {
            return Ok(next_wake(now));
        }
        let running: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished(j).is_none()).collect();
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !running.is_empty() => {
                tracing::debug!(
                    cronjob = key,
                    "not starting a job: the previous one is still running (Forbid)"
                );
                return Ok(next_wake(now));
            }
            Some("Replace") => {
                for j in &running {
                    self.delete_job(&cj, j).await?;
                }
            }
            _ => {}
        }
        let template = spec.job_template.clone();
        let mut job = Job {
            metadata: template.metadata.clone().unwrap_or_default(),
            spec: template.spec.clone(),
            status: None,
        };
        job.metadata.name = Some(name.clone());
        job.metadata.namespace = Some(ns.clone());
        job.metadata.owner_references = Some(vec![podutil::owner_ref_to(&cj)]);
        job.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                SCHEDULED_TIMESTAMP.into(),
                scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        match self
            .jobs_api(&ns)
            .create(&PostParams::default(), &job)
            .await
        {
            Ok(created) => {
                self.recorder.normal(
                    &Involved::of(&cj),
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                );
                let mut status = cj.status.clone().unwrap_or_default();
                status
                    .active
                    .get_or_insert_with(Vec::new)
                    .push(ObjectReference {
                        api_version: Some("batch/v1".into()),
                        kind: Some("Job".into()),
                        name: Some(name),
                        namespace: Some(ns.clone()),
                        uid: created.metadata.uid.clone(),
                        resource_version: created.metadata.resource_version.clone(),
                        ..Default::default()
                    });
                status.last_schedule_time = Some(to_time(scheduled));
                write_status(&mut cj, status).await?;
            }
            Err(e) if is_already_exists(&e) => {}
            Err(e) => {
                self.recorder.warning(
                    &Involved::of(&cj),
                    "FailedCreate",
                    format!("Error creating job: {}", api_message(&e)),
                );
                return Err(e.into());
            }
        }
        Ok(next_wake(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_missed_activation_runs_once() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let since: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: DateTime<Utc> = "2026-01-01T00:17:00Z".parse().unwrap();
        let (last, missed) = most_recent(&s, Tz::UTC, since, now);
        assert_eq!(last, Some("2026-01-01T00:15:00Z".parse().unwrap()));
        assert_eq!(missed, 3);
        assert_eq!(
            job_name("backup", last.unwrap()),
            format!("backup-{}", last.unwrap().timestamp() / 60)
        );
        let (none, _) = most_recent(&s, Tz::UTC, now, now + chrono::Duration::minutes(2));
        assert_eq!(none, None);
    }
}
