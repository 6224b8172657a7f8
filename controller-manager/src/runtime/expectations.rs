//! Controller expectations, as upstream's ControllerExpectations: after a controller
//! creates or deletes pods it must not act on its (stale) cache again until the informer
//! has shown it those creations and deletions, or it would create twice. Deletions are
//! tracked by pod UID, so a pod seen first terminating and then gone counts once. An
//! expectation older than five minutes is treated as met (a lost watch event must not
//! stall the controller forever).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;

use super::{Change, Informer, WorkQueue};

const TTL: Duration = Duration::from_secs(300);

struct Pending {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Outstanding creations and deletions per controller key.
#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Records that `adds` creations are about to be issued for `key`.
    pub fn expect_creations(&self, key: &str, adds: usize) {
        self.map.lock().insert(
            key.to_owned(),
            Pending {
                adds: adds as i64,
                deletes: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    /// Records that the pods with these UIDs are about to be deleted for `key`. Creations the
    /// same sync issued (a DaemonSet creates on some nodes and deletes on others) stay
    /// expected, as upstream sets both counts at once.
    pub fn expect_deletions(&self, key: &str, uids: impl IntoIterator<Item = String>) {
        let mut map = self.map.lock();
        let adds = map
            .get(key)
            .filter(|p| p.set_at.elapsed() <= TTL)
            .map_or(0, |p| p.adds.max(0));
        map.insert(
            key.to_owned(),
            Pending {
                adds,
                deletes: uids.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// One creation was seen (or failed and will not be seen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(p) = self.map.lock().get_mut(key) {
            p.adds -= 1;
        }
    }

    /// The pod `uid` was seen terminating or gone (or its delete failed).
    pub fn deletion_observed(&self, key: &str, uid: &str) {
        if let Some(p) = self.map.lock().get_mut(key) {
            p.deletes.remove(uid);
        }
    }

    /// True when `key` may act on its cache: nothing outstanding, or the record expired.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.map.lock().get(key) {
            None => true,
            Some(p) => (p.adds <= 0 && p.deletes.is_empty()) || p.set_at.elapsed() > TTL,
        }
    }

    /// Drops `key`'s record (its object is gone).
    pub fn forget(&self, key: &str) {
        self.map.lock().remove(key);
    }
}

/// Upstream's addPod/updatePod/deletePod handlers for a controller that owns pods: every
/// change queues the owner `owner_key` names, and its expectations learn of the creations
/// and deletions they wait for.
pub fn track_owned_pods(
    pods: &Informer<Pod>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    owner_key: impl Fn(&Pod) -> Option<String> + Send + Sync + 'static,
) {
    pods.on_change(move |change| match change {
        Change::Added(p) => {
            if let Some(k) = owner_key(p) {
                expectations.creation_observed(&k);
                queue.add(k);
            }
        }
        Change::Updated { new, .. } => {
            if let Some(k) = owner_key(new) {
                queue.add(k);
            }
        }
        Change::Deleted(p) => {
            if let Some(k) = owner_key(p) {
                expectations.deletion_observed(&k, p.metadata.uid.as_deref().unwrap_or(""));
                queue.add(k);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_deletions_must_be_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));

        e.expect_deletions("ns/rs", ["a".to_owned(), "b".to_owned()]);
        e.deletion_observed("ns/rs", "a");
        e.deletion_observed("ns/rs", "a");
        assert!(!e.satisfied("ns/rs"), "a pod seen twice counts once");
        e.deletion_observed("ns/rs", "b");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn deletions_in_the_same_sync_keep_pending_creations() {
        let e = Expectations::default();
        e.expect_creations("ns/ds", 1);
        e.expect_deletions("ns/ds", ["a".to_owned()]);
        e.deletion_observed("ns/ds", "a");
        assert!(!e.satisfied("ns/ds"), "the creation is still outstanding");
        e.creation_observed("ns/ds");
        assert!(e.satisfied("ns/ds"));
    }
}
