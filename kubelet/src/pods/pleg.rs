//! The pod lifecycle event generator, as upstream's generic PLEG: one relist of the
//! runtime's sandboxes and containers every second for the whole node, and a wake-up for
//! the worker of each pod whose sandboxes or containers changed state since the relist
//! before. Between wake-ups a worker syncs only when its pod changes in the API, when its
//! own requeue comes due (crash back-off, probes, a container still waiting) or at the
//! sync frequency, instead of asking the runtime about its pod every second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::spec::POD_UID;
use crate::cri::Cri;

/// How often the runtime is relisted (upstream's relist period).
pub const RELIST: Duration = Duration::from_secs(1);

/// What a relist saw of one pod: each sandbox's and container's id and state, in order.
type Fingerprint = Vec<(String, i32)>;

/// The relist's state and the workers to wake.
#[derive(Default)]
pub struct Pleg {
    /// Each pod's worker wake-up, by pod uid.
    workers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Pleg {
    /// The wake-up of `uid`'s worker: notified when the pod's runtime state changes.
    pub fn register(&self, uid: &str) -> Arc<Notify> {
        self.workers
            .lock()
            .entry(uid.to_owned())
            .or_default()
            .clone()
    }

    /// Stops waking the worker of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.workers.lock().remove(uid);
    }

    /// Relists `cri` every [`RELIST`] until dropped, waking the workers of pods that changed.
    pub async fn run(&self, cri: &Cri) {
        let mut last: HashMap<String, Fingerprint> = HashMap::new();
        let mut tick = tokio::time::interval(RELIST);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (sandboxes, containers) =
                match tokio::try_join!(cri.list_pod_sandboxes(), cri.list_containers()) {
                    Ok(listed) => listed,
                    Err(e) => {
                        tracing::warn!(error = %e, "relisting the runtime failed");
                        continue;
                    }
                };
            let now = fingerprints(&sandboxes, &containers);
            let workers = self.workers.lock();
            for uid in changed(&last, &now) {
                if let Some(wake) = workers.get(uid) {
                    wake.notify_one();
                }
            }
            drop(workers);
            last = now;
        }
    }
}

/// Each pod's sandboxes and containers with their states, by pod uid.
fn fingerprints(
    sandboxes: &[cri::PodSandbox],
    containers: &[cri::Container],
) -> HashMap<String, Fingerprint> {
    let mut pods: HashMap<String, Fingerprint> = HashMap::new();
    let sandboxes = sandboxes.iter().map(|s| (&s.labels, &s.id, s.state));
    let containers = containers.iter().map(|c| (&c.labels, &c.id, c.state));
    for (labels, id, state) in sandboxes.chain(containers) {
        if let Some(uid) = labels.get(POD_UID) {
            pods.entry(uid.clone())
                .or_default()
                .push((id.clone(), state));
        }
    }
    for f in pods.values_mut() {
        f.sort_unstable();
    }
    pods
}

/// The pods whose fingerprint differs between two relists (appeared, changed or gone).
fn changed<'a>(
    before: &'a HashMap<String, Fingerprint>,
    now: &'a HashMap<String, Fingerprint>,
) -> impl Iterator<Item = &'a String> {
    let updated = now.iter().filter(|(uid, f)| before.get(*uid) != Some(f));
    let gone = before.keys().filter(|uid| !now.contains_key(*uid));
    updated.map(|(uid, _)| uid).chain(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(uid: &str, id: &str, state: cri::PodSandboxState) -> cri::PodSandbox {
        cri::PodSandbox {
            id: id.into(),
            state: state as i32,
            labels: [(POD_UID.to_owned(), uid.to_owned())].into(),
            ..Default::default()
        }
    }

    fn container(uid: &str, id: &str, state: cri::ContainerState) -> cri::Container {
        cri::Container {
            id: id.into(),
            state: state as i32,
            labels: [(POD_UID.to_owned(), uid.to_owned())].into(),
            ..Default::default()
        }
    }

    fn changed_uids(
        before: &HashMap<String, Fingerprint>,
        now: &HashMap<String, Fingerprint>,
    ) -> Vec<String> {
        let mut uids: Vec<String> = changed(before, now).cloned().collect();
        uids.sort();
        uids
    }

    #[test]
    fn only_pods_whose_runtime_state_changed_are_woken() {
        use cri::ContainerState::{ContainerExited, ContainerRunning};
        use cri::PodSandboxState::SandboxReady;
        let sandboxes = [
            sandbox("a", "sa", SandboxReady),
            sandbox("b", "sb", SandboxReady),
            sandbox("c", "sc", SandboxReady),
        ];
        let before = fingerprints(
            &sandboxes,
            &[
                container("a", "ca", ContainerRunning),
                container("b", "cb", ContainerRunning),
                container("c", "cc", ContainerRunning),
            ],
        );
        assert_eq!(changed_uids(&HashMap::new(), &before), ["a", "b", "c"]);
        assert!(changed_uids(&before, &before).is_empty());
        // a's container exited; b's was restarted (a new container); c's is unchanged,
        // listed in another order; d is new.
        let now = fingerprints(
            &[
                sandboxes[2].clone(),
                sandboxes[0].clone(),
                sandboxes[1].clone(),
            ],
            &[
                container("c", "cc", ContainerRunning),
                container("a", "ca", ContainerExited),
                container("b", "cb", ContainerExited),
                container("b", "cb2", ContainerRunning),
                container("d", "cd", ContainerRunning),
            ],
        );
        assert_eq!(changed_uids(&before, &now), ["a", "b", "d"]);
        // c is gone from the runtime altogether.
        let gone = fingerprints(&sandboxes[..2], &[]);
        assert!(changed_uids(&now, &gone).contains(&"c".to_owned()));
    }

    #[tokio::test]
    async fn a_wake_up_before_the_worker_waits_is_kept() {
        let pleg = Pleg::default();
        let wake = pleg.register("a");
        pleg.workers.lock()["a"].notify_one();
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("the stored wake-up");
        pleg.forget("a");
        assert!(pleg.workers.lock().is_empty());
    }
}
