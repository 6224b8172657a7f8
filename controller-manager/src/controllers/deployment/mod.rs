//! The Deployment controller: owns ReplicaSets (one per pod template, named after the
//! template's hash), rolls from the old ones to the new one by the Deployment's strategy,
//! keeps revision history for `kubectl rollout history` / `undo`, and reports the status
//! and conditions `kubectl rollout status` reads.

pub mod rollout;
pub mod util;

use common::api_errors::is_already_exists;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use common::selector::LabelSelector;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::controllers::podutil::{self, Claim, claim};
use crate::runtime::worker::api_message;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};
use common::api_errors::is_not_found;
use rollout::ReplicaSets;
use util::{REVISION, replicas, rs_replicas};

pub struct DeploymentController {
    client: kube::Client,
    deployments: Arc<Informer<Deployment>>,
    replicasets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
    recorder: Arc<Recorder>,
}

/// Starts the Deployment controller; the returned future runs its workers.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(DeploymentController {
        client: ctx.client.clone(),
        deployments: ctx.informers.get::<Deployment>(),
        replicasets: ctx.informers.get::<ReplicaSet>(),
        pods: ctx.informers.get::<Pod>(),
        queue: WorkQueue::new("deployment"),
        recorder: ctx.recorder("deployment-controller"),
    });
    c.queue.follow(&c.deployments);
    let me = c.clone();
    c.replicasets
        .on_change(move |change| me.on_replicaset(change));
    let me = c.clone();
    c.pods.on_change(move |change| {
        if let Change::Deleted(pod) = change {
            me.on_pod_deleted(pod)
        }
    });
    let workers = ctx.options.concurrent_deployment_syncs;
    Ok(crate::runtime::run_workers(c.queue.clone(), c, workers))
}

fn selector(d: &Deployment) -> Option<LabelSelector> {
    let v = serde_json::to_value(&d.spec.as_ref()?.selector).ok()?;
    LabelSelector::from_label_selector_json(&v).ok()
}

impl DeploymentController {
    /// The key of the Deployment that controls `meta`'s object, if it is cached.
    fn owner_key(
        &self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Option<String> {
        podutil::resolve_controller_ref(&self.deployments, meta).map(|d| key_of(&*d))
    }

    fn queue_matching(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        for d in self.deployments.list_namespace(ns) {
            if selector(&d).is_some_and(|s| s.matches_map(&labels)) {
                self.queue.add(key_of(&*d));
            }
        }
    }

    fn on_replicaset(&self, change: &Change<'_, ReplicaSet>) {
        match change {
            Change::Added(rs) => match self.owner_key(&rs.metadata) {
                Some(k) => self.queue.add(k),
                None if podutil::controller_ref(&rs.metadata).is_none() => self.queue_matching(rs),
                None => {}
            },
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let (ok, nk) = (self.owner_key(&old.metadata), self.owner_key(&new.metadata));
                if ok != nk
                    && let Some(k) = ok
                {
                    self.queue.add(k);
                }
                match nk {
                    Some(k) => self.queue.add(k),
                    None if podutil::controller_ref(&new.metadata).is_none()
                        && old.metadata.labels != new.metadata.labels =>
                    {
                        self.queue_matching(new)
                    }
                    None => {}
                }
            }
            Change::Deleted(rs) => {
                if let Some(k) = self.owner_key(&rs.metadata) {
                    self.queue.add(k);
                }
            }
        }
    }

    /// Recreate waits for old pods to be gone; their deletion may be what it waits for.
    fn on_pod_deleted(&self, pod: &Pod) {
        let Some(r) = podutil::controller_ref(&pod.metadata) else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(rs) = self.replicasets.get_in(ns, &r.name) else {
            return;
        };
        if let Some(k) = self.owner_key(&rs.metadata)
            && self
                .deployments
                .get(&k)
                .is_some_and(|d| util::is_recreate(&d))
        {
            self.queue.add(k);
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The ReplicaSets this Deployment owns, adopting matching orphans and releasing
    /// owned ones that stopped matching.
    async fn claim_replicasets(&self, d: &Deployment) -> Vec<ReplicaSet> {
        let ns = d.namespace().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let sel = selector(d);
        let mut out = Vec::new();
        for rs in self.replicasets.list_namespace(&ns) {
            let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
            match claim(&uid, deleting, sel.as_ref(), &owner_view(&rs)) {
                Claim::Keep => out.push((*rs).clone()),
                Claim::Ignore => {}
                Claim::Adopt => {
                    refs.push(podutil::owner_ref_to(d));
                    if let Some(rs) = self.patch_owner_refs(&rs, refs).await {
                        out.push(rs);
                    }
                }
                Claim::Release => {
                    refs.retain(|r| r.uid != uid);
                    self.patch_owner_refs(&rs, refs).await;
                }
            }
        }
        out
    }

    async fn patch_owner_refs(
        &self,
        rs: &ReplicaSet,
        refs: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    ) -> Option<ReplicaSet> {
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}});
        self.rs_api(&rs.namespace().unwrap_or_default())
            .patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .inspect_err(|e| tracing::debug!(rs = %rs.name_any(), error = %e, "changing owner references failed"))
            .ok()
    }

    /// Splits the ReplicaSets into the new one and the old ones, bringing the new one's
    /// revision and annotations up to date; creates it when `create` and it is missing.
    async fn get_all(
        &self,
        d: &mut Deployment,
        all: Vec<ReplicaSet>,
        create: bool,
    ) -> crate::Result<ReplicaSets> {
        let mut set = ReplicaSets {
            new: util::find_new(d, &all),
            all,
        };
        let max_old = set
            .old()
            .iter()
            .map(|&i| util::revision(&set.all[i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let ns = d.namespace().unwrap_or_default();
        if let Some(i) = set.new {
            let mut rs = set.all[i].clone();
            let annotated = util::set_new_rs_annotations(d, &mut rs, new_revision, true);
            let min_ready = util::min_ready_seconds(d);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready;
            spec.min_ready_seconds = Some(min_ready);
            if annotated || min_ready_changed {
                set.all[i] = self
                    .rs_api(&ns)
                    .replace(&rs.name_any(), &PostParams::default(), &rs)
                    .await?;
            }
            self.set_deployment_revision(d, util::revision(&set.all[i]))
                .await?;
            if util::has_progress_deadline(d) {
                let status = d.status.get_or_insert_with(Default::default);
                if util::get_condition(status, "Progressing").is_none() {
                    let msg = format!("Found new replica set {:?}", set.all[i].name_any());
                    let c = util::condition(
                        "Progressing",
                        "True",
                        util::FOUND_NEW_RS,
                        msg,
                        chrono::Utc::now(),
                    );
                    util::set_condition(status, c);
                    self.write_status(d).await?;
                }
            }
            return Ok(set);
        }
        if !create {
            return Ok(set);
        }
        self.create_new_rs(d, &mut set, new_revision).await?;
        Ok(set)
    }

    async fn create_new_rs(
        &self,
        d: &mut Deployment,
        set: &mut ReplicaSets,
        new_revision: i64,
    ) -> crate::Result<()> {
        let ns = d.namespace().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::template_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs_selector = spec.selector.clone();
        rs_selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some(format!("{}-{hash}", d.name_any()));
        rs.metadata.namespace = Some(ns.clone());
        rs.metadata.owner_references = Some(vec![podutil::owner_ref_to(&*d)]);
        rs.metadata.labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
        rs.spec = Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: Some(util::min_ready_seconds(d)),
            selector: rs_selector,
            template: Some(template.clone()),
        });
        set.all.push(rs);
        let i = set.all.len() - 1;
        set.new = Some(i);
        let target = rollout::new_rs_target(d, set, &set.all[i]);
        util::set_rs_replicas(&mut set.all[i], target);
        util::set_new_rs_annotations(d, &mut set.all[i], new_revision, false);
        let name = set.all[i].name_any();
        let now = chrono::Utc::now();
        let mut already_existed = false;
        match self
            .rs_api(&ns)
            .create(&PostParams::default(), &set.all[i])
            .await
        {
            Ok(created) => set.all[i] = created,
            Err(e) if is_already_exists(&e) => {
                // Created by an earlier sync our cache has not seen, or a hash collision.
                let existing = self.rs_api(&ns).get(&name).await?;
                let ours = podutil::controller_ref(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| util::equal_ignore_hash(t, &spec.template));
                if ours && same {
                    set.all[i] = existing;
                    already_existed = true;
                } else {
                    let status = d.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(collision.unwrap_or(0) + 1);
                    self.write_status(d).await?;
                    crate::error::unfinished!(
                        "hash collision for replica set {name}; retrying with a new name"
                    );
                }
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {name:?}: {}",
                    api_message(&e)
                );
                self.recorder
                    .warning(&Involved::of(&*d), "FailedCreate", msg.clone());
                if util::has_progress_deadline(d) {
                    let status = d.status.get_or_insert_with(Default::default);
                    util::set_condition(
                        status,
                        util::condition("Progressing", "False", "ReplicaSetCreateError", msg, now),
                    );
                    self.write_status(d).await?;
                }
                return Err(e.into());
            }
        }
        if !already_existed && target > 0 {
            self.recorder.normal(
                &Involved::of(&*d),
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {target}"),
            );
        }
        self.set_deployment_revision(d, new_revision).await?;
        if !already_existed && util::has_progress_deadline(d) {
            let status = d.status.get_or_insert_with(Default::default);
            let msg = format!("Created new replica set {name:?}");
            util::set_condition(
                status,
                util::condition("Progressing", "True", util::NEW_RS_CREATED, msg, now),
            );
            self.write_status(d).await?;
        }
        Ok(())
    }

    /// Records the new ReplicaSet's revision on the Deployment (what `rollout history` and
    /// `describe` show).
    async fn set_deployment_revision(
        &self,
        d: &mut Deployment,
        revision: i64,
    ) -> crate::Result<()> {
        let rev = revision.to_string();
        if d.annotations().get(REVISION) == Some(&rev) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        let ns = d.namespace().unwrap_or_default();
        let updated = self
            .api(&ns)
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        // Keep the status we are building; take the new metadata (resourceVersion).
        d.metadata = updated.metadata;
        Ok(())
    }

    async fn write_status(&self, d: &mut Deployment) -> crate::Result<()> {
        let ns = d.namespace().unwrap_or_default();
        let updated = self
            .api(&ns)
            .replace_status(&d.name_any(), &PostParams::default(), d)
            .await?;
        *d = updated;
        Ok(())
    }

    /// Writes the ReplicaSets at `changed` whose size or replica annotations differ from
    /// `before`, recording a ScalingReplicaSet event for each size change.
    async fn apply(
        &self,
        d: &Deployment,
        before: &ReplicaSets,
        set: &mut ReplicaSets,
        changed: &[usize],
    ) -> crate::Result<()> {
        let max = replicas(d) + util::max_surge(d);
        for &i in changed {
            let rs = &mut set.all[i];
            let annotated = util::set_replicas_annotations(rs, replicas(d), max);
            let (from, to) = (rs_replicas(&before.all[i]), rs_replicas(rs));
            if from == to && !annotated {
                continue;
            }
            let written = self
                .rs_api(&rs.namespace().unwrap_or_default())
                .replace(&rs.name_any(), &PostParams::default(), rs)
                .await?;
            if from != to {
                let dir = if to > from { "up" } else { "down" };
                self.recorder.normal(
                    &Involved::of(d),
                    "ScalingReplicaSet",
                    format!(
                        "Scaled {dir} replica set {} from {from} to {to}",
                        written.name_any()
                    ),
                );
            }
            *rs = written;
        }
        Ok(())
    }

    /// Deletes old ReplicaSets beyond revisionHistoryLimit.
    async fn cleanup(&self, d: &Deployment, set: &ReplicaSets) -> crate::Result<()> {
        for i in rollout::history_to_delete(d, set) {
            let rs = &set.all[i];
            tracing::debug!(rs = %rs.name_any(), "deleting old replica set beyond revisionHistoryLimit");
            match self
                .rs_api(&rs.namespace().unwrap_or_default())
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes the status the ReplicaSets add up to (no Progressing bookkeeping).
    async fn sync_status(&self, d: &mut Deployment, set: &ReplicaSets) -> crate::Result<Requeue> {
        let status = util::calculate_status(d, &set.refs(), set.new_rs(), chrono::Utc::now());
        if d.status.as_ref() != Some(&status) {
            d.status = Some(status);
            self.write_status(d).await?;
        }
        Ok(None)
    }

    /// Writes the status with the Progressing condition (progressing, complete or timed
    /// out) and ReplicaFailure mirrored from the ReplicaSets; asks to be looked at again
    /// when the progress deadline would pass.
    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        set: &ReplicaSets,
    ) -> crate::Result<Requeue> {
        let now = chrono::Utc::now();
        let mut status = util::calculate_status(d, &set.refs(), set.new_rs(), now);
        if !util::has_progress_deadline(d) {
            util::remove_condition(&mut status, "Progressing");
        }
        let current = util::get_condition(&status, "Progressing").cloned();
        let complete_already = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(util::NEW_RS_AVAILABLE);
        if util::has_progress_deadline(d) && !complete_already {
            let rs_name = set.new_rs().map(|rs| rs.name_any());
            if util::is_complete(d, &status) {
                let msg = format!(
                    "ReplicaSet {:?} has successfully progressed.",
                    rs_name.unwrap_or_default()
                );
                util::set_condition(
                    &mut status,
                    util::condition("Progressing", "True", util::NEW_RS_AVAILABLE, msg, now),
                );
            } else if util::is_progressing(d, &status) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => format!("Deployment {:?} is progressing.", d.name_any()),
                };
                let mut c = util::condition("Progressing", "True", util::RS_UPDATED, msg, now);
                if let Some(cur) = &current
                    && cur.status == "True"
                {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                util::remove_condition(&mut status, "Progressing");
                status.conditions.get_or_insert_with(Vec::new).push(c);
            } else if util::is_timed_out(d, &status, now) {
                let msg = format!(
                    "ReplicaSet {:?} has timed out progressing.",
                    rs_name.unwrap_or_default()
                );
                util::set_condition(
                    &mut status,
                    util::condition("Progressing", "False", util::TIMED_OUT, msg, now),
                );
            }
        }
        let failure = set.all.iter().find_map(|rs| {
            rs.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
                .cloned()
        });
        match failure {
            Some(f) => util::set_condition(
                &mut status,
                util::condition(
                    "ReplicaFailure",
                    &f.status,
                    f.reason.as_deref().unwrap_or(""),
                    f.message.unwrap_or_default(),
                    now,
                ),
            ),
            None => util::remove_condition(&mut status, "ReplicaFailure"),
        }
        if d.status.as_ref() == Some(&status) {
            return Ok(requeue_stuck(d, &status, now));
        }
        d.status = Some(status);
        self.write_status(d).await?;
        Ok(None)
    }

    /// Sets Progressing to DeploymentPaused / DeploymentResumed when spec.paused flips.
    async fn check_paused_conditions(&self, d: &mut Deployment) -> crate::Result<()> {
        if !util::has_progress_deadline(d) {
            return Ok(());
        }
        let status = d.status.get_or_insert_with(Default::default);
        let cur = util::get_condition(status, "Progressing").and_then(|c| c.reason.clone());
        if cur.as_deref() == Some(util::TIMED_OUT) {
            return Ok(());
        }
        let paused_cond = cur.as_deref() == Some(util::PAUSED);
        let now = chrono::Utc::now();
        let c = if util::is_paused(d) && !paused_cond {
            util::condition(
                "Progressing",
                "Unknown",
                util::PAUSED,
                "Deployment is paused".into(),
                now,
            )
        } else if !util::is_paused(d) && paused_cond {
            util::condition(
                "Progressing",
                "Unknown",
                util::RESUMED,
                "Deployment is resumed".into(),
                now,
            )
        } else {
            return Ok(());
        };
        let status = d.status.get_or_insert_with(Default::default);
        util::set_condition(status, c);
        self.write_status(d).await
    }

    async fn sync_scale(&self, d: &mut Deployment, rss: Vec<ReplicaSet>) -> crate::Result<Requeue> {
        let mut set = self.get_all(d, rss, false).await?;
        let before = set.clone();
        let changed = rollout::scale(d, &mut set);
        self.apply(d, &before, &mut set, &changed).await?;
        if util::is_paused(d) {
            self.cleanup(d, &set).await?;
        }
        self.sync_status(d, &set).await
    }

    async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
    ) -> crate::Result<Requeue> {
        let mut set = self.get_all(d, rss, true).await?;
        let before = set.clone();
        if rollout::reconcile_new(d, &mut set) {
            let new = set.new.into_iter().collect::<Vec<_>>();
            self.apply(d, &before, &mut set, &new).await?;
            return self.sync_rollout_status(d, &set).await;
        }
        let changed = rollout::reconcile_old(d, &mut set);
        if !changed.is_empty() {
            self.apply(d, &before, &mut set, &changed).await?;
            return self.sync_rollout_status(d, &set).await;
        }
        if d.status.as_ref().is_some_and(|s| util::is_complete(d, s)) {
            self.cleanup(d, &set).await?;
        }
        self.sync_rollout_status(d, &set).await
    }

    /// Whether any pod of an old ReplicaSet may still be running.
    fn old_pods_running(&self, set: &ReplicaSets) -> bool {
        let old = set.old();
        if old
            .iter()
            .any(|&i| set.all[i].status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return true;
        }
        let uids: Vec<&str> = old
            .iter()
            .filter_map(|&i| set.all[i].metadata.uid.as_deref())
            .collect();
        let ns = set
            .all
            .first()
            .and_then(|rs| rs.namespace())
            .unwrap_or_default();
        self.pods.list_namespace(&ns).iter().any(|p| {
            podutil::controller_ref(&p.metadata).is_some_and(|r| uids.contains(&r.uid.as_str()))
                && !matches!(podutil::phase(p), "Succeeded" | "Failed")
        })
    }

    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rss: Vec<ReplicaSet>,
    ) -> crate::Result<Requeue> {
        let mut set = self.get_all(d, rss, false).await?;
        let before = set.clone();
        let changed = rollout::scale_down_old_for_recreate(&mut set);
        if !changed.is_empty() {
            self.apply(d, &before, &mut set, &changed).await?;
            return self.sync_rollout_status(d, &set).await;
        }
        if self.old_pods_running(&set) {
            return self.sync_rollout_status(d, &set).await;
        }
        if set.new.is_none() {
            set = self.get_all(d, set.all, true).await?;
        }
        let before = set.clone();
        if let Some(i) = set.new
            && rs_replicas(&set.all[i]) != replicas(d)
        {
            util::set_rs_replicas(&mut set.all[i], replicas(d));
            self.apply(d, &before, &mut set, &[i]).await?;
        }
        if d.status.as_ref().is_some_and(|s| util::is_complete(d, s)) {
            self.cleanup(d, &set).await?;
        }
        self.sync_rollout_status(d, &set).await
    }
}

/// A pod-shaped view of a ReplicaSet's metadata, so the pod claiming rules apply to it.
fn owner_view(rs: &ReplicaSet) -> Pod {
    Pod {
        metadata: rs.metadata.clone(),
        ..Default::default()
    }
}

/// When to look at a rollout again so that a missed progress deadline is noticed.
fn requeue_stuck(
    d: &Deployment,
    status: &k8s_openapi::api::apps::v1::DeploymentStatus,
    now: chrono::DateTime<chrono::Utc>,
) -> Requeue {
    if !util::has_progress_deadline(d) || util::is_complete(d, status) {
        return None;
    }
    let cur = util::get_condition(status, "Progressing")?;
    if cur.reason.as_deref() == Some(util::TIMED_OUT) {
        return None;
    }
    let deadline = d.spec.as_ref()?.progress_deadline_seconds?;
    let updated = util::progress_updated(status)?;
    let after = (updated + chrono::Duration::seconds(deadline.into()) - now)
        .to_std()
        .unwrap_or_default();
    Some(after.max(Duration::from_secs(1)) + Duration::from_secs(1))
}

#[async_trait]
impl Reconcile for DeploymentController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(cached) = self.deployments.get(key) else {
            return Ok(None);
        };
        let mut d = (*cached).clone();
        if selector(&d).is_none_or(|s| s.is_everything()) {
            self.recorder.warning(
                &Involved::of(&d),
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            return Ok(None);
        }
        let rss = self.claim_replicasets(&d).await;
        if d.metadata.deletion_timestamp.is_some() {
            let set = self.get_all(&mut d, rss, false).await?;
            return self.sync_status(&mut d, &set).await;
        }
        self.check_paused_conditions(&mut d).await?;
        if util::is_paused(&d) {
            return self.sync_scale(&mut d, rss).await;
        }
        let probe = ReplicaSets {
            new: util::find_new(&d, &rss),
            all: rss,
        };
        if rollout::is_scaling_event(&d, &probe) {
            return self.sync_scale(&mut d, probe.all).await;
        }
        if util::is_recreate(&d) {
            self.rollout_recreate(&mut d, probe.all).await
        } else {
            self.rollout_rolling(&mut d, probe.all).await
        }
    }
}
