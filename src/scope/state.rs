//! What a scope holds: the write buffer, the read cache and a parked error.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::error::Error;
use crate::hash::SeededHash;
use crate::record::Record;

/// A record in the buffer and the cache: (class name, id), hashed by the id
/// alone (ids are random or content hashes that cover the class name, so two
/// classes rarely share one; equality still compares both).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CacheKey(pub(crate) Arc<str>, pub(crate) Uuid);

impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.1.as_u128());
    }
}

/// A [`CacheKey`] borrowed: the cache is looked up without cloning a class
/// name's `Arc` (hashed as [`CacheKey`] is, by the id alone).
#[derive(PartialEq, Eq)]
pub(crate) struct KeyRef<'a>(pub(crate) &'a str, pub(crate) Uuid);

impl std::hash::Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.1.as_u128());
    }
}

impl hashbrown::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.1 == key.1 && self.0 == &*key.0
    }
}

/// The state of one scope, behind its context's lock (never held across an
/// `.await` or while user code runs).
#[derive(Default)]
pub(crate) struct State {
    /// Records waiting for the next flush, by (class, id): the newest wins,
    /// in the place of the first. A flush saves them in this order, the
    /// order their values were serialized in (an external's before the
    /// value holding it), which is the order a document's references come
    /// in when it is read back.
    pub(crate) buffer: indexmap::IndexMap<CacheKey, Record, SeededHash>,
    /// Records known in this scope, and those a prefetch is loading.
    pub(crate) cache: hashbrown::HashMap<CacheKey, Cached, SeededHash>,
    /// The last typed error that crossed serde as a message.
    pub(crate) parked: Option<Parked>,
    /// The last prefetch level's number ([`Cached::Loading`]).
    pub(crate) loads: u64,
    /// What the cache's known records weigh ([`Cached::weight`]).
    pub(crate) cache_bytes: usize,
    /// The cache's keys in the order their records became known: the first
    /// evicted by [`State::trim`]. A key may appear more than once (a record
    /// known again after an update); only its first place counts.
    pub(crate) cache_order: VecDeque<CacheKey>,
}

/// What a record the cache knows weighs beyond its data: its key, its slot.
const ENTRY_WEIGHT: usize = 64;

impl State {
    /// Accounts for `key`'s record having become known in the cache, where
    /// it weighed `before` ([`Cached::weight`]) and now weighs `now`.
    pub(crate) fn known(&mut self, key: &CacheKey, before: usize, now: usize) {
        self.cache_bytes = self.cache_bytes.saturating_sub(before) + now;
        if now > 0 {
            self.cache_order.push_back(key.clone());
        }
    }

    /// Evicts the records known longest until the cache weighs at most
    /// `budget` bytes. Records a prefetch is loading are never evicted; the
    /// buffer (records not yet flushed) is not the cache's and is untouched.
    pub(crate) fn trim(&mut self, budget: usize) {
        while self.cache_bytes > budget {
            let Some(key) = self.cache_order.pop_front() else {
                break;
            };
            let loading = matches!(self.cache.get(&key), Some(Cached::Loading(..)));
            if !loading {
                if let Some(gone) = self.cache.remove(&key) {
                    self.cache_bytes = self.cache_bytes.saturating_sub(gone.weight());
                }
            }
        }
        // A key known again many times (one record updated over and over)
        // leaves its older places behind: drop them once they outnumber the
        // keys.
        if self.cache_order.len() > 2 * self.cache.len() + 1024 {
            let mut seen = hashbrown::HashSet::with_capacity_and_hasher(
                self.cache.len(),
                SeededHash::default(),
            );
            let cache = &self.cache;
            self.cache_order.retain(|key| {
                cache
                    .get(key)
                    .is_some_and(|c| c.weight() > 0 && seen.insert(key.clone()))
            });
        }
    }
}

/// What the cache knows of a record.
pub(crate) enum Cached {
    /// Loaded or written in this scope.
    Data(Bytes),
    /// Known to be missing.
    Missing,
    /// Asked for by the prefetch level of this number, not answered yet (or
    /// that prefetch failed or was dropped): known to nobody else. A prefetch
    /// that finds it asks again, and a reference that finds it is loaded on
    /// the spot, as one never prefetched. The second number is the key's
    /// place in that level's plan.
    Loading(u64, usize),
}

impl Cached {
    /// What this costs the cache's budget (nothing while loading).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Cached::Data(data) => ENTRY_WEIGHT + data.len(),
            Cached::Missing => ENTRY_WEIGHT,
            Cached::Loading(..) => 0,
        }
    }

    /// The record's data, or `None` when missing; `None` when not known.
    pub(crate) fn known(&self) -> Option<Option<Bytes>> {
        match self {
            Cached::Data(data) => Some(Some(data.clone())),
            Cached::Missing => Some(None),
            Cached::Loading(..) => None,
        }
    }
}

/// A typed error that crossed serde as its message.
pub(crate) struct Parked {
    pub(crate) message: String,
    pub(crate) error: Error,
}

/// How much one read may do, and how much a scope keeps: see
/// [`crate::Store::with_read_limits`] and [`crate::Store::with_cache_budget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// References one read may resolve.
    pub(crate) max_references: usize,
    /// Bytes of stored values one read may decode.
    pub(crate) max_bytes: usize,
    /// Bytes of known records a scope's cache keeps between operations.
    pub(crate) cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_references: 1_000_000,
            max_bytes: 256 << 20,
            cache_bytes: 64 << 20,
        }
    }
}
