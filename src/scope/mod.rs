//! The task-scoped context: [`Context`], [`flush`], [`current`].
//!
//! A context holds a connection, a tenant, a write buffer (records waiting for
//! the next flush) and a read cache (records loaded or written in this scope).
//! Async code finds it in a `tokio::task_local!`; the blocking API in a
//! `scoped-tls` thread-local. [`crate::scope`] opens one for a store.
//!
//! The stages of the data path each have a file:
//!
//! - [`write`]: value → bytes → record → buffer → flush. Serialization never
//!   does I/O: it only fills the buffer.
//! - [`read`]: reference → the document's plan → the cache → fetched on the
//!   spot → value.
//! - [`prefetch`]: one backend load per nesting level, before a deserialization.
//! - [`parked`]: typed errors carried across serde as messages.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::runtime::Handle;
use uuid::Uuid;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::record::Key;

pub(crate) mod parked;
pub(crate) mod prefetch;
pub(crate) mod read;
mod state;
pub(crate) mod write;

pub(crate) use state::Limits;
use state::State;

tokio::task_local! {
    static CONTEXT: Context;
}

scoped_tls::scoped_thread_local!(pub(crate) static BLOCKING: Context);

/// How deep externals may nest inside one another (on write and on read).
pub(crate) const MAX_DEPTH: usize = 64;

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
    conn: Conn,
    /// This thread's own copy of the store's tenant: every key the context
    /// makes clones it.
    tenant: Arc<str>,
    limits: Limits,
    state: Mutex<State>,
    flush_lock: tokio::sync::Mutex<()>,
    /// The runtime of a `blocking::Store`, used to fetch on the spot.
    runtime: Option<Handle>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (buffered, cached) = {
            let st = self.lock();
            (st.buffer.len(), st.cache.len())
        };
        f.debug_struct("Context")
            .field("url", &self.inner.conn.url())
            .field("buffered", &buffered)
            .field("cached", &cached)
            .finish()
    }
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

pub(crate) fn current_or_err() -> Result<Context> {
    current().ok_or_else(no_scope)
}

/// The error of an external used outside any scope.
pub(crate) fn no_scope() -> Error {
    Error::validation(NO_SCOPE)
}

/// `f` of the current context, borrowed: the task's (`toast::scope`), else
/// the blocking scope's.
pub(crate) fn with_current<R>(f: impl Fn(&Context) -> R) -> Option<R> {
    CONTEXT
        .try_with(&f)
        .ok()
        .or_else(|| BLOCKING.is_set().then(|| BLOCKING.with(&f)))
}

impl Context {
    /// A new, empty scope over `conn` in `tenant`; `runtime` is the blocking
    /// store's, when there is one.
    pub(crate) fn new(
        conn: Conn,
        tenant: Arc<str>,
        limits: Limits,
        runtime: Option<Handle>,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                conn,
                tenant,
                limits,
                state: Mutex::new(State::default()),
                flush_lock: tokio::sync::Mutex::new(()),
                runtime,
            }),
        }
    }

    pub(crate) fn conn(&self) -> &Conn {
        &self.inner.conn
    }

    pub(crate) fn tenant(&self) -> &Arc<str> {
        &self.inner.tenant
    }

    pub(crate) fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Evicts the records known longest until the cache fits its budget:
    /// called between operations, never while a value is being decoded.
    pub(crate) fn trim_cache(&self) {
        let budget = self.inner.limits.cache_bytes;
        self.lock().trim(budget);
    }

    /// The runtime of the blocking store this context belongs to, if any.
    pub(crate) fn blocking_handle(&self) -> Option<Handle> {
        self.inner.runtime.clone()
    }

    /// An address that names this scope while it lives.
    pub(crate) fn address(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
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
    /// A failed flush, as for [`crate::scope`].
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Never held across an await or while user code runs, so a poisoned
        // lock only means a panic elsewhere; the state is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key of `(class, id)` in this context's tenant.
    pub(crate) fn key(&self, class: Arc<str>, id: Uuid) -> Key {
        Key::new(Arc::clone(&self.inner.tenant), class, id)
    }

    /// Serializes `flush` calls of this context.
    pub(crate) fn flush_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.flush_lock
    }
}
