//! Saves and deletes: one statement per flush (several, in one
//! transaction, above [`CHUNK_ROWS`] rows or [`CHUNK_BYTES`] of data).

use std::collections::HashMap;

use uuid::Uuid;

use super::load::key_columns;
use super::names;
use super::PostgresBackend;
use crate::backend::support::batch::{self, distinct};
use crate::error::{Error, Result};
use crate::record::{Key, Record};

/// Rows per statement when a flush is split; a flush at or under this size
/// (and [`CHUNK_BYTES`]) is one statement.
pub(super) const CHUNK_ROWS: usize = 5_000;

/// Bytes of `data` per statement when a flush is split (PostgreSQL refuses a
/// single parameter over 1 GiB).
pub(super) const CHUNK_BYTES: usize = 8 * 1024 * 1024;

impl PostgresBackend {
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

    pub(super) async fn save_records(&self, records: &[Record]) -> Result<()> {
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
        let mut conn = self.connection("save").await?;
        if let [only] = chunks.as_slice() {
            return match self.within(1, self.upsert(&mut *conn, only)).await {
                Some(done) => done,
                None => Err(self.timed_out(conn, "save")),
            };
        }
        // BEGIN, a statement per chunk, COMMIT.
        let transaction = async {
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(|e| self.diag.error("save", e))?;
            for chunk in &chunks {
                self.upsert(&mut *tx, chunk).await?;
            }
            tx.commit().await.map_err(|e| self.diag.error("save", e))
        };
        match self.within(chunks.len() + 2, transaction).await {
            Some(done) => done,
            None => Err(self.timed_out(conn, "save")),
        }
    }

    pub(super) async fn delete_records(&self, keys: &[Key]) -> Result<u64> {
        let keys = distinct(keys);
        if keys.is_empty() {
            return Ok(0);
        }
        let (tenants, classes, ids) = key_columns(&keys);
        let mut conn = self.connection("delete").await?;
        let statement = sqlx::query(&self.sql.delete)
            .bind(tenants)
            .bind(classes)
            .bind(ids)
            .execute(&mut *conn);
        match self.within(1, statement).await {
            Some(done) => Ok(done
                .map_err(|e| self.diag.error("delete", e))?
                .rows_affected()),
            None => Err(self.timed_out(conn, "delete")),
        }
    }
}

/// A record to write with its JSON text, checked by [`check_json`].
struct Checked<'r> {
    record: &'r Record,
    data: &'r str,
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

/// Splits a flush into statements of at most [`CHUNK_ROWS`] rows and about
/// [`CHUNK_BYTES`] of data (at least one row each); `size` gives a row's bytes.
fn chunks<T>(rows: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    batch::chunks(rows, size, CHUNK_BYTES, CHUNK_ROWS)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

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
}
