//! Listing one tenant's class, newest first, paged in SQL.

use sqlx::Row;

use super::names;
use super::PostgresBackend;
use crate::backend::support::Page;
use crate::error::Result;
use crate::record::{ListEntry, ListQuery};

impl PostgresBackend {
    pub(super) async fn list_page(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let page = Page::of(query);
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.sql.list)
            .bind(names::encode(&query.tenant))
            .bind(names::encode(&query.class_name))
            .bind(page.sql_limit())
            .bind(page.sql_offset())
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
}
