//! The raw drivers the baselines run on: the same crates and pool sizes as the backends, used directly.

use std::collections::HashMap;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::RwLock;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

#[cfg(feature = "postgres")]
use crate::targets::POSTGRES_POOL;
#[cfg(feature = "sqlite")]
use crate::targets::{checkpoint, SQLITE_POOL};
use crate::{err, R};

/// The baseline: the same driver crates as the backends, used directly.
pub(crate) enum Raw {
    /// A `HashMap` of the same bytes, behind one lock like the memory backend's.
    Memory(RwLock<HashMap<Uuid, Bytes>>),
    /// `shaped`: the table has toast's shape (its columns, its primary key on
    /// tenant, class and id, and its listing index), so that an aside can
    /// show what that shape costs the same statements.
    #[cfg(feature = "sqlite")]
    Sqlite {
        pool: sqlx::SqlitePool,
        shaped: bool,
        /// As long as toast's tenant in the bench (`bench-<uuid>`): the same
        /// key bytes in every index.
        tenant: String,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        pool: sqlx::PgPool,
        /// The baseline's own schema (quoted), which holds `table`.
        schema: String,
        table: String,
        tenant: String,
        /// As [`Raw::Sqlite`]'s.
        shaped: bool,
    },
    #[cfg(feature = "redis")]
    Redis {
        conn: redis::aio::ConnectionManager,
        prefix: String,
    },
}

/// Toast's SQLite migrations, for the baseline on a table of toast's shape.
#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: [&str; 2] = [
    include_str!("../../migrations/sqlite/0001_records.sql"),
    include_str!("../../migrations/sqlite/0002_rowid_table.sql"),
];

/// Toast's PostgreSQL migrations (`{schema}` to be replaced), likewise.
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: [&str; 3] = [
    include_str!("../../migrations/postgres/0001_records.sql"),
    include_str!("../../migrations/postgres/0002_listing_by_expression.sql"),
    include_str!("../../migrations/postgres/0003_key_by_id.sql"),
];

#[cfg(feature = "sqlite")]
fn sqlite_raw_table(shaped: bool) -> &'static str {
    if shaped {
        // The name toast's migrations give it.
        "toast_records"
    } else {
        "raw_records"
    }
}

/// The class condition a shaped table's key lookups need (its primary key
/// starts with tenant and class).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn class_condition(shaped: bool) -> &'static str {
    if shaped {
        " AND class_name = 'Item'"
    } else {
        ""
    }
}

/// Microseconds since the epoch, for the shaped SQLite baseline's timestamps.
#[cfg(feature = "sqlite")]
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Rows per statement in the SQLite baseline: 3 parameters each, 7 shaped
/// (under SQLite's 32,766).
#[cfg(feature = "sqlite")]
fn sqlite_raw_chunk(shaped: bool) -> usize {
    if shaped {
        4_000
    } else {
        10_000
    }
}

/// `{verb} FROM` the SQLite baseline table the rows of `tenant` with these ids.
#[cfg(feature = "sqlite")]
fn sqlite_by_ids<'a>(
    verb: &str,
    shaped: bool,
    tenant: &'a str,
    ids: &[Uuid],
) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let table = sqlite_raw_table(shaped);
    let mut qb = sqlx::QueryBuilder::new(format!("{verb} FROM {table} WHERE tenant = "));
    qb.push_bind(tenant)
        .push(class_condition(shaped))
        .push(" AND id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_bytes().to_vec());
    }
    qb.push(")");
    qb
}

/// One multi-row upsert of `chunk` into the SQLite baseline table.
#[cfg(feature = "sqlite")]
fn sqlite_upsert<'a>(
    chunk: &'a [(Uuid, Bytes)],
    shaped: bool,
    tenant: &'a str,
) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let table = sqlite_raw_table(shaped);
    if !shaped {
        let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO {table} (tenant, id, data) "));
        qb.push_values(chunk, |mut row, (id, data)| {
            row.push_bind(tenant)
                .push_bind(id.as_bytes().as_slice())
                .push_bind(data.as_ref());
        });
        qb.push(" ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data");
        return qb;
    }
    let mut qb = sqlx::QueryBuilder::new(format!(
        "INSERT INTO {table} \
         (tenant, class_name, id, data, schema_version, created_at, updated_at) "
    ));
    let now = now_micros();
    qb.push_values(chunk, |mut row, (id, data)| {
        row.push_bind(tenant)
            .push_bind("Item")
            .push_bind(id.as_bytes().as_slice())
            .push_bind(data.as_ref())
            .push_bind(1_i64)
            .push_bind(now)
            .push_bind(now);
    });
    qb.push(
        " ON CONFLICT (tenant, class_name, id) DO UPDATE SET \
         data = excluded.data, updated_at = excluded.updated_at",
    );
    qb
}

impl Raw {
    #[cfg(feature = "sqlite")]
    pub(crate) async fn sqlite(path: &Path, shaped: bool) -> R<Raw> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_POOL)
            .connect_with(options)
            .await
            .map_err(err)?;
        let ddl = if shaped {
            // Toast's own migrations, in a file of their own: the table and
            // index exactly as toast's backend leaves them.
            SQLITE_MIGRATIONS.concat()
        } else {
            format!(
                "CREATE TABLE IF NOT EXISTS {} (tenant TEXT NOT NULL, id BLOB NOT NULL, \
                 data BLOB NOT NULL, PRIMARY KEY (tenant, id))",
                sqlite_raw_table(false)
            )
        };
        sqlx::Executor::execute(&pool, ddl.as_str())
            .await
            .map_err(err)?;
        Ok(Raw::Sqlite {
            pool,
            shaped,
            tenant: format!("bench-{}", Uuid::new_v4()),
        })
    }

    #[cfg(feature = "postgres")]
    pub(crate) async fn postgres(url: &str, shaped: bool) -> R<Raw> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(POSTGRES_POOL)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(err)?;
        // A schema of its own, dropped at the end ([`Raw::cleanup`]).
        let schema = format!("\"toast_bench_raw_{}\"", Uuid::new_v4().simple());
        let (ddl, table) = if shaped {
            // Toast's own migrations: the table and index exactly as toast's
            // backend leaves them.
            let ddl = POSTGRES_MIGRATIONS.concat().replace("{schema}", &schema);
            (ddl, format!("{schema}.records"))
        } else {
            let table = format!("{schema}.raw_records");
            let ddl = format!(
                "CREATE TABLE {table} (tenant text NOT NULL, id uuid NOT NULL, \
                 data jsonb NOT NULL, PRIMARY KEY (tenant, id))"
            );
            (ddl, table)
        };
        let ddl = format!("CREATE SCHEMA {schema}; {ddl}");
        sqlx::Executor::execute(&pool, ddl.as_str())
            .await
            .map_err(err)?;
        Ok(Raw::Postgres {
            pool,
            schema,
            table,
            tenant: format!("bench-{}", Uuid::new_v4()),
            shaped,
        })
    }

    #[cfg(feature = "redis")]
    pub(crate) async fn redis(url: &str) -> R<Raw> {
        let client = redis::Client::open(url).map_err(err)?;
        // The driver's default response timeout is shorter than big_doc's
        // one 100 MiB pipeline may take on a busy machine; toast's backend
        // allows 5 s per round trip, so the baseline gets the same.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(err)?;
        Ok(Raw::Redis {
            conn,
            prefix: format!("toast-bench:{}:", Uuid::new_v4()),
        })
    }

    /// Writes (upserts) every payload in one batch.
    pub(crate) async fn write(&self, batch: &[(Uuid, Bytes)]) -> R<()> {
        match self {
            Raw::Memory(map) => {
                let mut map = map.write().map_err(err)?;
                for (id, data) in batch {
                    map.insert(*id, data.clone());
                }
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Raw::Sqlite {
                pool,
                shaped,
                tenant,
            } => {
                let build = |chunk| sqlite_upsert(chunk, *shaped, tenant);
                let rows = sqlite_raw_chunk(*shaped);
                if batch.len() <= rows {
                    // One statement is one transaction of its own.
                    build(batch).build().execute(pool).await.map_err(err)?;
                } else {
                    let mut tx = pool.begin().await.map_err(err)?;
                    for chunk in batch.chunks(rows) {
                        build(chunk).build().execute(&mut *tx).await.map_err(err)?;
                    }
                    tx.commit().await.map_err(err)?;
                }
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres {
                pool,
                table,
                tenant,
                shaped,
                ..
            } => {
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.to_string()).collect();
                let data = batch
                    .iter()
                    .map(|(_, d)| std::str::from_utf8(d).map_err(err))
                    .collect::<R<Vec<&str>>>()?;
                let sql = if *shaped {
                    // Toast's columns; a timestamp per row from the server.
                    format!(
                        "INSERT INTO {table} \
                         (tenant, class_name, id, data, schema_version, created_at, updated_at) \
                         SELECT $1, 'Item', u.id::uuid, u.data::jsonb, 1, \
                         clock_timestamp(), clock_timestamp() \
                         FROM unnest($2::text[], $3::text[]) AS u(id, data) \
                         ON CONFLICT (tenant, class_name, id) DO UPDATE SET \
                         data = excluded.data, updated_at = excluded.updated_at"
                    )
                } else {
                    format!(
                        "INSERT INTO {table} (tenant, id, data) \
                         SELECT $1, u.id::uuid, u.data::jsonb \
                         FROM unnest($2::text[], $3::text[]) AS u(id, data) \
                         ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data"
                    )
                };
                sqlx::query(&sql)
                    .bind(tenant)
                    .bind(ids)
                    .bind(data)
                    .execute(pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }
            #[cfg(feature = "redis")]
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                if let [(id, data)] = batch {
                    redis::cmd("SET")
                        .arg(format!("{prefix}{id}"))
                        .arg(data.as_ref())
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(err)?;
                    return Ok(());
                }
                let mut pipe = redis::pipe();
                for (id, data) in batch {
                    pipe.cmd("SET")
                        .arg(format!("{prefix}{id}"))
                        .arg(data.as_ref())
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await.map_err(err)?;
                Ok(())
            }
        }
    }

    /// Reads the payloads of `ids` in one batch; fails if one is missing.
    pub(crate) async fn read(&self, ids: &[Uuid]) -> R<Vec<Bytes>> {
        let out: Vec<Bytes> = match self {
            Raw::Memory(map) => {
                let map = map.read().map_err(err)?;
                ids.iter().filter_map(|id| map.get(id).cloned()).collect()
            }
            #[cfg(feature = "sqlite")]
            Raw::Sqlite {
                pool,
                shaped,
                tenant,
            } => {
                use sqlx::Row;
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(sqlite_raw_chunk(*shaped)) {
                    let mut qb = sqlite_by_ids("SELECT data", *shaped, tenant, chunk);
                    let rows = qb.build().fetch_all(pool).await.map_err(err)?;
                    for row in &rows {
                        let data: Vec<u8> = row.try_get(0).map_err(err)?;
                        out.push(Bytes::from(data));
                    }
                }
                out
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres {
                pool,
                table,
                tenant,
                shaped,
                ..
            } => {
                use sqlx::Row;
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let class = class_condition(*shaped);
                let rows = sqlx::query(&format!(
                    "SELECT data::text FROM {table} \
                     WHERE tenant = $1{class} AND id = ANY($2::text[]::uuid[])"
                ))
                .bind(tenant)
                .bind(ids)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                rows.iter()
                    .map(|row| row.try_get::<String, _>(0).map(Bytes::from).map_err(err))
                    .collect::<R<Vec<Bytes>>>()?
            }
            #[cfg(feature = "redis")]
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                if let [id] = ids {
                    let found: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(format!("{prefix}{id}"))
                        .query_async(&mut conn)
                        .await
                        .map_err(err)?;
                    found.into_iter().map(Bytes::from).collect()
                } else {
                    let keys: Vec<String> = ids.iter().map(|id| format!("{prefix}{id}")).collect();
                    let found: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .map_err(err)?;
                    found.into_iter().flatten().map(Bytes::from).collect()
                }
            }
        };
        if out.len() != ids.len() {
            return Err(format!(
                "baseline read {} of {} payloads",
                out.len(),
                ids.len()
            ));
        }
        Ok(out)
    }

    /// After a rep: the baseline's SQLite log checkpointed (see [`checkpoint`]).
    pub(crate) async fn settle(&self) -> R<()> {
        #[cfg(feature = "sqlite")]
        if let Raw::Sqlite { pool, .. } = self {
            checkpoint(pool).await?;
        }
        Ok(())
    }

    /// Removes payloads (outside the timed part).
    pub(crate) async fn delete(&self, ids: &[Uuid]) -> R<()> {
        match self {
            Raw::Memory(map) => {
                let mut map = map.write().map_err(err)?;
                for id in ids {
                    map.remove(id);
                }
            }
            #[cfg(feature = "sqlite")]
            Raw::Sqlite {
                pool,
                shaped,
                tenant,
            } => {
                for chunk in ids.chunks(sqlite_raw_chunk(*shaped)) {
                    let mut qb = sqlite_by_ids("DELETE", *shaped, tenant, chunk);
                    qb.build().execute(pool).await.map_err(err)?;
                }
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres {
                pool,
                table,
                tenant,
                shaped,
                ..
            } => {
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let class = class_condition(*shaped);
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE tenant = $1{class} AND id = ANY($2::text[]::uuid[])"
                ))
                .bind(tenant)
                .bind(ids)
                .execute(pool)
                .await
                .map_err(err)?;
            }
            #[cfg(feature = "redis")]
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                for chunk in ids.chunks(1000) {
                    let keys: Vec<String> =
                        chunk.iter().map(|id| format!("{prefix}{id}")).collect();
                    redis::cmd("DEL")
                        .arg(&keys)
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    }

    /// Empties the baseline's table in one statement where it holds only
    /// this run's rows: SQLite's (a `DELETE` without a condition, which
    /// SQLite runs as a truncation) and PostgreSQL's (`TRUNCATE`). `false`
    /// on memory and Redis, whose payloads are deleted by id instead.
    pub(crate) async fn empty(&self) -> R<bool> {
        match self {
            #[cfg(feature = "sqlite")]
            Raw::Sqlite { pool, shaped, .. } => {
                let table = sqlite_raw_table(*shaped);
                sqlx::query(&format!("DELETE FROM {table}"))
                    .execute(pool)
                    .await
                    .map_err(err)?;
                checkpoint(pool).await?;
                Ok(true)
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres { pool, table, .. } => {
                truncate_pg(pool, table).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Empties toast's table of this run on PostgreSQL (in its schema of
    /// this run, `toast_schema`), with the baseline's pool.
    pub(crate) async fn empty_toast(&self, toast_schema: &str) -> R<()> {
        #[cfg(feature = "postgres")]
        if let Raw::Postgres { pool, .. } = self {
            return truncate_pg(pool, &format!("\"{toast_schema}\".records")).await;
        }
        Err(format!(
            "no PostgreSQL pool to empty schema {toast_schema} with"
        ))
    }

    /// Drops toast's schema of this run (PostgreSQL), before
    /// [`Raw::cleanup`] closes the pool.
    pub(crate) async fn drop_schema(&self, toast_schema: &str) -> R<()> {
        #[cfg(feature = "postgres")]
        if let Raw::Postgres { pool, .. } = self {
            return drop_pg_schema(pool, &format!("\"{toast_schema}\"")).await;
        }
        Err(format!(
            "no PostgreSQL pool to drop schema {toast_schema} with"
        ))
    }

    /// Drops what the baseline wrote on a shared server.
    pub(crate) async fn cleanup(&self, written: &[Uuid]) -> R<()> {
        #[cfg(feature = "postgres")]
        if let Raw::Postgres { pool, schema, .. } = self {
            drop_pg_schema(pool, schema).await?;
            pool.close().await;
            return Ok(());
        }
        self.delete(written).await
    }
}

/// Empties the PostgreSQL table `table` (a qualified, quoted name).
#[cfg(feature = "postgres")]
async fn truncate_pg(pool: &sqlx::PgPool, table: &str) -> R<()> {
    sqlx::query(&format!("TRUNCATE {table}"))
        .execute(pool)
        .await
        .map_err(err)?;
    Ok(())
}

/// Drops the PostgreSQL schema `quoted` (an identifier in double quotes)
/// and everything in it.
#[cfg(feature = "postgres")]
async fn drop_pg_schema(pool: &sqlx::PgPool, quoted: &str) -> R<()> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
        .execute(pool)
        .await
        .map_err(err)?;
    Ok(())
}
