//! Label classes: pods with the same namespace, labels and terminating state share one
//! interned class with a small dense id. Spreading and pod affinity decide whether a
//! selector matches once per class per cycle (pods of one workload are one class) and
//! then count a node's pods through its per-class counts, instead of comparing label
//! strings for every pod on every node.
//!
//! Classes live as long as a PodInfo holds them; the table keeps weak references and
//! drops dead entries (reusing their ids) as it grows, so pods with unique labels
//! (StatefulSet, Job pods) cannot grow it without bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;

/// What pods of one class have in common, as selectors and affinity terms read it.
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
pub struct ClassKey {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub terminating: bool,
}

#[derive(Debug)]
pub struct LabelClass {
    /// Dense: below `LabelClass::id_bound()`; reused only after every holder is gone.
    pub id: u32,
    pub key: ClassKey,
}

#[derive(Default)]
struct Table {
    /// The id beside the weak reference: a dead class's id cannot be read through it.
    by_key: HashMap<ClassKey, (u32, Weak<LabelClass>)>,
    free: Vec<u32>,
    next: u32,
    /// Live entries after the last sweep: the next sweep waits until the table doubles.
    live_after_sweep: usize,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);

impl LabelClass {
    /// The class of pods with this key, created on first use.
    pub fn intern(key: ClassKey) -> Arc<LabelClass> {
        let mut t = TABLE.lock();
        // A dead entry for this key gives its id to the new class (nothing holds it).
        let reused = match t.by_key.get(&key) {
            Some((id, weak)) => match weak.upgrade() {
                Some(c) => return c,
                None => Some(*id),
            },
            None => None,
        };
        if reused.is_none() && t.by_key.len() >= 2 * t.live_after_sweep + 1024 {
            t.sweep();
        }
        let id = reused.or_else(|| t.free.pop()).unwrap_or_else(|| {
            t.next += 1;
            t.next - 1
        });
        let class = Arc::new(LabelClass {
            id,
            key: key.clone(),
        });
        t.by_key.insert(key, (id, Arc::downgrade(&class)));
        class
    }

    /// Every id is below this (the size of a per-class memo).
    pub fn id_bound() -> usize {
        TABLE.lock().next as usize
    }
}

impl Table {
    /// Drops the entries no pod holds any more and frees their ids.
    fn sweep(&mut self) {
        let free = &mut self.free;
        self.by_key.retain(|_, (id, w)| {
            let live = w.strong_count() > 0;
            if !live {
                free.push(*id);
            }
            live
        });
        self.live_after_sweep = self.by_key.len();
    }
}

/// Per-cycle memo of a predicate over classes (unknown, false, true), indexed by id.
pub struct ClassMemo {
    seen: Vec<u8>,
}

impl ClassMemo {
    pub fn new() -> ClassMemo {
        ClassMemo {
            seen: vec![0; LabelClass::id_bound()],
        }
    }

    /// What `get` decided for this class, if it was asked.
    pub fn known(&self, class: &LabelClass) -> Option<bool> {
        match self.seen.get(class.id as usize) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }

    /// `decide(class)` computed once per class for this memo's life.
    pub fn get(&mut self, class: &LabelClass, decide: impl FnOnce(&ClassKey) -> bool) -> bool {
        let i = class.id as usize;
        if i >= self.seen.len() {
            self.seen.resize(i + 1, 0);
        }
        match self.seen[i] {
            1 => false,
            2 => true,
            _ => {
                let v = decide(&class.key);
                self.seen[i] = 1 + u8::from(v);
                v
            }
        }
    }
}

impl Default for ClassMemo {
    fn default() -> Self {
        ClassMemo::new()
    }
}
