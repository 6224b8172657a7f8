//! Interning: equal values share one `Arc<Interned<T>>` with a small dense id, so a
//! scheduling cycle can answer a question once per distinct value and remember the answer
//! by id (`Memo`) instead of once per pod. Pods of one workload share their label class
//! and their affinity terms.
//!
//! The table keeps weak references: a value lives as long as a pod holds it, and entries
//! nobody holds are swept (their ids reused) whenever the table has doubled since the last
//! sweep, so pods with unique labels (StatefulSet or Job pods) cannot grow it without
//! bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Weak};

/// A value with its id: below the table's `id_bound()`, reused only once nothing holds it.
#[derive(Debug)]
pub struct Interned<T> {
    pub id: u32,
    pub value: T,
}

impl<T> std::ops::Deref for Interned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

pub struct Interner<T> {
    /// The id beside the weak reference: a dead entry's id cannot be read through it.
    by_value: HashMap<T, (u32, Weak<Interned<T>>)>,
    free: Vec<u32>,
    next: u32,
    /// Live entries after the last sweep: the next sweep waits until the table doubles.
    live_after_sweep: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            by_value: HashMap::new(),
            free: Vec::new(),
            next: 0,
            live_after_sweep: 0,
        }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    /// The shared instance of `value`, created on first use.
    pub fn intern(&mut self, value: T) -> Arc<Interned<T>> {
        // A dead entry for this value gives its id to the new instance (nothing holds it).
        let reused = match self.by_value.get(&value) {
            Some((id, weak)) => match weak.upgrade() {
                Some(live) => return live,
                None => Some(*id),
            },
            None => None,
        };
        if reused.is_none() && self.by_value.len() >= 2 * self.live_after_sweep + 1024 {
            self.sweep();
        }
        let id = reused.or_else(|| self.free.pop()).unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        let interned = Arc::new(Interned {
            id,
            value: value.clone(),
        });
        self.by_value.insert(value, (id, Arc::downgrade(&interned)));
        interned
    }

    /// Every id is below this.
    pub fn id_bound(&self) -> usize {
        self.next as usize
    }

    /// Entries, live or not yet swept.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// Drops the entries nothing holds any more and frees their ids. A strong count of 0
    /// cannot rise again: new holders come only from `intern`, under the same lock.
    fn sweep(&mut self) {
        let free = &mut self.free;
        self.by_value.retain(|_, (id, weak)| {
            let live = weak.strong_count() > 0;
            if !live {
                free.push(*id);
            }
            live
        });
        self.live_after_sweep = self.by_value.len();
    }
}

/// A per-cycle memo of a yes/no question about interned values, indexed by id. One byte
/// per id: a cycle keeps at most `MAX_MEMOS` of them per question kind (`Memo::many`), so a
/// pod with thousands of terms cannot make it hold thousands of id-sized arrays.
pub struct Memo {
    /// 0 not asked, 1 no, 2 yes; None: remembers nothing (asks every time).
    seen: Option<Vec<u8>>,
}

/// Memos a cycle keeps for one kind of question (terms or constraints of one pod).
pub const MAX_MEMOS: usize = 16;

impl Memo {
    /// A memo for ids below `bound` (larger ids grow it).
    pub fn new(bound: usize) -> Memo {
        Memo {
            seen: Some(vec![0; bound]),
        }
    }

    /// `count` memos: the first `MAX_MEMOS` remember, the rest ask every time.
    pub fn many(count: usize, bound: usize) -> Vec<Memo> {
        (0..count)
            .map(|i| {
                if i < MAX_MEMOS {
                    Memo::new(bound)
                } else {
                    Memo { seen: None }
                }
            })
            .collect()
    }

    /// `decide(value)`, computed once per value for this memo's life.
    pub fn get<T>(&mut self, v: &Interned<T>, decide: impl FnOnce(&T) -> bool) -> bool {
        let Some(seen) = self.seen.as_mut() else {
            return decide(&v.value);
        };
        let i = v.id as usize;
        if i >= seen.len() {
            seen.resize(i + 1, 0);
        }
        match seen[i] {
            1 => false,
            2 => true,
            _ => {
                let answer = decide(&v.value);
                seen[i] = 1 + u8::from(answer);
                answer
            }
        }
    }

    /// What `get` decided for this value, if it was asked.
    pub fn known<T>(&self, v: &Interned<T>) -> Option<bool> {
        match self.seen.as_ref().and_then(|s| s.get(v.id as usize)) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_an_id_and_dead_ids_are_reused_after_a_sweep() {
        let mut t: Interner<String> = Interner::default();
        let a = t.intern("a".into());
        let a2 = t.intern("a".into());
        let b = t.intern("b".into());
        assert!(Arc::ptr_eq(&a, &a2));
        assert_ne!(a.id, b.id);
        // A value interned again after its holders are gone keeps a dense id.
        let b_id = b.id;
        drop(b);
        assert_eq!(t.intern("b".into()).id, b_id);
        // Unique values that nobody keeps do not grow the table without bound.
        for i in 0..10_000 {
            let _ = t.intern(format!("unique-{i}"));
        }
        assert!(t.len() <= 2 * 3 + 1024 + 1, "{} entries", t.len());
        assert!(
            t.id_bound() <= 2 * 3 + 1024 + 1,
            "ids up to {}",
            t.id_bound()
        );
        assert_eq!(t.intern("a".into()).id, a.id, "a live value keeps its id");
    }

    #[test]
    fn a_memo_decides_once_per_value() {
        let mut t: Interner<u32> = Interner::default();
        let (x, y) = (t.intern(1), t.intern(2));
        let mut memo = Memo::new(t.id_bound());
        let mut asked = 0;
        for _ in 0..3 {
            for v in [&x, &y] {
                memo.get(v, |n| {
                    asked += 1;
                    *n == 1
                });
            }
        }
        assert_eq!(asked, 2);
        assert_eq!((memo.known(&x), memo.known(&y)), (Some(true), Some(false)));
        assert_eq!(memo.known(&t.intern(3)), None);
        // Past MAX_MEMOS, memos ask every time (and hold nothing).
        let mut many = Memo::many(MAX_MEMOS + 2, t.id_bound());
        let mut asked = 0;
        for _ in 0..2 {
            many[MAX_MEMOS + 1].get(&x, |_| {
                asked += 1;
                true
            });
        }
        assert_eq!((asked, many[MAX_MEMOS + 1].known(&x)), (2, None));
    }
}
