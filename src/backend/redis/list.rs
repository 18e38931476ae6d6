//! Listing: `SCAN … MATCH` the class's keys, read their headers, page.

use std::collections::BTreeSet;

use redis::Value;
use uuid::Uuid;

use super::codec::{corrupted_at, parse_header, HEADER_LEN};
use super::errors::unexpected;
use super::keys::{glob_escape, key_head};
use super::RedisBackend;
use crate::backend::support::Page;
use crate::error::{Error, Result};
use crate::record::{ListEntry, ListQuery};

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 1000;

impl RedisBackend {
    pub(super) async fn list_page(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let head = key_head(&self.shared.prefix, &query.tenant, &query.class_name);
        let pattern = format!("{}*", glob_escape(&head));
        // SCAN until the cursor comes back to 0; duplicates are possible.
        let mut found: BTreeSet<(Uuid, String)> = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let pattern = &pattern;
            let (next, keys): (u64, Vec<String>) = self
                .run("list (SCAN)", true, |mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            for key in keys {
                // Only keys of exactly this tenant and class with a UUID tail.
                let id = key
                    .strip_prefix(&head)
                    .filter(|tail| tail.len() == 36)
                    .and_then(|tail| Uuid::parse_str(tail).ok());
                if let Some(id) = id {
                    found.insert((id, key));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<(Uuid, String)> = found.into_iter().collect();
        // Only the fixed header of each value, never its data.
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (_, key) in &found {
            pipe.cmd("GETRANGE").arg(key).arg(0).arg(HEADER_LEN - 1);
        }
        let pipe = &pipe;
        let heads: Vec<Value> = self
            .run("list", true, |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        if heads.len() != found.len() {
            return Err(Error::backend(format!(
                "Redis answered {} replies to a pipeline of {} GETRANGE commands",
                heads.len(),
                found.len()
            )));
        }
        let mut entries = Vec::with_capacity(found.len());
        for ((id, key), head) in found.into_iter().zip(heads) {
            let bytes = match head {
                // Expired or deleted since the SCAN.
                Value::BulkString(b) if b.is_empty() => continue,
                Value::BulkString(b) => b,
                // Not a string: not a toast record, and load does not find it either.
                Value::ServerError(e) if e.code() == "WRONGTYPE" => continue,
                Value::ServerError(e) => return Err(self.shared.map_err("list", e.into())),
                other => return Err(unexpected("GETRANGE", &other)),
            };
            let header = parse_header(&bytes)
                .map_err(|what| corrupted_at(&query.class_name, id, &key, &what))?;
            entries.push(ListEntry {
                id,
                created_at: header.created_at,
                updated_at: header.updated_at,
            });
        }
        Ok(Page::of(query).of_entries(entries))
    }
}
