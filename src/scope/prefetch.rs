//! The read path's first stage: one backend load per nesting level.
//!
//! [`crate::from_json`] finds a document's references (in document order),
//! loads them, then deserializes the document, which meets them again in that
//! order. The records of that first level are kept in a [`Plan`], in the
//! order they are met, rather than in the scope's cache: a reference is
//! resolved from the next one in line (an id compared, no lock, hash or
//! shared copy of the data), and the records go into the cache when the
//! deserialization ends (moved, not copied). A reference met out of line
//! (serde buffers some documents, e.g. `#[serde(flatten)]`) is found by its
//! key instead, and one that is not here at all goes to the cache. Every
//! level is loaded by [`Context::load_level`]; the levels below a document's
//! own, and those of `prefetch`, go into the cache at once.
//!
//! While a plan is out, its keys stay marked in the cache as loading at its
//! level ([`Cached::Loading`]): whoever else looks there finds them unknown,
//! and loads them again (as for a prefetch still on its way), never stale
//! data.

use std::cell::{Cell, OnceCell, RefCell};
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::hash_map::Entry;
use uuid::Uuid;

use super::state::{CacheKey, Cached, KeyRef};
use super::{with_current, Context, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::hash::SeededHash;
use crate::record::Key;
use crate::reference::Reference;
use crate::refs::intern_classes;

/// A reference of the document that the cache already knew (or a prefetch
/// of another level had asked for): resolved from the cache.
const KNOWN: usize = usize::MAX;

thread_local! {
    /// The plan of the document being deserialized on this thread.
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

pub(crate) struct Plan {
    /// The context it belongs to (its `Inner`'s address).
    owner: usize,
    /// The prefetch level its keys are marked with.
    level: u64,
    /// The keys loaded, distinct, in the order of their first reference.
    keys: Vec<Key>,
    /// Each key's data; `None` when it has no record.
    data: Vec<Option<Bytes>>,
    /// The document's references in order: the id and its key's place in
    /// `keys` ([`KNOWN`] for one left to the cache).
    order: Vec<(Uuid, usize)>,
    /// The place in `order` of the next reference expected.
    next: Cell<usize>,
    /// The keys' places by key, made at the first reference met out of line.
    by_key: OnceCell<hashbrown::HashMap<CacheKey, usize, SeededHash>>,
}

impl Plan {
    /// Where the data of `(class, id)` is, when it is this plan's.
    fn find(&self, class: &str, id: Uuid) -> Option<usize> {
        let at = self.next.get();
        if let Some(&(next_id, k)) = self.order.get(at) {
            if next_id == id {
                let k = (k != KNOWN).then_some(k);
                let key = k.and_then(|k| self.keys.get(k));
                if key.is_none_or(|key| *key.class_name == *class) {
                    self.next.set(at + 1);
                    return k;
                }
            }
        }
        let by_key = self.by_key.get_or_init(|| {
            places(&self.keys, |key| {
                CacheKey(Arc::clone(&key.class_name), key.id)
            })
        });
        by_key.get(&KeyRef(class, id)).copied()
    }
}

/// The places of `keys` by a key of each that `made` makes.
fn places<'k, K: std::hash::Hash + Eq>(
    keys: &'k [Key],
    made: impl Fn(&'k Key) -> K,
) -> hashbrown::HashMap<K, usize, SeededHash> {
    let mut map = hashbrown::HashMap::with_capacity_and_hasher(keys.len(), SeededHash::default());
    map.extend(keys.iter().enumerate().map(|(k, key)| (made(key), k)));
    map
}

/// `f` of the data of `(class, id)` (`None` for a record the backend does not
/// have) when it is one of the references of the document being deserialized
/// on this thread, in this context; `None` otherwise.
pub(crate) fn with_planned<R>(
    class: &str,
    id: Uuid,
    f: impl FnOnce(Option<&[u8]>) -> R,
) -> Option<R> {
    PLAN.try_with(|slot| {
        let slot = slot.try_borrow().ok()?;
        let plan = slot.as_ref()?;
        if with_current(Context::address)? != plan.owner {
            return None;
        }
        let k = plan.find(class, id)?;
        Some(f(plan.data.get(k)?.as_deref()))
    })
    .ok()
    .flatten()
}

impl Context {
    /// Loads the references of a document (in document order) and those
    /// nested in what they name, one round trip per level as
    /// [`Context::prefetch_interned`]: the first level into a [`Plan`], the
    /// others into the cache.
    pub(crate) async fn prefetch_planned(&self, found: Vec<(Arc<str>, Uuid)>) -> Result<Plan> {
        self.trim_cache();
        let (plan, nested) = self.load_level(found).await?;
        if let Err(e) = self.prefetch_levels(nested, MAX_DEPTH - 1).await {
            self.settle(plan);
            return Err(e);
        }
        Ok(plan)
    }

    /// Loads `pending` and what its records name into the cache, one level
    /// (one round trip) at a time, at most `levels` levels.
    async fn prefetch_levels(
        &self,
        mut pending: Vec<(Arc<str>, Uuid)>,
        levels: usize,
    ) -> Result<()> {
        for _ in 0..levels {
            if pending.is_empty() {
                return Ok(());
            }
            let (plan, nested) = self.load_level(pending).await?;
            self.settle(plan);
            pending = nested;
        }
        if pending.is_empty() {
            return Ok(());
        }
        Err(Error::validation(format!(
            "references nested more than {MAX_DEPTH} levels deep"
        )))
    }

    /// One level of a prefetch: marks each of `found` not yet known as
    /// loading at a new level in the cache (which is how a repeated one is
    /// found, no second set), loads those in one round trip, and returns
    /// them as a plan in `found`'s order, with the references their records
    /// carry.
    async fn load_level(
        &self,
        found: Vec<(Arc<str>, Uuid)>,
    ) -> Result<(Plan, Vec<(Arc<str>, Uuid)>)> {
        let tenant = self.tenant();
        let mut plan = {
            let mut st = self.lock();
            st.loads += 1;
            let level = st.loads;
            st.cache.reserve(found.len());
            let mut keys = Vec::new();
            let mut order = Vec::with_capacity(found.len());
            for (class, id) in found {
                let k = keys.len();
                let slot = match st.cache.entry(CacheKey(class, id)) {
                    Entry::Vacant(slot) => slot.insert_entry(Cached::Loading(level, k)),
                    Entry::Occupied(slot) => match *slot.get() {
                        // Repeated in this document.
                        Cached::Loading(l, k) if l == level => {
                            order.push((id, k));
                            continue;
                        }
                        // Another prefetch's, still loading or failed: this
                        // one asks too.
                        Cached::Loading(..) => {
                            let mut slot = slot;
                            slot.insert(Cached::Loading(level, k));
                            slot
                        }
                        Cached::Data(_) | Cached::Missing => {
                            order.push((id, KNOWN));
                            continue;
                        }
                    },
                };
                keys.push(Key::new(Arc::clone(tenant), Arc::clone(&slot.key().0), id));
                order.push((id, k));
            }
            Plan {
                owner: self.address(),
                level,
                data: Vec::new(),
                keys,
                order,
                next: Cell::new(0),
                by_key: OnceCell::new(),
            }
        };
        let mut nested = Vec::new();
        if plan.keys.is_empty() {
            return Ok((plan, nested));
        }
        let records = self.conn().load(&plan.keys, tenant).await?;
        plan.data = vec![None; plan.keys.len()];
        // Most backends answer in the order asked: each record is matched
        // with the next key; the first that is not, and those after it, by
        // a search (a backend may answer in any order).
        let is =
            |key: &Key, record: &Key| key.id == record.id && key.class_name == record.class_name;
        let mut next = 0;
        // By a borrowed (class, id), hashed by the id alone as the cache is.
        let mut by_key: Option<hashbrown::HashMap<KeyRef<'_>, usize, SeededHash>> = None;
        for record in records {
            if !record.refs.is_empty() {
                nested.extend(intern_classes(record.refs));
            }
            // In line: the next key, or a later one (those between had no
            // record).
            let in_line = by_key
                .is_none()
                .then(|| plan.keys.get(next..))
                .flatten()
                .and_then(|rest| rest.iter().position(|key| is(key, &record.key)));
            let k = match in_line {
                Some(skipped) => {
                    next += skipped + 1;
                    Some(next - 1)
                }
                None => by_key
                    .get_or_insert_with(|| {
                        places(&plan.keys, |key| KeyRef(&key.class_name, key.id))
                    })
                    .get(&KeyRef(&record.key.class_name, record.key.id))
                    .copied(),
            };
            if let Some(slot) = k.and_then(|k| plan.data.get_mut(k)) {
                *slot = Some(record.data);
            }
        }
        drop(by_key);
        Ok((plan, nested))
    }

    /// Runs `f` (a deserialization on this thread) with `plan` out, then
    /// puts its records into the cache.
    pub(crate) fn with_plan<R>(&self, plan: Plan, f: impl FnOnce() -> R) -> R {
        let mut plan = Some(plan);
        let installed = PLAN
            .try_with(|slot| match slot.try_borrow_mut() {
                Ok(mut slot) if slot.is_none() => {
                    *slot = plan.take();
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        // Another document's deserialization on this thread has the slot
        // (one read inside a value being read), or the thread is ending: the
        // records go to the cache first, and the references are resolved
        // there.
        if !installed {
            if let Some(plan) = plan {
                self.settle(plan);
            }
            return f();
        }
        /// Takes the plan back even when `f` panics.
        struct Out<'a>(&'a Context);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                let plan = PLAN
                    .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take()))
                    .ok()
                    .flatten();
                if let Some(plan) = plan {
                    self.0.settle(plan);
                }
            }
        }
        let _out = Out(self);
        f()
    }

    /// Moves a plan's records into the cache: a record over any mark (not
    /// over data written in the scope meanwhile), a missing one only over
    /// the plan's own marks (the keys are distinct).
    fn settle(&self, plan: Plan) {
        let mut st = self.lock();
        for (key, data) in plan.keys.iter().zip(plan.data) {
            let Some(slot) = st.cache.get_mut(&KeyRef(&key.class_name, key.id)) else {
                continue;
            };
            let Cached::Loading(level, _) = *slot else {
                continue;
            };
            *slot = match data {
                Some(data) => Cached::Data(data),
                None if level == plan.level => Cached::Missing,
                None => continue,
            };
            let weight = slot.weight();
            st.known(&CacheKey(Arc::clone(&key.class_name), key.id), 0, weight);
        }
    }

    /// [`Context::prefetch_interned`] for references with class names of their own.
    pub(crate) async fn prefetch(&self, references: Vec<Reference>) -> Result<()> {
        self.prefetch_interned(intern_classes(references)).await
    }

    /// Loads every reference not yet known, one backend round trip per
    /// nesting level, following the references each loaded record carries.
    pub(crate) async fn prefetch_interned(&self, pending: Vec<(Arc<str>, Uuid)>) -> Result<()> {
        self.trim_cache();
        self.prefetch_levels(pending, MAX_DEPTH).await
    }
}
