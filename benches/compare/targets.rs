//! The backends: which one, toast's store on it and its baselines, set up and cleaned.

use std::path::Path;
use std::sync::{Arc, RwLock};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
use std::time::Duration;

use uuid::Uuid;

use crate::fixtures::{Group, Item, Section};
use crate::raw::Raw;
use crate::{err, R};

#[cfg(feature = "postgres")]
const POSTGRES_FALLBACK: &str = "postgres://postgres@127.0.0.1:5432/test";
#[cfg(feature = "redis")]
const REDIS_FALLBACK: &str = "redis://127.0.0.1:6379/";
/// Pool sizes given to toast and to the baseline alike.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_POOL: u32 = 4;
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES_POOL: u32 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Which {
    Memory,
    Sqlite,
    Postgres,
    Redis,
}

impl Which {
    pub(crate) const ALL: [Which; 4] =
        [Which::Memory, Which::Sqlite, Which::Postgres, Which::Redis];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Which::Memory => "memory",
            Which::Sqlite => "sqlite",
            Which::Postgres => "postgres",
            Which::Redis => "redis",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// One backend: a toast store on a fresh tenant, and its baseline.
pub(crate) struct Target {
    pub(crate) which: Which,
    pub(crate) store: toast::Store,
    pub(crate) raw: Arc<Raw>,
    /// SQLite and PostgreSQL: the baseline on a table of toast's shape
    /// ([`Raw::Sqlite`]'s `shaped`).
    pub(crate) shaped: Option<Arc<Raw>>,
    /// SQLite: a connection to toast's file, for [`Target::settle_toast`].
    #[cfg(feature = "sqlite")]
    pub(crate) toast_file: Option<sqlx::SqlitePool>,
    /// PostgreSQL: toast's schema for this run (`?schema=`), dropped at the
    /// end, so that toast's table starts as empty as the baselines' do.
    pub(crate) toast_schema: Option<String>,
}

#[cfg(any(feature = "postgres", feature = "redis"))]
fn env_url(var: &str, fallback: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
async fn connect_store(url: &str) -> R<toast::Store> {
    match tokio::time::timeout(Duration::from_secs(20), toast::Store::connect(url)).await {
        Ok(Ok(store)) => Ok(store.tenant(format!("bench-{}", Uuid::new_v4()))),
        Ok(Err(e)) => Err(format!("toast cannot connect: {e}")),
        Err(_) => Err(format!(
            "toast connect to {} timed out",
            toast::backend::ConnectUrl::parse(url)
                .map(|u| u.redacted().to_owned())
                .unwrap_or_default()
        )),
    }
}

/// Connects toast and the baseline to one backend; `Err` is the reason to skip.
pub(crate) async fn setup(which: Which, dir: &Path) -> R<Target> {
    let _ = dir;
    match which {
        Which::Memory => Ok(Target {
            which,
            store: toast::Store::memory().tenant(format!("bench-{}", Uuid::new_v4())),
            raw: Arc::new(Raw::Memory(RwLock::default())),
            shaped: None,
            #[cfg(feature = "sqlite")]
            toast_file: None,
            toast_schema: None,
        }),
        #[cfg(feature = "sqlite")]
        Which::Sqlite => {
            let toast_path = dir.join("toast.db");
            let url = format!("sqlite://{}?pool_max={SQLITE_POOL}", toast_path.display());
            let store = connect_store(&url).await?;
            let raw = Raw::sqlite(&dir.join("raw.db"), false)
                .await
                .map_err(|e| format!("baseline cannot open SQLite: {e}"))?;
            let shaped = Raw::sqlite(&dir.join("raw-shaped.db"), true)
                .await
                .map_err(|e| format!("baseline cannot open SQLite: {e}"))?;
            let toast_file = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&toast_path)
                        .busy_timeout(Duration::from_secs(5)),
                )
                .await
                .map_err(|e| format!("cannot open toast's SQLite file: {e}"))?;
            Ok(Target {
                which,
                store,
                raw: Arc::new(raw),
                shaped: Some(Arc::new(shaped)),
                toast_file: Some(toast_file),
                toast_schema: None,
            })
        }
        #[cfg(feature = "postgres")]
        Which::Postgres => {
            let base = env_url("TOAST_TEST_POSTGRES_URL", POSTGRES_FALLBACK);
            let mut url = url::Url::parse(&base).map_err(err)?;
            let toast_schema = format!("toast_bench_{}", Uuid::new_v4().simple());
            url.query_pairs_mut()
                .append_pair("pool_max", &POSTGRES_POOL.to_string())
                .append_pair("schema", &toast_schema);
            let store = connect_store(url.as_str()).await?;
            let base = &base;
            let connect = |shaped| async move {
                tokio::time::timeout(Duration::from_secs(20), Raw::postgres(base, shaped))
                    .await
                    .map_err(|_| "baseline connect timed out".to_owned())?
                    .map_err(|e| format!("baseline cannot connect: {e}"))
            };
            let raw = connect(false).await?;
            let shaped = connect(true).await?;
            Ok(Target {
                which,
                store,
                raw: Arc::new(raw),
                shaped: Some(Arc::new(shaped)),
                #[cfg(feature = "sqlite")]
                toast_file: None,
                toast_schema: Some(toast_schema),
            })
        }
        #[cfg(feature = "redis")]
        Which::Redis => {
            let base = env_url("TOAST_TEST_REDIS_URL", REDIS_FALLBACK);
            let store = connect_store(&base).await?;
            let raw = tokio::time::timeout(Duration::from_secs(20), Raw::redis(&base))
                .await
                .map_err(|_| "baseline connect timed out".to_owned())?
                .map_err(|e| format!("baseline cannot connect: {e}"))?;
            Ok(Target {
                which,
                store,
                raw: Arc::new(raw),
                shaped: None,
                #[cfg(feature = "sqlite")]
                toast_file: None,
                toast_schema: None,
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "not compiled in (run with --features {})",
            other.name()
        )),
    }
}

/// Checkpoints an SQLite file's write-ahead log, outside the timers: left to
/// SQLite, a checkpoint (and its fsync) runs in whichever commit finds the
/// log past 1,000 pages, which moves `write_1k`'s medians from run to run
/// onto whichever side happens to pay for it.
#[cfg(feature = "sqlite")]
pub(crate) async fn checkpoint(pool: &sqlx::SqlitePool) -> R<()> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .map_err(err)?;
    Ok(())
}

impl Target {
    /// The baseline on a table of toast's shape, for the SQLite rows that
    /// time it beside the plain one.
    pub(crate) fn sqlite_shaped(&self) -> Option<&Arc<Raw>> {
        self.shaped.as_ref().filter(|_| self.which == Which::Sqlite)
    }

    /// After a rep: toast's SQLite log checkpointed (see [`checkpoint`]).
    pub(crate) async fn settle_toast(&self) -> R<()> {
        #[cfg(feature = "sqlite")]
        if let Some(pool) = &self.toast_file {
            checkpoint(pool).await?;
        }
        Ok(())
    }

    /// Empties toast's table in one statement where it holds only this
    /// run's records: SQLite's (its own file; checkpointed after) and
    /// PostgreSQL's (its own schema). `false` on memory and Redis.
    pub(crate) async fn empty_toast(&self) -> R<bool> {
        #[cfg(feature = "sqlite")]
        if let Some(pool) = &self.toast_file {
            sqlx::query("DELETE FROM toast_records")
                .execute(pool)
                .await
                .map_err(err)?;
            checkpoint(pool).await?;
            return Ok(true);
        }
        if let Some(schema) = &self.toast_schema {
            self.raw.empty_toast(schema).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Leaves the servers as they were: toast's records, the baseline's
    /// (`written` are the payloads it holds outside the timed ops) and the
    /// shaped baseline's tables (it only runs asides, which delete what they
    /// write). Every process that made a target calls it, the `big_doc`
    /// children too.
    pub(crate) async fn cleanup(&self, written: &[Uuid]) -> R<()> {
        match &self.toast_schema {
            Some(schema) => self.raw.drop_schema(schema).await?,
            None => self.cleanup_toast().await?,
        }
        self.raw.cleanup(written).await?;
        if let Some(shaped) = &self.shaped {
            shaped.cleanup(&[]).await?;
        }
        Ok(())
    }

    /// Deletes every toast record this run wrote under its tenant.
    async fn cleanup_toast(&self) -> R<()> {
        let classes = [
            toast::class_name::<Item>(),
            toast::class_name::<Section>(),
            toast::class_name::<Group>(),
            toast::class_name::<crate::long_scope::Body>(),
        ];
        for class in classes {
            loop {
                let refs = self.store.list(&class, 0, 5_000).await.map_err(err)?;
                if refs.is_empty() {
                    break;
                }
                let keys: Vec<toast::backend::Key> =
                    refs.iter().map(|r| self.store.key_for(r)).collect();
                self.store.backend().delete(&keys).await.map_err(err)?;
            }
        }
        Ok(())
    }

    pub(crate) async fn delete_refs(&self, refs: &[toast::Reference]) -> R<()> {
        for chunk in refs.chunks(2_000) {
            let keys: Vec<toast::backend::Key> =
                chunk.iter().map(|r| self.store.key_for(r)).collect();
            self.store.backend().delete(&keys).await.map_err(err)?;
        }
        Ok(())
    }
}
