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
//! | `pool_max` | 4 | connections in the pool (readers run concurrently in WAL mode) |
//! | `busy_timeout` | 5 | seconds a writer waits for the write lock |
//!
//! # Storage
//!
//! One table, `toast_records`, keyed by `(tenant, class_name, id)`, with the
//! JSON bytes, the references inside them, and microsecond timestamps; an
//! index serves listing one tenant's records of one class newest first. It is
//! an ordinary rowid table (schema version 2): the payload goes to the table
//! b-tree and only small key entries to the two indexes, where a `WITHOUT
//! ROWID` table (version 1) kept whole documents inside the key b-tree and
//! moved them around on every page split. The
//! schema comes from versioned migrations shipped in the crate
//! (`migrations/sqlite/`), applied at connect under SQLite's write lock and
//! recorded in `_toast_migrations`. The journal is WAL; every flush is one
//! transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

/// Versioned schema migrations: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "records table and listing index",
        include_str!("../../migrations/sqlite/0001_records.sql"),
    ),
    (
        2,
        "records as a rowid table (payload out of the key b-tree)",
        include_str!("../../migrations/sqlite/0002_rowid_table.sql"),
    ),
];

/// Rows per statement on save (8 parameters each, under SQLite's 32,766).
const SAVE_CHUNK: usize = 2_000;
/// Payload bytes per statement on save: sqlx and SQLite each copy a
/// statement's bound values, so big flushes go in slices of this size.
const SAVE_CHUNK_BYTES: usize = 4 << 20;
/// Rows the connection's worker thread may read ahead of the decoding task.
/// sqlx's default is 50: a 1,000-row load then stops the worker 20 times to
/// wait for the decoder, a thread hand-off each time. More rows ahead cost
/// memory only while a load is running (at most this many rows' copies).
const ROW_BUFFER: usize = 256;
/// Keys per statement on load and delete (3 parameters each).
const KEY_CHUNK: usize = 8_000;

/// Records in an SQLite file, through a small sqlx pool.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    path: String,
}

pub(crate) async fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(SqliteBackend::connect(url).await?))
}

fn timestamp(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::validation(format!("corrupted timestamp {micros} in SQLite record")))
}

impl SqliteBackend {
    /// Opens (creating if needed) the file a `sqlite://PATH` URL names and
    /// applies the migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL without a path or with bad options;
    /// [`Error::Connection`] when the file cannot be opened or created;
    /// [`Error::Validation`] when the file's schema is newer than this release.
    pub async fn connect(url: &ConnectUrl) -> Result<Self> {
        let path = url.opaque_path();
        if path.is_empty() {
            return Err(Error::validation(format!(
                "store URL '{url}' has no path: use sqlite://data.db (relative) or \
                 sqlite:///var/lib/app.db (absolute)"
            )));
        }
        let pool_max = url.query_number::<u32>("pool_max")?.unwrap_or(4).max(1);
        let busy = url.query_number::<u64>("busy_timeout")?.unwrap_or(5);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .row_buffer_size(ROW_BUFFER)
            .busy_timeout(Duration::from_secs(busy));
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_max)
            .acquire_timeout(Duration::from_secs(busy.max(1) + 5))
            .connect_with(options)
            .await
            .map_err(|e| {
                Error::connection(
                    url.redacted(),
                    format!(
                        "cannot open the SQLite database at {path}: {e} — does its directory \
                         exist, and may this process write there?"
                    ),
                    Some(Box::new(e)),
                )
            })?;
        let backend = SqliteBackend {
            pool,
            path: path.to_owned(),
        };
        backend.migrate().await?;
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
        MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
    }

    fn err(&self, what: &str, e: sqlx::Error) -> Error {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Error::connection(
                    format!("sqlite://{}", self.path),
                    format!("cannot {what}: {e} — is the database file still reachable?"),
                    Some(Box::new(e)),
                )
            }
            other => Error::backend(format!("SQLite: cannot {what}: {other}"), other),
        }
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _toast_migrations (
                version INTEGER PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("create the migrations table", e))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("begin the migrations", e))?;
        // A write as the first statement takes SQLite's write lock for the whole
        // transaction: concurrent processes migrate one at a time.
        sqlx::query("UPDATE _toast_migrations SET version = version WHERE 0")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("lock the database for migrations", e))?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _toast_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err("read the schema version", e))?;
        let current = current.unwrap_or(0);
        let latest = Self::latest_schema_version();
        if current > latest {
            return Err(Error::validation(format!(
                "the SQLite database at {} has toast schema version {current}, newer than this \
                 release supports ({latest}): upgrade serde-toast",
                self.path
            )));
        }
        for &(version, description, sql) in MIGRATIONS {
            if version <= current {
                continue;
            }
            // `Executor::execute` on the connection, not `sqlx::raw_sql`, whose
            // future fails the higher-ranked `Send` check inside a boxed future.
            let conn: &mut sqlx::SqliteConnection = &mut tx;
            conn.execute(sql)
                .await
                .map_err(|e| self.err(&format!("apply migration {version}"), e))?;
            sqlx::query(
                "INSERT INTO _toast_migrations (version, description, applied_at) VALUES (?, ?, ?)",
            )
            .bind(version)
            .bind(description)
            .bind(Utc::now().timestamp_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(&format!("record migration {version}"), e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.err("commit the migrations", e))
    }

    /// Decodes a loaded row whose first column names its key: `k.n`, the
    /// key's position in `keys` (by-key join), or the id (one-class query,
    /// `by_id` lists the positions of `keys` in id order). The key is taken
    /// from `keys`, so no key text is read back or allocated again.
    fn decode(row: &SqliteRow, keys: &[Key], by_id: Option<&[usize]>) -> Result<Record> {
        let get_err = |e: sqlx::Error| Error::validation_with("corrupted SQLite record", e);
        let key = match by_id {
            None => {
                let n: i64 = row.try_get(0).map_err(get_err)?;
                usize::try_from(n).ok().and_then(|n| keys.get(n))
            }
            Some(order) => {
                let id: &[u8] = row.try_get(0).map_err(get_err)?;
                let id = Uuid::from_slice(id)
                    .map_err(|e| Error::validation_with("corrupted id in SQLite record", e))?;
                order
                    .binary_search_by_key(&id, |&i| keys[i].id)
                    .ok()
                    .and_then(|p| order.get(p))
                    .and_then(|&i| keys.get(i))
            }
        }
        .ok_or_else(|| Error::backend_msg("SQLite returned a row for a key not asked for"))?;
        let data: &[u8] = row.try_get(1).map_err(get_err)?;
        let refs: Option<&str> = row.try_get(2).map_err(get_err)?;
        let schema_version: i64 = row.try_get(3).map_err(get_err)?;
        let created_at: i64 = row.try_get(4).map_err(get_err)?;
        let updated_at: i64 = row.try_get(5).map_err(get_err)?;
        Ok(Record {
            key: key.clone(),
            data: Bytes::copy_from_slice(data),
            refs: Record::parse_refs(refs)?,
            schema_version: u32::try_from(schema_version).map_err(|e| {
                Error::validation_with("corrupted schema_version in SQLite record", e)
            })?,
            created_at: timestamp(created_at)?,
            updated_at: timestamp(updated_at)?,
        })
    }
}

/// The ids of `keys` grouped by tenant and class.
fn ids_by_class(keys: &[Key]) -> BTreeMap<(&str, &str), Vec<&[u8]>> {
    let mut groups: BTreeMap<(&str, &str), Vec<&[u8]>> = BTreeMap::new();
    for key in keys {
        groups
            .entry((&key.tenant, &key.class_name))
            .or_default()
            .push(key.id.as_bytes().as_slice());
    }
    groups
}

/// `records` in slices of at most [`SAVE_CHUNK`] rows and [`SAVE_CHUNK_BYTES`]
/// of data (a single bigger record gets a slice of its own).
fn save_chunks(records: &[Record]) -> impl Iterator<Item = &[Record]> {
    let mut rest = records;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = 0;
        let mut bytes = 0;
        while let Some(r) = rest.get(n) {
            if n == SAVE_CHUNK || (n > 0 && bytes + r.data.len() > SAVE_CHUNK_BYTES) {
                break;
            }
            bytes += r.data.len();
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// One multi-row upsert of `chunk` (a slice from [`save_chunks`]).
fn upsert(chunk: &[Record]) -> QueryBuilder<'_, Sqlite> {
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "INSERT INTO toast_records \
         (tenant, class_name, id, data, refs, schema_version, created_at, updated_at) ",
    );
    qb.push_values(chunk, |mut row, r| {
        let refs = (!r.refs.is_empty()).then(|| r.refs_json());
        row.push_bind(&*r.key.tenant)
            .push_bind(&*r.key.class_name)
            .push_bind(r.key.id.as_bytes().as_slice())
            .push_bind(r.data.as_ref())
            .push_bind(refs)
            .push_bind(i64::from(r.schema_version))
            .push_bind(r.created_at.timestamp_micros())
            .push_bind(r.updated_at.timestamp_micros());
    });
    qb.push(
        " ON CONFLICT (tenant, class_name, id) DO UPDATE SET \
         data = excluded.data, refs = excluded.refs, \
         schema_version = excluded.schema_version, updated_at = excluded.updated_at",
    );
    qb
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        let mut chunks = save_chunks(records).peekable();
        let Some(first) = chunks.next() else {
            return Ok(());
        };
        if chunks.peek().is_none() {
            // One statement is atomic on its own (autocommit): no BEGIN and
            // COMMIT, which would be two more trips to the connection's thread.
            return upsert(first)
                .build()
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(|e| self.err("save records", e));
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("begin a transaction", e))?;
        for chunk in std::iter::once(first).chain(chunks) {
            upsert(chunk)
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("save records", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.err("commit saved records", e))
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEY_CHUNK) {
            let one_class = chunk
                .iter()
                .all(|k| k.tenant == chunk[0].tenant && k.class_name == chunk[0].class_name);
            let mut order = Vec::new();
            let mut qb: QueryBuilder<'_, Sqlite>;
            if one_class {
                // The usual case (one document's references): a primary-key
                // IN list, no join against a materialized list of keys.
                order = (0..chunk.len()).collect();
                order.sort_unstable_by_key(|&i| chunk[i].id);
                qb = QueryBuilder::new(
                    "SELECT id, data, refs, schema_version, created_at, updated_at \
                     FROM toast_records WHERE tenant = ",
                );
                qb.push_bind(&*chunk[0].tenant);
                qb.push(" AND class_name = ");
                qb.push_bind(&*chunk[0].class_name);
                qb.push(" AND id IN (");
                let mut ids = qb.separated(", ");
                for key in chunk {
                    ids.push_bind(key.id.as_bytes().as_slice());
                }
                qb.push(")");
            } else {
                qb = QueryBuilder::new("WITH k(n, t, c, i) AS (");
                qb.push_values(chunk.iter().enumerate(), |mut row, (n, key)| {
                    row.push(n)
                        .push_bind(&*key.tenant)
                        .push_bind(&*key.class_name)
                        .push_bind(key.id.as_bytes().as_slice());
                });
                qb.push(
                    ") SELECT k.n, r.data, r.refs, r.schema_version, r.created_at, r.updated_at \
                     FROM k JOIN toast_records r \
                     ON r.tenant = k.t AND r.class_name = k.c AND r.id = k.i",
                );
            }
            let by_id = one_class.then_some(order.as_slice());
            // Each row is decoded as it arrives and dropped: the rows of a
            // chunk and their records are never all in memory at once.
            let records = qb
                .build()
                .try_map(|row: SqliteRow| Ok(Self::decode(&row, chunk, by_id)))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("load records", e))?;
            for record in records {
                out.push(record?);
            }
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        // One primary-key IN list per tenant and class: SQLite runs a
        // row-value `(tenant, class_name, id) IN (VALUES …)` as a scan of the
        // whole table.
        let mut deleted = 0;
        for ((tenant, class_name), ids) in ids_by_class(keys) {
            for chunk in ids.chunks(KEY_CHUNK) {
                let mut qb: QueryBuilder<'_, Sqlite> =
                    QueryBuilder::new("DELETE FROM toast_records WHERE tenant = ");
                qb.push_bind(tenant);
                qb.push(" AND class_name = ");
                qb.push_bind(class_name);
                qb.push(" AND id IN (");
                let mut list = qb.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                qb.push(")");
                deleted += qb
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("delete records", e))?
                    .rows_affected();
            }
        }
        Ok(deleted)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let rows = sqlx::query(
            "SELECT id, created_at, updated_at FROM toast_records \
             WHERE tenant = ? AND class_name = ? \
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(&*query.tenant)
        .bind(&*query.class_name)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("list records", e))?;
        rows.iter()
            .map(|row| {
                let id: Vec<u8> = row
                    .try_get("id")
                    .map_err(|e| Error::validation_with("corrupted SQLite record", e))?;
                let created_at: i64 = row
                    .try_get("created_at")
                    .map_err(|e| Error::validation_with("corrupted SQLite record", e))?;
                let updated_at: i64 = row
                    .try_get("updated_at")
                    .map_err(|e| Error::validation_with("corrupted SQLite record", e))?;
                Ok(ListEntry {
                    id: Uuid::from_slice(&id)
                        .map_err(|e| Error::validation_with("corrupted id in SQLite record", e))?,
                    created_at: timestamp(created_at)?,
                    updated_at: timestamp(updated_at)?,
                })
            })
            .collect()
    }

    async fn close(&self) -> Result<()> {
        self.pool.close().await;
        Ok(())
    }
}
