//! Saves and deletes: multi-row statements, one transaction per flush.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite};

use super::load::KEY_CHUNK;
use super::SqliteBackend;
use crate::backend::support::batch;
use crate::error::Result;
use crate::record::{Key, Record};

/// Rows per statement on save (8 parameters each, under SQLite's 32,766).
const SAVE_CHUNK: usize = 2_000;
/// Payload bytes per statement on save: sqlx and SQLite each copy a
/// statement's bound values, so big flushes go in slices of this size.
const SAVE_CHUNK_BYTES: usize = 4 << 20;

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

impl SqliteBackend {
    pub(super) async fn save_records(&self, records: &[Record]) -> Result<()> {
        // In id order, the primary key's order within a tenant and class:
        // the b-tree insertions then walk its pages in order, not at random
        // (a flush hands records over in the order they were serialized,
        // and content ids are in no order). Stable, so of one key given
        // twice the later record is still written last and wins.
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

    pub(super) async fn delete_records(&self, keys: &[Key]) -> Result<u64> {
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
}
