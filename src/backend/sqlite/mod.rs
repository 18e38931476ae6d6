//! The embedded, persistent SQLite backend (`sqlite://PATH`, default feature).
//!
//! # URL
//!
//! `sqlite://PATH[?pool_max=N&busy_timeout=SECONDS]`: a relative path
//! (`sqlite://data/app.db`) or an absolute one (`sqlite:///var/lib/app.db`).
//! The file (not its directory) is created on first connect.
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `pool_max` | 4 | connections in the pool (≥ 1; readers run concurrently in WAL mode) |
//! | `busy_timeout` | 5 | seconds (decimals allowed) a writer waits for the write lock |
//!
//! Any other option is refused with [`Error::Validation`] naming it, so a
//! misspelt one (`?pool_mx=8`) is not silently ignored; so is a URL with a
//! password or a port (`sqlite://u:pw@file.db`), which the path would show.
//!
//! # Storage
//!
//! One table, `toast_records`, keyed by `(tenant, class_name, id)`, with the
//! JSON bytes, the references inside them (`refs`, JSON text, NULL when
//! there are none), the record's `schema_version` and microsecond
//! timestamps; an index serves listing one tenant's records of one class
//! newest first. It is an ordinary rowid table (schema version 2): the
//! payload goes to the table b-tree and only small key entries to the two
//! indexes.
//!
//! The schema comes from versioned migrations shipped in the crate
//! (`migrations/sqlite/`), applied at connect under SQLite's write lock,
//! recorded in `_toast_migrations` with their checksums in
//! `_toast_migration_checksums`. A file whose schema is newer than this
//! release, or whose applied migrations differ from the ones shipped, is
//! refused with [`Error::Validation`] before anything is written.
//!
//! # Costs
//!
//! The journal is WAL. Every flush is one transaction, of one statement per
//! 2,000 records or 4 MiB of data (a flush of one statement runs without
//! `BEGIN`/`COMMIT`). A load selects its keys in chunks, each chunk one
//! statement; from four keys up, the statement's one row packs the records
//! (SQLite's `group_concat` of their headers, references and data), and the
//! records are slices of that row's data, not copies. A delete is one
//! statement per tenant and class; a listing one statement, paged in SQL.
//!
//! # Timeouts
//!
//! SQLite runs in the process, so a statement has no network to wait on;
//! what it waits on is the write lock another connection or process holds,
//! for at most `busy_timeout`, and a connection of the pool, for at most
//! `busy_timeout` plus 5 seconds. Either way the operation then fails with
//! [`Error::Connection`].
//!
//! # Errors
//!
//! - [`Error::Validation`]: a URL without a path or with a bad option, a
//!   schema newer than this release or a changed migration, a stored
//!   record that cannot be read back (naming its class and id).
//! - [`Error::Connection`]: the file cannot be opened or created, the write
//!   lock stays taken longer than `busy_timeout`, or no connection frees up
//!   in time.
//! - [`Error::Backend`]: any other SQLite failure, with its source.

mod errors;
mod list;
mod load;
mod migrate;
mod options;
mod save;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

/// Rows the connection's worker thread may read ahead of the decoding task.
/// sqlx's default is 50: a 1,000-row load then stops the worker 20 times to
/// wait for the decoder, a thread hand-off each time. More rows ahead cost
/// memory only while a load is running (at most this many rows' copies).
const ROW_BUFFER: usize = 256;

/// Records in an SQLite file, through a small sqlx pool.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    path: String,
}

pub(crate) async fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(SqliteBackend::connect(url).await?))
}

impl SqliteBackend {
    /// Opens (creating if needed) the file a `sqlite://PATH` URL names and
    /// applies the migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL without a path or with bad options;
    /// [`Error::Connection`] when the file cannot be opened or created;
    /// [`Error::Validation`] when the file's schema is newer than this
    /// release or one of its migrations changed.
    pub async fn connect(url: &ConnectUrl) -> Result<Self> {
        let settings = options::Settings::from_url(url)?;
        let path = settings.path.as_str();
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .row_buffer_size(ROW_BUFFER)
            .busy_timeout(settings.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.pool_max)
            .acquire_timeout(settings.acquire_timeout())
            .connect_with(connect)
            .await
            .map_err(|e| {
                Error::connection_with(
                    url.redacted(),
                    format!(
                        "cannot open the SQLite database at {path}: {e} — does its directory \
                         exist, and may this process write there?"
                    ),
                    e,
                )
            })?;
        let backend = SqliteBackend {
            pool,
            path: settings.path,
        };
        migrate::run(&backend.pool, &backend.path).await?;
        Ok(backend)
    }

    /// The file path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version recorded in the file.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the query fails.
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _toast_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("read the schema version", e))?;
        Ok(version.unwrap_or(0))
    }

    /// The newest migration this release ships.
    pub fn latest_schema_version() -> i64 {
        migrate::latest()
    }

    /// Maps a driver error ([`errors::db_error`]).
    fn err(&self, what: &str, e: sqlx::Error) -> Error {
        errors::db_error(&self.path, what, e)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        self.save_records(records).await
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        self.load_chunks(keys).await
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        self.delete_records(keys).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        self.list_page(query).await
    }

    async fn close(&self) -> Result<()> {
        self.pool.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::errors::is_busy;
    use super::*;

    /// A writer that waits on another's write lock gives up after
    /// `busy_timeout` with a connection error.
    #[tokio::test]
    async fn a_lock_held_past_busy_timeout_is_a_connection_error() {
        assert!(is_busy(Some("5")) && is_busy(Some("517")) && is_busy(Some("6")));
        assert!(!is_busy(Some("1")) && !is_busy(None) && !is_busy(Some("x")));
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?busy_timeout=0.2",
            dir.path().join("busy.db").display()
        );
        let backend = SqliteBackend::connect(&ConnectUrl::parse(&url).unwrap())
            .await
            .unwrap();
        let mut holder = backend.pool.begin().await.unwrap();
        sqlx::query("DELETE FROM toast_records WHERE 0")
            .execute(&mut *holder)
            .await
            .unwrap();
        let record = Record::new(Key::new("t", "C", uuid::Uuid::new_v4()), "1", vec![]);
        let started = Instant::now();
        let err = backend
            .save(std::slice::from_ref(&record))
            .await
            .unwrap_err();
        assert!(err.is_connection(), "{err:?}");
        assert!(err.to_string().contains("busy_timeout"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        holder.rollback().await.unwrap();
        backend.save(&[record]).await.unwrap();
    }
}
