//! The read path: reference → the document's plan → the cache → fetched on
//! the spot → value.
//!
//! [`resolve`] is the one lookup every reader goes through (the field
//! adapters, `External<T>`, `Store::get_many`, `toast::load`): a reference is
//! looked for, in this order, among the references of the document being
//! deserialized ([`super::prefetch`]'s plan), in the scope's cache, and last
//! loaded on the spot where the thread may block.

use std::cell::Cell;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::runtime::{Handle, RuntimeFlavor};
use uuid::Uuid;

use super::parked::{park, take_parked_matching};
use super::prefetch::with_planned;
use super::state::{CacheKey, Cached, KeyRef, Limits};
use super::{current_or_err, no_scope, with_current, Context, MAX_DEPTH};
use crate::class_name::{class_name, Expected};
use crate::error::{Error, Result};
use crate::reference::Reference;

thread_local! {
    /// Externals being deserialized on this thread right now (nesting guard).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// What the read running on this thread may still decode.
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// What one read (a `from_json`, a `get`, …) may still decode: a value is a
/// tree, and records that name one record many times are decoded once per
/// name, so the work of a read is bounded by these, not by what is stored.
#[derive(Clone, Copy)]
struct Budget {
    references: usize,
    bytes: usize,
    limits: Limits,
}

/// Runs `f`, one read, under the limits of `limits` (unless a read is
/// already running on this thread: then `f` is part of it).
pub(crate) fn reading<R>(limits: Limits, f: impl FnOnce() -> R) -> R {
    let _read = ReadGuard::enter(limits);
    f()
}

/// The budget of the read running on this thread, installed while it runs.
struct ReadGuard {
    installed: bool,
}

impl ReadGuard {
    fn enter(limits: Limits) -> ReadGuard {
        let installed = BUDGET
            .try_with(|b| {
                if b.get().is_some() {
                    return false;
                }
                b.set(Some(Budget {
                    references: limits.max_references,
                    bytes: limits.max_bytes,
                    limits,
                }));
                true
            })
            .unwrap_or(false);
        ReadGuard { installed }
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        if self.installed {
            let _ = BUDGET.try_with(|b| b.set(None));
        }
    }
}

/// Charges the read running on this thread for decoding one record of
/// `len` bytes; an error once it has used up its limits.
fn charge(class: &str, id: Uuid, len: usize) -> Result<()> {
    let Ok(Some(mut budget)) = BUDGET.try_with(Cell::get) else {
        return Ok(());
    };
    let Limits {
        max_references,
        max_bytes,
        ..
    } = budget.limits;
    if budget.references == 0 || budget.bytes < len {
        return Err(Error::validation(format!(
            "reading {class} {id} goes over the limits of one read ({max_references} \
             references, {max_bytes} bytes of stored values): values that name one record \
             many times are decoded once per name; raise the limits with \
             Store::with_read_limits if such values are expected"
        )));
    }
    budget.references -= 1;
    budget.bytes -= len;
    let _ = BUDGET.try_with(|b| b.set(Some(budget)));
    Ok(())
}

/// Resolves the reference `(class, id)` to a value of the class `expected`
/// in the current context, or returns the message of the (parked) error:
/// the field adapters' and `External<T>`'s way in.
pub(crate) fn resolve_external<T: DeserializeOwned>(
    class: &str,
    id: Uuid,
    expected: Expected,
) -> std::result::Result<T, String> {
    resolve(class, id, expected).map_err(park)
}

/// Resolves the reference `(class, id)` to a value of the class `expected`
/// in the current context.
pub(crate) fn resolve<T: DeserializeOwned>(class: &str, id: Uuid, expected: Expected) -> Result<T> {
    // Compared with this thread's copy of the expected name where it keeps
    // one (no clone), else with the name itself.
    if !expected.is(class) {
        check_class(class, id, &expected.name())?;
    }
    // 1. One of the references of the document being deserialized (not one
    //    inside a loaded value: those are the cache's).
    if DEPTH.try_with(Cell::get).ok() == Some(0) {
        if let Some(planned) = with_planned(class, id, |data| decode_known(data, class, id)) {
            return planned;
        }
    }
    // 2. The scope's cache (looked up with the context borrowed, not cloned).
    match with_current(|ctx| ctx.known(class, id)) {
        None => Err(no_scope()),
        Some(Some(known)) => decode_known(known.as_deref(), class, id),
        // 3. Fetched on the spot.
        Some(None) => {
            let known = current_or_err()?.fetch_now(&CacheKey(expected.name(), id))?;
            decode_known(known.as_deref(), class, id)
        }
    }
}

/// A reference of another class than the one expected is an error, never a mis-decode.
fn check_class(class: &str, id: Uuid, expected: &str) -> Result<()> {
    if class != expected {
        return Err(Error::validation(format!(
            "class_name mismatch for reference {id}: expected {expected}, got {class}"
        )));
    }
    Ok(())
}

/// Decodes what is known of a record: its data, or `None` for a missing one.
fn decode_known<T: DeserializeOwned>(known: Option<&[u8]>, class: &str, id: Uuid) -> Result<T> {
    match known {
        Some(data) => decode(data, class, id),
        None => Err(Error::not_found(class, id)),
    }
}

/// Decodes a stored value of `class`, its externals resolving in the
/// current context.
fn decode<T: DeserializeOwned>(data: &[u8], class: &str, id: Uuid) -> Result<T> {
    // A value read by plain serde inside a scope, outside any toast read,
    // is a read of its own.
    let _read = match BUDGET.try_with(Cell::get) {
        Ok(None) => with_current(Context::limits).map(ReadGuard::enter),
        _ => None,
    };
    charge(class, id, data.len())?;
    let _depth = DepthGuard::enter(class)?;
    // Checked as UTF-8 once, in one pass, rather than string by string
    // (which is what serde_json does when reading from bytes).
    let text = simdutf8::compat::from_utf8(data).map_err(|e| {
        Error::validation_with(
            format!("stored {class} {id} is corrupted: not UTF-8 JSON"),
            e,
        )
    })?;
    serde_json::from_str::<T>(text).map_err(|e| {
        take_parked_matching(&e.to_string()).unwrap_or_else(|| {
            Error::validation_with(
                format!("stored {class} {id} no longer fits the type: {e}"),
                e,
            )
        })
    })
}

impl Context {
    /// What the cache knows of `(class, id)`: its data, or `None` when it is
    /// missing; `None` when not known.
    fn known(&self, class: &str, id: Uuid) -> Option<Option<Bytes>> {
        self.lock()
            .cache
            .get(&KeyRef(class, id))
            .and_then(Cached::known)
    }

    /// Loads a record that was not prefetched, blocking where that is allowed.
    fn fetch_now(&self, ck: &CacheKey) -> Result<Option<Bytes>> {
        let key = self.key(Arc::clone(&ck.0), ck.1);
        let conn = self.conn().clone();
        let tenant = Arc::clone(self.tenant());
        let fut = async move { conn.load(std::slice::from_ref(&key), &tenant).await };
        let records = match (&self.blocking_handle(), Handle::try_current()) {
            (Some(runtime), Err(_)) => runtime.block_on(fut)?,
            (_, Ok(handle)) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                if tokio::task::try_id().is_some() {
                    // A task, on one of the runtime's workers: the worker's
                    // other tasks move to another thread while it blocks.
                    tokio::task::block_in_place(|| handle.block_on(fut))?
                } else {
                    // Not a task: a `block_on` or a `LocalSet`'s `run_until`
                    // on a thread of the caller's, where tokio forbids
                    // `block_in_place`. The workers run the load while this
                    // thread waits for it.
                    std::thread::scope(|s| s.spawn(|| handle.block_on(fut)).join())
                        .map_err(|_| Error::backend("loading a reference on the spot panicked"))??
                }
            }
            _ => {
                return Err(Error::validation(format!(
                    "reference {} {} was not prefetched and this thread cannot block to load it \
                     (current-thread runtime): deserialize with toast::from_json / from_slice / \
                     from_value, which load every reference first",
                    ck.0, ck.1
                )))
            }
        };
        let data = records.into_iter().next().map(|r| r.data);
        let known = data.clone().map_or(Cached::Missing, Cached::Data);
        let weight = known.weight();
        let mut st = self.lock();
        st.trim(self.limits().cache_bytes);
        let before = st.cache.insert(ck.clone(), known).map_or(0, |c| c.weight());
        st.known(ck, before, weight);
        Ok(data)
    }

    /// Loads and decodes one value: `Store::get`. One round trip for the
    /// record, then one per nesting level of the externals inside it; the
    /// record itself skips the cache (this context ends here).
    pub(crate) async fn load_one<T: DeserializeOwned>(&self, reference: &Reference) -> Result<T> {
        let class = class_name::<T>();
        check_class(&reference.class_name, reference.id, &class)?;
        let key = self.key(Arc::clone(&class), reference.id);
        let Some(record) = self
            .conn()
            .load(std::slice::from_ref(&key), self.tenant())
            .await?
            .into_iter()
            .next()
        else {
            return Err(Error::not_found(&*class, reference.id));
        };
        if !record.refs.is_empty() {
            self.prefetch(record.refs).await?;
        }
        self.sync_scope(|| reading(self.limits(), || decode(&record.data, &class, reference.id)))
    }

    /// Prefetches `references` (one round trip per nesting level), then decodes
    /// them in this context: `Store::get_many` and `toast::load_many`.
    pub(crate) async fn load_many<T: DeserializeOwned>(
        &self,
        references: &[Reference],
    ) -> Result<Vec<T>> {
        self.prefetch(references.to_vec()).await?;
        self.sync_scope(|| {
            reading(self.limits(), || {
                references
                    .iter()
                    .map(|r| resolve::<T>(&r.class_name, r.id, Expected::of::<T>()))
                    .collect()
            })
        })
    }
}

/// Counts externals being deserialized on this thread ([`DEPTH`]), to stop
/// runaway nesting.
struct DepthGuard;

impl DepthGuard {
    fn enter(class: &str) -> Result<Self> {
        let depth = DEPTH.try_with(Cell::get).unwrap_or(MAX_DEPTH);
        if depth >= MAX_DEPTH {
            return Err(Error::validation(format!(
                "externals nested more than {MAX_DEPTH} levels deep while loading {class}"
            )));
        }
        let _ = DEPTH.try_with(|d| d.set(depth + 1));
        Ok(DepthGuard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}
