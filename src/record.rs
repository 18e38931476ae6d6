//! [`Record`] and [`Key`]: what a backend stores.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::reference::Reference;

/// The version of the record layout written by this release of toast.
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// Where a record lives: `(tenant, class_name, id)`.
///
/// The tenant is part of the key, so every backend filters on it in the query
/// or the key itself; isolation is never a filter applied afterwards.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The tenant that owns the record.
    pub tenant: Arc<str>,
    /// The stored type's class name.
    pub class_name: Arc<str>,
    /// The record's id.
    pub id: Uuid,
}

impl Key {
    /// A key from its three parts.
    pub fn new(tenant: impl Into<Arc<str>>, class_name: impl Into<Arc<str>>, id: Uuid) -> Self {
        Key {
            tenant: tenant.into(),
            class_name: class_name.into(),
            id,
        }
    }

    /// The reference (without tenant) that names this key.
    pub fn reference(&self) -> Reference {
        Reference::new(&*self.class_name, self.id)
    }

    /// Whether `other` has this key's tenant and class (comparing `Arc`s, so
    /// shared names compare by pointer first).
    pub(crate) fn same_class(&self, other: &Key) -> bool {
        self.tenant == other.tenant && self.class_name == other.class_name
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({:?}, {:?}, {})",
            &*self.tenant, &*self.class_name, self.id
        )
    }
}

/// One stored value: its key, its JSON bytes, the references found inside it,
/// and its timestamps.
///
/// Backends receive records from [`crate::Backend::save`] and return them from
/// [`crate::Backend::load`]. On save, a backend keeps `created_at` of an
/// existing record with the same key and takes `updated_at` from the new one.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it lives.
    pub key: Key,
    /// The value as JSON (UTF-8).
    pub data: Bytes,
    /// The references directly inside `data`, collected while it was
    /// serialized; used to prefetch the next nesting level without parsing.
    pub refs: Vec<Reference>,
    /// The layout version ([`RECORD_SCHEMA_VERSION`] when written by this release).
    pub schema_version: u32,
    /// When the record was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last stored.
    pub updated_at: DateTime<Utc>,
}

impl Record {
    /// A new record stamped with the current time.
    pub fn new(key: Key, data: impl Into<Bytes>, refs: Vec<Reference>) -> Self {
        let now = Utc::now();
        Record {
            key,
            data: data.into(),
            refs,
            schema_version: RECORD_SCHEMA_VERSION,
            created_at: now,
            updated_at: now,
        }
    }

    /// The data as text (always UTF-8 when written by toast).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] when the stored bytes are not UTF-8.
    pub fn data_str(&self) -> crate::Result<&str> {
        std::str::from_utf8(&self.data).map_err(|e| {
            crate::Error::validation_with(
                format!(
                    "stored record {} {} is corrupted: not UTF-8 JSON",
                    self.key.class_name, self.key.id
                ),
                e,
            )
        })
    }

    /// `refs` as JSON text (`[]` when empty), the form SQL backends store.
    pub fn refs_json(&self) -> String {
        serde_json::to_string(&self.refs).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Parses `refs` back from the JSON text [`Record::refs_json`] produced.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] when the text is not a list of references.
    pub fn parse_refs(text: Option<&str>) -> crate::Result<Vec<Reference>> {
        match text {
            // The empty list, which most records have, without a parse.
            None | Some("" | "[]") => Ok(Vec::new()),
            Some(t) => serde_json::from_str(t).map_err(|e| {
                crate::Error::validation_with("stored record has a corrupted reference list", e)
            }),
        }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("data_len", &self.data.len())
            .field("refs", &self.refs.len())
            .field("schema_version", &self.schema_version)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// One row of a listing: the id and timestamps of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The record's id.
    pub id: Uuid,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last stored.
    pub updated_at: DateTime<Utc>,
}

/// Which records [`crate::Backend::list`] returns: one tenant's records of one
/// class, newest first (`created_at` descending, then id descending), paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The tenant.
    pub tenant: Arc<str>,
    /// The class.
    pub class_name: Arc<str>,
    /// How many to skip.
    pub offset: u64,
    /// How many to return at most.
    pub limit: u64,
}
