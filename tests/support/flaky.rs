//! A backend that fails on demand, over the memory backend: for flush-failure tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use toast::backend::memory::MemoryBackend;
use toast::backend::{Key, Record};
use toast::{Backend, Error};

#[derive(Debug, Default)]
pub struct Flaky {
    pub inner: MemoryBackend,
    pub fail_saves: AtomicBool,
    pub save_attempts: AtomicUsize,
    pub fail_loads: AtomicBool,
}

impl Flaky {
    pub fn new() -> Arc<Self> {
        Arc::new(Flaky::default())
    }
    pub fn set_failing(&self, failing: bool) {
        self.fail_saves.store(failing, Ordering::SeqCst);
    }
    pub fn set_failing_loads(&self, failing: bool) {
        self.fail_loads.store(failing, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Backend for Flaky {
    async fn save(&self, records: &[Record]) -> toast::Result<()> {
        self.save_attempts.fetch_add(1, Ordering::SeqCst);
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(Error::connection(
                "flaky://",
                "injected failure: the store is down",
            ));
        }
        self.inner.save(records).await
    }
    async fn load(&self, keys: &[Key]) -> toast::Result<Vec<Record>> {
        if self.fail_loads.load(Ordering::SeqCst) {
            return Err(Error::connection(
                "flaky://",
                "injected failure: the store is down",
            ));
        }
        self.inner.load(keys).await
    }
    async fn delete(&self, keys: &[Key]) -> toast::Result<u64> {
        self.inner.delete(keys).await
    }
}

/// A store over a shared `Flaky`.
pub fn store(flaky: &Arc<Flaky>) -> toast::Store {
    toast::Store::from_arc(flaky.clone() as Arc<dyn Backend>, "flaky://")
}
