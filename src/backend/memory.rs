//! The in-process backend (`memory://`).
//!
//! `memory://` (no name) is a fresh, private map on every connect;
//! `memory://NAME` is shared by every store in the process that connects to
//! the same name, which lets tests open a "second process" on the same data.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::reference::Reference;
use crate::url::ConnectUrl;

/// Records in maps, behind a lock that is never held across an `.await`.
///
/// Tenant → class → id: a batch of one document's externals finds its
/// tenant and class once (looked up by `&str`, without touching the shared
/// `Arc`s' counts), then hashes only ids; a listing reads one class's map
/// instead of every record.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    name: String,
    tenants: RwLock<Tenants>,
}

/// std's map with toast's seeded hash ([`crate::SeededHash`]).
type HashMap<K, V> = std::collections::HashMap<K, V, crate::SeededHash>;

type Tenants = HashMap<Arc<str>, HashMap<Arc<str>, HashMap<Uuid, Stored>>>;

/// A record without its key (the maps it sits in are the key).
#[derive(Debug)]
struct Stored {
    data: Bytes,
    refs: Vec<Reference>,
    schema_version: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Stored {
    fn record(&self, key: &Key) -> Record {
        Record {
            key: key.clone(),
            data: self.data.clone(),
            refs: self.refs.clone(),
            schema_version: self.schema_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Splits `items` into runs of consecutive items whose keys share a tenant
/// and a class (a batch is usually one run).
fn runs<T>(items: &[T], key: impl Fn(&T) -> &Key) -> impl Iterator<Item = &[T]> {
    items.chunk_by(move |a, b| key(a).same_class(key(b)))
}

static NAMED: LazyLock<Mutex<BTreeMap<String, Arc<MemoryBackend>>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

pub(crate) fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    let name = url.opaque_path().trim_end_matches('/');
    if name.is_empty() {
        return Ok(Arc::new(MemoryBackend::new()));
    }
    let mut named = NAMED
        .lock()
        .map_err(|_| Error::backend_msg("memory backend registry is poisoned"))?;
    let backend = named
        .entry(name.to_owned())
        .or_insert_with(|| {
            Arc::new(MemoryBackend {
                name: name.to_owned(),
                tenants: RwLock::default(),
            })
        })
        .clone();
    Ok(backend)
}

impl MemoryBackend {
    /// An empty, private store.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// How many records it holds, over all tenants.
    pub fn len(&self) -> usize {
        self.tenants
            .read()
            .map(|t| t.values().flat_map(HashMap::values).map(HashMap::len).sum())
            .unwrap_or(0)
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn poisoned() -> Error {
        Error::backend_msg("memory backend lock poisoned by a panic in another thread")
    }
}

/// The records of one tenant's class, if it has any.
fn class<'a>(
    tenants: &'a Tenants,
    tenant: &str,
    class_name: &str,
) -> Option<&'a HashMap<Uuid, Stored>> {
    tenants.get(tenant)?.get(class_name)
}

/// The records of `key`'s tenant and class, made empty when missing (one
/// lookup per run of a batch, not per record).
fn class_mut<'a>(tenants: &'a mut Tenants, key: &Key) -> &'a mut HashMap<Uuid, Stored> {
    tenants
        .entry(Arc::clone(&key.tenant))
        .or_default()
        .entry(Arc::clone(&key.class_name))
        .or_default()
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        let mut tenants = self.tenants.write().map_err(|_| Self::poisoned())?;
        for run in runs(records, |r| &r.key) {
            let ids = class_mut(&mut tenants, &run[0].key);
            ids.reserve(run.len());
            for record in run {
                let stored = Stored {
                    data: record.data.clone(),
                    refs: record.refs.clone(),
                    schema_version: record.schema_version,
                    created_at: record.created_at,
                    updated_at: record.updated_at,
                };
                // One hash per record; an update keeps the first created_at.
                match ids.entry(record.key.id) {
                    Entry::Occupied(mut existing) => {
                        let created_at = existing.get().created_at;
                        *existing.get_mut() = Stored {
                            created_at,
                            ..stored
                        };
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(stored);
                    }
                }
            }
        }
        Ok(())
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        let tenants = self.tenants.read().map_err(|_| Self::poisoned())?;
        let mut out = Vec::with_capacity(keys.len());
        for run in runs(keys, |k| k) {
            let Some(ids) = class(&tenants, &run[0].tenant, &run[0].class_name) else {
                continue;
            };
            out.extend(
                run.iter()
                    .filter_map(|k| ids.get(&k.id).map(|stored| stored.record(k))),
            );
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        let mut tenants = self.tenants.write().map_err(|_| Self::poisoned())?;
        let mut deleted = 0;
        for run in runs(keys, |k| k) {
            let (tenant, class_name) = (&*run[0].tenant, &*run[0].class_name);
            let Some(classes) = tenants.get_mut(tenant) else {
                continue;
            };
            let Some(ids) = classes.get_mut(class_name) else {
                continue;
            };
            deleted += run.iter().filter(|k| ids.remove(&k.id).is_some()).count() as u64;
            if ids.is_empty() {
                classes.remove(class_name);
                if classes.is_empty() {
                    tenants.remove(tenant);
                }
            }
        }
        Ok(deleted)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let tenants = self.tenants.read().map_err(|_| Self::poisoned())?;
        let Some(ids) = class(&tenants, &query.tenant, &query.class_name) else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<ListEntry> = ids
            .iter()
            .map(|(id, stored)| ListEntry {
                id: *id,
                created_at: stored.created_at,
                updated_at: stored.updated_at,
            })
            .collect();
        entries.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        Ok(entries.into_iter().skip(offset).take(limit).collect())
    }
}

impl MemoryBackend {
    /// The name it was connected under (`memory://NAME`), empty when private.
    pub fn name(&self) -> &str {
        &self.name
    }
}
