//! The DaemonSet controller: one pod on every node the pod template fits (node selector,
//! required node affinity, taints), pinned to its node by node affinity so the default
//! scheduler binds it; pods on nodes that stop fitting are deleted. Templates are tracked as
//! ControllerRevisions; a RollingUpdate replaces old pods at most maxUnavailable at a time.

pub mod logic;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::controllers::deployment::util::scaled;
use crate::controllers::history::{self, REVISION_HASH_LABEL};
use crate::controllers::podutil;
use crate::runtime::expectations::Expectations;
use crate::runtime::pod_control::{PodControl, pod_from_template};
use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue, key_of};

pub struct DaemonSetController {
    client: kube::Client,
    daemonsets: Arc<Informer<DaemonSet>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    pod_control: PodControl,
}

pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let expectations: Arc<Expectations> = Arc::default();
    let c = Arc::new(DaemonSetController {
        client: ctx.client.clone(),
        daemonsets: ctx.informers.get::<DaemonSet>(),
        pods: ctx.informers.get::<Pod>(),
        nodes: ctx.informers.get::<Node>(),
        revisions: ctx.informers.get::<ControllerRevision>(),
        queue: WorkQueue::new("daemonset"),
        expectations: expectations.clone(),
        pod_control: PodControl::new(
            ctx.client.clone(),
            ctx.recorder("daemonset-controller"),
            expectations,
        ),
    });
    c.queue.follow(&c.daemonsets);
    let me = c.clone();
    crate::runtime::expectations::track_owned_pods(
        &c.pods,
        c.queue.clone(),
        c.expectations.clone(),
        move |p| me.owner_key(p),
    );
    // A node appearing, going, or changing labels or taints may change where daemon pods
    // belong; its status heartbeats do not.
    let (q, dss) = (c.queue.clone(), c.daemonsets.clone());
    c.nodes.on_change(move |change| {
        let relevant = match change {
            Change::Added(_) | Change::Deleted(_) => true,
            Change::Updated { old, new } => {
                old.metadata.labels != new.metadata.labels
                    || old.spec.as_ref().map(|s| &s.taints) != new.spec.as_ref().map(|s| &s.taints)
            }
        };
        if relevant {
            for d in dss.list() {
                q.add(key_of(&*d));
            }
        }
    });
    Ok(crate::runtime::run_workers(c.queue.clone(), c, 2))
}

fn available(pod: &Pod, min_ready: i32) -> bool {
    podutil::is_available(pod, min_ready, chrono::Utc::now())
}

impl DaemonSetController {
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        podutil::resolve_controller_ref(&self.daemonsets, &pod.metadata).map(|ds| key_of(&*ds))
    }

    /// Creates the daemon pods of revision `hash` on `nodes`.
    async fn create_on(
        &self,
        key: &str,
        ds: &DaemonSet,
        hash: &str,
        nodes: &[String],
    ) -> crate::Result<()> {
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let generation = ds.metadata.generation.unwrap_or(0).to_string();
        let pods = nodes
            .iter()
            .map(|node| {
                let mut pod = pod_from_template(ds, &template);
                let labels = pod.metadata.labels.get_or_insert_with(Default::default);
                labels.insert(REVISION_HASH_LABEL.into(), hash.into());
                labels.insert("pod-template-generation".into(), generation.clone());
                if let Some(spec) = pod.spec.as_mut() {
                    logic::add_default_tolerations(spec);
                    logic::pin_to_node(spec, node);
                }
                pod
            })
            .collect();
        self.pod_control.create_pods(key, ds, pods).await
    }
}

#[async_trait]
impl Reconcile for DaemonSetController {
    async fn sync(&self, key: &str) -> crate::Result<Requeue> {
        let Some(ds) = self.daemonsets.get(key) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let spec = ds.spec.clone().unwrap_or_default();
        let template = spec.template.clone();
        let pod_spec = template.spec.clone().unwrap_or_default();
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let (hash, _) =
            history::ensure_current(&self.client, &self.revisions, &*ds, &template, labels).await?;
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let ns = ds.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| podutil::controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in &pods {
            let node = p
                .spec
                .as_ref()
                .and_then(logic::target_node)
                .unwrap_or_default();
            by_node.entry(node).or_default().push(p.clone());
        }
        let nodes = self.nodes.list();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let (mut create, mut delete) = (Vec::new(), Vec::new());
        let mut status = DaemonSetStatus {
            observed_generation: ds.metadata.generation,
            ..Default::default()
        };
        // Nodes the pods run on and whether they should: (node, its pod if any).
        let mut placed: Vec<Arc<Pod>> = Vec::new();
        for node in &nodes {
            let name = node.name_any();
            let mut here = by_node.remove(&name).unwrap_or_default();
            if !logic::should_run(&pod_spec, node) {
                if !here.is_empty() {
                    status.number_misscheduled += here.len() as i32;
                    delete.extend(here);
                }
                continue;
            }
            status.desired_number_scheduled += 1;
            // Failed pods are replaced; extras beyond one are removed, oldest kept.
            let (failed, mut live): (Vec<_>, Vec<_>) =
                here.drain(..).partition(|p| podutil::phase(p) == "Failed");
            delete.extend(failed);
            live.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            if live.is_empty() {
                create.push(name);
                continue;
            }
            delete.extend(live.drain(1..));
            status.current_number_scheduled += 1;
            placed.push(live.remove(0));
        }
        // Pods whose node is gone.
        delete.extend(by_node.into_values().flatten());
        let (mut number_available, mut updated) = (0, 0);
        for p in &placed {
            if podutil::is_ready(p) {
                status.number_ready += 1;
            }
            if available(p, min_ready) {
                number_available += 1;
            }
            if p.labels().get(REVISION_HASH_LABEL) == Some(&hash) {
                updated += 1;
            }
        }
        let number_unavailable = status.desired_number_scheduled - number_available;
        let nonzero = |n: i32| (n != 0).then_some(n);
        status.number_available = nonzero(number_available);
        status.updated_number_scheduled = nonzero(updated);
        status.number_unavailable = nonzero(number_unavailable);
        if self.expectations.satisfied(key) {
            self.create_on(key, &ds, &hash, &create).await?;
            self.pod_control.delete_pods(key, &*ds, &delete).await?;
            // Rolling update: old pods go, at most maxUnavailable nodes short at a time.
            let strategy = spec.update_strategy.clone().unwrap_or_default();
            if strategy.type_.as_deref() != Some("OnDelete")
                && create.is_empty()
                && delete.is_empty()
            {
                // Upstream defaults maxUnavailable to 1.
                let max_unavailable = match strategy
                    .rolling_update
                    .as_ref()
                    .and_then(|r| r.max_unavailable.as_ref())
                {
                    None => 1,
                    Some(v) => scaled(Some(v), status.desired_number_scheduled, true),
                };
                let mut unavailable = number_unavailable;
                let mut replace = Vec::new();
                let mut old: Vec<&Arc<Pod>> = placed
                    .iter()
                    .filter(|p| p.labels().get(REVISION_HASH_LABEL) != Some(&hash))
                    .collect();
                // Unavailable old pods cost nothing to replace; do them first.
                old.sort_by_key(|p| available(p, min_ready));
                for p in old {
                    if !available(p, min_ready) {
                        replace.push(p.clone());
                    } else if unavailable < max_unavailable {
                        unavailable += 1;
                        replace.push(p.clone());
                    }
                }
                self.pod_control.delete_pods(key, &*ds, &replace).await?;
            }
        }
        status.collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
        status.conditions = ds.status.as_ref().and_then(|s| s.conditions.clone());
        if ds.status.as_ref() != Some(&status) {
            let mut updated = (*ds).clone();
            updated.status = Some(status.clone());
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
            api.replace_status(&ds.name_any(), &PostParams::default(), &updated)
                .await?;
        }
        if min_ready > 0 && status.number_ready != number_available {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }
}
