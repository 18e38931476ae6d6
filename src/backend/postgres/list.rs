//! Listing one tenant's class, newest first, paged in SQL.

use sqlx::Row;

use super::load::timestamp;
use super::names;
use super::PostgresBackend;
use crate::backend::support::{corrupted, corrupted_with, Page};
use crate::error::Result;
use crate::record::{ListEntry, ListQuery};

impl PostgresBackend {
    pub(super) async fn list_page(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let page = Page::of(query);
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection("list").await?;
        let statement = sqlx::query(&self.sql.list)
            .bind(names::encode(&query.tenant))
            .bind(names::encode(&query.class_name))
            .bind(page.sql_limit())
            .bind(page.sql_offset())
            .fetch_all(&mut *conn);
        let rows = match self.within(1, statement).await {
            Some(rows) => rows.map_err(|e| self.diag.error("list", e))?,
            None => return Err(self.timed_out(conn, "list")),
        };
        let class = &query.class_name;
        rows.iter()
            .map(|row| {
                let id = row
                    .try_get(0)
                    .map_err(|e| corrupted_with(class, None, "bad id", e))?;
                let timestamp = |index: usize, what: &str| {
                    timestamp(row, index)
                        .map_err(|why| corrupted(class, Some(id), format!("bad {what} ({why})")))
                };
                Ok(ListEntry {
                    id,
                    created_at: timestamp(1, "created_at")?,
                    updated_at: timestamp(2, "updated_at")?,
                })
            })
            .collect()
    }
}
