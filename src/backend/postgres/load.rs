//! Loads: one statement per load, by id within one tenant's class, or
//! joined against the keys for a mixed batch.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Row, ValueRef};
use uuid::Uuid;

use super::names;
use super::PostgresBackend;
use crate::backend::support::batch::distinct;
use crate::backend::support::{corrupted, corrupted_with};
use crate::error::{Error, Result};
use crate::record::{Key, Record};

impl PostgresBackend {
    pub(super) async fn load_records(&self, keys: &[Key]) -> Result<Vec<Record>> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        // Each row is decoded as it arrives and dropped, so the rows and
        // their records are never all in memory at once. The key of a row
        // is the caller's own `Key` (found by its id or position): no
        // tenant or class text is read back, unescaped or allocated again.
        let mut conn = self.connection("load").await?;
        if keys.iter().all(|k| k.same_class(first)) {
            // The usual case (one document's references): tenant and class
            // sent once with the ids, sorted and without repeats; a row's
            // key is found by its id.
            let mut asked: Vec<&Key> = keys.iter().collect();
            asked.sort_unstable_by_key(|k| k.id);
            asked.dedup_by_key(|k| k.id);
            let ids: Vec<Uuid> = asked.iter().map(|k| k.id).collect();
            let statement = sqlx::query(&self.sql.load_one_class)
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
                .fetch_all(&mut *conn);
            return match self.within(1, statement).await {
                Some(records) => records.map_err(|e| self.load_error(e)),
                None => Err(self.timed_out(conn, "load")),
            };
        }
        // Mixed tenants or classes: every key's three parts; a row's `k.n`
        // names its key's position in `asked`.
        let asked = distinct(keys);
        let (tenants, classes, ids) = key_columns(&asked);
        let statement = sqlx::query(&self.sql.load)
            .bind(tenants)
            .bind(classes)
            .bind(ids)
            .try_map(|row: PgRow| {
                let key = position(&row)?.and_then(|n| asked.get(n).copied());
                decode_row(&row, key).map_err(into_sqlx)
            })
            .fetch_all(&mut *conn);
        match self.within(1, statement).await {
            Some(records) => records.map_err(|e| self.load_error(e)),
            None => Err(self.timed_out(conn, "load")),
        }
    }

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
        key.ok_or_else(|| Error::backend("PostgreSQL returned a row for a key not asked for"))?;
    let bad = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
        corrupted_with(&key.class_name, Some(key.id), format!("bad {what}"), e)
    };
    let data = row
        .try_get_raw(1)
        .map_err(|e| bad("data", e.into()))?
        .as_bytes()
        .map_err(|e| bad("data", e))?;
    let refs: Option<&str> = row.try_get(2).map_err(|e| bad("refs", e.into()))?;
    let schema_version: i64 = row
        .try_get(3)
        .map_err(|e| bad("schema_version", e.into()))?;
    let timestamp = |index: usize, what: &str| {
        timestamp(row, index)
            .map_err(|why| corrupted(&key.class_name, Some(key.id), format!("bad {what} ({why})")))
    };
    let created_at = timestamp(4, "created_at")?;
    let updated_at = timestamp(5, "updated_at")?;
    let schema_version = u32::try_from(schema_version).map_err(|_| {
        corrupted(
            &key.class_name,
            Some(key.id),
            format!("schema_version {schema_version} is out of range"),
        )
    })?;
    Ok(Record {
        key: key.clone(),
        data: Bytes::copy_from_slice(data),
        refs: Record::parse_refs(refs).map_err(|e| {
            corrupted_with(
                &key.class_name,
                Some(key.id),
                "its reference list is not a JSON list of {\"class_name\",\"id\"}",
                e,
            )
        })?,
        schema_version,
        created_at,
        updated_at,
    })
}

/// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in microseconds since 1970.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` column, converted here from what PostgreSQL sends
/// (microseconds since its epoch, in the binary format): `infinity`,
/// `-infinity` and instants beyond the years chrono holds are an error
/// saying so — the driver's own decoding panics on them.
pub(super) fn timestamp(row: &PgRow, index: usize) -> std::result::Result<DateTime<Utc>, String> {
    let value = row.try_get_raw(index).map_err(|e| e.to_string())?;
    if value.is_null() {
        return Err("NULL".to_owned());
    }
    if value.format() == PgValueFormat::Text {
        // Parsed by the driver, which answers an error for what it cannot hold.
        return row.try_get(index).map_err(|e| e.to_string());
    }
    let bytes: [u8; 8] = value
        .as_bytes()
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "not 8 bytes".to_owned())?;
    match i64::from_be_bytes(bytes) {
        i64::MAX => Err("infinity".to_owned()),
        i64::MIN => Err("-infinity".to_owned()),
        micros => micros
            .checked_add(POSTGRES_EPOCH_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(|| "outside the years toast can read".to_owned()),
    }
}

type KeyColumns<'a> = (Vec<Cow<'a, str>>, Vec<Cow<'a, str>>, Vec<Uuid>);

pub(super) fn key_columns<'a>(keys: &[&'a Key]) -> KeyColumns<'a> {
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
