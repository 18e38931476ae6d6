//! The PostgreSQL backend (`postgres://`, `postgresql://`; cargo feature `postgres`).
//!
//! Records live in one table, `<schema>.records`, with the value as `JSONB`.
//! The table is created and upgraded by versioned migrations shipped in the
//! crate, applied when the store connects. Every operation is one statement
//! over a connection pool created at connect: a flush of N records is one
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`, a load of N keys is
//! one `SELECT` (one index scan with `id = ANY(…)` when the keys share a
//! tenant and class, a `JOIN unnest(…)` otherwise), a delete or a listing
//! one statement. A flush of more than 5,000 records or 8 MiB of data is
//! split into statements of at most that size, in one transaction.
//!
//! # URL
//!
//! ```text
//! postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTION=VALUE&…]
//! postgresql://…                      (the same)
//! ```
//!
//! Options of toast itself (removed before the URL reaches the driver):
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `pool_max` | `10` | most connections the store's pool opens (≥ 1) |
//! | `acquire_timeout` | `5` | seconds an operation waits for a connection before it fails with [`Error::Connection`] (decimals allowed) |
//! | `connect_timeout` | `acquire_timeout` | seconds [`crate::Store::connect`] waits for the first connection |
//! | `statement_timeout` | `30` | seconds each statement may take, waiting for its connection included, before it fails with [`Error::Connection`] (decimals allowed; see [Timeouts](#timeouts)) |
//! | `schema` | `toast` | the schema holding the tables, created if missing; must match `^[A-Za-z_][A-Za-z0-9_]{0,62}$` (case is kept) |
//!
//! Options passed to the driver (sqlx): `sslmode` (`disable`, `allow`,
//! `prefer` (the default), `require`, `verify-ca`, `verify-full`; TLS is
//! rustls), `sslrootcert`, `sslcert`, `sslkey`, `application_name` (default
//! `serde-toast`), `options`, `statement-cache-capacity`, `host` (a directory
//! for a Unix socket), `hostaddr`, `port`, `dbname`, `user`, `password`. Any
//! other option is rejected with [`Error::Validation`] naming it, so a
//! misspelt one is not silently ignored. Seconds are decimal numbers (`0.5`)
//! above 0.
//!
//! ```no_run
//! # async fn demo() -> toast::Result<()> {
//! let store = toast::Store::connect(
//!     "postgres://app:secret@db.internal:5432/app?pool_max=20&acquire_timeout=2&sslmode=require",
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Tables and migrations
//!
//! - `<schema>.records`: `tenant text, class_name text, id uuid` (the primary
//!   key, in the order `(id, tenant, class_name)` since migration 3, so that
//!   a load of many ids is one index scan with `id = ANY(…)` as its
//!   condition), `data jsonb`, `refs jsonb` (the references inside `data`),
//!   `schema_version bigint`, `created_at timestamptz` (kept on update),
//!   `updated_at timestamptz`; index `records_listing` on
//!   `(tenant || E'\x01/' || class_name, created_at DESC, id DESC)` for
//!   listing. Its key is an expression that loads never name, so a load
//!   uses the primary key whatever the table's statistics (migration 2;
//!   the names' escapes, below, never produce U+0001 `'/'`, so the key
//!   stands for exactly one tenant and class).
//! - `<schema>._toast_migrations`: `version, name, checksum, applied_at`, one
//!   row per applied migration, its checksum the SHA-256 of the migration's
//!   SQL. It is toast's own table: an application's sqlx `_sqlx_migrations`
//!   table is never read or touched.
//!
//! At connect, toast reads the applied migrations and verifies their
//! checksums; when some are missing, it applies them in one transaction
//! holding a PostgreSQL advisory lock for the schema, so any number of
//! processes may start at once against an empty database. Re-running is a
//! no-op. A database whose recorded version is newer than this release knows
//! ([`SCHEMA_VERSION`]), or one of whose applied migrations differs from the
//! one shipped, is refused with [`Error::Validation`] before anything is
//! written.
//!
//! # Timeouts
//!
//! Every round trip is bounded. Waiting for a connection is bounded by
//! `acquire_timeout`; the first connection of [`crate::Store::connect`] by
//! `connect_timeout`. Each statement is bounded by `statement_timeout` twice
//! over: the server cancels one that runs longer (the connection's
//! `statement_timeout` setting, so it holds for your own queries on
//! [`PostgresBackend::pool`] too), and the client stops waiting for an answer
//! that does not come — a network that stalls after the statement was sent —
//! and closes that connection; the pool opens a fresh one when it needs it,
//! so the same store works again once the server is reachable. Either way the
//! operation fails with [`Error::Connection`]. The migrations at connect get
//! `statement_timeout` for each statement they may send: raise it for a first
//! connect that upgrades a very big table.
//!
//! # Strings PostgreSQL cannot hold
//!
//! PostgreSQL `text` cannot contain NUL (U+0000). Tenant names and class names
//! may still contain any character: they are stored with NUL written as
//! U+0001 `'0'` and U+0001 itself as U+0001 `'1'`, a reversible escaping, so
//! two distinct names never collide. Names without those two characters are
//! stored as they are.
//!
//! `JSONB` cannot hold NUL inside a string either (`"\u0000"` in JSON). Saving
//! such a value fails with [`Error::Validation`] naming the record, before
//! anything is written; store such bytes encoded (base64, say) instead.
//!
//! `JSONB` also normalises the JSON it stores: object keys are reordered and
//! duplicates dropped, whitespace changes, and `-0.0` loads as `0`. The value
//! deserializes the same; only the stored bytes differ. Timestamps keep
//! microseconds (PostgreSQL's precision).
//!
//! # Errors
//!
//! - [`Error::Connection`] (with the URL, password redacted, and a hint such as
//!   "is PostgreSQL running at 127.0.0.1:5432?") when the server cannot be
//!   reached, refuses the login, the database does not exist, TLS fails, the
//!   server shuts down, no connection frees up within `acquire_timeout`, or a
//!   statement gets no answer within `statement_timeout`. Connect fails
//!   within `connect_timeout`; an operation while the server is down fails
//!   within `acquire_timeout`. When the server is back, the same store works
//!   again: dead connections are tested and replaced.
//! - [`Error::Validation`] for a bad option, a non-UTF8 database, a database
//!   schema newer than this release or a changed migration, JSON holding
//!   `\u0000`, or a stored record that cannot be read back — corrupted
//!   columns, or a timestamp toast cannot hold (`infinity`, `-infinity`, a
//!   year past 262143) — naming its class and id.
//! - [`Error::Backend`] for any other SQL failure, with the driver's error as
//!   its source.

mod bounded;
mod errors;
mod list;
mod load;
mod migrate;
mod names;
mod options;
mod save;
mod statements;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::Connection;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

pub use pool::PostgresPool;

use errors::Diagnostics;
use options::Settings;
use statements::Statements;

/// The newest database schema version this release knows (the number of its
/// last migration).
pub const SCHEMA_VERSION: i64 = 3;

/// The default schema name (`?schema=` overrides it).
pub const DEFAULT_SCHEMA: &str = "toast";

/// The default pool size (`?pool_max=` overrides it).
pub const DEFAULT_POOL_MAX: u32 = 10;

/// The default seconds to wait for a connection (`?acquire_timeout=` overrides it).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default bound on each statement (`?statement_timeout=` overrides it).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

mod pool;

/// A PostgreSQL store: a connection pool and the statements for one schema.
///
/// Usually reached through [`crate::Store::connect`] with a `postgres://`
/// URL; see the [module docs](self) for the URL options, the tables and the
/// errors. `Debug` shows the URL with its password redacted.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: PostgresPool,
    schema: String,
    sql: Arc<Statements>,
    diag: Arc<Diagnostics>,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("url", &self.diag.url)
            .field("schema", &self.schema)
            .field("pool_max", &self.diag.pool_max)
            .field("acquire_timeout", &self.diag.acquire_timeout)
            .field("statement_timeout", &self.diag.statement_timeout)
            .finish()
    }
}

pub(crate) async fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(PostgresBackend::connect(url).await?))
}

impl PostgresBackend {
    /// Connects: checks the URL, opens one connection to apply the
    /// migrations, and creates the pool the backend uses from then on.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad option, a non-UTF8 database, or a
    /// database schema newer than [`SCHEMA_VERSION`]; [`Error::Connection`]
    /// when the server cannot be reached or refuses the login (within
    /// `connect_timeout`); [`Error::Backend`] when a migration fails.
    pub async fn connect(url: &ConnectUrl) -> Result<PostgresBackend> {
        let settings = Settings::from_url(url)?;
        let diag = Arc::new(settings.diagnostics());
        let schema = settings.schema.clone();

        let mut conn = tokio::time::timeout(
            settings.connect_timeout,
            PgConnection::connect_with(&settings.connect),
        )
        .await
        .map_err(|_| {
            Error::connection(
                &diag.url,
                format!(
                    "no answer within {:?} (connect_timeout) — is PostgreSQL running at {}, \
                     and reachable from here?",
                    diag.connect_timeout, diag.endpoint
                ),
            )
        })?
        .map_err(|e| diag.error("connect", e))?;

        // Each statement the migrations may send gets statement_timeout.
        let statements = 2 * migrate::MIGRATIONS.len() + 6;
        let limit = settings
            .statement_timeout
            .saturating_mul(u32::try_from(statements).unwrap_or(u32::MAX));
        let migrated =
            match tokio::time::timeout(limit, migrate::run(&mut conn, &schema, &diag)).await {
                Ok(migrated) => migrated,
                Err(_) => Err(diag.timed_out("migrate")),
            };
        // Closing politely is best effort: the connection is dropped either way.
        let _ = conn.close().await;
        migrated?;

        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_max)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            // A connection is pinged before it is handed out, so one that died
            // with a server restart is replaced instead of failing the operation.
            .test_before_acquire(true)
            .connect_lazy_with(settings.connect);
        let pool = PostgresPool::new(pool);

        Ok(PostgresBackend {
            pool,
            sql: Arc::new(Statements::for_schema(&schema)),
            schema,
            diag,
        })
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection pool, for running your own queries on the same
    /// connections. Unlike sqlx's own pool it never shows or hands out its
    /// connect options, which hold the password.
    pub fn pool(&self) -> &PostgresPool {
        &self.pool
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        self.save_records(records).await
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        self.load_records(keys).await
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
