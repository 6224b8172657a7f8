//! The Job controller: runs a Job's pods to completion. It creates up to `parallelism`
//! pods (one per pending index for Indexed Jobs), counts finished pods exactly once through
//! the batch.kubernetes.io/job-tracking finalizer and status.uncountedTerminatedPods, retries
//! failures with backoff up to backoffLimit, applies the pod failure policy, enforces
//! activeDeadlineSeconds and suspend, and reports the Complete or Failed condition.

pub mod logic;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::json;

use crate::controllers::podutil;
use crate::runtime::expectations::Expectations;
use crate::runtime::pod_control::{PodControl, pod_from_template};
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};
use common::api_errors::is_not_found;
use logic::Action;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

pub struct JobController {
    client: kube::Client,
    jobs: Arc<Informer<Job>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    pod_control: PodControl,
    recorder: Arc<Recorder>,
    backoff_base: Duration,
    /// When each Job last saw a new pod failure (the retry backoff counts from it).
    last_failure: Mutex<HashMap<String, Instant>>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let expectations: Arc<Expectations> = Arc::default();
    let recorder = ctx.recorder("job-controller");
    let c = Arc::new(JobController {
        client: ctx.client.clone(),
        jobs: ctx.informers.get::<Job>(),
        pods: ctx.informers.get::<Pod>(),
        queue: WorkQueue::new("job"),
        expectations: expectations.clone(),
        pod_control: PodControl::new(ctx.client.clone(), recorder.clone(), expectations),
        recorder,
        backoff_base: ctx.options.job_backoff_base,
        last_failure: Mutex::new(HashMap::new()),
    });
    c.queue.follow(&c.jobs);
    // A pod still holding the tracking finalizer whose Job is gone (deleted, or recreated
    // under the same name) wakes that Job's key, whose sync lets the pod go: upstream's
    // orphan-pod handling. Without it such pods stay Terminating forever.
    let orphans = c.clone();
    c.pods.on_change(move |change| {
        let (Change::Added(p) | Change::Updated { new: p, .. }) = change else {
            return;
        };
        if has_finalizer(p)
            && orphans.owner_key(p).is_none()
            && let Some(r) = podutil::controller_ref(&p.metadata).filter(|r| r.kind == "Job")
        {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            orphans.queue.add(format!("{ns}/{}", r.name));
        }
    });
    let me = c.clone();
    crate::runtime::expectations::track_owned_pods(
        &c.pods,
        c.queue.clone(),
        c.expectations.clone(),
        move |p| me.owner_key(p),
    );
    let workers = ctx.options.concurrent_job_syncs;
    Ok(crate::runtime::run_workers(c.queue.clone(), c, workers))
}

fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn condition_true(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Finished: a Complete or Failed condition is True.
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .is_some_and(|s| condition_true(s, "Complete") || condition_true(s, "Failed"))
}

fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) -> bool {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == value && c.reason.as_deref() == Some(reason) {
            return false;
        }
        if c.status != value {
            c.last_transition_time = Some(now_time());
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(now_time());
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now_time()),
        last_transition_time: Some(now_time()),
    });
    true
}

fn has_finalizer(p: &Pod) -> bool {
    p.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

fn index_of(p: &Pod) -> Option<i32> {
    p.annotations().get(INDEX_ANNOTATION)?.parse().ok()
}

fn finished_phase(p: &Pod) -> Option<bool> {
    match podutil::phase(p) {
        "Succeeded" => Some(true),
        "Failed" => Some(false),
        _ => None,
    }
}

impl JobController {
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        podutil::resolve_controller_ref(&self.jobs, &pod.metadata).map(|job| key_of(&*job))
    }

    fn pods_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn remove_finalizer(&self, pod: &Pod) -> crate::Result<()> {
        let keep: Vec<&String> = pod
            .finalizers()
            .iter()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": keep, "resourceVersion": pod.metadata.resource_version}});
        match self
            .pods_api(&pod.namespace().unwrap_or_default())
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the tracking finalizer of pods controlled by a Job named as `key` that is not
    /// the Job of uid `live` (gone, or an earlier Job of that name): nothing will count them.
    async fn release_orphans(&self, key: &str, live: Option<&str>) -> crate::Result<()> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let orphans: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| has_finalizer(p))
            .filter(|p| {
                podutil::controller_ref(&p.metadata).is_some_and(|r| {
                    r.kind == "Job" && r.name == name && Some(r.uid.as_str()) != live
                })
            })
            .collect();
        for p in orphans {
            self.remove_finalizer(&p).await?;
        }
        Ok(())
    }

    /// The pod the Job creates, for `index` when the Job is Indexed.
    fn new_pod(&self, job: &Job, index: Option<i32>) -> Pod {
        let spec = job.spec.clone().unwrap_or_default();
        let mut pod = pod_from_template(job, &spec.template);
        pod.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(TRACKING_FINALIZER.into());
        if let Some(i) = index {
            let name = job.name_any();
            pod.metadata.generate_name = Some(format!("{name}-{i}-"));
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(INDEX_ANNOTATION.into(), i.to_string());
            pod.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(INDEX_ANNOTATION.into(), i.to_string());
            if let Some(ps) = pod.spec.as_mut() {
                if ps.hostname.is_none() {
                    ps.hostname = Some(format!("{name}-{i}"));
                }
                let env = EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.annotations['{INDEX_ANNOTATION}']"),
                        }),
                        ..Default::default()
                    }),
                };
                for c in ps
                    .init_containers
                    .iter_mut()
                    .flatten()
                    .chain(ps.containers.iter_mut())
                {
                    c.env.get_or_insert_with(Vec::new).push(env.clone());
                }
            }
        }
        pod
    }

    /// Creates one pod per entry of `indexes` (None for a NonIndexed Job).
    async fn create_pods(
        &self,
        key: &str,
        job: &Job,
        indexes: Vec<Option<i32>>,
    ) -> crate::Result<()> {
        let pods = indexes.into_iter().map(|i| self.new_pod(job, i)).collect();
        self.pod_control.create_pods(key, job, pods).await
    }

    async fn write_status(&self, job: &Job, status: JobStatus) -> crate::Result<()> {
        if job.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut updated = job.clone();
        updated.status = Some(status);
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        api.replace_status(&job.name_any(), &PostParams::default(), &updated)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Reconcile for JobController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(job) = self.jobs.get(key) else {
            self.expectations.forget(key);
            self.last_failure.lock().remove(key);
            self.release_orphans(key, None).await?;
            return Ok(None);
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        self.release_orphans(key, Some(&uid)).await?;
        let ns = job.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| podutil::controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        if is_finished(&job) || job.metadata.deletion_timestamp.is_some() {
            // Finished, or being deleted: whatever is still tracked is let go.
            for p in pods.iter().filter(|p| has_finalizer(p)) {
                self.remove_finalizer(p).await?;
            }
            return Ok(None);
        }
        if !self.expectations.satisfied(key) {
            return Ok(None);
        }
        let spec = job.spec.clone().unwrap_or_default();
        let mut status = job.status.clone().unwrap_or_default();
        let now = chrono::Utc::now();
        let suspended = spec.suspend.unwrap_or(false);
        if status.start_time.is_none() && !suspended {
            status.start_time = Some(now_time());
        }
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let mut completed: BTreeSet<i32> =
            logic::parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));

        // Count each finished pod once: record its uid as uncounted, drop its finalizer, then
        // move it into succeeded/failed. A crash between the steps neither loses nor repeats
        // a count.
        let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let mut fail_job: Option<(&str, String)> = None;
        let mut to_release: Vec<&Arc<Pod>> = Vec::new();
        let mut new_failures = 0;
        for p in &pods {
            if !has_finalizer(p) {
                continue;
            }
            let puid = p.metadata.uid.clone().unwrap_or_default();
            match finished_phase(p) {
                Some(true) => {
                    let list = uncounted.succeeded.get_or_insert_with(Vec::new);
                    if !list.contains(&puid) {
                        list.push(puid);
                    }
                    to_release.push(p);
                }
                Some(false) => {
                    match logic::failure_action(&job, p) {
                        Action::Ignore => {}
                        Action::FailJob(msg) => {
                            fail_job.get_or_insert(("PodFailurePolicy", msg));
                            let list = uncounted.failed.get_or_insert_with(Vec::new);
                            if !list.contains(&puid) {
                                list.push(puid);
                                new_failures += 1;
                            }
                        }
                        Action::Count => {
                            let list = uncounted.failed.get_or_insert_with(Vec::new);
                            if !list.contains(&puid) {
                                list.push(puid);
                                new_failures += 1;
                            }
                        }
                    }
                    to_release.push(p);
                }
                // Deleted before finishing: it no longer counts and may go.
                None if p.metadata.deletion_timestamp.is_some() => to_release.push(p),
                None => {}
            }
        }
        if new_failures > 0 {
            self.last_failure
                .lock()
                .insert(key.to_owned(), Instant::now());
        }
        if uncounted != status.uncounted_terminated_pods.clone().unwrap_or_default() {
            status.uncounted_terminated_pods = Some(uncounted.clone());
            self.write_status(&job, status.clone()).await?;
            // The status write bumps the Job; the next sync continues from here.
            return Ok(None);
        }
        for p in &to_release {
            self.remove_finalizer(p).await?;
        }
        // Now count what was recorded: every uncounted pod has lost its finalizer.
        let by_uid: HashMap<&str, &Arc<Pod>> = pods
            .iter()
            .filter_map(|p| Some((p.metadata.uid.as_deref()?, p)))
            .collect();
        let succeeded_now = uncounted.succeeded.take().unwrap_or_default();
        let failed_now = uncounted.failed.take().unwrap_or_default();
        status.succeeded = Some(status.succeeded.unwrap_or(0) + succeeded_now.len() as i32);
        status.failed = Some(status.failed.unwrap_or(0) + failed_now.len() as i32);
        for uid in &succeeded_now {
            if let Some(i) = by_uid.get(uid.as_str()).and_then(|p| index_of(p)) {
                completed.insert(i);
            }
        }
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());

        let active: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| finished_phase(p).is_none() && p.metadata.deletion_timestamp.is_none())
            .collect();
        let terminating = pods
            .iter()
            .filter(|p| finished_phase(p).is_none() && p.metadata.deletion_timestamp.is_some())
            .count() as i32;
        let succeeded = status.succeeded.unwrap_or(0);
        let failed = status.failed.unwrap_or(0);
        let parallelism = spec.parallelism.unwrap_or(1);
        let completions = spec.completions;

        // Failure: backoff limit, deadline, or the pod failure policy.
        if fail_job.is_none() && failed > spec.backoff_limit.unwrap_or(6) {
            fail_job = Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ));
        }
        let mut requeue = None;
        if let (Some(ads), Some(start)) = (spec.active_deadline_seconds, status.start_time.as_ref())
        {
            let deadline = podutil::to_chrono(start) + chrono::Duration::seconds(ads);
            if fail_job.is_none() && !suspended && now >= deadline {
                fail_job = Some((
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline".into(),
                ));
            } else if now < deadline {
                requeue = (deadline - now).to_std().ok();
            }
        }
        let complete = if indexed {
            completions.is_some_and(|c| (0..c).all(|i| completed.contains(&i)))
        } else {
            match completions {
                Some(c) => succeeded >= c,
                None => succeeded > 0 && active.is_empty(),
            }
        };
        let job_ref = &*job;
        if let Some((reason, message)) = &fail_job {
            if set_condition(&mut status, "FailureTarget", "True", reason, message) {
                self.recorder
                    .warning(&Involved::of(job_ref), reason, message.clone());
            }
            self.pod_control.delete_pods(key, job_ref, &active).await?;
            if terminating == 0 {
                set_condition(&mut status, "Failed", "True", reason, message);
            }
        } else if complete {
            set_condition(
                &mut status,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            self.pod_control.delete_pods(key, job_ref, &active).await?;
            if terminating == 0 && active.is_empty() {
                set_condition(
                    &mut status,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                status.completion_time = Some(now_time());
                self.recorder
                    .normal(&Involved::of(job_ref), "Completed", "Job completed".into());
            }
        } else if suspended {
            self.pod_control.delete_pods(key, job_ref, &active).await?;
            set_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
            );
        } else {
            if status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Suspended" && c.status == "True")
            {
                set_condition(
                    &mut status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                );
            }
            // Replacements for failures wait out the backoff.
            let wait = self
                .last_failure
                .lock()
                .get(key)
                .map(|at| logic::backoff(self.backoff_base, failed).saturating_sub(at.elapsed()))
                .unwrap_or_default();
            if !wait.is_zero() {
                requeue = Some(requeue.map_or(wait, |r: Duration| r.min(wait)));
            } else if indexed {
                let running: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
                let room = (parallelism - active.len() as i32).max(0) as usize;
                let pending: Vec<Option<i32>> = (0..completions.unwrap_or(0))
                    .filter(|i| !completed.contains(i) && !running.contains(i))
                    .take(room)
                    .map(Some)
                    .collect();
                self.create_pods(key, job_ref, pending).await?;
            } else {
                let want = logic::want_active(parallelism, completions, succeeded);
                let have = active.len() as i32;
                if want > have {
                    self.create_pods(key, job_ref, vec![None; (want - have) as usize])
                        .await?;
                } else if want < have {
                    // Newest first.
                    let mut extra = active.clone();
                    extra.sort_by_key(|p| {
                        std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
                    });
                    extra.truncate((have - want) as usize);
                    self.pod_control.delete_pods(key, job_ref, &extra).await?;
                }
            }
        }
        status.active = Some(active.len() as i32);
        status.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
        status.terminating = Some(terminating);
        if indexed {
            status.completed_indexes = Some(logic::format_indexes(&completed));
        }
        self.write_status(&job, status).await?;
        Ok(requeue)
    }
}
