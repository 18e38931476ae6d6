//! The write path: value → bytes → record → buffer → flush.
//!
//! An external's value is serialized to JSON once; those bytes give its
//! content id, become its record and go into the scope's buffer (no I/O).
//! A flush hands the whole buffer to one [`crate::Backend::save`] call.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::hash_map::Entry;
use serde::Serialize;
use uuid::Uuid;

use super::state::{CacheKey, Cached};
use super::{current, no_scope, Context, MAX_DEPTH};
use crate::class_name::class_name;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::reference::Reference;

thread_local! {
    /// One frame per external being serialized on this thread: the references
    /// found inside it. Serializing nests on one thread (an external's value is
    /// serialized inside its parent's call), so the frames of two tasks that
    /// share a context on two threads never mix, and no lock is taken for them.
    static FRAMES: RefCell<Vec<Vec<Reference>>> = const { RefCell::new(Vec::new()) };
    /// The buffer serializations on this thread reuse: a value's JSON grows it
    /// once, then is copied out at its exact size (a `Vec` grown by doubling
    /// would keep up to twice the payload alive in the buffer and the cache).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Larger scratch buffers are dropped rather than kept for the next value.
const SCRATCH_KEEP: usize = 1 << 20;

/// Serializes `value` as an external of `class` in the current context and
/// returns its class and id, or the message of the (parked) error: the
/// field adapters' and `External<T>`'s way in.
pub(crate) fn store_external<T: Serialize + ?Sized>(
    value: &T,
    class: Arc<str>,
    id: Option<Uuid>,
) -> std::result::Result<(Arc<str>, Uuid), String> {
    let Some(ctx) = current() else {
        return Err(no_scope().to_string());
    };
    ctx.buffer_external(value, class, id)
        .map_err(|e| ctx.park(e))
}

/// The id derived from a value's content: a UUID (version 8) from the SHA-256
/// hash of the class name, a NUL byte and the stored bytes.
///
/// SHA-256 rather than a faster non-cryptographic hash: equal ids must mean
/// equal content even when a value is crafted to collide with another one
/// (an id names a record that documents of other writers may share).
pub(crate) fn content_id(class_name: &str, data: &[u8]) -> Uuid {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(class_name.as_bytes());
    hasher.update([0u8]);
    hasher.update(data);
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    Uuid::new_v8(bytes)
}

/// `value` as JSON bytes of exactly its length.
fn to_exact_bytes<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Bytes> {
    // Taken, not borrowed: a nested external serialized meanwhile finds an
    // empty buffer and uses its own.
    let mut buf = SCRATCH.with(Cell::take);
    buf.clear();
    let result = serde_json::to_writer(&mut buf, value).map(|()| Bytes::copy_from_slice(&buf));
    if buf.capacity() <= SCRATCH_KEEP {
        buf.clear();
        SCRATCH.with(|s| s.set(buf));
    }
    result
}

impl Context {
    /// Serializes `value`, buffers its record (unless the scope already
    /// knows it unchanged), and returns its class and id.
    fn buffer_external<T: Serialize + ?Sized>(
        &self,
        value: &T,
        class: Arc<str>,
        fixed_id: Option<Uuid>,
    ) -> Result<(Arc<str>, Uuid)> {
        let record = self.make_record(value, class, fixed_id)?;
        let out = (Arc::clone(&record.key.class_name), record.key.id);
        let ck = CacheKey(Arc::clone(&record.key.class_name), record.key.id);
        // The enclosing external (if any) records this one among its children.
        let _ = FRAMES.try_with(|frames| {
            if let Some(parent) = frames.borrow_mut().last_mut() {
                parent.push(record.key.reference());
            }
        });
        let mut st = self.lock();
        // One lookup for "known and unchanged" and for the insert.
        let now = Cached::Data(record.data.clone());
        let weight = now.weight();
        let before = match st.cache.entry(ck.clone()) {
            Entry::Occupied(known) if matches!(known.get(), Cached::Data(data) if *data == record.data) =>
            {
                return Ok(out);
            }
            Entry::Occupied(mut known) => known.insert(now).weight(),
            Entry::Vacant(slot) => {
                slot.insert(now);
                0
            }
        };
        st.known(&ck, before, weight);
        st.buffer.insert(ck, record);
        Ok(out)
    }

    /// Serializes `value` into a record of `class` (the externals inside it
    /// going to the buffer), without buffering the record itself.
    fn make_record<T: Serialize + ?Sized>(
        &self,
        value: &T,
        class: Arc<str>,
        fixed_id: Option<Uuid>,
    ) -> Result<Record> {
        let guard = FrameGuard::enter(&class)?;
        let data = to_exact_bytes(value);
        let children = guard.pop();
        let data = data.map_err(|e| {
            self.recover(e, |e| {
                Error::validation_with(format!("cannot serialize {class}: {e}"), e)
            })
        })?;
        let id = fixed_id.unwrap_or_else(|| content_id(&class, &data));
        Ok(Record::new(self.key(class, id), data, children))
    }

    /// Stores `value` under a new random id with the externals inside it, in
    /// one save: `Store::put`. The record itself skips the buffer and cache
    /// (this context ends here).
    pub(crate) async fn put_new<T: Serialize + Sync + ?Sized>(
        &self,
        value: &T,
    ) -> Result<Reference> {
        let class = class_name::<T>();
        let record = self.sync_scope(|| self.make_record(value, class, Some(Uuid::new_v4())))?;
        let reference = record.key.reference();
        if self.lock().buffer.is_empty() {
            // No externals inside (the usual case): the record alone, with
            // no flush to order against (this context is the call's own).
            self.conn().save(std::slice::from_ref(&record)).await?;
        } else {
            self.flush_with(Some(record)).await?;
        }
        Ok(reference)
    }

    /// Saves every buffered record with one [`crate::Backend::save`] call.
    ///
    /// # Errors
    ///
    /// The backend's error; the records go back into the buffer (unless a
    /// newer version of the same record was buffered meanwhile), so nothing is
    /// dropped and the next flush retries them.
    pub async fn flush(&self) -> Result<()> {
        self.flush_with(None).await
    }

    /// [`Context::flush`], saving `extra` in the same backend call.
    async fn flush_with(&self, extra: Option<Record>) -> Result<()> {
        // Flushes of one context run one at a time: a flush that finds a record
        // already taken by another flush waits for it to be stored or restored.
        let _serial = self.flush_lock().lock().await;
        let records: Vec<Record> = {
            let mut st = self.lock();
            if st.buffer.is_empty() && extra.is_none() {
                return Ok(());
            }
            let mut records = Vec::with_capacity(st.buffer.len() + usize::from(extra.is_some()));
            records.extend(st.buffer.drain(..).map(|(_, r)| r));
            records.extend(extra);
            records
        };
        let mut in_flight = InFlight {
            ctx: self,
            records: Some(records),
        };
        let records = in_flight.records.as_deref().unwrap_or_default();
        let result = self.conn().save(records).await;
        if result.is_ok() {
            in_flight.records = None;
        }
        // On error, dropping `in_flight` puts the records back.
        drop(in_flight);
        // The records written are known, and now evictable like any other.
        self.trim_cache();
        result
    }
}

/// The frame of an external being serialized on this thread ([`FRAMES`]),
/// popped even on error or panic.
struct FrameGuard {
    /// How many frames there are with this one.
    frame: usize,
}

impl FrameGuard {
    fn enter(class: &str) -> Result<FrameGuard> {
        let too_deep = || {
            Error::validation(format!(
                "externals nested more than {MAX_DEPTH} levels deep while serializing {class}"
            ))
        };
        FRAMES
            .try_with(|frames| {
                let mut frames = frames.borrow_mut();
                if frames.len() >= MAX_DEPTH {
                    return Err(too_deep());
                }
                frames.push(Vec::new());
                Ok(FrameGuard {
                    frame: frames.len(),
                })
            })
            .map_err(|_| Error::validation("toast: serializing while the thread shuts down"))?
    }

    /// The references found inside this frame's external.
    fn pop(self) -> Vec<Reference> {
        let children = FRAMES
            .try_with(|frames| {
                let mut frames = frames.borrow_mut();
                let children = if frames.len() == self.frame {
                    frames.pop().unwrap_or_default()
                } else {
                    Vec::new()
                };
                frames.truncate(self.frame.saturating_sub(1));
                children
            })
            .unwrap_or_default();
        std::mem::forget(self);
        children
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        let _ =
            FRAMES.try_with(|frames| frames.borrow_mut().truncate(self.frame.saturating_sub(1)));
    }
}

/// Records taken out of the buffer for a save; put back unless the save succeeded
/// (also when the flush future is dropped half-way).
struct InFlight<'a> {
    ctx: &'a Context,
    records: Option<Vec<Record>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(records) = self.records.take() {
            let mut st = self.ctx.lock();
            for record in records {
                let ck = CacheKey(Arc::clone(&record.key.class_name), record.key.id);
                st.buffer.entry(ck).or_insert(record);
            }
        }
    }
}
