//! Every statement bounded by `statement_timeout` on the client side too:
//! a statement whose reply never comes (a stalled network) fails with
//! [`Error::Connection`] instead of waiting on TCP for hours, and its
//! connection — in a state nobody knows — is closed, not given back to the
//! pool, which opens a fresh one when it needs it.

use std::future::Future;

use sqlx::pool::PoolConnection;
use sqlx::Postgres;

use super::PostgresBackend;
use crate::error::{Error, Result};

impl PostgresBackend {
    /// A connection of the pool, within `acquire_timeout`.
    pub(super) async fn connection(&self, operation: &str) -> Result<PoolConnection<Postgres>> {
        self.pool
            .acquire()
            .await
            .map_err(|e| self.diag.error(operation, e))
    }

    /// `statement`, given `statements` times `statement_timeout` (one
    /// statement unless a transaction sends more); `None` when it ran over.
    pub(super) async fn within<T>(
        &self,
        statements: usize,
        statement: impl Future<Output = T>,
    ) -> Option<T> {
        let count = u32::try_from(statements.max(1)).unwrap_or(u32::MAX);
        let limit = self.diag.statement_timeout.saturating_mul(count);
        tokio::time::timeout(limit, statement).await.ok()
    }

    /// The error of a statement that ran over `statement_timeout`; its
    /// connection is closed.
    pub(super) fn timed_out(&self, mut conn: PoolConnection<Postgres>, operation: &str) -> Error {
        conn.close_on_drop();
        drop(conn);
        self.diag.timed_out(operation)
    }
}
