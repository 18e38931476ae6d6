//! The in-process backend (`memory://`).
//!
//! `memory://` (no name) is a fresh, private map on every connect;
//! `memory://NAME` is shared by every store in the process that connects to
//! the same name, which lets tests open a "second process" on the same data.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use async_trait::async_trait;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

/// Records in a map, behind a lock that is never held across an `.await`.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    name: String,
    records: RwLock<HashMap<Key, Record>>,
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
                records: RwLock::default(),
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
        self.records.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn poisoned() -> Error {
        Error::backend_msg("memory backend lock poisoned by a panic in another thread")
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        let mut map = self.records.write().map_err(|_| Self::poisoned())?;
        map.reserve(records.len());
        for record in records {
            // One hash per record (a lookup, then an insert, hashed the key twice).
            match map.entry(record.key.clone()) {
                Entry::Occupied(mut existing) => {
                    let created_at = existing.get().created_at;
                    let existing = existing.get_mut();
                    *existing = record.clone();
                    existing.created_at = created_at;
                }
                Entry::Vacant(slot) => {
                    slot.insert(record.clone());
                }
            }
        }
        Ok(())
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        let map = self.records.read().map_err(|_| Self::poisoned())?;
        Ok(keys.iter().filter_map(|k| map.get(k).cloned()).collect())
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        let mut map = self.records.write().map_err(|_| Self::poisoned())?;
        Ok(keys.iter().filter(|k| map.remove(*k).is_some()).count() as u64)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let map = self.records.read().map_err(|_| Self::poisoned())?;
        let mut entries: Vec<ListEntry> = map
            .values()
            .filter(|r| r.key.tenant == query.tenant && r.key.class_name == query.class_name)
            .map(|r| ListEntry {
                id: r.key.id,
                created_at: r.created_at,
                updated_at: r.updated_at,
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
