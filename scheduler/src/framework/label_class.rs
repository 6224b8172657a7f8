//! Label classes: pods with the same namespace, labels and terminating state share one
//! interned class. Spreading and pod affinity decide whether a selector matches once per
//! class per cycle and count a node's pods through its per-class counts, instead of
//! comparing label strings for every pod on every node.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use super::interner::{Interned, Interner, Memo};

/// What pods of one class have in common, as selectors and affinity terms read it.
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
pub struct ClassKey {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub terminating: bool,
}

pub type LabelClass = Interned<ClassKey>;

static CLASSES: LazyLock<Mutex<Interner<ClassKey>>> = LazyLock::new(Default::default);

/// The class of pods with this key.
pub fn class_of(key: ClassKey) -> Arc<LabelClass> {
    CLASSES.lock().intern(key)
}

/// `count` per-cycle memos over label classes (see `Memo::many`).
pub fn class_memos(count: usize) -> Vec<Memo> {
    Memo::many(count, CLASSES.lock().id_bound())
}
