//! What a scope holds: the write buffer, the read cache and a parked error.

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
