//! The [`Backend`] trait and the built-in backends.
//!
//! A backend is small on purpose: three required batch methods (`save`, `load`,
//! `delete`) and two with defaults (`list`, `close`). Everything convenient lives
//! on [`crate::Store`]. A backend is object-safe, `Send + Sync`, and usually fits
//! in one file; register it for a URL scheme with [`crate::register_backend`]
//! and check it with `toast::backend::conformance` (feature `conformance`).

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::{Error, Result};

pub use crate::record::{Key, ListEntry, ListQuery, Record, RECORD_SCHEMA_VERSION};
pub use crate::url::ConnectUrl;

pub mod memory;

pub(crate) mod support;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "conformance")]
pub mod conformance;

/// Storage for [`Record`]s, batch-first.
///
/// Each method is one round trip to the storage where the storage allows it:
/// toast calls `save` once per flush and `load` once per nesting level.
///
/// # Examples
///
/// A complete backend over a map (see `examples/custom_backend.rs` for one
/// registered under its own URL scheme):
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use toast::backend::{Key, Record};
/// use toast::Backend;
///
/// #[derive(Debug, Default)]
/// struct MapBackend(Mutex<HashMap<Key, Record>>);
///
/// #[async_trait::async_trait]
/// impl Backend for MapBackend {
///     async fn save(&self, records: &[Record]) -> toast::Result<()> {
///         let mut map = self.0.lock().map_err(|_| toast::Error::backend("poisoned"))?;
///         for r in records {
///             let mut r = r.clone();
///             if let Some(old) = map.get(&r.key) { r.created_at = old.created_at; }
///             map.insert(r.key.clone(), r);
///         }
///         Ok(())
///     }
///     async fn load(&self, keys: &[Key]) -> toast::Result<Vec<Record>> {
///         let map = self.0.lock().map_err(|_| toast::Error::backend("poisoned"))?;
///         Ok(keys.iter().filter_map(|k| map.get(k).cloned()).collect())
///     }
///     async fn delete(&self, keys: &[Key]) -> toast::Result<u64> {
///         let mut map = self.0.lock().map_err(|_| toast::Error::backend("poisoned"))?;
///         Ok(keys.iter().filter(|k| map.remove(*k).is_some()).count() as u64)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// let store = toast::Store::from_backend(MapBackend::default());
/// let r = store.put(&vec![1, 2, 3]).await?;
/// assert_eq!(store.get::<Vec<i32>>(&r).await?, vec![1, 2, 3]);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// Stores every record (insert or update by key), atomically where the
    /// storage allows. On update, keep the stored `created_at` and take the
    /// new `updated_at`, `data`, `refs` and `schema_version`. Of a key given
    /// more than once, the last record wins.
    async fn save(&self, records: &[Record]) -> Result<()>;

    /// Loads the records that exist among `keys`, in any order; missing keys
    /// are simply absent from the result. `keys` may name a key more than
    /// once (a document's repeated references); its record then comes back
    /// at least once.
    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>>;

    /// Deletes the records that exist among `keys`; returns how many were deleted.
    async fn delete(&self, keys: &[Key]) -> Result<u64>;

    /// One tenant's records of one class, newest first, paged.
    ///
    /// The default says the backend cannot list.
    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        Err(Error::validation(format!(
            "this backend ({self:?}) cannot list records of {}",
            query.class_name
        )))
    }

    /// Releases connections. The default does nothing.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
