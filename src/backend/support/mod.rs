//! What every built-in backend shares: the option checker, the migration
//! runner, the corrupted-record error, the list pager and the batch helpers,
//! and the few engine helpers a backend may use (re-exported here, so that a
//! backend imports only this module, [`crate::record`], [`crate::error`] and
//! [`crate::url`]).

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) mod batch;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) mod corrupt;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod migrate;
pub(crate) mod options;
pub(crate) mod paging;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) use corrupt::{corrupted, corrupted_with};
pub(crate) use options::Known;
pub(crate) use paging::Page;

/// std's maps with toast's seeded hash.
pub(crate) use crate::hash::SeededHash;
/// A few most recently used values, compared by content (Redis key heads).
#[cfg(feature = "redis")]
pub(crate) use crate::recent::Recent;
/// The references a record holds.
pub(crate) use crate::reference::Reference;
