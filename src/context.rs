//! The task-scoped context: [`scope`], [`flush`], [`current`], [`Context`].
//!
//! A context holds a [`Store`], a write buffer (records waiting for the next
//! flush) and a read cache (records loaded or written in this scope). Async
//! code finds it in a `tokio::task_local!`; the blocking API in a `scoped-tls`
//! thread-local. Serialization never does I/O: it only fills the buffer.

use hashbrown::hash_map::Entry;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::{Handle, RuntimeFlavor};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::{Key, Record};
use crate::reference::{Expected, Reference};
use crate::store::Store;

mod plan;

tokio::task_local! {
    static CONTEXT: Context;
}

scoped_tls::scoped_thread_local!(pub(crate) static BLOCKING: Context);

/// How deep externals may nest inside one another (on write and on read).
pub const MAX_DEPTH: usize = 64;

const NO_SCOPE: &str = "toast::external was used outside a toast scope: run the \
    serialization inside `toast::scope(store, async { … })` (or \
    `toast::blocking::Store::scope(|| …)`), or use `toast::to_json` / `toast::from_json` \
    inside one";

/// The scope a task runs in: a store, a write buffer and a read cache.
///
/// Cheap to clone (an `Arc`). A task spawned inside a scope does **not**
/// inherit it: take [`current`] before spawning and run the task in
/// [`Context::scope`] to carry it over.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Doc { #[serde(with = "toast::external")] body: String }
///
/// toast::scope(toast::Store::memory(), async {
///     let ctx = toast::current().expect("inside a scope");
///     let handle = tokio::spawn(ctx.scope(async {
///         toast::to_json(&Doc { body: "from a spawned task".into() }).await
///     }));
///     let json = handle.await.expect("task ran")??;
///     let back: Doc = toast::from_json(&json).await?;
///     assert_eq!(back.body, "from a spawned task");
///     Ok::<_, toast::Error>(())
/// }).await??;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    /// The store, with this thread's own copy of its tenant
    /// ([`Store::for_context`]): every key the context makes clones it.
    store: Store,
    state: Mutex<State>,
    flush_lock: tokio::sync::Mutex<()>,
    /// The runtime of a `blocking::Store`, used to fetch on the spot.
    runtime: Option<Handle>,
}

/// A record in the buffer and the cache: (class name, id), hashed by the id
/// alone (ids are random or content hashes that cover the class name, so two
/// classes rarely share one; equality still compares both).
#[derive(Clone, PartialEq, Eq)]
struct CacheKey(Arc<str>, Uuid);

impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.1.as_u128());
    }
}

/// A [`CacheKey`] borrowed: the cache is looked up without cloning a class
/// name's `Arc` (hashed as [`CacheKey`] is, by the id alone).
#[derive(PartialEq, Eq)]
struct KeyRef<'a>(&'a str, Uuid);

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

type Hasher = crate::SeededHash;

#[derive(Default)]
struct State {
    /// Records waiting for the next flush, by (class, id): the newest wins,
    /// in the place of the first. A flush saves them in this order, the
    /// order their values were serialized in (an external's before the
    /// value holding it), which is the order a document's references come
    /// in when it is read back (see the Redis backend).
    buffer: indexmap::IndexMap<CacheKey, Record, Hasher>,
    /// Records known in this scope, and those a prefetch is loading.
    cache: hashbrown::HashMap<CacheKey, Cached, Hasher>,
    /// The last typed error that crossed serde as a message.
    parked: Option<Parked>,
    /// The last prefetch level's number ([`Cached::Loading`]).
    loads: u64,
}

/// What the cache knows of a record.
enum Cached {
    /// Loaded or written in this scope.
    Data(Bytes),
    /// Known to be missing.
    Missing,
    /// Asked for by the prefetch level of this number, not answered yet (or
    /// that prefetch failed or was dropped): known to nobody else. A prefetch
    /// that finds it asks again, and a reference that finds it is loaded on
    /// the spot, as one never prefetched. The second number is the key's
    /// place in that level's [`plan::Plan`].
    Loading(u64, usize),
}

impl Cached {
    /// The record's data, or `None` when missing; `None` when not known.
    fn known(&self) -> Option<Option<Bytes>> {
        match self {
            Cached::Data(data) => Some(Some(data.clone())),
            Cached::Missing => Some(None),
            Cached::Loading(..) => None,
        }
    }
}

struct Parked {
    message: String,
    error: Error,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (buffered, cached) = {
            let st = self.lock();
            (st.buffer.len(), st.cache.len())
        };
        f.debug_struct("Context")
            .field("store", &self.inner.store)
            .field("buffered", &buffered)
            .field("cached", &cached)
            .finish()
    }
}

/// Runs `fut` with `store` as the task's toast context, then flushes the
/// records its serializations buffered.
///
/// Inside, `#[serde(with = "toast::external")]` fields work with any serde
/// call: [`crate::to_json`] and [`crate::from_json`] (which flush and prefetch),
/// and plain `serde_json::to_string` (buffered until the end of the scope).
///
/// # Errors
///
/// A failed flush is the `Err`: the records were not stored, and the caller
/// must not hand out the references that name them.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Order { id: u32, #[serde(with = "toast::external")] lines: Vec<String> }
///
/// let store = toast::Store::memory();
/// let order = Order { id: 7, lines: vec!["apple".into(), "pear".into()] };
/// let json = toast::scope(store.clone(), async { serde_json::to_string(&order) }).await??;
/// assert!(json.contains(r#""lines":{"class_name":"Vec<String>","id":"#));
/// assert_eq!(store.stats().save_calls, 1); // flushed when the scope ended
///
/// let back: Order = toast::scope(store, toast::from_json(&json)).await??;
/// assert_eq!(back, order);
/// # Ok(()) }
/// ```
pub async fn scope<F: Future>(store: Store, fut: F) -> Result<F::Output> {
    Context::new(&store, None).scope(fut).await
}

/// Flushes the current scope's buffered records now: one [`crate::Backend::save`]
/// call however many there are.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope; the backend's error when the save
/// fails (the records stay buffered for the next flush).
pub async fn flush() -> Result<()> {
    current_or_err()?.flush().await
}

/// The context of the running task (or blocking scope), if any.
pub fn current() -> Option<Context> {
    with_current(Context::clone)
}

/// Takes the typed error behind the last serde error raised by an external in
/// this scope, if it has not been taken yet.
///
/// [`crate::to_json`] and [`crate::from_json`] do this for you, and so does
/// `toast::Error::from(serde_json::Error)`; call it after a plain serde call
/// in another format.
pub fn take_error() -> Option<Error> {
    current().and_then(|ctx| ctx.lock().parked.take().map(|p| p.error))
}

pub(crate) fn current_or_err() -> Result<Context> {
    current().ok_or_else(|| Error::validation(NO_SCOPE))
}

/// The parked error whose message `serde_message` carries, if any.
pub(crate) fn take_parked_matching(serde_message: &str) -> Option<Error> {
    current().and_then(|ctx| ctx.take_parked_matching(serde_message))
}

/// Serializes `value` as an external of `class` in the current context and
/// returns its class and id, or the message of the (parked) error.
pub(crate) fn store_external<T: Serialize + ?Sized>(
    value: &T,
    class: Arc<str>,
    id: Option<Uuid>,
) -> std::result::Result<(Arc<str>, Uuid), String> {
    let Some(ctx) = current() else {
        return Err(NO_SCOPE.to_owned());
    };
    ctx.serialize_external(value, class, id)
        .map_err(|e| ctx.park(e))
}

/// Resolves the reference `(class, id)` in the current context (cache, or
/// fetch on the spot), or returns the message of the (parked) error.
pub(crate) fn resolve_external<T: DeserializeOwned>(
    class: &str,
    id: Uuid,
    expected: Expected,
) -> std::result::Result<T, String> {
    if !expected.is(class) {
        // Not the name this thread keeps at hand (or not the class at all):
        // checked against the name itself.
        let Some(ctx) = current() else {
            return Err(NO_SCOPE.to_owned());
        };
        return ctx
            .resolve(class, id, expected.name())
            .map_err(|e| ctx.park(e));
    }
    // The usual case: one of the document's own references (its plan), or
    // one the cache knows (prefetched), looked up with the context borrowed
    // from its slot rather than cloned, once per reference of a document.
    if let Some(planned) = plan::resolve(class, id) {
        return planned.map_err(park);
    }
    match with_current(|ctx| ctx.known(class, id)) {
        None => Err(NO_SCOPE.to_owned()),
        Some(Some(known)) => decode_known(known.as_deref(), class, id).map_err(park),
        Some(None) => {
            let Some(ctx) = current() else {
                return Err(NO_SCOPE.to_owned());
            };
            ctx.fetch_decode(id, expected.name())
                .map_err(|e| ctx.park(e))
        }
    }
}

/// `f` of the current context, borrowed: the task's (`toast::scope`), else
/// the blocking scope's.
fn with_current<R>(f: impl Fn(&Context) -> R) -> Option<R> {
    CONTEXT
        .try_with(&f)
        .ok()
        .or_else(|| BLOCKING.is_set().then(|| BLOCKING.with(&f)))
}

/// Parks `error` in the current context and returns its message.
fn park(error: Error) -> String {
    match current() {
        Some(ctx) => ctx.park(error),
        None => error.to_string(),
    }
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

thread_local! {
    /// One frame per external being serialized on this thread: the references
    /// found inside it. Serializing nests on one thread (an external's value is
    /// serialized inside its parent's call), so the frames of two tasks that
    /// share a context on two threads never mix, and no lock is taken for them.
    static FRAMES: std::cell::RefCell<Vec<Vec<Reference>>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// Externals being deserialized on this thread right now (nesting guard).
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The buffer serializations on this thread reuse: a value's JSON grows it
    /// once, then is copied out at its exact size (a `Vec` grown by doubling
    /// would keep up to twice the payload alive in the buffer and the cache).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Larger scratch buffers are dropped rather than kept for the next value.
const SCRATCH_KEEP: usize = 1 << 20;

/// `value` as JSON bytes of exactly its length.
fn to_exact_bytes<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Bytes> {
    // Taken, not borrowed: a nested external serialized meanwhile finds an
    // empty buffer and uses its own.
    let mut buf = SCRATCH.with(std::cell::Cell::take);
    buf.clear();
    let result = serde_json::to_writer(&mut buf, value).map(|()| Bytes::copy_from_slice(&buf));
    if buf.capacity() <= SCRATCH_KEEP {
        buf.clear();
        SCRATCH.with(|s| s.set(buf));
    }
    result
}

/// The id derived from a value's content: a UUID (version 8) from the SHA-256
/// hash of the class name, a NUL byte and the stored bytes.
///
/// SHA-256 rather than a faster non-cryptographic hash: equal ids must mean
/// equal content even when a value is crafted to collide with another one
/// (an id names a record that documents of other writers may share). On CPUs
/// with the SHA extensions (detected at run time) it hashes values of a few
/// KiB faster than BLAKE3, whose parallelism needs larger inputs: 0.55–0.7 of
/// BLAKE3's time for 1 KiB values on the machine of BENCHMARKS.md.
pub fn content_id(class_name: &str, data: &[u8]) -> Uuid {
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

/// A reference of another class than the one expected is an error, never a mis-decode.
fn check_class(class: &str, id: Uuid, expected: &str) -> Result<()> {
    if class != expected {
        return Err(Error::validation(format!(
            "class_name mismatch for reference {id}: expected {expected}, got {class}"
        )));
    }
    Ok(())
}

/// `references` as (class, id) pairs, consecutive references of one class
/// sharing its text (the references of one document or record mostly name one
/// class).
pub(crate) fn intern_classes(references: Vec<Reference>) -> Vec<(Arc<str>, Uuid)> {
    let mut last: Option<Arc<str>> = None;
    references
        .into_iter()
        .map(|r| {
            let class = share_class(&mut last, r.class_name.as_bytes());
            (class.unwrap_or_else(|| Arc::from(&*r.class_name)), r.id)
        })
        .collect()
}

/// `name` (UTF-8 bytes) as the `last` class name when they are equal, else
/// as a new one that becomes `last`: a run of references of one class shares
/// one text, and only a new one's bytes are checked as UTF-8. `None` when
/// they are not UTF-8.
pub(crate) fn share_class(last: &mut Option<Arc<str>>, name: &[u8]) -> Option<Arc<str>> {
    match last {
        Some(known) if known.as_bytes() == name => Some(Arc::clone(known)),
        _ => Some(Arc::clone(
            last.insert(Arc::from(std::str::from_utf8(name).ok()?)),
        )),
    }
}

impl Context {
    pub(crate) fn new(store: &Store, runtime: Option<Handle>) -> Self {
        Context {
            inner: Arc::new(Inner {
                store: store.for_context(),
                state: Mutex::new(State::default()),
                flush_lock: tokio::sync::Mutex::new(()),
                runtime,
            }),
        }
    }

    /// The store this context writes to and reads from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The runtime of the blocking store this context belongs to, if any.
    pub(crate) fn blocking_handle(&self) -> Option<Handle> {
        self.inner.runtime.clone()
    }

    /// How many records wait for the next flush.
    pub fn pending(&self) -> usize {
        self.lock().buffer.len()
    }

    /// Runs `fut` inside this context (sharing its buffer and cache), then flushes.
    ///
    /// This is how a spawned task carries the scope over: see [`Context`].
    ///
    /// # Errors
    ///
    /// A failed flush, as for [`scope`].
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = Result<F::Output>> {
        // Owns a clone, so the future is `'static` when `fut` is: ready for `tokio::spawn`.
        let ctx = self.clone();
        async move {
            let output = CONTEXT.scope(ctx.clone(), fut).await;
            ctx.flush().await?;
            Ok(output)
        }
    }

    /// Runs a synchronous closure inside this context (no flush).
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CONTEXT.sync_scope(self.clone(), f)
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
        let _serial = self.inner.flush_lock.lock().await;
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
        let result = self.inner.store.save_records(records).await;
        if result.is_ok() {
            in_flight.records = None;
        }
        // On error, dropping `in_flight` puts the records back.
        drop(in_flight);
        result
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Never held across an await or while user code runs, so a poisoned
        // lock only means a panic elsewhere; the state is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn park(&self, error: Error) -> String {
        let message = error.to_string();
        self.lock().parked = Some(Parked {
            message: message.clone(),
            error,
        });
        message
    }

    pub(crate) fn take_parked_matching(&self, serde_message: &str) -> Option<Error> {
        let mut st = self.lock();
        match &st.parked {
            Some(p) if serde_message.contains(&p.message) => st.parked.take().map(|p| p.error),
            _ => None,
        }
    }

    pub(crate) fn clear_parked(&self) {
        self.lock().parked = None;
    }

    /// The key of `(class, id)` in this context's tenant.
    fn key(&self, class: Arc<str>, id: Uuid) -> Key {
        Key::new(Arc::clone(self.inner.store.tenant_arc()), class, id)
    }

    fn cache_key(class: &Arc<str>, id: Uuid) -> CacheKey {
        CacheKey(Arc::clone(class), id)
    }

    /// Serializes `value`, buffers its record, and returns its reference.
    pub(crate) fn serialize_external<T: Serialize + ?Sized>(
        &self,
        value: &T,
        class: Arc<str>,
        fixed_id: Option<Uuid>,
    ) -> Result<(Arc<str>, Uuid)> {
        let record = self.make_record(value, class, fixed_id)?;
        let out = (Arc::clone(&record.key.class_name), record.key.id);
        let ck = Self::cache_key(&record.key.class_name, record.key.id);
        // The enclosing external (if any) records this one among its children.
        let _ = FRAMES.try_with(|frames| {
            if let Some(parent) = frames.borrow_mut().last_mut() {
                parent.push(record.key.reference());
            }
        });
        let mut st = self.lock();
        // One lookup for "known and unchanged" and for the insert.
        let changed = match st.cache.entry(ck.clone()) {
            Entry::Occupied(known) if matches!(known.get(), Cached::Data(data) if *data == record.data) => {
                false
            }
            Entry::Occupied(mut known) => {
                known.insert(Cached::Data(record.data.clone()));
                true
            }
            Entry::Vacant(slot) => {
                slot.insert(Cached::Data(record.data.clone()));
                true
            }
        };
        if changed {
            st.buffer.insert(ck, record);
        }
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
        let data = match data {
            Ok(data) => data,
            Err(e) => {
                return Err(self
                    .take_parked_matching(&e.to_string())
                    .unwrap_or_else(|| {
                        Error::validation_with(format!("cannot serialize {class}: {e}"), e)
                    }))
            }
        };
        let id = fixed_id.unwrap_or_else(|| content_id(&class, &data));
        Ok(Record::new(self.key(class, id), data, children))
    }

    /// Stores `value` under a new random id with the externals inside it, in
    /// one save: `Store::put`. The record itself skips the buffer and cache
    /// (this context ends here).
    pub(crate) async fn put_new<T: Serialize + ?Sized>(&self, value: &T) -> Result<Reference> {
        let class = crate::reference::class_name::<T>();
        let record = self.sync_scope(|| self.make_record(value, class, Some(Uuid::new_v4())))?;
        let reference = record.key.reference();
        if self.lock().buffer.is_empty() {
            // No externals inside (the usual case): the record alone, with
            // no flush to order against (this context is the call's own).
            self.inner
                .store
                .save_records(std::slice::from_ref(&record))
                .await?;
        } else {
            self.flush_with(Some(record)).await?;
        }
        Ok(reference)
    }

    /// What the cache knows of `(class, id)`: its data, or `None` when it is
    /// missing; `None` when not known.
    fn known(&self, class: &str, id: Uuid) -> Option<Option<Bytes>> {
        self.lock()
            .cache
            .get(&KeyRef(class, id))
            .and_then(Cached::known)
    }

    /// Resolves a reference from the plan or the cache, fetching it on the
    /// spot if needed.
    pub(crate) fn resolve<T: DeserializeOwned>(
        &self,
        class: &str,
        id: Uuid,
        expected: Arc<str>,
    ) -> Result<T> {
        check_class(class, id, &expected)?;
        if let Some(planned) = plan::resolve(class, id) {
            return planned;
        }
        match self.known(class, id) {
            Some(known) => decode_known(known.as_deref(), &expected, id),
            None => self.fetch_decode(id, expected),
        }
    }

    /// Fetches a reference not known to the scope (where blocking is
    /// allowed) and decodes it.
    fn fetch_decode<T: DeserializeOwned>(&self, id: Uuid, class: Arc<str>) -> Result<T> {
        let known = self.fetch_now(&Self::cache_key(&class, id))?;
        decode_known(known.as_deref(), &class, id)
    }

    /// Loads and decodes one value: `Store::get`. One round trip for the
    /// record, then one per nesting level of the externals inside it; the
    /// record itself skips the cache (this context ends here).
    pub(crate) async fn load_one<T: DeserializeOwned>(&self, reference: &Reference) -> Result<T> {
        let class = crate::reference::class_name::<T>();
        check_class(&reference.class_name, reference.id, &class)?;
        let key = self.key(Arc::clone(&class), reference.id);
        let Some(record) = self
            .inner
            .store
            .load_keys(std::slice::from_ref(&key))
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
        self.decode_all::<T>(references)
    }

    /// Decodes already-prefetched references.
    pub(crate) fn decode_all<T: DeserializeOwned>(
        &self,
        references: &[Reference],
    ) -> Result<Vec<T>> {
        let class = crate::reference::class_name::<T>();
        self.sync_scope(|| {
            references
                .iter()
                .map(|r| self.resolve::<T>(&r.class_name, r.id, Arc::clone(&class)))
                .collect()
        })
    }

    /// Loads a record that was not prefetched, blocking where that is allowed.
    fn fetch_now(&self, ck: &CacheKey) -> Result<Option<Bytes>> {
        let key = self.key(Arc::clone(&ck.0), ck.1);
        let store = self.inner.store.clone();
        let fut = async move { store.load_keys(std::slice::from_ref(&key)).await };
        let records = match (&self.inner.runtime, Handle::try_current()) {
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

    /// [`Context::prefetch_interned`] for references with class names of their own.
    pub(crate) async fn prefetch(&self, references: Vec<Reference>) -> Result<()> {
        self.prefetch_interned(intern_classes(references)).await
    }

    /// Loads every reference not yet known, one backend round trip per
    /// nesting level, following the references each loaded record carries.
    pub(crate) async fn prefetch_interned(&self, pending: Vec<(Arc<str>, Uuid)>) -> Result<()> {
        self.prefetch_levels(pending, MAX_DEPTH).await
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

/// Counts externals being deserialized on this thread ([`DEPTH`]), to stop
/// runaway nesting.
struct DepthGuard;

impl DepthGuard {
    fn enter(class: &str) -> Result<Self> {
        let depth = DEPTH.try_with(std::cell::Cell::get).unwrap_or(MAX_DEPTH);
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
