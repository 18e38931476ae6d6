//! The PostgreSQL backend (`postgres://`, `postgresql://`; cargo feature `postgres`).
//!
//! Records live in one table, `<schema>.records`, with the value as `JSONB`.
//! The table is created and upgraded by versioned migrations shipped in the
//! crate, applied when the store connects. Every operation is one statement
//! over a connection pool created at connect: a flush of N records is one
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`, a load of N keys is
//! one `SELECT` (one index scan with `id = ANY(…)` when the keys share a
//! tenant and class, a `JOIN unnest(…)` otherwise). A flush of more than 5,000 records or 8 MiB
//! of data is split into statements of at most that size, in one transaction.
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
//! | `schema` | `toast` | the schema holding the tables, created if missing; must match `^[A-Za-z_][A-Za-z0-9_]{0,62}$` (case is kept) |
//!
//! Options passed to the driver (sqlx): `sslmode` (`disable`, `allow`,
//! `prefer` (the default), `require`, `verify-ca`, `verify-full`; TLS is
//! rustls), `sslrootcert`, `sslcert`, `sslkey`, `application_name` (default
//! `serde-toast`), `options`, `statement-cache-capacity`, `host` (a directory
//! for a Unix socket), `hostaddr`, `port`, `dbname`, `user`, `password`. Any
//! other option is rejected with [`Error::Validation`], so a misspelt one is
//! not silently ignored.
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
//!   row per applied migration. It is toast's own table: an application's sqlx
//!   `_sqlx_migrations` table is never read or touched.
//!
//! At connect, toast reads the recorded version; when it is behind, it applies
//! the missing migrations in one transaction holding a PostgreSQL advisory
//! lock for the schema, so any number of processes may start at once against
//! an empty database. Re-running is a no-op. A database whose recorded version
//! is newer than this release knows ([`SCHEMA_VERSION`]) is refused with
//! [`Error::Validation`] before anything is written.
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
//!   server shuts down, or no connection frees up within `acquire_timeout`.
//!   Connect fails within `connect_timeout`; an operation while the server is
//!   down fails within `acquire_timeout`. When the server is back, the same
//!   store works again: dead connections are tested and replaced.
//! - [`Error::Validation`] for a bad option, a non-UTF8 database, a database
//!   schema newer than this release, or JSON holding `\u0000`.
//! - [`Error::Backend`] for any other SQL failure, with the driver's error as
//!   its source.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Executor, Row};
use uuid::Uuid;

use crate::backend::batch::{self, distinct};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

/// The newest database schema version this release knows (the number of its
/// last migration).
pub const SCHEMA_VERSION: i64 = 3;

/// The default schema name (`?schema=` overrides it).
pub const DEFAULT_SCHEMA: &str = "toast";

/// The default pool size (`?pool_max=` overrides it).
pub const DEFAULT_POOL_MAX: u32 = 10;

/// The default seconds to wait for a connection (`?acquire_timeout=` overrides it).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows per statement when a flush is split; a flush at or under this size
/// (and [`CHUNK_BYTES`]) is one statement.
const CHUNK_ROWS: usize = 5_000;

/// Bytes of `data` per statement when a flush is split (PostgreSQL refuses a
/// single parameter over 1 GiB).
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Options of toast itself, removed before the URL reaches sqlx.
const TOAST_OPTIONS: &[&str] = &["pool_max", "acquire_timeout", "connect_timeout", "schema"];

/// Options sqlx understands (`options[NAME]` too).
const DRIVER_OPTIONS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The migrations, in order; the last one's version is [`SCHEMA_VERSION`].
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records",
        sql: include_str!("../../migrations/postgres/0001_records.sql"),
    },
    Migration {
        version: 2,
        name: "listing by expression",
        sql: include_str!("../../migrations/postgres/0002_listing_by_expression.sql"),
    },
    Migration {
        version: 3,
        name: "key by id",
        sql: include_str!("../../migrations/postgres/0003_key_by_id.sql"),
    },
];

/// A PostgreSQL store: a connection pool and the statements for one schema.
///
/// Usually reached through [`crate::Store::connect`] with a `postgres://`
/// URL; see the [module docs](self) for the URL options, the tables and the
/// errors. `Debug` shows the URL with its password redacted.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    schema: String,
    sql: Arc<Statements>,
    diag: Arc<Diagnostics>,
}

/// What error messages need: where the server is and how the pool is set up.
#[derive(Debug)]
struct Diagnostics {
    url: String,
    endpoint: String,
    database: String,
    username: String,
    pool_max: u32,
    acquire_timeout: Duration,
    connect_timeout: Duration,
}

struct Statements {
    save: String,
    save_one_class: String,
    load: String,
    load_one_class: String,
    delete: String,
    list: String,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("url", &self.diag.url)
            .field("schema", &self.schema)
            .field("pool_max", &self.diag.pool_max)
            .field("acquire_timeout", &self.diag.acquire_timeout)
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
                None,
            )
        })?
        .map_err(|e| diag.error("connect", e))?;

        let migrated = migrate(&mut conn, &schema, &diag).await;
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

    /// The connection pool (sqlx 0.8), for running your own queries on the
    /// same connections.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One multi-row upsert. A batch of one tenant and class (the usual
    /// flush) sends tenant and class once instead of once per row; empty
    /// reference lists go as NULL (stored as `[]`) instead of `"[]"` text.
    async fn upsert<'e, E>(&self, executor: E, rows: &[Checked<'_>]) -> Result<()>
    where
        E: sqlx::PgExecutor<'e>,
    {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let first = &first.record.key;
        let one_class = rows.iter().all(|row| row.record.key.same_class(first));
        let mut ids = Vec::with_capacity(rows.len());
        let mut datas = Vec::with_capacity(rows.len());
        let mut refs = Vec::with_capacity(rows.len());
        let mut versions = Vec::with_capacity(rows.len());
        let mut created = Vec::with_capacity(rows.len());
        let mut updated = Vec::with_capacity(rows.len());
        for row in rows {
            let record = row.record;
            ids.push(record.key.id);
            datas.push(row.data);
            refs.push((!record.refs.is_empty()).then(|| record.refs_json()));
            versions.push(i64::from(record.schema_version));
            created.push(record.created_at);
            updated.push(record.updated_at);
        }
        let query = if one_class {
            sqlx::query(&self.sql.save_one_class)
                .bind(names::encode(&first.tenant))
                .bind(names::encode(&first.class_name))
        } else {
            let mut tenants = Vec::with_capacity(rows.len());
            let mut classes = Vec::with_capacity(rows.len());
            for row in rows {
                tenants.push(names::encode(&row.record.key.tenant));
                classes.push(names::encode(&row.record.key.class_name));
            }
            sqlx::query(&self.sql.save).bind(tenants).bind(classes)
        };
        query
            .bind(ids)
            .bind(datas)
            .bind(refs)
            .bind(versions)
            .bind(created)
            .bind(updated)
            .execute(executor)
            .await
            .map_err(|e| self.diag.error("save", e))?;
        Ok(())
    }
}

/// A record to write with its JSON text, checked by [`check_json`].
struct Checked<'r> {
    record: &'r Record,
    data: &'r str,
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        let rows = last_per_key(records);
        if rows.is_empty() {
            return Ok(());
        }
        // Refuse the whole flush before any statement runs.
        let rows = rows
            .into_iter()
            .map(|record| {
                Ok(Checked {
                    record,
                    data: check_json(record)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let chunks = chunks(&rows, |row| row.data.len());
        if let [only] = chunks.as_slice() {
            return self.upsert(&self.pool, only).await;
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.diag.error("save", e))?;
        for chunk in chunks {
            self.upsert(&mut *tx, chunk).await?;
        }
        tx.commit().await.map_err(|e| self.diag.error("save", e))
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        // Each row is decoded as it arrives and dropped, so the rows and
        // their records are never all in memory at once. The key of a row
        // is the caller's own `Key` (found by its id or position): no
        // tenant or class text is read back, unescaped or allocated again.
        if keys.iter().all(|k| k.same_class(first)) {
            // The usual case (one document's references): tenant and class
            // sent once with the ids, sorted and without repeats; a row's
            // key is found by its id.
            let mut asked: Vec<&Key> = keys.iter().collect();
            asked.sort_unstable_by_key(|k| k.id);
            asked.dedup_by_key(|k| k.id);
            let ids: Vec<Uuid> = asked.iter().map(|k| k.id).collect();
            return sqlx::query(&self.sql.load_one_class)
                .bind(names::encode(&first.tenant))
                .bind(names::encode(&first.class_name))
                .bind(ids)
                .try_map(|row: PgRow| {
                    let id: Uuid = row.try_get(0)?;
                    let key = asked
                        .binary_search_by_key(&id, |k| k.id)
                        .ok()
                        .and_then(|n| asked.get(n).copied());
                    decode_row(&row, key).map_err(into_sqlx)
                })
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.load_error(e));
        }
        // Mixed tenants or classes: every key's three parts; a row's `k.n`
        // names its key's position in `asked`.
        let asked = distinct(keys);
        let (tenants, classes, ids) = key_columns(&asked);
        sqlx::query(&self.sql.load)
            .bind(tenants)
            .bind(classes)
            .bind(ids)
            .try_map(|row: PgRow| {
                let key = position(&row)?.and_then(|n| asked.get(n).copied());
                decode_row(&row, key).map_err(into_sqlx)
            })
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.load_error(e))
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        let keys = distinct(keys);
        if keys.is_empty() {
            return Ok(0);
        }
        let (tenants, classes, ids) = key_columns(&keys);
        let done = sqlx::query(&self.sql.delete)
            .bind(tenants)
            .bind(classes)
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(|e| self.diag.error("delete", e))?;
        Ok(done.rows_affected())
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.sql.list)
            .bind(names::encode(&query.tenant))
            .bind(names::encode(&query.class_name))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.diag.error("list", e))?;
        rows.iter()
            .map(|row| {
                Ok(ListEntry {
                    id: row.try_get(0).map_err(|e| self.diag.error("list", e))?,
                    created_at: row.try_get(1).map_err(|e| self.diag.error("list", e))?,
                    updated_at: row.try_get(2).map_err(|e| self.diag.error("list", e))?,
                })
            })
            .collect()
    }

    async fn close(&self) -> Result<()> {
        self.pool.close().await;
        Ok(())
    }
}

impl PostgresBackend {
    /// A load failure: a [`toast::Error`](Error) raised while decoding a row
    /// comes back as it was; a driver error is mapped as any other.
    fn load_error(&self, e: sqlx::Error) -> Error {
        match e {
            sqlx::Error::Decode(source) => match source.downcast::<Error>() {
                Ok(error) => *error,
                Err(source) => self.diag.error("load", sqlx::Error::Decode(source)),
            },
            e => self.diag.error("load", e),
        }
    }
}

/// The 0-based position in the request of a loaded row's key (`k.n`, from
/// `WITH ORDINALITY`, counts from 1); `None` when out of range.
fn position(row: &PgRow) -> std::result::Result<Option<usize>, sqlx::Error> {
    let n: i64 = row.try_get(0)?;
    Ok(usize::try_from(n).ok().and_then(|n| n.checked_sub(1)))
}

/// Carries a toast error through sqlx's row mapping (see `load_error`).
fn into_sqlx(e: Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Decodes a loaded row: column 0 named its key (`key`, found by the
/// caller), then `data::text, refs::text, schema_version, created_at,
/// updated_at`. Columns are read by index and borrowed; `data` is copied
/// once into the record (its UTF-8 is checked where it is parsed).
fn decode_row(row: &PgRow, key: Option<&Key>) -> Result<Record> {
    let key =
        key.ok_or_else(|| Error::backend_msg("PostgreSQL returned a row for a key not asked for"))?;
    let corrupted = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
        Error::validation_with(
            format!(
                "stored record {} {} is corrupted: bad {what}",
                key.class_name, key.id
            ),
            e,
        )
    };
    let data = row
        .try_get_raw(1)
        .map_err(|e| corrupted("data", e.into()))?
        .as_bytes()
        .map_err(|e| corrupted("data", e))?;
    let refs: Option<&str> = row.try_get(2).map_err(|e| corrupted("refs", e.into()))?;
    let schema_version: i64 = row
        .try_get(3)
        .map_err(|e| corrupted("schema_version", e.into()))?;
    let created_at: DateTime<Utc> = row
        .try_get(4)
        .map_err(|e| corrupted("created_at", e.into()))?;
    let updated_at: DateTime<Utc> = row
        .try_get(5)
        .map_err(|e| corrupted("updated_at", e.into()))?;
    let schema_version = u32::try_from(schema_version).map_err(|_| {
        Error::validation(format!(
            "stored record {} {} is corrupted: schema_version {schema_version} is out of range",
            key.class_name, key.id
        ))
    })?;
    Ok(Record {
        key: key.clone(),
        data: Bytes::copy_from_slice(data),
        refs: Record::parse_refs(refs)?,
        schema_version,
        created_at,
        updated_at,
    })
}

/// What a save does with a key that is already stored: `created_at` kept,
/// everything else taken from the new record.
const UPSERT: &str = "ON CONFLICT (tenant, class_name, id) DO UPDATE SET \
     data = EXCLUDED.data, refs = EXCLUDED.refs, \
     schema_version = EXCLUDED.schema_version, updated_at = EXCLUDED.updated_at";

impl Statements {
    fn for_schema(schema: &str) -> Statements {
        let table = format!("{}.records", quote_ident(schema));
        Statements {
            save: format!(
                "INSERT INTO {table} AS r \
                 (tenant, class_name, id, data, refs, schema_version, created_at, updated_at) \
                 SELECT u.tenant, u.class_name, u.id, u.data::jsonb, \
                 coalesce(u.refs::jsonb, '[]'::jsonb), \
                 u.schema_version, u.created_at, u.updated_at \
                 FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
                 $6::int8[], $7::timestamptz[], $8::timestamptz[]) \
                 AS u(tenant, class_name, id, data, refs, schema_version, created_at, updated_at) \
                 {UPSERT}"
            ),
            save_one_class: format!(
                "INSERT INTO {table} AS r \
                 (tenant, class_name, id, data, refs, schema_version, created_at, updated_at) \
                 SELECT $1::text, $2::text, u.id, u.data::jsonb, \
                 coalesce(u.refs::jsonb, '[]'::jsonb), \
                 u.schema_version, u.created_at, u.updated_at \
                 FROM unnest($3::uuid[], $4::text[], $5::text[], \
                 $6::int8[], $7::timestamptz[], $8::timestamptz[]) \
                 AS u(id, data, refs, schema_version, created_at, updated_at) \
                 {UPSERT}"
            ),
            // Loads use the primary key only: `records_listing` is on an
            // expression these conditions never name (migration 2; on
            // version 1's listing index, whose leading columns were the
            // key's, a table never analyzed costed both the same and the
            // planner took the listing one, scanning the whole class for
            // each id). The mixed load probes the key once per requested
            // key; the LIMIT keeps each LATERAL subquery from being
            // flattened into a join that a generic plan turned into a scan
            // of the tenant's whole class.
            load: format!(
                "SELECT k.n, r.data::text, r.refs::text, \
                 r.schema_version, r.created_at, r.updated_at \
                 FROM unnest($1::text[], $2::text[], $3::uuid[]) WITH ORDINALITY \
                 AS k(tenant, class_name, id, n) \
                 CROSS JOIN LATERAL (SELECT s.data, s.refs, s.schema_version, \
                 s.created_at, s.updated_at FROM {table} AS s \
                 WHERE s.tenant = k.tenant AND s.class_name = k.class_name AND s.id = k.id \
                 LIMIT 1) AS r"
            ),
            // One tenant and class: the key leads with the id (migration 3),
            // so `id = ANY($3)` is the key's index condition, under generic
            // and custom plans, with or without statistics: one index scan
            // that reads only the asked rows (1,000 ids: about half the
            // server time of the probes above, which it replaced).
            load_one_class: format!(
                "SELECT s.id, s.data::text, s.refs::text, \
                 s.schema_version, s.created_at, s.updated_at \
                 FROM {table} AS s \
                 WHERE s.id = ANY($3::uuid[]) AND s.tenant = $1::text AND s.class_name = $2::text"
            ),
            delete: format!(
                "DELETE FROM {table} AS r \
                 USING unnest($1::text[], $2::text[], $3::uuid[]) AS k(tenant, class_name, id) \
                 WHERE r.tenant = k.tenant AND r.class_name = k.class_name AND r.id = k.id"
            ),
            list: format!(
                "SELECT id, created_at, updated_at FROM {table} \
                 WHERE (tenant || E'\\x01/' || class_name) = ($1::text || E'\\x01/' || $2::text) \
                 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            ),
        }
    }
}

/// Checks the record's JSON for what `JSONB` refuses (`\u0000` in a string).
fn check_json(record: &Record) -> Result<&str> {
    let text = record.data_str()?;
    if contains_json_nul(text) {
        return Err(Error::validation(format!(
            "cannot store {} {} in PostgreSQL: its JSON contains \\u0000 (a NUL character \
             in a string), which PostgreSQL JSONB cannot hold; encode such bytes \
             (base64, say) or use another backend",
            record.key.class_name, record.key.id
        )));
    }
    Ok(text)
}

/// Whether JSON text contains the escape `\u0000` (not `\\u0000`, an escaped
/// backslash followed by text).
fn contains_json_nul(json: &str) -> bool {
    // The substring search is vectorised; the exact scan below only runs
    // for text that has the six characters somewhere.
    if !json.contains("\\u0000") {
        return false;
    }
    let json = json.as_bytes();
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            // Skip the escaped character, whatever it is.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The records to write: for a key given more than once, only its last
/// record (one statement cannot update a row twice), in first-seen order.
fn last_per_key(records: &[Record]) -> Vec<&Record> {
    if records.len() < 2 {
        return records.iter().collect();
    }
    // Ids are nearly always distinct (content hashes, random uuids): sorted
    // ids prove it without hashing every tenant and class name.
    let mut ids: Vec<Uuid> = records.iter().map(|r| r.key.id).collect();
    ids.sort_unstable();
    if ids.windows(2).all(|w| w[0] != w[1]) {
        return records.iter().collect();
    }
    let mut slot: HashMap<&Key, usize> = HashMap::with_capacity(records.len());
    let mut out: Vec<&Record> = Vec::with_capacity(records.len());
    for record in records {
        match slot.get(&record.key) {
            Some(&i) => out[i] = record,
            None => {
                slot.insert(&record.key, out.len());
                out.push(record);
            }
        }
    }
    out
}

type KeyColumns<'a> = (Vec<Cow<'a, str>>, Vec<Cow<'a, str>>, Vec<Uuid>);

fn key_columns<'a>(keys: &[&'a Key]) -> KeyColumns<'a> {
    let mut tenants = Vec::with_capacity(keys.len());
    let mut classes = Vec::with_capacity(keys.len());
    let mut ids = Vec::with_capacity(keys.len());
    for key in keys {
        tenants.push(names::encode(&key.tenant));
        classes.push(names::encode(&key.class_name));
        ids.push(key.id);
    }
    (tenants, classes, ids)
}

/// Splits a flush into statements of at most [`CHUNK_ROWS`] rows and about
/// [`CHUNK_BYTES`] of data (at least one row each); `size` gives a row's bytes.
fn chunks<T>(rows: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    batch::chunks(rows, size, CHUNK_BYTES, CHUNK_ROWS)
}

/// The one place tenant and class names are escaped for PostgreSQL `text`,
/// which cannot hold NUL: `\0` → `\u{1}0`, `\u{1}` → `\u{1}1`, everything
/// else as it is. Injective, so distinct names never collide.
mod names {
    use std::borrow::Cow;

    #[cfg(test)]
    use crate::error::{Error, Result};

    const ESCAPE: char = '\u{1}';

    /// The stored form of a name.
    pub(super) fn encode(name: &str) -> Cow<'_, str> {
        if !name.contains(['\0', ESCAPE]) {
            return Cow::Borrowed(name);
        }
        let mut out = String::with_capacity(name.len() + 4);
        for c in name.chars() {
            match c {
                '\0' => {
                    out.push(ESCAPE);
                    out.push('0');
                }
                ESCAPE => {
                    out.push(ESCAPE);
                    out.push('1');
                }
                c => out.push(c),
            }
        }
        Cow::Owned(out)
    }

    /// The name a stored form stands for (loads reuse the caller's keys, so
    /// only the tests read names back).
    #[cfg(test)]
    pub(super) fn decode(stored: &str) -> Result<Cow<'_, str>> {
        if !stored.contains(ESCAPE) {
            return Ok(Cow::Borrowed(stored));
        }
        let mut out = String::with_capacity(stored.len());
        let mut chars = stored.chars();
        while let Some(c) = chars.next() {
            if c != ESCAPE {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('0') => out.push('\0'),
                Some('1') => out.push(ESCAPE),
                _ => {
                    return Err(Error::validation(format!(
                        "stored name {stored:?} is corrupted: a U+0001 escape must be \
                         followed by '0' or '1'"
                    )))
                }
            }
        }
        Ok(Cow::Owned(out))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_and_never_collides() {
            let names = [
                "",
                "plain",
                "\0",
                "\u{1}",
                "\u{1}0",
                "\u{1}1",
                "a\0b",
                "a\u{1}0b",
                "\0\0",
                "\u{1}\0",
                "\0\u{1}",
                "x'; DROP TABLE records; --",
            ];
            let mut stored = std::collections::HashSet::new();
            for name in names {
                let enc = encode(name);
                assert!(!enc.contains('\0'), "{enc:?}");
                assert_eq!(decode(&enc).unwrap(), name);
                assert!(stored.insert(enc.into_owned()), "collision for {name:?}");
            }
            assert!(matches!(encode("plain"), Cow::Borrowed(_)));
            assert!(decode("bad\u{1}").unwrap_err().is_validation());
            assert!(decode("bad\u{1}x").unwrap_err().is_validation());
        }
    }
}

/// The settings a URL gives.
struct Settings {
    connect: PgConnectOptions,
    redacted: String,
    schema: String,
    pool_max: u32,
    acquire_timeout: Duration,
    connect_timeout: Duration,
}

impl Settings {
    fn from_url(url: &ConnectUrl) -> Result<Settings> {
        let redacted = redact_url(url.dangerous_url());
        let bad = |message: String| Error::validation(format!("store URL '{redacted}': {message}"));

        let mut driver_url = url.dangerous_url().clone();
        let mut driver_pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url.dangerous_url().query_pairs() {
            let known_driver = DRIVER_OPTIONS.contains(&&*name)
                || (name.starts_with("options[") && name.ends_with(']'));
            if TOAST_OPTIONS.contains(&&*name) {
                continue;
            }
            if !known_driver {
                return Err(bad(format!(
                    "unknown option '{name}'; toast options: {}; driver options: {}",
                    TOAST_OPTIONS.join(", "),
                    DRIVER_OPTIONS.join(", ")
                )));
            }
            driver_pairs.push((name.into_owned(), value.into_owned()));
        }
        if driver_pairs.is_empty() {
            driver_url.set_query(None);
        } else {
            driver_url
                .query_pairs_mut()
                .clear()
                .extend_pairs(driver_pairs.iter());
        }

        let pool_max = match url.query_param("pool_max") {
            None => DEFAULT_POOL_MAX,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(bad(format!(
                        "pool_max={v} is not a whole number of connections ≥ 1"
                    )))
                }
            },
        };
        let seconds = |name: &str| -> Result<Option<Duration>> {
            let Some(v) = url.query_param(name) else {
                return Ok(None);
            };
            match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 => Duration::try_from_secs_f64(s)
                    .map(Some)
                    .map_err(|_| bad(format!("{name}={v} is out of range"))),
                _ => Err(bad(format!(
                    "{name}={v} is not a positive number of seconds"
                ))),
            }
        };
        let acquire_timeout = seconds("acquire_timeout")?.unwrap_or(DEFAULT_ACQUIRE_TIMEOUT);
        let connect_timeout = seconds("connect_timeout")?.unwrap_or(acquire_timeout);
        let schema = url
            .query_param("schema")
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        if !is_identifier(&schema) {
            return Err(bad(format!(
                "schema={schema:?} is not a valid schema name (letters, digits and '_', \
                 not starting with a digit, at most 63 characters)"
            )));
        }

        let mut connect = PgConnectOptions::from_url(&driver_url)
            .map_err(|e| Error::validation_with(format!("store URL '{redacted}': {e}"), e))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("serde-toast");
        }
        Ok(Settings {
            connect,
            redacted,
            schema,
            pool_max,
            acquire_timeout,
            connect_timeout,
        })
    }

    fn diagnostics(&self) -> Diagnostics {
        let endpoint = match self.connect.get_socket() {
            Some(dir) => format!("{} (Unix socket)", dir.display()),
            None => {
                let host = self.connect.get_host();
                if host.contains(':') {
                    format!("[{host}]:{}", self.connect.get_port())
                } else {
                    format!("{host}:{}", self.connect.get_port())
                }
            }
        };
        Diagnostics {
            url: self.redacted.clone(),
            endpoint,
            database: self
                .connect
                .get_database()
                .unwrap_or(self.connect.get_username())
                .to_owned(),
            username: self.connect.get_username().to_owned(),
            pool_max: self.pool_max,
            acquire_timeout: self.acquire_timeout,
            connect_timeout: self.connect_timeout,
        }
    }
}

/// The URL with its password, in the user part or in `?password=`, replaced by `***`.
fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password, and this one has one.
        let _ = shown.set_password(Some("***"));
    }
    if url.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs.iter());
    }
    shown.to_string()
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,62}$`
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A validated identifier, double-quoted (it cannot contain a quote).
fn quote_ident(name: &str) -> String {
    format!("\"{name}\"")
}

/// The advisory-lock key of a schema's migrations.
fn lock_key(schema: &str) -> i64 {
    let hash = blake3::hash(format!("serde-toast migrations {schema}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_be_bytes(first)
}

/// Brings the schema to [`SCHEMA_VERSION`]; a no-op (one read) when it is there.
async fn migrate(conn: &mut PgConnection, schema: &str, diag: &Diagnostics) -> Result<()> {
    let err = |e| diag.error("migrate", e);
    let qschema = quote_ident(schema);
    let table = format!("{qschema}._toast_migrations");

    let (encoding, exists): (String, Option<String>) =
        sqlx::query_as("SELECT current_setting('server_encoding'), to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
    if encoding != "UTF8" {
        return Err(Error::validation(format!(
            "database '{}' at {} uses encoding {encoding}; toast needs a UTF8 database \
             (CREATE DATABASE … ENCODING 'UTF8')",
            diag.database, diag.url
        )));
    }
    if exists.is_some() {
        let current: i64 =
            sqlx::query_scalar(&format!("SELECT coalesce(max(version), 0) FROM {table}"))
                .fetch_one(&mut *conn)
                .await
                .map_err(err)?;
        check_not_newer(current)?;
        if current == SCHEMA_VERSION {
            return Ok(());
        }
    }

    let mut tx = conn.begin().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(schema))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let has_schema: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
    if !has_schema {
        tx.execute(format!("CREATE SCHEMA IF NOT EXISTS {qschema}").as_str())
            .await
            .map_err(err)?;
    }
    let create_table = format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
         version bigint PRIMARY KEY, \
         name text NOT NULL, \
         checksum text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())"
    );
    tx.execute(create_table.as_str()).await.map_err(err)?;
    let applied: Vec<i64> = sqlx::query_scalar(&format!("SELECT version FROM {table}"))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
    if let Some(&newest) = applied.iter().max() {
        if let Err(e) = check_not_newer(newest) {
            // Dropping the transaction rolls it back; say so explicitly anyway.
            let _ = tx.rollback().await;
            return Err(e);
        }
    }
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        let sql = migration.sql.replace("{schema}", &qschema);
        tx.execute(sql.as_str())
            .await
            .map_err(|e| diag.error(&format!("migration {}", migration.version), e))?;
        sqlx::query(&format!(
            "INSERT INTO {table} (version, name, checksum) VALUES ($1, $2, $3)"
        ))
        .bind(migration.version)
        .bind(migration.name)
        .bind(blake3::hash(migration.sql.as_bytes()).to_hex().to_string())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

fn check_not_newer(version: i64) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::validation(format!(
            "database schema version {version} is newer than this toast release supports \
             ({SCHEMA_VERSION}); upgrade serde-toast"
        )));
    }
    Ok(())
}

impl Diagnostics {
    /// Maps a driver error: unreachable, refused, shut down or exhausted →
    /// [`Error::Connection`] with a hint; bad input → [`Error::Validation`];
    /// anything else → [`Error::Backend`] with the driver's error as source.
    fn error(&self, operation: &str, e: sqlx::Error) -> Error {
        let endpoint = &self.endpoint;
        let running = format!("is PostgreSQL running at {endpoint}?");
        let connection = |message: String, e: sqlx::Error| {
            Error::connection(
                &self.url,
                format!("postgres {operation}: {message}"),
                Some(Box::new(e)),
            )
        };
        match &e {
            sqlx::Error::Io(io) => {
                let cause = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof => format!("connection lost ({io})"),
                    std::io::ErrorKind::TimedOut => format!("timed out ({io})"),
                    _ => format!("cannot reach the server ({io})"),
                };
                connection(format!("{cause} — {running}"), e)
            }
            sqlx::Error::Tls(tls) => connection(
                format!(
                    "TLS failed ({tls}) — check sslmode (disable, prefer, require, verify-ca, \
                     verify-full) and sslrootcert, and that the server at {endpoint} has TLS on"
                ),
                e,
            ),
            sqlx::Error::PoolTimedOut => connection(
                format!(
                    "no connection within {:?} (acquire_timeout) — {running} If it is, all \
                     {} connections (pool_max) are busy: raise pool_max or acquire_timeout",
                    self.acquire_timeout, self.pool_max
                ),
                e,
            ),
            sqlx::Error::PoolClosed => connection(
                "the store was closed (Store::close); connect a new one".to_owned(),
                e,
            ),
            sqlx::Error::WorkerCrashed => {
                connection(format!("the connection worker crashed — {running}"), e)
            }
            sqlx::Error::Configuration(cause) => {
                Error::validation(format!("store URL '{}': {cause}", self.url))
            }
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = db.message().to_owned();
                match code.as_str() {
                    "28P01" | "28000" => connection(
                        format!(
                            "authentication failed for user '{}' ({message}) — check the user \
                             name and password in the URL, and pg_hba.conf on the server",
                            self.username
                        ),
                        e,
                    ),
                    "3D000" => connection(
                        format!(
                            "database '{}' does not exist ({message}) — create it \
                             (CREATE DATABASE) or fix the URL",
                            self.database
                        ),
                        e,
                    ),
                    "53300" => connection(
                        format!(
                            "the server has too many connections ({message}) — lower pool_max \
                             or raise max_connections on the server"
                        ),
                        e,
                    ),
                    c if c.starts_with("08") || c.starts_with("57P") => connection(
                        format!("the server closed the connection ({message}) — {running}"),
                        e,
                    ),
                    "22P05" => Error::validation_with(
                        format!(
                            "postgres {operation}: a value holds a character PostgreSQL cannot \
                             store ({message}); JSONB cannot hold \\u0000"
                        ),
                        e,
                    ),
                    "3F000" | "42P01" => Error::backend(
                        format!(
                            "postgres {operation}: {message} — the toast tables are missing \
                             (was the schema changed by hand?); drop the whole schema and \
                             connect again to re-create it"
                        ),
                        e,
                    ),
                    _ => Error::backend(
                        format!("postgres {operation} failed: {message} (SQLSTATE {code})"),
                        e,
                    ),
                }
            }
            _ => Error::backend(format!("postgres {operation} failed: {e}"), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_escapes_only() {
        assert!(contains_json_nul(r#""a\u0000b""#));
        assert!(contains_json_nul(r#"{"k":"\\\u0000"}"#));
        assert!(!contains_json_nul(r#""a\\u0000b""#));
        assert!(contains_json_nul(r#""\u00001""#));
        assert!(!contains_json_nul(r#""\u0001""#));
        assert!(!contains_json_nul(r#""plain""#));
        assert!(!contains_json_nul(r#""ends\\""#));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("toast"));
        assert!(is_identifier("_x9"));
        assert!(is_identifier(&"a".repeat(63)));
        assert!(!is_identifier(&"a".repeat(64)));
        assert!(!is_identifier(""));
        assert!(!is_identifier("9a"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("a\"b"));
        assert!(!is_identifier("tóast"));
    }

    fn settings(url: &str) -> Result<Settings> {
        Settings::from_url(&ConnectUrl::parse(url)?)
    }

    #[test]
    fn options_are_parsed_and_stripped() {
        let s = settings(
            "postgres://u:pw@h:6543/db?pool_max=3&acquire_timeout=0.5&schema=app_toast&sslmode=disable",
        )
        .unwrap();
        assert_eq!(s.pool_max, 3);
        assert_eq!(s.acquire_timeout, Duration::from_millis(500));
        assert_eq!(s.connect_timeout, Duration::from_millis(500));
        assert_eq!(s.schema, "app_toast");
        assert_eq!(s.connect.get_port(), 6543);
        assert_eq!(s.connect.get_database(), Some("db"));
        assert!(matches!(
            s.connect.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Disable
        ));
        assert_eq!(s.connect.get_application_name(), Some("serde-toast"));
        let d = settings("postgresql://u@h/db").unwrap();
        assert_eq!(d.pool_max, DEFAULT_POOL_MAX);
        assert_eq!(d.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
        assert_eq!(d.schema, DEFAULT_SCHEMA);
        assert_eq!(d.diagnostics().endpoint, "h:5432");
    }

    #[test]
    fn bad_options_are_validation_errors_without_the_password() {
        for url in [
            "postgres://u:hunter2@h/db?pool_max=0",
            "postgres://u:hunter2@h/db?pool_max=many",
            "postgres://u:hunter2@h/db?acquire_timeout=-1",
            "postgres://u:hunter2@h/db?connect_timeout=NaN",
            "postgres://u:hunter2@h/db?schema=x;drop",
            "postgres://u:hunter2@h/db?schema=",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
            "postgres://u:hunter2@h/db?pool_size=3",
            "postgres://u@h/db?password=hunter2&pool_size=3",
        ] {
            let err = settings(url).err().unwrap();
            assert!(err.is_validation(), "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }

    #[test]
    fn redaction_covers_the_query_password() {
        let url = url::Url::parse("postgres://u:a@h/db?password=b&x=1").unwrap();
        let shown = redact_url(&url);
        assert_eq!(shown, "postgres://u:***@h/db?password=***&x=1");
    }

    #[test]
    fn last_record_per_key_wins() {
        let key = Key::new("t", "C", Uuid::nil());
        let other = Key::new("t", "C", Uuid::from_u128(1));
        let records = vec![
            Record::new(key.clone(), "1", vec![]),
            Record::new(other.clone(), "2", vec![]),
            Record::new(key.clone(), "3", vec![]),
        ];
        let rows = last_per_key(&records);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, key);
        assert_eq!(&rows[0].data[..], b"3");
        assert_eq!(&rows[1].data[..], b"2");

        // One id under two tenants or classes: distinct keys, both kept.
        let records = vec![
            Record::new(Key::new("t", "C", Uuid::nil()), "1", vec![]),
            Record::new(Key::new("u", "C", Uuid::nil()), "2", vec![]),
            Record::new(Key::new("t", "D", Uuid::nil()), "3", vec![]),
            Record::new(Key::new("t", "C", Uuid::from_u128(2)), "4", vec![]),
        ];
        let rows = last_per_key(&records);
        assert_eq!(rows.len(), 4);
        let distinct: Vec<Record> = (0..3)
            .map(|i| Record::new(Key::new("t", "C", Uuid::from_u128(i)), "1", vec![]))
            .collect();
        assert_eq!(last_per_key(&distinct).len(), 3);
    }

    #[test]
    fn chunking_is_by_rows_and_bytes() {
        let records: Vec<Record> = (0..(CHUNK_ROWS * 2 + 1))
            .map(|i| Record::new(Key::new("t", "C", Uuid::from_u128(i as u128)), "1", vec![]))
            .collect();
        let rows: Vec<&Record> = records.iter().collect();
        let parts = chunks(&rows, |r| r.data.len());
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [CHUNK_ROWS, CHUNK_ROWS, 1]
        );
        assert_eq!(chunks(&rows[..CHUNK_ROWS], |r| r.data.len()).len(), 1);
        let big = Bytes::from(vec![b'1'; CHUNK_BYTES / 2 + 1]);
        let records: Vec<Record> = (0..3)
            .map(|i| Record::new(Key::new("t", "C", Uuid::from_u128(i)), big.clone(), vec![]))
            .collect();
        let rows: Vec<&Record> = records.iter().collect();
        assert_eq!(chunks(&rows, |r| r.data.len()).len(), 3);
    }

    #[test]
    fn newer_schema_message() {
        let err = check_not_newer(SCHEMA_VERSION + 1).unwrap_err();
        assert!(err.is_validation());
        assert_eq!(
            err.to_string(),
            format!(
                "database schema version {} is newer than this toast release supports ({}); \
                 upgrade serde-toast",
                SCHEMA_VERSION + 1,
                SCHEMA_VERSION
            )
        );
        assert!(check_not_newer(SCHEMA_VERSION).is_ok());
    }
}
