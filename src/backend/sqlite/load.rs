//! Loads: chunks of keys, each one statement, packed into one row when
//! there are enough of them.
//!
//! A packed statement's one row holds three columns, each the concatenation
//! of one part of every row ([`PACKED_COLUMNS`]); the records are cut out of
//! it, their data slices of the data column rather than copies. A chunk too
//! big to pack into one value (SQLite's length limit) is read row by row.

use std::sync::LazyLock;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::SqliteBackend;
use crate::backend::support::{corrupted, corrupted_with};
use crate::error::{Error, Result};
use crate::record::{Key, Record};

/// Keys per statement on load and delete (3 parameters each).
pub(super) const KEY_CHUNK: usize = 8_192;
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
/// references of leaf records, whose length is then 0. A schema version or
/// timestamp that is not an integer (a corrupted row) is written `-`, which
/// no integer parses as, rather than the `0` that `%d` would make of it: the
/// record is then corrupted here as it is when read as a row.
const PACKED_COLUMNS: &str = "group_concat(printf('%s %s %s %s %d %d ', {key_text}, \
    CASE typeof({r}schema_version) WHEN 'integer' THEN {r}schema_version ELSE '-' END, \
    CASE typeof({r}created_at) WHEN 'integer' THEN {r}created_at ELSE '-' END, \
    CASE typeof({r}updated_at) WHEN 'integer' THEN {r}updated_at ELSE '-' END, \
    length(CAST({r}refs AS BLOB)), length(CAST({r}data AS BLOB))), ''), \
    CAST(group_concat({r}refs, '') AS BLOB), CAST(group_concat({r}data, '') AS BLOB)";

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
    .ok_or_else(|| Error::backend("SQLite returned a row for a key not asked for"))
}

/// The class of an `IN`-list load (one class), for a row whose id is unreadable.
fn class_of(keys: &[Key]) -> &str {
    keys.first().map_or("", |k| &k.class_name)
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
        let malformed = || Error::backend("SQLite returned a malformed packed load");
        let headers = self.headers;
        let mut at = self.at.0;
        let mut field = || -> Option<&[u8]> {
            let rest = headers.get(at..)?;
            let len = memchr::memchr(b' ', rest)?;
            at += len + 1;
            Some(&rest[..len])
        };
        let key_text = field().ok_or_else(malformed)?;
        let named = match by_id {
            None => RowKey::Position(parse_int(key_text).ok_or_else(malformed)?),
            Some(_) => RowKey::Id(
                Uuid::try_parse_ascii(key_text)
                    .map_err(|e| corrupted_with(class_of(keys), None, "its id is not a UUID", e))?,
            ),
        };
        let key = row_key(keys, by_id, named)?;
        let bad = |what: &str| corrupted(&key.class_name, Some(key.id), format!("bad {what}"));
        let mut int = |what: &str| field().and_then(parse_int).ok_or_else(|| bad(what));
        let schema_version = int("schema_version")?;
        let created_at = int("created_at")?;
        let updated_at = int("updated_at")?;
        let refs_len = usize::try_from(int("refs")?).map_err(|_| bad("refs"))?;
        let data_len = usize::try_from(int("data")?).map_err(|_| bad("data"))?;
        let (_, r, d) = self.at;
        let refs_end = r.checked_add(refs_len).ok_or_else(malformed)?;
        let data_end = d.checked_add(data_len).ok_or_else(malformed)?;
        let refs = self.refs.get(r..refs_end).ok_or_else(malformed)?;
        if data_end > self.data.len() {
            return Err(malformed());
        }
        let refs = std::str::from_utf8(refs).map_err(|e| {
            corrupted_with(
                &key.class_name,
                Some(key.id),
                "its reference list is not UTF-8",
                e,
            )
        })?;
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
    let corrupt = |what: String| corrupted(&key.class_name, Some(key.id), what);
    Ok(Record {
        key: key.clone(),
        data,
        refs: Record::parse_refs(refs).map_err(|e| {
            corrupted_with(
                &key.class_name,
                Some(key.id),
                "its reference list is not a JSON list of {\"class_name\",\"id\"}",
                e,
            )
        })?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema_version {schema_version} is out of range")))?,
        created_at: timestamp(key, "created_at", created_at)?,
        updated_at: timestamp(key, "updated_at", updated_at)?,
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

/// A stored time in microseconds since 1970.
pub(super) fn timestamp(key: &Key, what: &str, micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        corrupted(
            &key.class_name,
            Some(key.id),
            format!("{what} {micros} is not a time toast can read"),
        )
    })
}

impl SqliteBackend {
    /// Loads `keys` in chunks: the first of [`PACKED_FIRST`] keys, the next
    /// sized from the records seen so far.
    pub(super) async fn load_chunks(&self, keys: &[Key]) -> Result<Vec<Record>> {
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
                    Err(e) => return Err(self.load_error(e)),
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

    /// A packed load's failure: a record that cannot be read back comes
    /// back as the corrupted-record error it is, as from a row load; a
    /// driver error is mapped as any other.
    fn load_error(&self, e: sqlx::Error) -> Error {
        match e {
            sqlx::Error::Decode(source) => match source.downcast::<Error>() {
                Ok(error) => *error,
                Err(source) => self.err("load records", sqlx::Error::Decode(source)),
            },
            e => self.err("load records", e),
        }
    }

    /// The statement selecting `chunk`'s rows (`select`) from a primary-key
    /// `IN` list when the keys share a tenant and a class (the usual case: one
    /// document's references), or joined against the list of keys. With the
    /// `IN` list, rows are named by id and the positions of `chunk` in id
    /// order come along.
    ///
    /// The list is padded to a power of two (a repeated id, or keys that
    /// match no row), so that loads of varying sizes reuse a few prepared
    /// statements: preparing one with a thousand parameters costs about as
    /// much as running it.
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
    /// find it; as one value, the rows of a chunk cost one message and one copy.
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
        let named = match by_id {
            None => RowKey::Position(
                row.try_get(0)
                    .map_err(|e| Error::backend_with("SQLite returned a malformed row", e))?,
            ),
            Some(_) => {
                let unreadable = |e: Box<dyn std::error::Error + Send + Sync>| {
                    corrupted_with(class_of(keys), None, "its id is not a UUID", e)
                };
                let id: &[u8] = row.try_get(0).map_err(|e| unreadable(e.into()))?;
                RowKey::Id(Uuid::from_slice(id).map_err(|e| unreadable(e.into()))?)
            }
        };
        let key = row_key(keys, by_id, named)?;
        let bad = |what: &str, e: sqlx::Error| {
            corrupted_with(&key.class_name, Some(key.id), format!("bad {what}"), e)
        };
        let data: &[u8] = row.try_get(1).map_err(|e| bad("data", e))?;
        let refs: Option<&str> = row.try_get(2).map_err(|e| bad("refs", e))?;
        let schema_version: i64 = row.try_get(3).map_err(|e| bad("schema_version", e))?;
        let created_at: i64 = row.try_get(4).map_err(|e| bad("created_at", e))?;
        let updated_at: i64 = row.try_get(5).map_err(|e| bad("updated_at", e))?;
        stored_record(
            key,
            Bytes::copy_from_slice(data),
            refs,
            [schema_version, created_at, updated_at],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::support::Reference;
    use crate::backend::Backend;
    use crate::url::ConnectUrl;

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
