//! The in-process backend (`memory://`).
//!
//! `memory://` (no name) is a fresh, private map on every connect;
//! `memory://NAME` is shared by every store in the process that connects to
//! the same name, which lets tests open a "second process" on the same data.
//! It takes no query options, user name or password: any is refused with
//! [`Error::Validation`].

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::backend::support::{Known, Page, Reference, SeededHash};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

/// Records in maps, in 16 shards by id, each behind a lock that is
/// never held across an `.await`.
///
/// Shards: tasks on several threads that save and load at once take
/// different locks most of the time, instead of passing one lock's cache
/// line between cores on every call. A batch locks each shard
/// it touches once, all of them before it reads or writes any, so that it
/// is seen and made whole, as under one lock.
///
/// Tenant → class → id within a shard: a batch's run of one document's
/// externals finds its tenant and class once (looked up by `&str`, without
/// touching the shared `Arc`s' counts), then hashes only ids; a listing reads
/// one class's map of each shard instead of every record.
#[derive(Default)]
pub struct MemoryBackend {
    name: String,
    shards: [Shard; SHARDS],
}

/// How many shards a [`MemoryBackend`] has.
const SHARDS: usize = 16;

/// Its name and size: never the records' data (which may be anybody's).
impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("name", &self.name)
            .field("records", &self.len())
            .finish()
    }
}

/// One shard, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Shard(RwLock<Tenants>);

/// The shard of `id`: its last byte, random in the ids toast makes (version
/// 4, and version 8 from a hash) and varying in counted ones.
fn shard_of(id: &Uuid) -> usize {
    usize::from(id.as_bytes()[15]) % SHARDS
}

/// Locks the shards that `items` fall in with `lock`, all of them before
/// the first is used, and in ascending order (so that every batch sees and
/// makes its changes as a whole, as with one lock, and no two batches wait
/// for each other); then calls `f` with a shard's guard once per run of one
/// tenant's class among that shard's items ([`runs`]), in their order (so
/// that of a key given twice, the last still wins). A batch of one
/// allocates nothing.
fn each_run<'a, T, G>(
    items: &'a [T],
    key: impl Fn(&T) -> &Key + Copy,
    lock: impl Fn(usize) -> Result<G>,
    mut f: impl FnMut(&mut G, &[&'a T]),
) -> Result<()> {
    if let [one] = items {
        f(&mut lock(shard_of(&key(one).id))?, &[one]);
        return Ok(());
    }
    let mut groups: [Vec<&'a T>; SHARDS] = Default::default();
    for item in items {
        groups[shard_of(&key(item).id)].push(item);
    }
    let mut locked = Vec::with_capacity(SHARDS);
    for (shard, group) in groups.iter().enumerate() {
        if !group.is_empty() {
            locked.push((lock(shard)?, group));
        }
    }
    for (guard, group) in &mut locked {
        for run in runs(group, key) {
            f(guard, run);
        }
    }
    Ok(())
}

/// std's map with toast's seeded hash.
type HashMap<K, V> = std::collections::HashMap<K, V, SeededHash>;

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
fn runs<'s, 'a, T>(
    items: &'s [&'a T],
    key: impl Fn(&T) -> &Key,
) -> impl Iterator<Item = &'s [&'a T]> {
    items.chunk_by(move |a, b| key(a).same_class(key(b)))
}

static NAMED: LazyLock<Mutex<BTreeMap<String, Arc<MemoryBackend>>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// The options of `memory://`: none.
static OPTIONS: Known = Known {
    backend: "memory",
    own: &[],
    driver: &[],
    driver_families: &[],
};

pub(crate) fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    OPTIONS.check(url)?;
    let parsed = url.dangerous_url();
    if parsed.password().is_some() || !parsed.username().is_empty() || url.hides_authority() {
        // The name would show them in `Debug`.
        return Err(Error::validation(format!(
            "store URL '{url}': memory://NAME takes no user name or password"
        )));
    }
    let name = url.opaque_path().trim_end_matches('/');
    if name.is_empty() {
        return Ok(Arc::new(MemoryBackend::new()));
    }
    let mut named = NAMED
        .lock()
        .map_err(|_| Error::backend("memory backend registry is poisoned"))?;
    let backend = named
        .entry(name.to_owned())
        .or_insert_with(|| {
            Arc::new(MemoryBackend {
                name: name.to_owned(),
                ..MemoryBackend::default()
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
        self.shards
            .iter()
            .filter_map(|shard| shard.0.read().ok())
            .map(|t| {
                t.values()
                    .flat_map(HashMap::values)
                    .map(HashMap::len)
                    .sum::<usize>()
            })
            .sum()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn poisoned() -> Error {
        Error::backend("memory backend lock poisoned by a panic in another thread")
    }

    fn read(&self, shard: usize) -> Result<std::sync::RwLockReadGuard<'_, Tenants>> {
        self.shards[shard].0.read().map_err(|_| Self::poisoned())
    }

    fn write(&self, shard: usize) -> Result<std::sync::RwLockWriteGuard<'_, Tenants>> {
        self.shards[shard].0.write().map_err(|_| Self::poisoned())
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

/// Stores `record` in its class's map: one hash; an update keeps the first
/// `created_at`.
fn save_one(ids: &mut HashMap<Uuid, Stored>, record: &Record) {
    let stored = Stored {
        data: record.data.clone(),
        refs: record.refs.clone(),
        schema_version: record.schema_version,
        created_at: record.created_at,
        updated_at: record.updated_at,
    };
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
        let lock = |shard| self.write(shard);
        each_run(
            records,
            |r| &r.key,
            lock,
            |tenants, run| {
                let ids = class_mut(tenants, &run[0].key);
                ids.reserve(run.len());
                for record in run {
                    save_one(ids, record);
                }
            },
        )
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        // Every shard the keys touch is locked (in ascending order, as a
        // save locks them) before any is read, so a batch is seen whole;
        // the records come back in the order of `keys`, as most backends
        // answer, which is the order a reader meets them in.
        let mut guards: [Option<std::sync::RwLockReadGuard<'_, Tenants>>; SHARDS] =
            Default::default();
        let mut touched = [false; SHARDS];
        for key in keys {
            touched[shard_of(&key.id)] = true;
        }
        for (shard, guard) in guards.iter_mut().enumerate() {
            if touched[shard] {
                *guard = Some(self.read(shard)?);
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        // The class of the previous key, looked up once for a run of keys
        // of one class (a level's keys mostly are).
        let mut last: Option<(&Key, [Option<&HashMap<Uuid, Stored>>; SHARDS])> = None;
        for key in keys {
            let shard = shard_of(&key.id);
            let Some(tenants) = guards[shard].as_deref() else {
                continue;
            };
            let same = last.as_ref().is_some_and(|(prev, _)| prev.same_class(key));
            if !same {
                last = Some((key, [None; SHARDS]));
            }
            let Some((_, classes)) = last.as_mut() else {
                continue;
            };
            let ids = match classes[shard] {
                Some(ids) => Some(ids),
                None => {
                    let found = class(tenants, &key.tenant, &key.class_name);
                    classes[shard] = found;
                    found
                }
            };
            if let Some(stored) = ids.and_then(|ids| ids.get(&key.id)) {
                out.push(stored.record(key));
            }
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        let mut deleted = 0;
        let lock = |shard| self.write(shard);
        each_run(
            keys,
            |k| k,
            lock,
            |tenants, run| {
                let (tenant, class_name) = (&*run[0].tenant, &*run[0].class_name);
                let Some(classes) = tenants.get_mut(tenant) else {
                    return;
                };
                let Some(ids) = classes.get_mut(class_name) else {
                    return;
                };
                deleted += run.iter().filter(|k| ids.remove(&k.id).is_some()).count() as u64;
                if ids.is_empty() {
                    classes.remove(class_name);
                    if classes.is_empty() {
                        tenants.remove(tenant);
                    }
                }
            },
        )?;
        Ok(deleted)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        // Every shard's lock at once (ascending, as `each_run`): a listing
        // sees a batch saved meanwhile whole or not at all.
        let locked = (0..SHARDS)
            .map(|shard| self.read(shard))
            .collect::<Result<Vec<_>>>()?;
        let mut entries = Vec::new();
        for tenants in &locked {
            let Some(ids) = class(tenants, &query.tenant, &query.class_name) else {
                continue;
            };
            entries.extend(ids.iter().map(|(id, stored)| ListEntry {
                id: *id,
                created_at: stored.created_at,
                updated_at: stored.updated_at,
            }));
        }
        Ok(Page::of(query).of_entries(entries))
    }
}

impl MemoryBackend {
    /// The name it was connected under (`memory://NAME`), empty when private.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u128) -> Vec<Key> {
        (1..=n)
            .map(|i| Key::new("t", "Item", Uuid::from_u128(i)))
            .collect()
    }

    fn batch(keys: &[Key], version: u64) -> Vec<Record> {
        keys.iter()
            .map(|k| Record::new(k.clone(), version.to_string(), Vec::new()))
            .collect()
    }

    #[test]
    fn a_batch_spans_every_shard() {
        let shards: std::collections::BTreeSet<usize> =
            keys(64).iter().map(|k| shard_of(&k.id)).collect();
        assert_eq!(shards.len(), SHARDS);
    }

    /// Readers racing a writer that rewrites 64 records (in every shard) in
    /// one batch per version see every batch whole: all 64 of one version.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_seen_whole_across_shards() -> Result<()> {
        let backend = Arc::new(MemoryBackend::new());
        let keys = Arc::new(keys(64));
        backend.save(&batch(&keys, 0)).await?;
        // Debug tells the size, never the data.
        assert_eq!(
            format!("{backend:?}"),
            r#"MemoryBackend { name: "", records: 64 }"#
        );
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (backend, keys, done) =
                (Arc::clone(&backend), Arc::clone(&keys), Arc::clone(&done));
            tokio::spawn(async move {
                for version in 1..=500 {
                    backend.save(&batch(&keys, version)).await?;
                    tokio::task::yield_now().await;
                }
                done.store(true, std::sync::atomic::Ordering::Release);
                Ok::<_, Error>(())
            })
        };
        let mut reads = 0u64;
        while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
            let records = backend.load(&keys).await?;
            assert_eq!(records.len(), 64);
            let first = records[0].data.clone();
            assert!(
                records.iter().all(|r| r.data == first),
                "a load saw two versions of one batch"
            );
            let query = ListQuery {
                tenant: "t".into(),
                class_name: "Item".into(),
                offset: 0,
                limit: 100,
            };
            let listed = backend.list(&query).await?;
            assert_eq!(listed.len(), 64);
            reads += 1;
            tokio::task::yield_now().await;
        }
        writer.await.map_err(|e| Error::backend(e.to_string()))??;
        assert_eq!(backend.len(), 64);
        assert_eq!(backend.delete(&keys).await?, 64);
        assert!(backend.is_empty());
        Ok(())
    }
}
