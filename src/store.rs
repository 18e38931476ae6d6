//! [`Store`]: a connection seen as one tenant, and what a user calls on it.
//!
//! Operations that serialize or deserialize values (`put`, `get`, …) run
//! through a scope of their own ([`crate::scope`] opens one for a whole
//! task); `delete`, `list` and `record` go to the backend directly.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Handle;

use crate::backend::memory::MemoryBackend;
use crate::backend::Backend;
use crate::class_name::class_name;
use crate::conn::{Conn, Stats};
use crate::error::{Error, Result};
use crate::recent::Recent;
use crate::record::{Key, ListQuery, Record};
use crate::reference::Reference;
use crate::scope::{Context, Limits};
use crate::url::ConnectUrl;

/// The tenant a [`Store`] uses until [`Store::tenant`] picks another.
const DEFAULT_TENANT: &str = "default";

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
    conn: Conn,
    tenant: Arc<str>,
    limits: Limits,
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

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.conn.url())
            .field("tenant", &&*self.tenant)
            .field("backend", self.conn.backend())
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
    store.context(None).scope(fut).await
}

impl Context {
    /// The store this context writes to and reads from.
    pub fn store(&self) -> Store {
        Store {
            conn: self.conn().clone(),
            tenant: Arc::clone(self.tenant()),
            limits: self.limits(),
        }
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
        Ok(Store::from_arc(backend, redacted))
    }

    /// An in-process store: nothing on disk, gone when the last clone is dropped.
    pub fn memory() -> Store {
        Store::from_arc(Arc::new(MemoryBackend::new()), "memory://")
    }

    /// A store over a backend you built yourself, shown in errors as
    /// `custom://` and the backend's type name.
    pub fn from_backend<B: Backend>(backend: B) -> Store {
        let name = class_name::<B>();
        Store::from_arc(Arc::new(backend), format!("custom://{name}"))
    }

    /// A store over a shared backend, shown as `url` (already redacted) in errors.
    pub fn from_arc(backend: Arc<dyn Backend>, redacted_url: impl Into<String>) -> Store {
        Store {
            conn: Conn::new(backend, redacted_url.into()),
            tenant: Arc::from(DEFAULT_TENANT),
            limits: Limits::default(),
        }
    }

    /// An isolated view of the same backend: records of one tenant are
    /// invisible to every other (they cannot be loaded, overwritten, listed or
    /// deleted, and their existence cannot be probed). Any string is a valid
    /// tenant name; it is data, never part of a query's text. A store starts
    /// in the tenant `default`.
    pub fn tenant(&self, name: impl AsRef<str>) -> Store {
        Store {
            conn: self.conn.clone(),
            tenant: Arc::from(name.as_ref()),
            limits: self.limits,
        }
    }

    /// This store with other limits on what one read may do: at most
    /// `max_references` references resolved and `max_bytes` bytes of stored
    /// values decoded by one `get`, `from_json`, … (a value read by plain
    /// serde inside a scope is a read of its own). Going over is
    /// [`Error::Validation`], in time and memory bounded by the limits.
    ///
    /// A value is a tree: stored records that name one record several times
    /// are decoded once per name, so what a read produces can grow much
    /// faster than what is stored. The defaults, 1,000,000 references and
    /// 256 MiB, leave room for any document toast itself writes in one piece.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// #[derive(Debug)]
    /// struct Doc { #[serde(with = "toast::external")] a: String, #[serde(with = "toast::external")] b: u8 }
    ///
    /// let store = toast::Store::memory();
    /// let r = store.put(&Doc { a: "x".into(), b: 1 }).await?;
    /// let strict = store.with_read_limits(2, 1024);
    /// // The document, then one of its two externals: the second goes over.
    /// assert!(strict.get::<Doc>(&r).await.unwrap_err().is_validation());
    /// assert!(store.get::<Doc>(&r).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn with_read_limits(&self, max_references: usize, max_bytes: usize) -> Store {
        let mut store = self.clone();
        store.limits.max_references = max_references;
        store.limits.max_bytes = max_bytes;
        store
    }

    /// This store with another budget for a scope's cache of known records
    /// (default 64 MiB): between operations, a scope forgets the records it
    /// has known longest until the rest fit, so a scope that lives long (a
    /// queue consumer's) stays within it. Records a read is using are never
    /// forgotten while it runs, and records not yet flushed are not the
    /// cache's; a forgotten record is loaded again when it is needed.
    pub fn with_cache_budget(&self, bytes: usize) -> Store {
        let mut store = self.clone();
        store.limits.cache_bytes = bytes;
        store
    }

    /// The tenant this view uses.
    pub fn tenant_name(&self) -> &str {
        &self.tenant
    }

    /// A new scope over this store, with this thread's own copy of the
    /// tenant ([`thread_tenant`]); `runtime` is a blocking store's.
    pub(crate) fn context(&self, runtime: Option<Handle>) -> Context {
        Context::new(
            self.conn.clone(),
            thread_tenant(&self.tenant),
            self.limits,
            runtime,
        )
    }

    /// The store's URL with the password redacted.
    pub fn url(&self) -> &str {
        self.conn.url()
    }

    /// The backend behind this store.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.conn.backend()
    }

    /// The counters since connect (shared by every clone and tenant view).
    pub fn stats(&self) -> Stats {
        self.conn.stats()
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
    pub async fn put<T: Serialize + Sync + ?Sized>(&self, value: &T) -> Result<Reference> {
        self.context(None).put_new(value).await
    }

    /// Loads and deserializes the value `reference` names, resolving the
    /// externals inside it with one round trip per nesting level.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such record exists in this tenant;
    /// [`Error::Validation`] when the stored data does not fit `T`.
    pub async fn get<T: DeserializeOwned>(&self, reference: &Reference) -> Result<T> {
        self.context(None).load_one(reference).await
    }

    /// Loads several values of one type in one round trip per nesting level,
    /// in the order of `references`.
    ///
    /// # Errors
    ///
    /// As [`Store::get`], for the first reference that fails.
    pub async fn get_many<T: DeserializeOwned>(&self, references: &[Reference]) -> Result<Vec<T>> {
        self.context(None).load_many(references).await
    }

    /// Loads the raw record `reference` names, with its timestamps.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is none in this tenant.
    pub async fn record(&self, reference: &Reference) -> Result<Record> {
        let key = self.key_for(reference);
        self.conn
            .load(std::slice::from_ref(&key), &self.tenant)
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
        self.conn.delete(&keys).await
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
        let entries = self.conn.list(&query).await?;
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
        self.conn.close().await
    }
}
