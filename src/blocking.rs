//! The synchronous API, for code with no async runtime.
//!
//! A [`Store`] owns a small tokio runtime (one worker thread) and runs every
//! operation on it. Its [`Store::scope`] runs a closure with the store as the
//! thread's context (a `scoped-tls` slot), so `#[serde(with = "toast::external")]`
//! works with plain `serde_json` calls inside it; references that were not
//! prefetched are loaded on the spot.
//!
//! Calling it from inside an async runtime is an error (use [`crate::Store`]
//! there), never a panic.
//!
//! # Examples
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Doc { #[serde(with = "toast::external")] body: Vec<u32> }
//!
//! fn main() -> toast::Result<()> {
//!     let store = toast::blocking::Store::memory()?;
//!     let json = store.scope(|| serde_json::to_string(&Doc { body: vec![1, 2] }))??;
//!     let back: Doc = store.scope(|| serde_json::from_str(&json))??;
//!     assert_eq!(back.body, [1, 2]);
//!
//!     let r = store.put(&String::from("hello"))?;
//!     assert_eq!(store.get::<String>(&r)?, "hello");
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::{Handle, Runtime};

use crate::conn::Stats;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::refs::references_in_json;
use crate::scope::read::reading;
use crate::scope::{current_or_err, Context, BLOCKING};

/// A blocking handle on a store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    store: crate::Store,
    runtime: Arc<OwnedRuntime>,
}

/// Shuts the runtime down without blocking, so dropping the last handle is
/// safe anywhere (even inside an async context).
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl OwnedRuntime {
    fn handle(&self) -> Result<&Handle> {
        self.0
            .as_ref()
            .map(Runtime::handle)
            .ok_or_else(|| Error::backend("the blocking store's runtime is shut down"))
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Store")
            .field("store", &self.store)
            .finish()
    }
}

fn not_in_async() -> Result<()> {
    if Handle::try_current().is_ok() {
        return Err(Error::validation(
            "toast::blocking was called from inside an async runtime, where blocking would \
             stall it: use toast::Store (the async API) there",
        ));
    }
    Ok(())
}

impl Store {
    /// Connects to the store `url` names (see [`crate::Store::connect`]).
    ///
    /// # Errors
    ///
    /// As [`crate::Store::connect`]; [`Error::Validation`] inside an async runtime.
    pub fn connect(url: &str) -> Result<Store> {
        let runtime = Self::runtime()?;
        let handle = runtime.handle()?.clone();
        let store = handle.block_on(crate::Store::connect(url))?;
        Ok(Store { store, runtime })
    }

    /// An in-process store (see [`crate::Store::memory`]).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] inside an async runtime; [`Error::Backend`] when
    /// the runtime cannot start.
    pub fn memory() -> Result<Store> {
        Ok(Store {
            store: crate::Store::memory(),
            runtime: Self::runtime()?,
        })
    }

    fn runtime() -> Result<Arc<OwnedRuntime>> {
        not_in_async()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("toast-blocking")
            .enable_all()
            .build()
            .map_err(|e| Error::backend_with("cannot start the blocking store's runtime", e))?;
        Ok(Arc::new(OwnedRuntime(Some(runtime))))
    }

    fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        not_in_async()?;
        Ok(self.runtime.handle()?.block_on(fut))
    }

    /// An isolated tenant view (see [`crate::Store::tenant`]).
    pub fn tenant(&self, name: impl AsRef<str>) -> Store {
        Store {
            store: self.store.tenant(name),
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// The async store behind this handle (usable only on this handle's runtime).
    pub fn as_async(&self) -> &crate::Store {
        &self.store
    }

    /// The counters since connect.
    pub fn stats(&self) -> Stats {
        self.store.stats()
    }

    /// Runs `f` with this store as the thread's toast context, then flushes.
    ///
    /// # Errors
    ///
    /// A failed flush; [`Error::Validation`] inside an async runtime.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        not_in_async()?;
        let handle = self.runtime.handle()?.clone();
        let ctx = self.store.context(Some(handle.clone()));
        let output = BLOCKING.set(&ctx, f);
        handle.block_on(ctx.flush())?;
        Ok(output)
    }

    /// Saves a value under a new id (see [`crate::Store::put`]).
    ///
    /// # Errors
    ///
    /// As [`crate::Store::put`].
    pub fn put<T: Serialize + Sync + ?Sized>(&self, value: &T) -> Result<Reference> {
        self.block_on(self.store.put(value))?
    }

    /// Loads a value (see [`crate::Store::get`]).
    ///
    /// # Errors
    ///
    /// As [`crate::Store::get`].
    pub fn get<T: DeserializeOwned>(&self, reference: &Reference) -> Result<T> {
        self.block_on(self.store.get(reference))?
    }

    /// Deletes a value (see [`crate::Store::delete`]).
    ///
    /// # Errors
    ///
    /// As [`crate::Store::delete`].
    pub fn delete(&self, reference: &Reference) -> Result<bool> {
        self.block_on(self.store.delete(reference))?
    }

    /// Lists references (see [`crate::Store::list`]).
    ///
    /// # Errors
    ///
    /// As [`crate::Store::list`].
    pub fn list(&self, class_name: &str, offset: u64, limit: u64) -> Result<Vec<Reference>> {
        self.block_on(self.store.list(class_name, offset, limit))?
    }
}

fn blocking_context() -> Result<(Context, Handle)> {
    let ctx = current_or_err()?;
    let handle = match Handle::try_current() {
        Ok(_) => return Err(Error::validation(
            "toast::blocking::to_json/from_json was called inside an async runtime: use toast::to_json / toast::from_json",
        )),
        Err(_) => ctx.blocking_handle().ok_or_else(|| {
            Error::validation("toast::blocking functions need a blocking scope: toast::blocking::Store::scope(|| …)")
        })?,
    };
    Ok((ctx, handle))
}

/// Serializes to JSON in the current blocking scope, then flushes.
///
/// # Errors
///
/// As [`crate::to_json`].
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let (ctx, handle) = blocking_context()?;
    let text = serde_json::to_string(value).map_err(Error::from)?;
    handle.block_on(ctx.flush())?;
    Ok(text)
}

/// Flushes the current blocking scope now.
///
/// # Errors
///
/// As [`crate::flush`].
pub fn flush() -> Result<()> {
    let (ctx, handle) = blocking_context()?;
    handle.block_on(ctx.flush())
}

/// Deserializes JSON in the current blocking scope, loading every reference
/// first (one round trip per nesting level).
///
/// # Errors
///
/// As [`crate::from_json`].
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    let (ctx, handle) = blocking_context()?;
    let references = references_in_json(text.as_bytes())?;
    let plan = handle.block_on(ctx.prefetch_planned(references))?;
    ctx.with_plan(plan, || {
        reading(ctx.limits(), || {
            serde_json::from_str(text).map_err(Error::from)
        })
    })
}
