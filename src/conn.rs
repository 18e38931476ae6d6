//! [`Conn`]: a connected backend and its counters ([`Stats`]).
//!
//! Every call toast makes to a backend goes through here and is counted. A
//! `Conn` knows no tenant and no scope: [`crate::Store`] adds the tenant, the
//! scope adds the buffer and the cache.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::Result;
use crate::record::{Key, ListEntry, ListQuery, Record};

/// A cheap `Clone` handle on a connected backend, shown as its redacted URL.
#[derive(Clone)]
pub(crate) struct Conn {
    shared: Arc<Shared>,
}

struct Shared {
    backend: Arc<dyn Backend>,
    url: String,
    counters: Counters,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("url", &self.shared.url)
            .field("backend", &self.shared.backend)
            .finish()
    }
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

/// The counters behind [`Stats`], in stripes: each thread adds to the stripe
/// it was given, on a cache line of its own, so that threads counting at
/// once do not pass one line back and forth; [`Conn::stats`] sums them.
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

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Conn {
    /// A connection over `backend`, shown as `url` (already redacted).
    pub(crate) fn new(backend: Arc<dyn Backend>, url: String) -> Conn {
        Conn {
            shared: Arc::new(Shared {
                backend,
                url,
                counters: Counters::default(),
            }),
        }
    }

    /// The redacted URL.
    pub(crate) fn url(&self) -> &str {
        &self.shared.url
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.shared.backend
    }

    /// The counters since connect.
    pub(crate) fn stats(&self) -> Stats {
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

    /// One `Backend::save` call, counted.
    pub(crate) async fn save(&self, records: &[Record]) -> Result<()> {
        let c = self.shared.counters.mine();
        add(&c.save_calls, 1);
        add(&c.records_saved, records.len());
        self.shared.backend.save(records).await
    }

    /// One `Backend::load` call, counted; records the backend returns for keys
    /// that were not asked for are dropped, so a faulty backend cannot leak
    /// another tenant's data. `tenant` is the tenant of every key.
    pub(crate) async fn load(&self, keys: &[Key], tenant: &Arc<str>) -> Result<Vec<Record>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.shared.counters.mine();
        add(&c.load_calls, 1);
        let mut records = self.shared.backend.load(keys).await?;
        // Backends return the caller's keys, made with the caller's tenant
        // `Arc`, so `Arc`'s equality finds most by pointer.
        if records.len() > keys.len() || records.iter().any(|r| r.key.tenant != *tenant) {
            let wanted: HashSet<&Key> = keys.iter().collect();
            records.retain(|r| wanted.contains(&r.key));
        }
        add(&c.records_loaded, records.len());
        Ok(records)
    }

    /// One `Backend::delete` call, counted.
    pub(crate) async fn delete(&self, keys: &[Key]) -> Result<u64> {
        add(&self.shared.counters.mine().delete_calls, 1);
        self.shared.backend.delete(keys).await
    }

    /// One `Backend::list` call, counted.
    pub(crate) async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        add(&self.shared.counters.mine().list_calls, 1);
        self.shared.backend.list(query).await
    }

    /// `Backend::close`.
    pub(crate) async fn close(&self) -> Result<()> {
        self.shared.backend.close().await
    }
}
