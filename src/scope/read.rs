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
use super::state::{CacheKey, Cached, KeyRef};
use super::{current_or_err, no_scope, with_current, Context, MAX_DEPTH};
use crate::class_name::{class_name, Expected};
use crate::error::{Error, Result};
use crate::reference::Reference;

thread_local! {
    /// Externals being deserialized on this thread right now (nesting guard).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
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
                tokio::task::block_in_place(|| handle.block_on(fut))?
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
        self.lock().cache.insert(ck.clone(), known);
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
        self.sync_scope(|| decode(&record.data, &class, reference.id))
    }

    /// Prefetches `references` (one round trip per nesting level), then decodes
    /// them in this context: `Store::get_many` and `toast::load_many`.
    pub(crate) async fn load_many<T: DeserializeOwned>(
        &self,
        references: &[Reference],
    ) -> Result<Vec<T>> {
        self.prefetch(references.to_vec()).await?;
        self.sync_scope(|| {
            references
                .iter()
                .map(|r| resolve::<T>(&r.class_name, r.id, Expected::of::<T>()))
                .collect()
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
