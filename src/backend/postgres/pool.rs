//! The backend's connection pool as handed out to users: sqlx's pool
//! without its connect options, which hold the password.

use std::fmt;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, Postgres, Transaction};

/// A PostgreSQL backend's connection pool, for running your own queries on
/// the same connections: an executor (`query.execute(backend.pool())`) with
/// [`PostgresPool::acquire`] and [`PostgresPool::begin`].
///
/// Unlike sqlx's `PgPool` it never shows or hands out its connect options:
/// they hold the password. `Debug` shows the pool's size only.
#[derive(Clone)]
pub struct PostgresPool(PgPool);

impl PostgresPool {
    pub(super) fn new(pool: PgPool) -> PostgresPool {
        PostgresPool(pool)
    }

    /// A connection of the pool, back in it when dropped.
    ///
    /// # Errors
    ///
    /// sqlx's, when no connection frees up within `acquire_timeout`.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.0.acquire().await
    }

    /// A transaction on a connection of the pool.
    ///
    /// # Errors
    ///
    /// As [`PostgresPool::acquire`], and when `BEGIN` fails.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.0.begin().await
    }

    /// How many connections are open.
    pub fn size(&self) -> u32 {
        self.0.size()
    }

    /// How many open connections are idle.
    pub fn num_idle(&self) -> usize {
        self.0.num_idle()
    }

    /// Closes every connection; later acquires fail.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

impl fmt::Debug for PostgresPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresPool")
            .field("size", &self.0.size())
            .field("num_idle", &self.0.num_idle())
            .field("is_closed", &self.0.is_closed())
            .finish()
    }
}

impl<'p> Executor<'p> for &'_ PostgresPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        (&self.0).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        (&self.0).fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.0).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.0).describe(sql)
    }
}
