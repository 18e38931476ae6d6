//! [`Store`]: a connected backend, a tenant, and counters.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::memory::MemoryBackend;
use crate::backend::Backend;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::record::{Key, ListQuery, Record};
use crate::reference::{class_name, Recent, Reference};
use crate::url::ConnectUrl;

/// The tenant a [`Store`] uses until [`Store::tenant`] picks another.
pub const DEFAULT_TENANT: &str = "default";

/// A cheap `Clone` handle on a connected backend, viewed as one tenant.
///
/// Clones share the backend's connection pool and the [`Stats`] counters.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// let store = toast::Store::memory();
/// let reference = store.put(&vec![String::from("a"), "b".into()]).await?;
/// assert_eq!(store.get::<Vec<String>>(&reference).await?, ["a", "b"]);
///
/// // Tenants are isolated views of the same backend.
/// let other = store.tenant("acme");
/// assert!(other.get::<Vec<String>>(&reference).await.unwrap_err().is_not_found());
///
/// assert!(store.delete(&reference).await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    tenant: Arc<str>,
}

struct Shared {
    backend: Arc<dyn Backend>,
    url: String,
    counters: Counters,
}

/// The counters behind [`Stats`], in stripes: each thread adds to the stripe
/// it was given, on a cache line of its own, so that threads counting at
/// once do not pass one line back and forth (a `put` and a `get` add four
/// times); [`Store::stats`] sums the stripes.
#[derive(Default)]
struct Counters {
    stripes: [Stripe; STRIPES],
}

/// How many stripes [`Counters`] has (threads beyond that share them).
const STRIPES: usize = 8;

#[derive(Default)]
#[repr(align(128))]
struct Stripe {
    save_calls: AtomicU64,
    load_calls: AtomicU64,
    delete_calls: AtomicU64,
    list_calls: AtomicU64,
    records_saved: AtomicU64,
    records_loaded: AtomicU64,
}

/// The stripe the next thread to count is given.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe of every store's counters.
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

impl Counters {
    /// The stripe of the calling thread.
    fn mine(&self) -> &Stripe {
        let i = STRIPE.try_with(|i| *i).unwrap_or(0);
        &self.stripes[i % STRIPES]
    }

    fn sum(&self, field: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

thread_local! {
    /// This thread's own copies of the tenants of the stores it made
    /// contexts for last, by the store's tenant `Arc`.
    static TENANTS: std::cell::RefCell<Recent<Arc<str>>> =
        const { std::cell::RefCell::new(Recent::new()) };
}

/// This thread's own copy of `tenant` (a store's): every key a context makes
/// clones it, and the store's `Arc` is shared by every thread, so its count
/// would be written from every core, where a copy per thread is written by
/// one. Made once per thread and store, not per context.
fn thread_tenant(tenant: &Arc<str>) -> Arc<str> {
    let own = || (Arc::clone(tenant), Arc::from(&**tenant));
    TENANTS
        .try_with(|copies| {
            (copies.borrow_mut())
                .get_or_keep(|of| Arc::ptr_eq(of, tenant), own)
                .cloned()
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Arc::from(&**tenant))
}

/// Counters since the store was connected, shared by all its clones and tenants.
///
/// `save_calls` and `load_calls` count calls to [`Backend::save`] and
/// [`Backend::load`]. Each is one round trip to the storage for the batches
/// an application usually makes; the built-in backends split a very large
/// batch into several statements or pipelines to bound memory (each
/// backend's module documentation gives its limits), and a Redis save that
/// updates existing records adds one script call for them. The counters then
/// still say one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls to `Backend::save` (one per flush).
    pub save_calls: u64,
    /// Calls to `Backend::load` (one per nesting level).
    pub load_calls: u64,
    /// Calls to `Backend::delete`.
    pub delete_calls: u64,
    /// Calls to `Backend::list`.
    pub list_calls: u64,
    /// Records handed to `save`.
    pub records_saved: u64,
    /// Records returned by `load`.
    pub records_loaded: u64,
}

impl Stats {
    /// The counters that grew between `earlier` and `self`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            save_calls: self.save_calls.saturating_sub(earlier.save_calls),
            load_calls: self.load_calls.saturating_sub(earlier.load_calls),
            delete_calls: self.delete_calls.saturating_sub(earlier.delete_calls),
            list_calls: self.list_calls.saturating_sub(earlier.list_calls),
            records_saved: self.records_saved.saturating_sub(earlier.records_saved),
            records_loaded: self.records_loaded.saturating_sub(earlier.records_loaded),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.shared.url)
            .field("tenant", &&*self.tenant)
            .field("backend", &self.shared.backend)
            .finish()
    }
}

impl Store {
    /// Connects to the store a URL names; the scheme picks the backend
    /// (`memory://`, `sqlite://PATH`, and with their features `postgres://`,
    /// `redis://`, or any scheme given to [`crate::register_backend`]).
    ///
    /// The backend connects once here; its connections are pooled and reused.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a malformed URL or an unknown scheme (the
    /// message lists the registered ones); [`Error::Connection`] when the
    /// backend cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// let store = toast::Store::connect("memory://").await?;
    /// let err = toast::Store::connect("nosuch://x").await.unwrap_err();
    /// assert!(err.is_validation() && err.to_string().contains("memory"));
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Store> {
        let url = ConnectUrl::parse(url)?;
        let factory = crate::registry::factory_for(url.scheme())?;
        let redacted = url.redacted().to_owned();
        let backend = factory(url).await?;
        Ok(Store::from_parts(backend, redacted))
    }

    /// An in-process store: nothing on disk, gone when the last clone is dropped.
    pub fn memory() -> Store {
        Store::from_parts(Arc::new(MemoryBackend::new()), "memory://".to_owned())
    }

    /// A store over a backend you built yourself.
    pub fn from_backend(backend: impl Backend) -> Store {
        let url = format!("custom://{backend:?}");
        Store::from_parts(Arc::new(backend), url)
    }

    /// A store over a shared backend, shown as `url` (already redacted) in errors.
    pub fn from_arc(backend: Arc<dyn Backend>, redacted_url: impl Into<String>) -> Store {
        Store::from_parts(backend, redacted_url.into())
    }

    fn from_parts(backend: Arc<dyn Backend>, url: String) -> Store {
        Store {
            shared: Arc::new(Shared {
                backend,
                url,
                counters: Counters::default(),
            }),
            tenant: Arc::from(DEFAULT_TENANT),
        }
    }

    /// An isolated view of the same backend: records of one tenant are
    /// invisible to every other (they cannot be loaded, overwritten, listed or
    /// deleted, and their existence cannot be probed). Any string is a valid
    /// tenant name; it is data, never part of a query's text.
    pub fn tenant(&self, name: impl AsRef<str>) -> Store {
        Store {
            shared: Arc::clone(&self.shared),
            tenant: Arc::from(name.as_ref()),
        }
    }

    /// The tenant this view uses.
    pub fn tenant_name(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn tenant_arc(&self) -> &Arc<str> {
        &self.tenant
    }

    /// This store for a context: the same backend and counters, with this
    /// thread's own copy of the tenant ([`thread_tenant`]).
    pub(crate) fn for_context(&self) -> Store {
        Store {
            shared: Arc::clone(&self.shared),
            tenant: thread_tenant(&self.tenant),
        }
    }

    /// The store's URL with the password redacted.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The backend behind this store.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.shared.backend
    }

    /// The counters since connect (shared by every clone and tenant view).
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            save_calls: c.sum(|s| &s.save_calls),
            load_calls: c.sum(|s| &s.load_calls),
            delete_calls: c.sum(|s| &s.delete_calls),
            list_calls: c.sum(|s| &s.list_calls),
            records_saved: c.sum(|s| &s.records_saved),
            records_loaded: c.sum(|s| &s.records_loaded),
        }
    }

    /// The key of `reference` in this store's tenant.
    pub fn key_for(&self, reference: &Reference) -> Key {
        Key::new(
            Arc::clone(&self.tenant),
            &*reference.class_name,
            reference.id,
        )
    }

    /// Saves a new value under a new random id, with every external inside it,
    /// in one backend round trip.
    ///
    /// # Errors
    ///
    /// Whatever serializing the value or [`Backend::save`] returns.
    pub async fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<Reference> {
        Context::new(self, None).put_new(value).await
    }

    /// Loads and deserializes the value `reference` names, resolving the
    /// externals inside it with one round trip per nesting level.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such record exists in this tenant;
    /// [`Error::Validation`] when the stored data does not fit `T`.
    pub async fn get<T: DeserializeOwned>(&self, reference: &Reference) -> Result<T> {
        Context::new(self, None).load_one(reference).await
    }

    /// Loads several values of one type in one round trip per nesting level,
    /// in the order of `references`.
    ///
    /// # Errors
    ///
    /// As [`Store::get`], for the first reference that fails.
    pub async fn get_many<T: DeserializeOwned>(&self, references: &[Reference]) -> Result<Vec<T>> {
        Context::new(self, None).load_many(references).await
    }

    /// Loads the raw record `reference` names, with its timestamps.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is none in this tenant.
    pub async fn record(&self, reference: &Reference) -> Result<Record> {
        let key = self.key_for(reference);
        self.load_keys(std::slice::from_ref(&key))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(&reference.class_name, reference.id))
    }

    /// Deletes the record `reference` names; `false` when there was none
    /// (in this tenant). Externals inside it are left in place: other documents
    /// may share them.
    ///
    /// # Errors
    ///
    /// Whatever [`Backend::delete`] returns.
    pub async fn delete(&self, reference: &Reference) -> Result<bool> {
        Ok(self.delete_many(std::slice::from_ref(reference)).await? > 0)
    }

    /// Deletes the records `references` name in one [`Backend::delete`] call
    /// and returns how many there were (in this tenant). As for
    /// [`Store::delete`], externals inside them are left in place.
    ///
    /// # Errors
    ///
    /// Whatever [`Backend::delete`] returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// let store = toast::Store::memory();
    /// let a = store.put(&"a".to_owned()).await?;
    /// let b = store.put(&"b".to_owned()).await?;
    /// assert_eq!(store.delete_many(&[a.clone(), b]).await?, 2);
    /// assert_eq!(store.delete_many(&[a]).await?, 0);
    /// assert_eq!(store.stats().delete_calls, 2);
    /// # Ok(()) }
    /// ```
    pub async fn delete_many(&self, references: &[Reference]) -> Result<u64> {
        let keys: Vec<Key> = references.iter().map(|r| self.key_for(r)).collect();
        self.shared
            .counters
            .mine()
            .delete_calls
            .fetch_add(1, Ordering::Relaxed);
        self.shared.backend.delete(&keys).await
    }

    /// References to this tenant's records of `class_name`, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when the backend cannot list; whatever
    /// [`Backend::list`] returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// let store = toast::Store::memory();
    /// let first = store.put(&1u8).await?;
    /// let second = store.put(&2u8).await?;
    /// let page = store.list_of::<u8>(0, 10).await?;
    /// assert_eq!(page.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, class_name: &str, offset: u64, limit: u64) -> Result<Vec<Reference>> {
        let query = ListQuery {
            tenant: Arc::clone(&self.tenant),
            class_name: Arc::from(class_name),
            offset,
            limit,
        };
        self.shared
            .counters
            .mine()
            .list_calls
            .fetch_add(1, Ordering::Relaxed);
        let entries = self.shared.backend.list(&query).await?;
        Ok(entries
            .into_iter()
            .map(|e| Reference::new(class_name, e.id))
            .collect())
    }

    /// [`Store::list`] for the class name of `T`.
    ///
    /// # Errors
    ///
    /// As [`Store::list`].
    pub async fn list_of<T: ?Sized>(&self, offset: u64, limit: u64) -> Result<Vec<Reference>> {
        self.list(&class_name::<T>(), offset, limit).await
    }

    /// Closes the backend's connections.
    ///
    /// # Errors
    ///
    /// Whatever [`Backend::close`] returns.
    pub async fn close(&self) -> Result<()> {
        self.shared.backend.close().await
    }

    /// One `Backend::save` call, counted.
    pub(crate) async fn save_records(&self, records: &[Record]) -> Result<()> {
        let c = self.shared.counters.mine();
        c.save_calls.fetch_add(1, Ordering::Relaxed);
        c.records_saved
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.shared.backend.save(records).await
    }

    /// One `Backend::load` call, counted; records the backend returns for keys
    /// that were not asked for are dropped, so a faulty backend cannot leak
    /// another tenant's data.
    pub(crate) async fn load_keys(&self, keys: &[Key]) -> Result<Vec<Record>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.shared.counters.mine();
        c.load_calls.fetch_add(1, Ordering::Relaxed);
        let mut records = self.shared.backend.load(keys).await?;
        // Backends return the caller's keys, made with this store's tenant
        // `Arc` (a context's store has its own, see `for_context`), so
        // `Arc`'s equality finds most by pointer.
        if records.len() > keys.len() || records.iter().any(|r| r.key.tenant != self.tenant) {
            let wanted: HashSet<&Key> = keys.iter().collect();
            records.retain(|r| wanted.contains(&r.key));
        }
        c.records_loaded
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(records)
    }
}
