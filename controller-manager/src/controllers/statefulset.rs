//! The StatefulSet controller: pods with stable names (`web-0`, `web-1`, ...), hostnames
//! under the governing Service, and PersistentVolumeClaims from volumeClaimTemplates that
//! outlive them. OrderedReady creates in order and removes in reverse, one at a time, each
//! waiting for its predecessors to be Running and Ready; Parallel does it all at once. A
//! RollingUpdate replaces pods from the highest ordinal down to the partition, one at a time.

use common::api_errors::is_already_exists;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};

use crate::controllers::history::{self, REVISION_HASH_LABEL};
use crate::controllers::podutil;
use crate::runtime::pod_control::pod_from_template;
use crate::runtime::worker::api_message;
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};
use common::api_errors::is_not_found;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What the planner needs to know of one pod.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub revision: String,
    pub running_ready: bool,
    pub terminating: bool,
    pub failed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Create(i32),
    Delete(String),
}

/// The writes for one sync, in upstream's order: fill ordinals [0, replicas), remove
/// higher ones, then roll pods not at `update_revision` from the top down to `partition`.
/// `ordered` (OrderedReady) stops at the first pod that is not Running and Ready.
pub fn plan(
    replicas: i32,
    ordered: bool,
    members: &BTreeMap<i32, Member>,
    update_revision: &str,
    partition: Option<i32>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for i in 0..replicas {
        match members.get(&i) {
            None => {
                steps.push(Step::Create(i));
                if ordered {
                    return steps;
                }
            }
            Some(m) if m.failed && !m.terminating => {
                steps.push(Step::Delete(m.name.clone()));
                if ordered {
                    return steps;
                }
            }
            Some(m) if ordered && (m.terminating || !m.running_ready) => return steps,
            Some(_) => {}
        }
    }
    let condemned: Vec<&Member> = members.range(replicas..).rev().map(|(_, m)| m).collect();
    for m in condemned {
        if m.terminating {
            if ordered {
                return steps;
            }
            continue;
        }
        steps.push(Step::Delete(m.name.clone()));
        if ordered {
            return steps;
        }
    }
    if !steps.is_empty() {
        return steps;
    }
    if let Some(partition) = partition {
        for i in (partition.max(0)..replicas).rev() {
            let Some(m) = members.get(&i) else {
                return steps;
            };
            if m.revision != update_revision && !m.terminating {
                steps.push(Step::Delete(m.name.clone()));
                return steps;
            }
            if m.terminating || !m.running_ready {
                return steps;
            }
        }
    }
    steps
}

/// The ordinal in a pod name `<set>-<n>`.
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

pub struct StatefulSetController {
    client: kube::Client,
    sets: Arc<Informer<StatefulSet>>,
    pods: Arc<Informer<Pod>>,
    revisions: Arc<Informer<ControllerRevision>>,
    recorder: Arc<Recorder>,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let c = Arc::new(StatefulSetController {
        client: ctx.client.clone(),
        sets: ctx.informers.get::<StatefulSet>(),
        pods: ctx.informers.get::<Pod>(),
        revisions: ctx.informers.get::<ControllerRevision>(),
        recorder: ctx.recorder("statefulset-controller"),
    });
    let queue = WorkQueue::new("statefulset");
    queue.follow(&c.sets);
    let (q, sets) = (queue.clone(), c.sets.clone());
    c.pods.on_change(move |change| {
        let (Change::Added(p) | Change::Deleted(p) | Change::Updated { new: p, .. }) = change;
        if let Some(r) = podutil::controller_ref(&p.metadata).filter(|r| r.kind == "StatefulSet") {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            if sets
                .get_in(ns, &r.name)
                .is_some_and(|s| s.metadata.uid.as_deref() == Some(r.uid.as_str()))
            {
                q.add(format!("{ns}/{}", r.name));
            }
        }
    });
    Ok(crate::runtime::run_workers(queue, c, 5))
}

impl StatefulSetController {
    /// Creates the claims for ordinal `i` that do not exist yet.
    async fn ensure_claims(&self, set: &StatefulSet, i: i32) -> crate::Result<()> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let selector_labels = set
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default();
        for t in set
            .spec
            .iter()
            .flat_map(|s| s.volume_claim_templates.iter().flatten())
        {
            let name = format!("{}-{}-{i}", t.name_any(), set.name_any());
            if api.get_opt(&name).await?.is_some() {
                continue;
            }
            let mut pvc = t.clone();
            pvc.metadata.name = Some(name.clone());
            pvc.metadata.namespace = Some(ns.clone());
            pvc.metadata.resource_version = None;
            pvc.metadata.uid = None;
            let labels = pvc.metadata.labels.get_or_insert_with(Default::default);
            labels.extend(selector_labels.clone());
            pvc.status = None;
            match api.create(&PostParams::default(), &pvc).await {
                Ok(_) => self.recorder.normal(
                    &Involved::of(set),
                    "SuccessfulCreate",
                    format!(
                        "create Claim {name} Pod {}-{i} in StatefulSet {} success",
                        set.name_any(),
                        set.name_any()
                    ),
                ),
                Err(e) if is_already_exists(&e) => {}
                Err(e) => {
                    self.recorder.warning(
                        &Involved::of(set),
                        "FailedCreate",
                        format!(
                            "create Claim {name} for Pod {}-{i} in StatefulSet {} failed error: {}",
                            set.name_any(),
                            set.name_any(),
                            api_message(&e)
                        ),
                    );
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn new_pod(&self, set: &StatefulSet, i: i32, revision: &str) -> Pod {
        let spec = set.spec.clone().unwrap_or_default();
        let mut pod = pod_from_template(set, &spec.template);
        let name = format!("{}-{i}", set.name_any());
        pod.metadata.generate_name = None;
        pod.metadata.name = Some(name.clone());
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        labels.insert(POD_NAME_LABEL.into(), name.clone());
        labels.insert(POD_INDEX_LABEL.into(), i.to_string());
        labels.insert(REVISION_HASH_LABEL.into(), revision.into());
        if let Some(ps) = pod.spec.as_mut() {
            ps.hostname = Some(name);
            if !spec.service_name.as_deref().unwrap_or("").is_empty() {
                ps.subdomain = spec.service_name.clone();
            }
            for t in spec.volume_claim_templates.iter().flatten() {
                let vol = Volume {
                    name: t.name_any(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: format!("{}-{}-{i}", t.name_any(), set.name_any()),
                        read_only: None,
                    }),
                    ..Default::default()
                };
                let vols = ps.volumes.get_or_insert_with(Vec::new);
                vols.retain(|v| v.name != vol.name);
                vols.push(vol);
            }
        }
        pod
    }
}

#[async_trait]
impl Reconcile for StatefulSetController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(set) = self.sets.get(key) else {
            return Ok(None);
        };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let spec = set.spec.clone().unwrap_or_default();
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let (update_revision, _) =
            history::ensure_current(&self.client, &self.revisions, &*set, &spec.template, labels)
                .await?;
        let name = set.name_any();
        let ns = set.namespace().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| podutil::controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        let mut members = BTreeMap::new();
        for p in &pods {
            let Some(i) = ordinal(&name, &p.name_any()) else {
                continue;
            };
            members.insert(
                i,
                Member {
                    name: p.name_any(),
                    revision: p
                        .labels()
                        .get(REVISION_HASH_LABEL)
                        .cloned()
                        .unwrap_or_default(),
                    running_ready: podutil::phase(p) == "Running" && podutil::is_ready(p),
                    terminating: p.metadata.deletion_timestamp.is_some(),
                    failed: podutil::phase(p) == "Failed",
                },
            );
        }
        let replicas = spec.replicas.unwrap_or(1);
        let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let partition = (strategy.type_.as_deref() != Some("OnDelete")).then(|| {
            strategy
                .rolling_update
                .as_ref()
                .and_then(|r| r.partition)
                .unwrap_or(0)
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        for step in plan(replicas, ordered, &members, &update_revision, partition) {
            match step {
                Step::Create(i) => {
                    self.ensure_claims(&set, i).await?;
                    let pod = self.new_pod(&set, i, &update_revision);
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(_) => self.recorder.normal(
                            &Involved::of(&*set),
                            "SuccessfulCreate",
                            format!("create Pod {name}-{i} in StatefulSet {name} successful"),
                        ),
                        Err(e) if is_already_exists(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Step::Delete(pod) => match api.delete(&pod, &DeleteParams::default()).await {
                    Ok(_) => self.recorder.normal(
                        &Involved::of(&*set),
                        "SuccessfulDelete",
                        format!("delete Pod {pod} in StatefulSet {name} successful"),
                    ),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                },
            }
        }
        // Status from what the cache shows now.
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let now = chrono::Utc::now();
        let old = set.status.clone().unwrap_or_default();
        let live: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
        let updated = count(&|p| p.labels().get(REVISION_HASH_LABEL) == Some(&update_revision));
        let mut current_revision = old
            .current_revision
            .clone()
            .unwrap_or_else(|| update_revision.clone());
        if updated == replicas && live.len() as i32 == replicas {
            current_revision = update_revision.clone();
        }
        let nonzero = |n: i32| (n != 0).then_some(n);
        let status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            replicas: live.len() as i32,
            ready_replicas: nonzero(count(&|p| podutil::is_ready(p))),
            available_replicas: nonzero(count(&|p| podutil::is_available(p, min_ready, now))),
            current_replicas: nonzero(count(&|p| {
                p.labels().get(REVISION_HASH_LABEL) == Some(&current_revision)
            })),
            updated_replicas: nonzero(updated),
            current_revision: Some(current_revision),
            update_revision: Some(update_revision),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
        };
        if set.status.as_ref() != Some(&status) {
            let mut s = (*set).clone();
            s.status = Some(status);
            let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
            sets.replace_status(&name, &PostParams::default(), &s)
                .await?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, rev: &str, ready: bool) -> Member {
        Member {
            name: name.into(),
            revision: rev.into(),
            running_ready: ready,
            terminating: false,
            failed: false,
        }
    }

    fn members(list: &[(i32, Member)]) -> BTreeMap<i32, Member> {
        list.iter().cloned().collect()
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_in_order() {
        assert_eq!(
            plan(3, true, &BTreeMap::new(), "r1", Some(0)),
            [Step::Create(0)]
        );
        let one = members(&[(0, m("web-0", "r1", false))]);
        assert!(
            plan(3, true, &one, "r1", Some(0)).is_empty(),
            "waits for web-0 to be ready"
        );
        let one_ready = members(&[(0, m("web-0", "r1", true))]);
        assert_eq!(plan(3, true, &one_ready, "r1", Some(0)), [Step::Create(1)]);
        // Parallel: everything at once.
        assert_eq!(
            plan(3, false, &BTreeMap::new(), "r1", Some(0)),
            [Step::Create(0), Step::Create(1), Step::Create(2)]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let three = members(&[
            (0, m("web-0", "r1", true)),
            (1, m("web-1", "r1", true)),
            (2, m("web-2", "r1", true)),
        ]);
        assert_eq!(
            plan(1, true, &three, "r1", Some(0)),
            [Step::Delete("web-2".into())]
        );
        assert_eq!(
            plan(1, false, &three, "r1", Some(0)),
            [Step::Delete("web-2".into()), Step::Delete("web-1".into())]
        );
    }

    #[test]
    fn rolling_update_goes_top_down_and_respects_the_partition() {
        let old = members(&[
            (0, m("web-0", "r1", true)),
            (1, m("web-1", "r1", true)),
            (2, m("web-2", "r1", true)),
        ]);
        assert_eq!(
            plan(3, true, &old, "r2", Some(0)),
            [Step::Delete("web-2".into())]
        );
        let mut half = old.clone();
        half.insert(2, m("web-2", "r2", false));
        assert!(
            plan(3, true, &half, "r2", Some(0)).is_empty(),
            "waits for web-2 to be ready again"
        );
        half.insert(2, m("web-2", "r2", true));
        assert_eq!(
            plan(3, true, &half, "r2", Some(0)),
            [Step::Delete("web-1".into())]
        );
        assert!(
            plan(3, true, &half, "r2", Some(2)).is_empty(),
            "ordinals below the partition stay"
        );
        assert!(
            plan(3, true, &old, "r2", None).is_empty(),
            "OnDelete never deletes"
        );
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "webx-1"), None);
    }
}
