//! The memory backend with a hook on what it saves and on what it answers a
//! load: for tests of how toast treats a backend's inputs and answers.

use toast::backend::memory::MemoryBackend;
use toast::backend::{Key, Record};
use toast::Backend;

type SaveHook = Box<dyn Fn(&[Record]) + Send + Sync>;
type LoadHook = Box<dyn Fn(Vec<Record>) -> Vec<Record> + Send + Sync>;

pub struct Hooked {
    inner: MemoryBackend,
    on_save: SaveHook,
    on_load: LoadHook,
}

impl Hooked {
    /// Sees every save before it is stored.
    pub fn on_save(f: impl Fn(&[Record]) + Send + Sync + 'static) -> Self {
        Hooked {
            inner: MemoryBackend::default(),
            on_save: Box::new(f),
            on_load: Box::new(|records| records),
        }
    }

    /// Rewrites every load's answer.
    pub fn on_load(f: impl Fn(Vec<Record>) -> Vec<Record> + Send + Sync + 'static) -> Self {
        Hooked {
            inner: MemoryBackend::default(),
            on_save: Box::new(|_| {}),
            on_load: Box::new(f),
        }
    }

    /// With a load hook as well.
    pub fn and_on_load(
        self,
        f: impl Fn(Vec<Record>) -> Vec<Record> + Send + Sync + 'static,
    ) -> Self {
        Hooked {
            on_load: Box::new(f),
            ..self
        }
    }
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooked")
    }
}

#[async_trait::async_trait]
impl Backend for Hooked {
    async fn save(&self, records: &[Record]) -> toast::Result<()> {
        (self.on_save)(records);
        self.inner.save(records).await
    }
    async fn load(&self, keys: &[Key]) -> toast::Result<Vec<Record>> {
        Ok((self.on_load)(self.inner.load(keys).await?))
    }
    async fn delete(&self, keys: &[Key]) -> toast::Result<u64> {
        self.inner.delete(keys).await
    }
}
