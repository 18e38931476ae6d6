//! PostgreSQL's steps of the migration runner, and its migrations.
//!
//! `<schema>._toast_migrations (version, name, checksum, applied_at)`
//! records the applied migrations. The lock is a transaction-scoped
//! advisory lock keyed by the schema, so that any number of processes may
//! connect at once to an empty database. An up-to-date schema costs one
//! read without the lock.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor, Postgres, Row, Transaction};

use super::errors::Diagnostics;
use super::options::quote_ident;
use crate::backend::support::migrate::{self, Applied, Migration, Steps};
use crate::error::{Error, Result};

/// The migrations, in order; the last one's version is [`super::SCHEMA_VERSION`].
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records",
        sql: include_str!("../../../migrations/postgres/0001_records.sql"),
    },
    Migration {
        version: 2,
        name: "listing by expression",
        sql: include_str!("../../../migrations/postgres/0002_listing_by_expression.sql"),
    },
    Migration {
        version: 3,
        name: "key by id",
        sql: include_str!("../../../migrations/postgres/0003_key_by_id.sql"),
    },
];

/// The advisory-lock key of a schema's migrations.
fn lock_key(schema: &str) -> i64 {
    let hash = blake3::hash(format!("serde-toast migrations {schema}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_be_bytes(first)
}

/// Checks that the database is UTF8, then brings `schema` to the last
/// migration.
pub(super) async fn run(conn: &mut PgConnection, schema: &str, diag: &Diagnostics) -> Result<()> {
    let encoding: String = sqlx::query_scalar("SELECT current_setting('server_encoding')")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| diag.error("migrate", e))?;
    if encoding != "UTF8" {
        return Err(Error::validation(format!(
            "database '{}' at {} uses encoding {encoding}; toast needs a UTF8 database \
             (CREATE DATABASE … ENCODING 'UTF8')",
            diag.database, diag.url
        )));
    }
    let qschema = quote_ident(schema);
    let mut steps = PgSteps {
        conn: Some(conn),
        tx: None,
        schema,
        table: format!("{qschema}._toast_migrations"),
        qschema,
        diag,
    };
    migrate::run(&mut steps, MIGRATIONS).await
}

struct PgSteps<'c> {
    /// The connection, until the transaction takes it.
    conn: Option<&'c mut PgConnection>,
    tx: Option<Transaction<'c, Postgres>>,
    schema: &'c str,
    qschema: String,
    table: String,
    diag: &'c Diagnostics,
}

impl PgSteps<'_> {
    fn err(&self, e: sqlx::Error) -> Error {
        self.diag.error("migrate", e)
    }

    fn tx(&mut self) -> Result<&mut PgConnection> {
        match self.tx.as_mut() {
            Some(tx) => Ok(&mut **tx),
            None => Err(Error::backend(
                "PostgreSQL migrations: a step ran outside the transaction",
            )),
        }
    }
}

/// The rows of the migrations table.
async fn read_applied(conn: &mut PgConnection, table: &str) -> sqlx::Result<Vec<Applied>> {
    let rows = sqlx::query(&format!("SELECT version, checksum FROM {table}"))
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Applied {
                version: row.try_get(0)?,
                checksum: row.try_get(1)?,
            })
        })
        .collect()
}

#[async_trait]
impl Steps for PgSteps<'_> {
    async fn peek(&mut self) -> Result<Option<Vec<Applied>>> {
        let table = self.table.clone();
        let Some(conn) = self.conn.as_deref_mut() else {
            return Ok(None);
        };
        let exists: Option<String> = match sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await
        {
            Ok(exists) => exists,
            Err(e) => return Err(self.err(e)),
        };
        if exists.is_none() {
            return Ok(None);
        }
        match read_applied(conn, &table).await {
            Ok(applied) => Ok(Some(applied)),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn lock(&mut self) -> Result<()> {
        let Some(conn) = self.conn.take() else {
            return Err(Error::backend(
                "PostgreSQL migrations: the lock was taken twice",
            ));
        };
        let diag = self.diag;
        let err = |e| diag.error("migrate", e);
        let mut tx = conn.begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(self.schema))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let has_schema: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(self.schema)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        if !has_schema {
            tx.execute(format!("CREATE SCHEMA IF NOT EXISTS {}", self.qschema).as_str())
                .await
                .map_err(err)?;
        }
        let create_table = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             version bigint PRIMARY KEY, \
             name text NOT NULL, \
             checksum text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
            self.table
        );
        tx.execute(create_table.as_str()).await.map_err(err)?;
        self.tx = Some(tx);
        Ok(())
    }

    async fn applied(&mut self) -> Result<Vec<Applied>> {
        let table = self.table.clone();
        let conn = self.tx()?;
        match read_applied(conn, &table).await {
            Ok(applied) => Ok(applied),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<()> {
        let diag = self.diag;
        let sql = migration.sql.replace("{schema}", &self.qschema);
        let insert = format!(
            "INSERT INTO {} (version, name, checksum) VALUES ($1, $2, $3)",
            self.table
        );
        let conn = self.tx()?;
        conn.execute(sql.as_str())
            .await
            .map_err(|e| diag.error(&format!("migration {}", migration.version), e))?;
        sqlx::query(&insert)
            .bind(migration.version)
            .bind(migration.name)
            .bind(checksum)
            .execute(&mut *conn)
            .await
            .map_err(|e| diag.error("migrate", e))?;
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(|e| self.diag.error("migrate", e)),
            None => Ok(()),
        }
    }

    /// Earlier releases recorded the BLAKE3 of the SQL as shipped.
    fn legacy_checksum(&self, migration: &Migration) -> Option<String> {
        Some(blake3::hash(migration.sql.as_bytes()).to_hex().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::SCHEMA_VERSION;
    use super::*;

    #[test]
    fn the_last_migration_is_the_schema_version() {
        assert_eq!(migrate::latest(MIGRATIONS), SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_message() {
        let err = migrate::check_not_newer(SCHEMA_VERSION + 1, SCHEMA_VERSION).unwrap_err();
        assert!(err.is_validation());
        assert_eq!(
            err.to_string(),
            format!(
                "database schema version {} is newer than this toast release supports ({}); \
                 upgrade serde-toast",
                SCHEMA_VERSION + 1,
                SCHEMA_VERSION
            )
        );
        assert!(migrate::check_not_newer(SCHEMA_VERSION, SCHEMA_VERSION).is_ok());
    }
}

/// Against the shared server (`TOAST_TEST_POSTGRES_URL`), in a schema of
/// its own.
#[cfg(test)]
mod live {
    use sha2::{Digest, Sha256};

    use super::super::PostgresBackend;
    use super::*;
    use crate::backend::Backend;
    use crate::url::ConnectUrl;

    fn url(schema: &str) -> ConnectUrl {
        let base = std::env::var("TOAST_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let sep = if base.contains('?') { '&' } else { '?' };
        ConnectUrl::parse(&format!("{base}{sep}schema={schema}")).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checksums_are_recorded_verified_and_a_changed_migration_is_refused() {
        let schema = format!("toast_sum_{}", uuid::Uuid::new_v4().simple());
        let url = url(&schema);
        let backend = PostgresBackend::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("the shared PostgreSQL server is not usable: {e}"));
        let table = format!("\"{schema}\"._toast_migrations");
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT version, checksum FROM {table} ORDER BY version"
        ))
        .fetch_all(backend.pool())
        .await
        .unwrap();
        let shipped: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, migrate::hex(&Sha256::digest(m.sql.as_bytes()))))
            .collect();
        assert_eq!(rows, shipped);

        let set = |version: i64, checksum: String| {
            let (backend, table) = (&backend, &table);
            async move {
                sqlx::query(&format!(
                    "UPDATE {table} SET checksum = $1 WHERE version = $2"
                ))
                .bind(checksum)
                .bind(version)
                .execute(backend.pool())
                .await
                .unwrap();
            }
        };
        // The BLAKE3 checksums earlier releases wrote are verified too.
        let legacy = blake3::hash(MIGRATIONS[0].sql.as_bytes())
            .to_hex()
            .to_string();
        set(1, legacy).await;
        PostgresBackend::connect(&url)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
        // A changed migration is refused, in either form.
        let changed = blake3::hash(b"another migration").to_hex().to_string();
        for checksum in [changed, "cd".repeat(32)] {
            set(3, checksum).await;
            let err = PostgresBackend::connect(&url).await.unwrap_err();
            assert!(err.is_validation(), "{err:?}");
            assert!(
                err.to_string()
                    .contains("migration 3 (key by id) was changed"),
                "{err}"
            );
        }
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(backend.pool())
            .await
            .unwrap();
        backend.close().await.unwrap();
    }
}
