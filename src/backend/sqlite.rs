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
//! transaction, of one statement per 2,000 records or 4 MiB of data.
//!
//! A load selects its keys in chunks, each chunk one statement whose one row
//! packs the records (SQLite's `group_concat` of their headers, references and
//! data); the records are slices of that row's data, not copies.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
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

use crate::backend::{batch, Backend};
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
const KEY_CHUNK: usize = 8_192;
/// Keys in the first packed load statement of a load. A statement's rows are
/// one value in memory three times over while it is read (SQLite's result,
/// sqlx's copy, the buffer the records are cut from), so the size of the next
/// statements follows from the records seen so far: about [`PACKED_BYTES`] of
/// data each, between [`PACKED_MIN`] and [`KEY_CHUNK`] keys.
const PACKED_FIRST: usize = 128;
/// Data bytes a packed load statement aims at (1 KiB records: about 1,900
/// keys, so 1,000 references take two statements; 10 KiB records: about 200).
const PACKED_BYTES: usize = 2 << 20;
/// Loads of fewer keys read rows: packing saves nothing on one or two rows
/// and costs SQLite the formatting of a header.
const PACKED_FROM: usize = 4;
/// Fewest keys in a packed load statement.
const PACKED_MIN: usize = 16;
/// A packed load's three columns, each the concatenation of one part of
/// every row: the headers (six space-terminated fields per row: key, schema
/// version, created and updated microseconds, the byte lengths of the
/// references and of the data), the references' JSON, and the data. SQLite
/// feeds the rows to the three aggregates in one order, so the n-th header
/// describes the n-th slice of the other two. The key is the id in hex (`IN`
/// list) or the key's position (join). Lengths are of the bytes (`CAST … AS
/// BLOB`), so any data passes unchanged; `group_concat` skips the NULL
/// references of leaf records, whose length is then 0.
const PACKED_COLUMNS: &str = "group_concat(printf('%s %d %d %d %d %d ', {key_text}, \
    {r}schema_version, {r}created_at, {r}updated_at, length(CAST({r}refs AS BLOB)), \
    length(CAST({r}data AS BLOB))), ''), \
    CAST(group_concat({r}refs, '') AS BLOB), CAST(group_concat({r}data, '') AS BLOB)";

/// Records in an SQLite file, through a small sqlx pool.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    path: String,
}

pub(crate) async fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(SqliteBackend::connect(url).await?))
}

/// A row load's columns: the key (see [`PACKED_COLUMNS`]), then a record's.
const ROW_COLUMNS: &str =
    "{key}, {r}data, {r}refs, {r}schema_version, {r}created_at, {r}updated_at";

/// What a load selects for its keys.
#[derive(Clone, Copy)]
enum Select {
    /// One row packing the chunk ([`PACKED_COLUMNS`]).
    Packed,
    /// A row per record ([`ROW_COLUMNS`]).
    Rows,
}

impl Select {
    /// The SQL around the keys: what precedes the `IN` list's first bound
    /// tenant, or what follows the join form's list of keys. Made once.
    fn sql(self, join: bool) -> &'static str {
        static SQL: LazyLock<[String; 4]> = LazyLock::new(|| {
            let in_list = |columns: &str| {
                let columns = columns
                    .replace("{key_text}", "hex(id)")
                    .replace("{key}", "id")
                    .replace("{r}", "");
                format!("SELECT {columns} FROM toast_records WHERE tenant = ")
            };
            let join = |columns: &str| {
                let columns = columns
                    .replace("{key_text}", "k.n")
                    .replace("{key}", "k.n")
                    .replace("{r}", "r.");
                format!(
                    ") SELECT {columns} FROM k JOIN toast_records r \
                     ON r.tenant = k.t AND r.class_name = k.c AND r.id = k.i"
                )
            };
            [
                in_list(PACKED_COLUMNS),
                join(PACKED_COLUMNS),
                in_list(ROW_COLUMNS),
                join(ROW_COLUMNS),
            ]
        });
        &SQL[self as usize * 2 + usize::from(join)]
    }
}

/// How a loaded row names its key: the key's position in the load (join
/// form), or its id (`IN`-list form).
enum RowKey {
    Position(i64),
    Id(Uuid),
}

/// The key of `keys` a loaded row names; `by_id` lists the positions of
/// `keys` in id order (`IN`-list form).
fn row_key<'k>(keys: &'k [Key], by_id: Option<&[usize]>, named: RowKey) -> Result<&'k Key> {
    match (named, by_id) {
        (RowKey::Position(n), _) => usize::try_from(n).ok().and_then(|n| keys.get(n)),
        (RowKey::Id(id), Some(order)) => order
            .binary_search_by_key(&id, |&i| keys[i].id)
            .ok()
            .and_then(|p| order.get(p))
            .and_then(|&i| keys.get(i)),
        (RowKey::Id(_), None) => None,
    }
    .ok_or_else(|| Error::backend_msg("SQLite returned a row for a key not asked for"))
}

/// The columns of a packed load (see [`PACKED_COLUMNS`]) and how far they
/// have been read: (headers, references, data).
struct Packed<'a> {
    headers: &'a [u8],
    refs: &'a [u8],
    data: Bytes,
    at: (usize, usize, usize),
}

impl Packed<'_> {
    /// The next record, its data a slice of the data column (no copy).
    fn next(&mut self, keys: &[Key], by_id: Option<&[usize]>) -> Result<Record> {
        let corrupted = || Error::validation("corrupted SQLite record (packed load)");
        let headers = self.headers;
        let mut at = self.at.0;
        let mut field = || -> Result<&[u8]> {
            let rest = headers.get(at..).ok_or_else(corrupted)?;
            let len = memchr::memchr(b' ', rest).ok_or_else(corrupted)?;
            at += len + 1;
            Ok(&rest[..len])
        };
        let key_text = field()?;
        let named = match by_id {
            None => RowKey::Position(parse_int(key_text).ok_or_else(corrupted)?),
            Some(_) => RowKey::Id(
                Uuid::try_parse_ascii(key_text)
                    .map_err(|e| Error::validation_with("corrupted id in SQLite record", e))?,
            ),
        };
        let key = row_key(keys, by_id, named)?;
        let mut int = || field().and_then(|t| parse_int(t).ok_or_else(corrupted));
        let schema_version = int()?;
        let created_at = int()?;
        let updated_at = int()?;
        let refs_len = usize::try_from(int()?).map_err(|_| corrupted())?;
        let data_len = usize::try_from(int()?).map_err(|_| corrupted())?;
        let (_, r, d) = self.at;
        let refs_end = r.checked_add(refs_len).ok_or_else(corrupted)?;
        let data_end = d.checked_add(data_len).ok_or_else(corrupted)?;
        let refs = self.refs.get(r..refs_end).ok_or_else(corrupted)?;
        if data_end > self.data.len() {
            return Err(corrupted());
        }
        let refs = std::str::from_utf8(refs)
            .map_err(|e| Error::validation_with("corrupted reference list in SQLite record", e))?;
        let record = stored_record(
            key,
            self.data.slice(d..data_end),
            Some(refs),
            [schema_version, created_at, updated_at],
        )?;
        self.at = (at, refs_end, data_end);
        Ok(record)
    }
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << n.max(1).ilog2()
}

/// The record of a loaded row (packed or not), from its stored schema
/// version and created and updated microseconds.
fn stored_record(
    key: &Key,
    data: Bytes,
    refs: Option<&str>,
    [schema_version, created_at, updated_at]: [i64; 3],
) -> Result<Record> {
    Ok(Record {
        key: key.clone(),
        data,
        refs: Record::parse_refs(refs)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|e| Error::validation_with("corrupted schema_version in SQLite record", e))?,
        created_at: timestamp(created_at)?,
        updated_at: timestamp(updated_at)?,
    })
}

/// A decimal integer of a packed load's header.
fn parse_int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// SQLite's "string or blob too big": the packed value of a chunk went over
/// its length limit.
fn is_too_big(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("18"))
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

    /// The statement selecting `chunk`'s rows (`select`) from a primary-key
    /// `IN` list when the keys share a tenant and a class (the usual case: one
    /// document's references), or joined against the list of keys. With the
    /// `IN` list, rows are named by id and the positions of `chunk` in id
    /// order come along.
    ///
    /// The list is padded to a power of two (a repeated id, or keys that
    /// match no row), so that loads of varying sizes reuse a few prepared
    /// statements: preparing one with a thousand parameters takes about as
    /// long as running it.
    fn select_keys(
        chunk: &[Key],
        select: Select,
    ) -> (QueryBuilder<'_, Sqlite>, Option<Vec<usize>>) {
        let padded = chunk.len().next_power_of_two();
        let one_class = chunk.iter().all(|k| k.same_class(&chunk[0]));
        if one_class {
            let mut order: Vec<usize> = (0..chunk.len()).collect();
            order.sort_unstable_by_key(|&i| chunk[i].id);
            let mut qb = QueryBuilder::new(select.sql(false));
            qb.push_bind(&*chunk[0].tenant);
            qb.push(" AND class_name = ");
            qb.push_bind(&*chunk[0].class_name);
            qb.push(" AND id IN (");
            let mut ids = qb.separated(", ");
            for key in chunk {
                ids.push_bind(key.id.as_bytes().as_slice());
            }
            for _ in chunk.len()..padded {
                ids.push_bind(chunk[0].id.as_bytes().as_slice());
            }
            qb.push(")");
            (qb, Some(order))
        } else {
            let mut qb = QueryBuilder::new("WITH k(n, t, c, i) AS (");
            let keys = chunk.iter().map(Some).chain(std::iter::repeat(None));
            qb.push_values(
                keys.take(padded.max(chunk.len())).enumerate(),
                |mut row, (n, key)| {
                    // Padding: NULL matches no row.
                    row.push(n)
                        .push_bind(key.map(|k| &*k.tenant))
                        .push_bind(key.map(|k| &*k.class_name))
                        .push_bind(key.map(|k| k.id.as_bytes().as_slice()));
                },
            );
            qb.push(select.sql(true));
            (qb, None)
        }
    }

    /// Loads `chunk` as one value: SQLite concatenates the rows, each behind
    /// a text header, and they are cut out of it here without a copy.
    ///
    /// Selected as rows, every record costs sqlx a row message from its worker
    /// thread and a copy of each of its six values, more than SQLite takes to
    /// find it (BENCHMARKS.md); as one value, the rows of a chunk cost one
    /// message and one copy.
    async fn load_packed(&self, chunk: &[Key], out: &mut Vec<Record>) -> sqlx::Result<()> {
        let (mut qb, by_id) = Self::select_keys(chunk, Select::Packed);
        let row = qb.build().fetch_one(&self.pool).await?;
        let headers: Option<&[u8]> = row.try_get(0)?;
        let refs: Option<&[u8]> = row.try_get(1)?;
        let data: Option<Vec<u8>> = row.try_get(2)?;
        let (Some(headers), Some(data)) = (headers, data) else {
            return Ok(());
        };
        let mut packed = Packed {
            headers,
            refs: refs.unwrap_or_default(),
            data: Bytes::from(data),
            at: (0, 0, 0),
        };
        while packed.at.0 < packed.headers.len() {
            let record = packed
                .next(chunk, by_id.as_deref())
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            out.push(record);
        }
        Ok(())
    }

    /// Loads `chunk` row by row (for chunks too big to pack into one value).
    async fn load_rows(&self, chunk: &[Key], out: &mut Vec<Record>) -> Result<()> {
        let (mut qb, by_id) = Self::select_keys(chunk, Select::Rows);
        let by_id = by_id.as_deref();
        // Each row is decoded as it arrives and dropped: the rows of a chunk
        // and their records are never all in memory at once.
        let records = qb
            .build()
            .try_map(|row: SqliteRow| Ok(Self::decode(&row, chunk, by_id)))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("load records", e))?;
        for record in records {
            out.push(record?);
        }
        Ok(())
    }

    /// Decodes a loaded row whose first column names its key: `k.n`, the
    /// key's position in `keys` (by-key join), or the id (one-class query,
    /// `by_id` lists the positions of `keys` in id order). The key is taken
    /// from `keys`, so no key text is read back or allocated again.
    fn decode(row: &SqliteRow, keys: &[Key], by_id: Option<&[usize]>) -> Result<Record> {
        let get_err = |e: sqlx::Error| Error::validation_with("corrupted SQLite record", e);
        let named = match by_id {
            None => RowKey::Position(row.try_get(0).map_err(get_err)?),
            Some(_) => {
                let id: &[u8] = row.try_get(0).map_err(get_err)?;
                RowKey::Id(
                    Uuid::from_slice(id)
                        .map_err(|e| Error::validation_with("corrupted id in SQLite record", e))?,
                )
            }
        };
        let key = row_key(keys, by_id, named)?;
        let data: &[u8] = row.try_get(1).map_err(get_err)?;
        let refs: Option<&str> = row.try_get(2).map_err(get_err)?;
        let schema_version: i64 = row.try_get(3).map_err(get_err)?;
        let created_at: i64 = row.try_get(4).map_err(get_err)?;
        let updated_at: i64 = row.try_get(5).map_err(get_err)?;
        stored_record(
            key,
            Bytes::copy_from_slice(data),
            refs,
            [schema_version, created_at, updated_at],
        )
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
fn save_chunks<'a>(records: &'a [&'a Record]) -> impl Iterator<Item = &'a [&'a Record]> {
    batch::chunks(records, |r| r.data.len(), SAVE_CHUNK_BYTES, SAVE_CHUNK).into_iter()
}

/// One multi-row upsert of `chunk` (a slice from [`save_chunks`]).
fn upsert<'a>(chunk: &'a [&'a Record]) -> QueryBuilder<'a, Sqlite> {
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
        // In id order, the primary key's order within a tenant and class:
        // the b-tree insertions then walk its pages in order, not at random
        // (a flush hands records over in the order they were serialized,
        // and content ids are in no order); write_1k 4-6 % faster. Stable,
        // so of one key given twice the later record is still written last
        // and wins.
        let mut sorted: Vec<&Record> = records.iter().collect();
        sorted.sort_by_key(|r| r.key.id);
        let mut chunks = save_chunks(&sorted).peekable();
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
        let mut rest = keys;
        let mut size = PACKED_FIRST;
        let (mut rows, mut bytes) = (0usize, 0usize);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            let before = out.len();
            if chunk.len() < PACKED_FROM {
                self.load_rows(chunk, &mut out).await?;
            } else {
                match self.load_packed(chunk, &mut out).await {
                    Ok(()) => {}
                    // Over SQLite's length limit as one value: row by row.
                    Err(e) if is_too_big(&e) => self.load_rows(chunk, &mut out).await?,
                    Err(e) => return Err(self.err("load records", e)),
                }
            }
            rows += out.len() - before;
            bytes += out[before..].iter().map(|r| r.data.len()).sum::<usize>();
            if let Some(per_record) = bytes.checked_div(rows) {
                // A power of two, as the padded statements are.
                size = prev_power_of_two(
                    (PACKED_BYTES / per_record.max(1)).clamp(PACKED_MIN, KEY_CHUNK),
                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    async fn backend(dir: &tempfile::TempDir) -> SqliteBackend {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        SqliteBackend::connect(&ConnectUrl::parse(&url).unwrap())
            .await
            .unwrap()
    }

    fn sorted(mut records: Vec<Record>) -> Vec<Record> {
        records.sort_by(|a, b| a.key.cmp(&b.key));
        records
    }

    /// Packed loads return what row-by-row loads return, field for field:
    /// data with NUL and non-UTF-8 bytes, empty data, references, timestamps,
    /// schema versions, missing keys, mixed tenants and classes.
    #[tokio::test]
    async fn packed_loads_return_exactly_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = backend(&dir).await;
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut records = Vec::new();
        for (n, data) in [
            b"{\"x\":1}".to_vec(),
            vec![0, 1, 2, 0, 255, b' ', b'7'],
            Vec::new(),
            b"1 2 3 4 5 6 ".to_vec(),
        ]
        .into_iter()
        .enumerate()
        {
            let refs = vec![Reference::new("Child", Uuid::new_v4()); n];
            let mut r = Record::new(Key::new(Arc::clone(&a), "Item", Uuid::new_v4()), data, refs);
            r.schema_version = u32::try_from(n).unwrap() + 1;
            records.push(r);
        }
        records.push(Record::new(
            Key::new(Arc::clone(&b), "Item", records[0].key.id),
            "[]",
            vec![],
        ));
        records.push(Record::new(
            Key::new(Arc::clone(&a), "Other", Uuid::new_v4()),
            "2",
            vec![],
        ));
        db.save(&records).await.unwrap();

        let missing = Key::new(Arc::clone(&a), "Item", Uuid::new_v4());
        let one_class: Vec<Key> = records[..4]
            .iter()
            .map(|r| r.key.clone())
            .chain([missing.clone()])
            .collect();
        let mixed: Vec<Key> = records
            .iter()
            .map(|r| r.key.clone())
            .chain([missing])
            .collect();
        for keys in [&one_class, &mixed] {
            let (mut packed, mut rows) = (Vec::new(), Vec::new());
            db.load_packed(keys, &mut packed).await.unwrap();
            db.load_rows(keys, &mut rows).await.unwrap();
            let (packed, rows) = (sorted(packed), sorted(rows));
            assert_eq!(packed.len(), keys.len() - 1);
            assert_eq!(packed.len(), rows.len());
            for (p, r) in packed.iter().zip(&rows) {
                assert_eq!(p.key, r.key);
                assert_eq!(p.data, r.data);
                assert_eq!(p.refs, r.refs);
                assert_eq!(p.schema_version, r.schema_version);
                assert_eq!(p.created_at, r.created_at);
                assert_eq!(p.updated_at, r.updated_at);
            }
            let saved = sorted(records.clone());
            for p in &packed {
                let s = saved.iter().find(|s| s.key == p.key).unwrap();
                assert_eq!((&p.data, &p.refs), (&s.data, &s.refs));
            }
        }
        // Nothing found: no records, no error.
        let mut none = Vec::new();
        db.load_packed(&[Key::new(a, "Item", Uuid::new_v4())], &mut none)
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    /// A value over SQLite's length limit is recognized, so that the load
    /// falls back to reading rows.
    #[tokio::test]
    async fn a_value_over_the_length_limit_is_recognized() {
        let dir = tempfile::tempdir().unwrap();
        let db = backend(&dir).await;
        let Err(e) = sqlx::query("SELECT zeroblob(2000000000)")
            .fetch_one(&db.pool)
            .await
        else {
            panic!("a 2 GB blob was made");
        };
        assert!(is_too_big(&e), "{e:?}");
        let Err(other) = sqlx::query("SELECT * FROM no_such_table")
            .fetch_one(&db.pool)
            .await
        else {
            panic!("selected from a missing table");
        };
        assert!(!is_too_big(&other));
    }

    #[test]
    fn padded_sizes_are_powers_of_two() {
        assert_eq!(prev_power_of_two(1), 1);
        assert_eq!(prev_power_of_two(1_900), 1_024);
        assert_eq!(prev_power_of_two(2_048), 2_048);
        assert_eq!(prev_power_of_two(0), 1);
    }
}
