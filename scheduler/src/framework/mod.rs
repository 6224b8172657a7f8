//! The scheduling framework: one trait per extension point, the per-cycle state plugins
//! share, and the Framework that runs a profile's plugins in upstream's order.
//!
//! A plugin is one struct implementing [`Plugin`] plus the point traits it takes part in;
//! its `as_*` methods tell the framework which. Filter and Score run once per node on the
//! hot path, so they take shared references, allocate nothing on success and read their
//! PreFilter/PreScore results from [`CycleState`] by type.

pub mod interner;
pub mod label_class;
pub mod registry;
pub mod runtime;
pub mod status;
pub mod types;

use std::any::{Any, TypeId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use registry::Registry;
pub use runtime::{Diagnosis, Framework, NodeScore};
pub use status::{Code, Status};
pub use types::{NodeInfo, PodInfo, Resource};

use crate::cache::Snapshot;

/// Data plugins keep for one scheduling cycle, keyed by its type (each plugin's state type
/// is its own). A few entries: a linear scan beats hashing.
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
    /// Plugins that returned Skip at PreFilter or PreScore; their Filter or Score is not run.
    pub skip_filter: HashSet<&'static str>,
    pub skip_score: HashSet<&'static str>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        match self.entries.iter_mut().find(|(t, _)| *t == id) {
            Some(slot) => slot.1 = Box::new(value),
            None => self.entries.push((id, Box::new(value))),
        }
    }

    pub fn read<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    pub fn read_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_mut())
    }

    /// A copy for preemption's what-if runs; plugin states that support it are cloned.
    pub fn clone_with(
        &self,
        clone: impl Fn(&dyn Any) -> Option<Box<dyn Any + Send + Sync>>,
    ) -> CycleState {
        CycleState {
            entries: self
                .entries
                .iter()
                .filter_map(|(t, v)| clone(v.as_ref()).map(|c| (*t, c)))
                .collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
        }
    }
}

/// A kind of object whose changes may make unschedulable pods schedulable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResource {
    Pod,
    /// The pod that was rejected was itself updated (its labels, gates, requests...).
    UnscheduledPod,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
    Namespace,
}

/// What happened to the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionType {
    Add,
    Update,
    Delete,
}

/// A cluster event a plugin asks to be told about, as upstream's ClusterEvent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    pub resource: EventResource,
    pub actions: &'static [ActionType],
}

impl ClusterEvent {
    pub const fn new(resource: EventResource, actions: &'static [ActionType]) -> ClusterEvent {
        ClusterEvent { resource, actions }
    }

    pub fn matches(&self, resource: EventResource, action: ActionType) -> bool {
        self.resource == resource && self.actions.contains(&action)
    }
}

/// Every action, for plugins that care about any change of a kind.
pub const ALL: &[ActionType] = &[ActionType::Add, ActionType::Update, ActionType::Delete];

/// The nodes PreFilter narrowed the search to (None: all nodes).
pub type PreFilterResult = Option<HashSet<String>>;

/// What the scheduler can ask of the cluster (the API in production, nothing in the
/// in-process benchmark).
#[async_trait]
pub trait ClusterClient: Send + Sync {
    /// POST pods/binding.
    async fn bind(&self, pod: &PodInfo, node: &str) -> Result<(), String>;
    /// Deletes a preemption victim.
    async fn delete_pod(&self, pod: &PodInfo) -> Result<(), String>;
    /// Sets status.nominatedNodeName (empty clears it).
    async fn nominate(&self, pod: &PodInfo, node: &str) -> Result<(), String>;
    /// Sets the PodScheduled=False condition with this reason and message.
    async fn mark_unschedulable(
        &self,
        _pod: &PodInfo,
        _reason: &str,
        _message: &str,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Records an Event about the pod; never blocks (dropped when the writer is behind).
    fn record_event(
        &self,
        _pod: &PodInfo,
        _warning: bool,
        _reason: &str,
        _action: &str,
        _message: String,
    ) {
    }
}

/// What plugins may use besides the pod and the nodes.
pub struct Handle {
    pub client: Arc<dyn ClusterClient>,
}

/// Every plugin: its name, the cluster events that may make the pods it rejected
/// schedulable, and which extension points it implements.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        Vec::new()
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        None
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        None
    }
}

/// Runs before a pod enters the active queue; a failure parks it (scheduling gates).
pub trait PreEnqueuePlugin: Plugin {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status;
}

/// Orders the active queue. The queue keeps a heap, so the order is given as a key.
pub trait QueueSortPlugin: Plugin {
    /// Pods with the larger key are popped first.
    fn sort_key(
        &self,
        pod: &PodInfo,
        enqueued: std::time::Instant,
    ) -> (i32, std::cmp::Reverse<std::time::Instant>);
}

/// Once per cycle before Filter: computes what Filter needs, may narrow the nodes.
pub trait PreFilterPlugin: Plugin {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status);

    /// Preemption: `pod_to_add` is assumed on `node` (a nominated pod) for what-if filtering.
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _added: &PodInfo, _node: &NodeInfo) {
    }

    /// Preemption: `removed` is a victim taken off `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _removed: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// Clones this plugin's cycle state for preemption's what-if runs.
    fn clone_state(&self, _state: &dyn Any) -> Option<Box<dyn Any + Send + Sync>> {
        None
    }
}

/// Per node: can the pod run there?
pub trait FilterPlugin: Plugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// After no node fit: preemption. Returns the node to nominate and the victims to delete.
pub trait PostFilterPlugin: Plugin {
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        diagnosis: &Diagnosis,
        framework: &Framework,
    ) -> (Option<PostFilterResult>, Status);
}

/// The node a PostFilter plugin made room on and the pods that must go.
#[derive(Debug, Clone)]
pub struct PostFilterResult {
    pub nominated_node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Once per cycle before Score, over the feasible nodes.
pub trait PreScorePlugin: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Upstream's score range.
pub const MAX_NODE_SCORE: i64 = 100;

/// Per feasible node: how good is it (0..=100 after normalization)?
pub trait ScorePlugin: Plugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Rescales this plugin's raw scores into 0..=MAX_NODE_SCORE.
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Claims resources for the pod on the chosen node (and gives them back on failure).
pub trait ReservePlugin: Plugin {
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// Allows, rejects or delays (Wait with a timeout) the binding.
pub trait PermitPlugin: Plugin {
    fn permit(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> (Status, Duration);
}

/// Before binding (volumes, for example).
#[async_trait]
pub trait PreBindPlugin: Plugin {
    async fn pre_bind(&self, pod: &PodInfo, node: &str) -> Status;
}

/// Binds the pod; the first bind plugin that does not Skip wins.
#[async_trait]
pub trait BindPlugin: Plugin {
    async fn bind(&self, pod: &PodInfo, node: &str) -> Status;
}

/// After a successful bind (informational).
pub trait PostBindPlugin: Plugin {
    fn post_bind(&self, pod: &PodInfo, node: &str);
}
