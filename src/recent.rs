//! [`Recent`]: a thread's own copies of a few shared names.
//!
//! A shared `Arc<str>` (an interned class name, a store's tenant) cloned once
//! per external by threads on every core has its count written from every
//! core. A thread keeps its own copy here instead, looked up by a key of the
//! caller's, and clones that: only it writes its count.

use std::sync::Arc;

/// A few `(key, this thread's own copy of a shared name)` pairs, the oldest
/// replaced first: a thread looks its recent names up here instead of in a
/// shared table, and clones its own copy, whose count only it writes, where
/// the shared `Arc`'s would be written by every thread, once per use.
pub(crate) struct Recent<K, const N: usize = RECENT> {
    slots: [Option<(K, Arc<str>)>; N],
    next: usize,
}

/// How many names a [`Recent`] keeps unless told otherwise.
const RECENT: usize = 4;

impl<K, const N: usize> Recent<K, N> {
    pub(crate) const fn new() -> Self {
        Recent {
            slots: [const { None }; N],
            next: 0,
        }
    }

    /// The copy kept for the first key that `is` accepts.
    fn get(&self, is: impl Fn(&K) -> bool) -> Option<&Arc<str>> {
        self.slots
            .iter()
            .flatten()
            .find(|(key, _)| is(key))
            .map(|(_, own)| own)
    }

    /// That copy, cloned.
    pub(crate) fn find(&self, is: impl Fn(&K) -> bool) -> Option<Arc<str>> {
        self.get(is).map(Arc::clone)
    }

    /// Whether that copy is `name`.
    pub(crate) fn holds(&self, is: impl Fn(&K) -> bool, name: &str) -> bool {
        self.get(is).is_some_and(|own| **own == *name)
    }

    /// Keeps this thread's own copy of `name` under `key` and returns it.
    pub(crate) fn keep(&mut self, key: K, name: &str) -> Arc<str> {
        let own: Arc<str> = Arc::from(name);
        self.keep_in_slot(key, Arc::clone(&own));
        own
    }

    /// The copy kept for the first key that `is` accepts, or else the pair
    /// `make` gives, kept.
    pub(crate) fn get_or_keep(
        &mut self,
        is: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, Arc<str>),
    ) -> Option<&Arc<str>> {
        let found = self
            .slots
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|(key, _)| is(key)));
        let slot = match found {
            Some(slot) => slot,
            None => {
                let (key, own) = make();
                self.keep_in_slot(key, own)
            }
        };
        self.slots.get(slot)?.as_ref().map(|(_, own)| own)
    }

    /// Keeps `own` under `key` over the oldest pair; returns its slot.
    fn keep_in_slot(&mut self, key: K, own: Arc<str>) -> usize {
        let slot = self.next % N;
        self.next = slot + 1;
        self.slots[slot] = Some((key, own));
        slot
    }
}
