//! Listing one tenant's class, newest first, paged in SQL.

use sqlx::Row;
use uuid::Uuid;

use super::load::timestamp;
use super::SqliteBackend;
use crate::backend::support::{corrupted_with, Page};
use crate::error::Result;
use crate::record::{Key, ListEntry, ListQuery};

impl SqliteBackend {
    pub(super) async fn list_page(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let page = Page::of(query);
        let rows = sqlx::query(
            "SELECT id, created_at, updated_at FROM toast_records \
             WHERE tenant = ? AND class_name = ? \
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(&*query.tenant)
        .bind(&*query.class_name)
        .bind(page.sql_limit())
        .bind(page.sql_offset())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("list records", e))?;
        let class = &query.class_name;
        rows.iter()
            .map(|row| {
                let unreadable = |e: Box<dyn std::error::Error + Send + Sync>| {
                    corrupted_with(class, None, "its id is not a UUID", e)
                };
                let id: Vec<u8> = row.try_get("id").map_err(|e| unreadable(e.into()))?;
                let id = Uuid::from_slice(&id).map_err(|e| unreadable(e.into()))?;
                let key = Key::new(query.tenant.clone(), class.clone(), id);
                let micros = |name: &str| -> Result<i64> {
                    row.try_get(name)
                        .map_err(|e| corrupted_with(class, Some(id), format!("bad {name}"), e))
                };
                Ok(ListEntry {
                    id,
                    created_at: timestamp(&key, "created_at", micros("created_at")?)?,
                    updated_at: timestamp(&key, "updated_at", micros("updated_at")?)?,
                })
            })
            .collect()
    }
}
