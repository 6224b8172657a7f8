//! The garbage collector: watches every deletable kind, keeps the owner-reference graph,
//! and deletes objects whose owners are gone (background cascade), deletes blocking
//! dependents before their owner (foreground cascade, the `foregroundDeletion` finalizer),
//! and frees dependents of an owner deleted with orphaning (the `orphan` finalizer).
//!
//! Kinds come and go while it runs (CustomResourceDefinitions): discovery is repeated every
//! 30 s, as upstream's, and at once (at most every few seconds) when a reference names a
//! kind it does not know; new kinds get a monitor, kinds no longer served lose theirs.

pub mod graph;

use common::api_errors::is_conflict;
use common::informer::{Change, Informer, Running};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::discovery::verbs;
use kube::runtime::watcher;
use parking_lot::{Mutex, RwLock};
use serde_json::json;

use crate::runtime::discovery::{Resources, Served};
use crate::runtime::{Context, Reconcile, Requeue, WorkQueue, run_workers};
use common::api_errors::is_not_found;
use graph::{FOREGROUND, Graph, Identity, Node, ORPHAN, Work};

/// Kinds the collector leaves alone: events come and go by the thousand and are never
/// owners (upstream ignores them too).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// How often the served kinds are discovered again (upstream's resync of its monitors).
const REDISCOVERY: Duration = Duration::from_secs(30);
/// The least time between two discoveries asked for by unknown kinds.
const REDISCOVERY_MIN: Duration = Duration::from_secs(2);

pub struct GarbageCollector {
    client: kube::Client,
    resources: RwLock<Arc<Resources>>,
    /// One informer per monitored kind, by "plural.group"; dropping one stops it.
    monitors: Mutex<HashMap<String, Running>>,
    /// Wakes the rediscovery loop early (a reference named an unknown kind).
    rediscover: tokio::sync::Notify,
    graph: Mutex<Graph>,
    delete_queue: Arc<WorkQueue>,
    orphan_queue: Arc<WorkQueue>,
}

/// Starts the garbage collector: discovers the kinds, watches them, and once each has
/// been listed runs the delete and orphan workers.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    let client = ctx.client.clone();
    let workers = ctx.options.concurrent_gc_syncs;
    Ok(Box::pin(async move {
        let resources = loop {
            match Resources::discover(&client).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collector: discovery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let gc = Arc::new(GarbageCollector {
            client,
            resources: RwLock::new(Arc::new(resources)),
            monitors: Mutex::new(HashMap::new()),
            rediscover: tokio::sync::Notify::new(),
            graph: Mutex::new(Graph::default()),
            delete_queue: WorkQueue::new("garbage_collector_attempt_to_delete"),
            orphan_queue: WorkQueue::new("garbage_collector_attempt_to_orphan"),
        });
        let informers = gc.sync_monitors();
        for informer in &informers {
            informer.wait_for_sync().await;
        }
        let work = gc.graph.lock().mark_synced();
        gc.enqueue(work);
        tracing::info!(objects = gc.graph.lock().len(), "garbage collector synced");
        let deleter = Arc::new(Deleter(gc.clone()));
        let orphaner = Arc::new(Orphaner(gc.clone()));
        futures::join!(
            run_workers(gc.delete_queue.clone(), deleter, workers),
            run_workers(gc.orphan_queue.clone(), orphaner, workers),
            gc.clone().keep_discovering(),
        );
        gc.monitors.lock().clear();
    }))
}

/// Whether the collector watches a kind: it can be listed, watched and deleted.
fn monitored(s: &Served) -> bool {
    s.supports(verbs::LIST)
        && s.supports(verbs::WATCH)
        && s.supports(verbs::DELETE)
        && !IGNORED.contains(&(s.resource.group.as_str(), s.resource.plural.as_str()))
}

fn node_of(served: &Served, o: &DynamicObject) -> Option<Node> {
    let m = &o.metadata;
    Some(Node {
        identity: Identity {
            api_version: served.resource.api_version.clone(),
            kind: served.resource.kind.clone(),
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone()?,
            uid: m.uid.clone()?,
        },
        owners: m.owner_references.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
    })
}

impl GarbageCollector {
    fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            match w {
                Work::AttemptToDelete(uid) => self.delete_queue.add(uid),
                Work::AttemptToOrphan(uid) => self.orphan_queue.add(uid),
            }
        }
    }

    /// Feeds the graph from one kind's informer. An object replaced by another of the same
    /// name while the watch was lost leaves the graph under its own uid.
    fn observe(&self, served: &Served, change: &Change<'_, DynamicObject>) {
        let mut graph = self.graph.lock();
        let mut work = Vec::new();
        if let Change::Updated { old, new } = change
            && old.metadata.uid != new.metadata.uid
            && let Some(uid) = &old.metadata.uid
        {
            work.extend(graph.remove(uid));
        }
        match change {
            Change::Added(o) | Change::Updated { new: o, .. } => {
                if let Some(node) = node_of(served, o) {
                    work.extend(graph.apply(node));
                }
            }
            Change::Deleted(o) => {
                if let Some(uid) = &o.metadata.uid {
                    work.extend(graph.remove(uid));
                }
            }
        }
        drop(graph);
        self.enqueue(work);
    }

    /// Starts a monitor for every monitored kind that has none, stops those of kinds no
    /// longer served; answers the new informers.
    fn sync_monitors(self: &Arc<Self>) -> Vec<Arc<Informer<DynamicObject>>> {
        let resources = self.resources.read().clone();
        let wanted: HashMap<String, &Served> = resources
            .all
            .iter()
            .filter(|s| monitored(s))
            .map(|s| (s.group_resource(), s))
            .collect();
        let mut monitors = self.monitors.lock();
        monitors.retain(|name, _| {
            let keep = wanted.contains_key(name);
            if !keep {
                tracing::info!(resource = %name, "garbage collector: no longer monitoring");
            }
            keep
        });
        let mut started = Vec::new();
        for (name, served) in wanted {
            if monitors.contains_key(&name) {
                continue;
            }
            let served = served.clone();
            let informer = Informer::<DynamicObject>::new();
            let observer = self.clone();
            let api = served.api(&self.client, "");
            informer.on_change(move |change| observer.observe(&served, change));
            monitors.insert(name, informer.spawn(api, watcher::Config::default()));
            started.push(informer);
        }
        started
    }

    /// Discovers the served kinds again every [`REDISCOVERY`], or sooner when asked.
    async fn keep_discovering(self: Arc<Self>) {
        let mut last = Instant::now();
        loop {
            let _ = tokio::time::timeout(REDISCOVERY, self.rediscover.notified()).await;
            let since = last.elapsed();
            if since < REDISCOVERY_MIN {
                tokio::time::sleep(REDISCOVERY_MIN - since).await;
            }
            last = Instant::now();
            match Resources::discover(&self.client).await {
                Ok(resources) => {
                    *self.resources.write() = Arc::new(resources);
                    let started = self.sync_monitors();
                    if !started.is_empty() {
                        tracing::info!(
                            kinds = started.len(),
                            "garbage collector: monitoring new kinds"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
            }
        }
    }

    /// The resource serving a reference's kind; an unknown kind asks for discovery.
    fn resolve(&self, api_version: &str, kind: &str) -> Option<Served> {
        let found = self.resources.read().find(api_version, kind).cloned();
        if found.is_none() {
            self.rediscover.notify_one();
        }
        found
    }

    fn served(&self, id: &Identity) -> crate::Result<Served> {
        self.resolve(&id.api_version, &id.kind).ok_or_else(|| {
            crate::Error::Invalid(format!("no resource serves {} {}", id.api_version, id.kind))
        })
    }

    /// The object as the apiserver has it now, if it still is the one the graph means.
    async fn live(&self, id: &Identity) -> crate::Result<Option<DynamicObject>> {
        let api = self.served(id)?.api(&self.client, &id.namespace);
        Ok(api
            .get_opt(&id.name)
            .await?
            .filter(|o| o.metadata.uid.as_deref() == Some(id.uid.as_str())))
    }

    async fn patch_meta(&self, id: &Identity, meta: serde_json::Value) -> crate::Result<()> {
        let api = self.served(id)?.api(&self.client, &id.namespace);
        match api
            .patch(
                &id.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "metadata": meta })),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, id: &Identity, policy: PropagationPolicy) -> crate::Result<()> {
        tracing::info!(kind = %id.kind, namespace = %id.namespace, name = %id.name, ?policy, "garbage collecting");
        let api = self.served(id)?.api(&self.client, &id.namespace);
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(id.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&id.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()), // replaced by a new object
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an owner is solid (exists), waiting (deleting its dependents first) or
    /// dangling (gone, or replaced by an object with another uid).
    async fn owner_state(
        &self,
        dependent: &Identity,
        owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> crate::Result<OwnerState> {
        if let Some(n) = self.graph.lock().node(&owner.uid) {
            return Ok(if n.deleting_dependents() {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            });
        }
        // Not in the graph: ask the apiserver (the watch may lag).
        let Some(served) = self.resolve(&owner.api_version, &owner.kind) else {
            // A kind we cannot resolve is never assumed gone: tried again (with backoff)
            // once discovery may have found it.
            return Err(crate::Error::Invalid(format!(
                "no resource serves {} {} yet",
                owner.api_version, owner.kind
            )));
        };
        let ns = if served.namespaced() {
            dependent.namespace.as_str()
        } else {
            ""
        };
        let found = served.api(&self.client, ns).get_opt(&owner.name).await?;
        Ok(match found {
            Some(o) if o.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                let fg = o
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND);
                if o.metadata.deletion_timestamp.is_some() && fg {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    async fn attempt_to_delete(&self, uid: &str) -> crate::Result<Requeue> {
        let Some(node) = self.graph.lock().node(uid).cloned() else {
            return Ok(None);
        };
        let Some(live) = self.live(&node.identity).await? else {
            return Ok(None);
        };
        let finalizers = live.metadata.finalizers.clone().unwrap_or_default();
        if live.metadata.deletion_timestamp.is_some() {
            if finalizers.iter().any(|f| f == FOREGROUND) {
                return self.process_deleting_dependents(&node, &live).await;
            }
            return Ok(None);
        }
        let owners = live.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(None);
        }
        let (mut solid, mut gone) = (0, Vec::new());
        let mut waiting = false;
        for o in &owners {
            match self.owner_state(&node.identity, o).await? {
                OwnerState::Solid => solid += 1,
                OwnerState::Waiting => {
                    waiting = true;
                    gone.push(o.uid.clone());
                }
                OwnerState::Dangling => gone.push(o.uid.clone()),
            }
        }
        if solid > 0 {
            if !gone.is_empty() {
                // Still owned by someone: drop only the references to owners that are gone.
                let keep: Vec<_> = owners
                    .into_iter()
                    .filter(|o| !gone.contains(&o.uid))
                    .collect();
                self.patch_meta(
                    &node.identity,
                    json!({
                        "ownerReferences": keep,
                        "resourceVersion": live.metadata.resource_version,
                    }),
                )
                .await?;
            }
            return Ok(None);
        }
        let has_dependents = !self.graph.lock().dependents(uid).is_empty();
        let policy = if waiting && has_dependents {
            PropagationPolicy::Foreground
        } else if finalizers.iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if finalizers.iter().any(|f| f == FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        self.delete(&node.identity, policy).await?;
        Ok(None)
    }

    /// An owner deleted in the foreground: once no dependent blocks it, its
    /// foregroundDeletion finalizer is removed (and the apiserver deletes it).
    async fn process_deleting_dependents(
        &self,
        node: &Node,
        live: &DynamicObject,
    ) -> crate::Result<Requeue> {
        let uid = &node.identity.uid;
        let blocking: Vec<Node> = self
            .graph
            .lock()
            .dependents(uid)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| &o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .collect();
        if blocking.is_empty() {
            let finalizers: Vec<String> = live
                .metadata
                .finalizers
                .iter()
                .flatten()
                .filter(|f| *f != FOREGROUND)
                .cloned()
                .collect();
            self.patch_meta(
                &node.identity,
                json!({
                    "finalizers": finalizers,
                    "resourceVersion": live.metadata.resource_version,
                }),
            )
            .await?;
            return Ok(None);
        }
        for d in blocking {
            if !d.deleting {
                self.delete_queue.add(d.identity.uid.clone());
            }
        }
        Ok(None)
    }

    /// An owner deleted with orphaning: its dependents lose the reference, then the owner
    /// loses its orphan finalizer.
    async fn attempt_to_orphan(&self, uid: &str) -> crate::Result<Requeue> {
        let Some(node) = self.graph.lock().node(uid).cloned() else {
            return Ok(None);
        };
        let dependents = self.graph.lock().dependents(uid);
        for d in dependents {
            let Some(live) = self.live(&d.identity).await? else {
                continue;
            };
            let refs = live.metadata.owner_references.clone().unwrap_or_default();
            if !refs.iter().any(|r| r.uid == uid) {
                continue;
            }
            let keep: Vec<_> = refs.into_iter().filter(|r| r.uid != uid).collect();
            self.patch_meta(
                &d.identity,
                json!({
                    "ownerReferences": keep,
                    "resourceVersion": live.metadata.resource_version,
                }),
            )
            .await?;
        }
        let Some(live) = self.live(&node.identity).await? else {
            return Ok(None);
        };
        let finalizers: Vec<String> = live
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != ORPHAN)
            .cloned()
            .collect();
        self.patch_meta(
            &node.identity,
            json!({
                "finalizers": finalizers,
                "resourceVersion": live.metadata.resource_version,
            }),
        )
        .await?;
        Ok(None)
    }
}

enum OwnerState {
    Solid,
    Waiting,
    Dangling,
}

struct Deleter(Arc<GarbageCollector>);

#[async_trait]
impl Reconcile for Deleter {
    async fn sync(&self, uid: &str) -> crate::Result<Requeue> {
        self.0.attempt_to_delete(uid).await
    }
}

struct Orphaner(Arc<GarbageCollector>);

#[async_trait]
impl Reconcile for Orphaner {
    async fn sync(&self, uid: &str) -> crate::Result<Requeue> {
        self.0.attempt_to_orphan(uid).await
    }
}
