//! The scheduling queue: activeQ (a heap in QueueSort order), backoffQ (pods that failed,
//! waiting 1 s doubling to 10 s), and the unschedulable pods, which wait for a cluster
//! event that one of the plugins that rejected them registered, or for the 5 minute flush.
//!
//! Pod states: add -> PreEnqueue ok? active : gated (unschedulable, never flushed);
//! pop -> in flight; failure -> unschedulable (or backoff if an event arrived while it was
//! in flight, or on an error); event/flush -> backoff (if still backing off) or active.
//! One mutex guards it all; the scheduling thread blocks on a condvar in `pop`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::framework::{ActionType, ClusterEvent, EventResource, Framework, PodInfo};

/// How long an unschedulable pod waits before it is retried without any event.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(300);

/// A pod in the queue with its scheduling history.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    pub pod: Arc<PodInfo>,
    /// When it last entered the queue (the QueueSort tie-breaker).
    pub timestamp: Instant,
    /// When it was first seen: end-to-end latency starts here.
    pub initial: Instant,
    pub attempts: u32,
    /// The plugins that rejected it last time; their events requeue it.
    pub unschedulable_plugins: HashSet<&'static str>,
    /// Rejected by PreEnqueue (scheduling gates): only its own update releases it.
    pub gated: bool,
    /// The cycle in which it was last popped.
    pub cycle: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ActiveKey {
    key: (i32, Reverse<Instant>),
    seq: Reverse<u64>,
}

struct Entry {
    info: QueuedPodInfo,
    place: Where,
    /// Matches the heap entry that is current; older heap entries are skipped.
    seq: u64,
}

struct State {
    pods: HashMap<String, Entry>,
    active: BinaryHeap<(ActiveKey, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    last_flush: Instant,
    closed: bool,
    /// Pods waiting for a node their preemption freed (status.nominatedNodeName), by uid.
    nominated: HashMap<String, (String, Arc<PodInfo>)>,
}

/// Counts of pods by queue, for the scheduler_pending_pods metric.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

pub struct SchedulingQueue {
    state: Mutex<State>,
    ready: Condvar,
    initial_backoff: Duration,
    max_backoff: Duration,
    profiles: HashMap<String, Arc<Framework>>,
    /// Which plugins registered which events.
    events: HashMap<(EventResource, ActionType), HashSet<&'static str>>,
}

impl SchedulingQueue {
    pub fn new(
        profiles: HashMap<String, Arc<Framework>>,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> SchedulingQueue {
        let mut events: HashMap<(EventResource, ActionType), HashSet<&'static str>> =
            HashMap::new();
        for fw in profiles.values() {
            for (plugin, ClusterEvent { resource, actions }) in fw.events() {
                for a in actions {
                    events.entry((resource, *a)).or_default().insert(plugin);
                }
            }
        }
        SchedulingQueue {
            state: Mutex::new(State {
                pods: HashMap::new(),
                active: BinaryHeap::new(),
                backoff: BinaryHeap::new(),
                seq: 0,
                scheduling_cycle: 0,
                move_request_cycle: 0,
                last_flush: Instant::now(),
                closed: false,
                nominated: HashMap::new(),
            }),
            ready: Condvar::new(),
            initial_backoff,
            max_backoff,
            profiles,
            events,
        }
    }

    fn framework(&self, pod: &PodInfo) -> Option<&Arc<Framework>> {
        let name = pod
            .spec()
            .scheduler_name
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME);
        self.profiles.get(name)
    }

    fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d *= 2;
            if d >= self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn backoff_expiry(&self, info: &QueuedPodInfo) -> Instant {
        info.timestamp + self.backoff_duration(info.attempts)
    }

    fn push_active(&self, s: &mut State, uid: &str) {
        s.seq += 1;
        let seq = s.seq;
        let Some(e) = s.pods.get_mut(uid) else { return };
        let fw = self.framework(&e.info.pod);
        let key = match fw {
            Some(fw) => fw.queue_sort().sort_key(&e.info.pod, e.info.timestamp),
            None => (e.info.pod.priority, Reverse(e.info.timestamp)),
        };
        e.place = Where::Active;
        e.seq = seq;
        s.active.push((
            ActiveKey {
                key,
                seq: Reverse(seq),
            },
            uid.to_owned(),
        ));
        self.ready.notify_one();
    }

    fn push_backoff(&self, s: &mut State, uid: &str) {
        s.seq += 1;
        let seq = s.seq;
        let Some(e) = s.pods.get_mut(uid) else { return };
        let expiry = self.backoff_expiry(&e.info);
        e.place = Where::Backoff;
        e.seq = seq;
        s.backoff.push(Reverse((expiry, seq, uid.to_owned())));
        self.ready.notify_one();
    }

    /// Runs PreEnqueue: true if the pod may go to the active queue.
    fn pre_enqueue(&self, info: &mut QueuedPodInfo) -> bool {
        let status = match self.framework(&info.pod) {
            Some(fw) => fw.run_pre_enqueue(&info.pod),
            None => return true,
        };
        info.gated = !status.is_success();
        if info.gated {
            info.unschedulable_plugins = HashSet::from([status.plugin]);
        }
        !info.gated
    }

    /// A new pod to schedule.
    pub fn add(&self, pod: Arc<PodInfo>) {
        let now = Instant::now();
        let mut info = QueuedPodInfo {
            pod,
            timestamp: now,
            initial: now,
            attempts: 0,
            unschedulable_plugins: HashSet::new(),
            gated: false,
            cycle: 0,
        };
        let ok = self.pre_enqueue(&mut info);
        let uid = info.pod.uid.clone();
        let mut s = self.state.lock();
        Self::track_nomination(&mut s, &info.pod);
        if s.pods.contains_key(&uid) {
            drop(s);
            return self.update(info.pod);
        }
        s.pods.insert(
            uid.clone(),
            Entry {
                info,
                place: Where::Unschedulable,
                seq: 0,
            },
        );
        if ok {
            self.push_active(&mut s, &uid);
        }
    }

    /// The pod object changed while it waits (labels, gates, requests...).
    pub fn update(&self, pod: Arc<PodInfo>) {
        let uid = pod.uid.clone();
        let mut s = self.state.lock();
        Self::track_nomination(&mut s, &pod);
        let Some(e) = s.pods.get_mut(&uid) else {
            drop(s);
            return self.add(pod);
        };
        e.info.pod = pod;
        match e.place {
            Where::Active => self.push_active(&mut s, &uid),
            Where::Backoff | Where::InFlight => {}
            Where::Unschedulable => {
                let mut info = e.info.clone();
                let was_gated = info.gated;
                let ok = self.pre_enqueue(&mut info);
                let relevant = was_gated
                    || info.unschedulable_plugins.iter().any(|p| {
                        self.registered(p, EventResource::UnscheduledPod, ActionType::Update)
                    });
                let e = s.pods.get_mut(&uid).expect("present");
                e.info = info;
                if ok && relevant {
                    self.requeue(&mut s, &uid);
                }
            }
        }
    }

    pub fn delete(&self, uid: &str) {
        let mut s = self.state.lock();
        s.pods.remove(uid);
        s.nominated.remove(uid);
    }

    fn track_nomination(s: &mut State, pod: &Arc<PodInfo>) {
        let node = pod
            .pod
            .status
            .as_ref()
            .and_then(|st| st.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        match node {
            Some(n) => {
                s.nominated
                    .insert(pod.uid.clone(), (n.to_owned(), pod.clone()));
            }
            None => {
                s.nominated.remove(&pod.uid);
            }
        }
    }

    /// Preemption chose `node` for the pod: other pods must leave it room from now on,
    /// before the API echoes the nomination back.
    pub fn nominate(&self, pod: &Arc<PodInfo>, node: &str) {
        self.state
            .lock()
            .nominated
            .insert(pod.uid.clone(), (node.to_owned(), pod.clone()));
    }

    /// Pods nominated to each node, except `uid` itself, with priority at least `priority`
    /// (the ones a pod of that priority must leave room for).
    pub fn nominated_pods(&self, uid: &str, priority: i32) -> HashMap<String, Vec<Arc<PodInfo>>> {
        let s = self.state.lock();
        let mut out: HashMap<String, Vec<Arc<PodInfo>>> = HashMap::new();
        for (u, (node, pod)) in &s.nominated {
            if u != uid && pod.priority >= priority {
                out.entry(node.clone()).or_default().push(pod.clone());
            }
        }
        out
    }

    fn registered(&self, plugin: &str, resource: EventResource, action: ActionType) -> bool {
        self.events
            .get(&(resource, action))
            .is_some_and(|set| set.contains(plugin))
    }

    /// Moves an unschedulable pod back: to backoff while its backoff lasts, else active.
    fn requeue(&self, s: &mut State, uid: &str) {
        let Some(e) = s.pods.get(uid) else { return };
        if self.backoff_expiry(&e.info) > Instant::now() {
            self.push_backoff(s, uid);
        } else {
            self.push_active(s, uid);
        }
    }

    /// Blocks until a pod is ready (or the queue is closed: None). Moves finished backoffs
    /// and, every 30 s, unschedulable pods older than the flush interval.
    pub fn pop(&self) -> Option<QueuedPodInfo> {
        let mut s = self.state.lock();
        loop {
            if s.closed {
                return None;
            }
            let now = Instant::now();
            while let Some(Reverse((expiry, seq, uid))) = s.backoff.peek().cloned() {
                if expiry > now {
                    break;
                }
                s.backoff.pop();
                if s.pods
                    .get(&uid)
                    .is_some_and(|e| e.seq == seq && e.place == Where::Backoff)
                {
                    self.push_active(&mut s, &uid);
                }
            }
            if now.duration_since(s.last_flush) > Duration::from_secs(30) {
                s.last_flush = now;
                let stale: Vec<String> = s
                    .pods
                    .iter()
                    .filter(|(_, e)| {
                        e.place == Where::Unschedulable
                            && !e.info.gated
                            && now.duration_since(e.info.timestamp) > UNSCHEDULABLE_FLUSH
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for uid in stale {
                    self.requeue(&mut s, &uid);
                }
            }
            while let Some((key, uid)) = s.active.pop() {
                let current = s
                    .pods
                    .get(&uid)
                    .is_some_and(|e| e.place == Where::Active && Reverse(e.seq) == key.seq);
                if !current {
                    continue;
                }
                s.scheduling_cycle += 1;
                let cycle = s.scheduling_cycle;
                let e = s.pods.get_mut(&uid).expect("present");
                e.place = Where::InFlight;
                e.info.attempts += 1;
                e.info.cycle = cycle;
                return Some(e.info.clone());
            }
            let wait = s
                .backoff
                .peek()
                .map(|Reverse((t, _, _))| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            self.ready
                .wait_for(&mut s, wait.max(Duration::from_millis(1)));
        }
    }

    /// The pod was bound (or deleted): it leaves the queue.
    pub fn done(&self, uid: &str) {
        let mut s = self.state.lock();
        s.nominated.remove(uid);
        if s.pods.get(uid).is_some_and(|e| e.place == Where::InFlight) {
            s.pods.remove(uid);
        }
    }

    /// A scheduling attempt failed. Rejections wait for an event (or back off if one came
    /// while the pod was in flight); errors back off.
    pub fn add_unschedulable(&self, mut info: QueuedPodInfo, error: bool) {
        let uid = info.pod.uid.clone();
        let mut s = self.state.lock();
        let Some(e) = s.pods.get_mut(&uid) else {
            return; // deleted meanwhile
        };
        if e.place != Where::InFlight {
            return;
        }
        info.timestamp = Instant::now();
        // Keep a newer version of the object that arrived while it was in flight.
        info.pod = e.info.pod.clone();
        let event_since = s.move_request_cycle >= info.cycle;
        let e = s.pods.get_mut(&uid).expect("present");
        e.info = info;
        if error || event_since || e.info.unschedulable_plugins.is_empty() {
            self.push_backoff(&mut s, &uid);
        } else {
            e.place = Where::Unschedulable;
        }
    }

    /// A cluster event: unschedulable pods rejected by a plugin that registered it retry.
    pub fn on_event(&self, resource: EventResource, action: ActionType) {
        let interested = self.events.get(&(resource, action));
        let mut s = self.state.lock();
        s.move_request_cycle = s.scheduling_cycle;
        let Some(plugins) = interested else { return };
        let moved: Vec<String> = s
            .pods
            .iter()
            .filter(|(_, e)| {
                e.place == Where::Unschedulable
                    && !e.info.gated
                    && e.info
                        .unschedulable_plugins
                        .iter()
                        .any(|p| plugins.contains(p))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for uid in moved {
            self.requeue(&mut s, &uid);
        }
    }

    pub fn pending(&self) -> Pending {
        let s = self.state.lock();
        let mut p = Pending::default();
        for e in s.pods.values() {
            match e.place {
                Where::Active => p.active += 1,
                Where::Backoff => p.backoff += 1,
                Where::Unschedulable if e.info.gated => p.gated += 1,
                Where::Unschedulable => p.unschedulable += 1,
                Where::InFlight => {}
            }
        }
        p
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.state.lock().pods.contains_key(uid)
    }

    /// Wakes `pop` with None from now on.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;

    fn queue(initial: Duration) -> SchedulingQueue {
        let fw = crate::testing::default_framework(1);
        let profiles = HashMap::from([("default-scheduler".to_owned(), fw)]);
        SchedulingQueue::new(profiles, initial, initial * 10)
    }

    #[test]
    fn pops_by_priority_then_age() {
        let q = queue(Duration::from_secs(1));
        q.add(make_pod("low").priority(1).arc());
        q.add(make_pod("high").priority(9).arc());
        q.add(make_pod("low2").priority(1).arc());
        let order: Vec<String> = (0..3).map(|_| q.pop().unwrap().pod.name.clone()).collect();
        assert_eq!(order, vec!["high", "low", "low2"]);
    }

    #[test]
    fn backoff_doubles_to_the_maximum() {
        let q = queue(Duration::from_secs(1));
        let d: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_registered_event() {
        let q = queue(Duration::from_millis(1));
        q.add(make_pod("p").cpu("1").arc());
        let mut info = q.pop().unwrap();
        info.unschedulable_plugins = HashSet::from(["NodeResourcesFit"]);
        q.add_unschedulable(info, false);
        assert_eq!(q.pending().unschedulable, 1);
        // NodeResourcesFit does not care about namespaces.
        q.on_event(EventResource::Namespace, ActionType::Add);
        assert_eq!(q.pending().unschedulable, 1);
        q.on_event(EventResource::Node, ActionType::Add);
        std::thread::sleep(Duration::from_millis(5));
        let again = q.pop().unwrap();
        assert_eq!((again.pod.name.as_str(), again.attempts), ("p", 2));
    }

    #[test]
    fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
        let q = queue(Duration::from_millis(1));
        q.add(make_pod("p").arc());
        let mut info = q.pop().unwrap();
        q.on_event(EventResource::Node, ActionType::Add);
        info.unschedulable_plugins = HashSet::from(["NodeResourcesFit"]);
        q.add_unschedulable(info, false);
        assert_eq!(q.pending().backoff, 1);
    }

    #[test]
    fn gated_pods_wait_for_their_gates_to_go() {
        let q = queue(Duration::from_millis(1));
        q.add(make_pod("p").gate("example.com/wait").arc());
        assert_eq!(q.pending().gated, 1);
        q.on_event(EventResource::Node, ActionType::Add);
        assert_eq!(q.pending().gated, 1);
        q.update(make_pod("p").arc());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(q.pop().unwrap().pod.name, "p");
    }
}
