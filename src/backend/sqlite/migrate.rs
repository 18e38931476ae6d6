//! SQLite's steps of the migration runner, and its migrations.
//!
//! `_toast_migrations (version, description, applied_at)` records the
//! applied migrations and `_toast_migration_checksums (version, checksum)`
//! their checksums (a table of its own, so that the first one keeps the
//! shape earlier releases made). The lock is SQLite's write lock, taken by
//! the transaction's first statement.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{Executor, Row, Sqlite, SqlitePool, Transaction};

use super::errors::db_error;
use crate::backend::support::migrate::{self, Applied, Migration, Steps};
use crate::error::{Error, Result};

/// The migrations, in order.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records table and listing index",
        sql: include_str!("../../../migrations/sqlite/0001_records.sql"),
    },
    Migration {
        version: 2,
        name: "records as a rowid table (payload out of the key b-tree)",
        sql: include_str!("../../../migrations/sqlite/0002_rowid_table.sql"),
    },
];

/// The newest migration this release ships.
pub(super) fn latest() -> i64 {
    migrate::latest(MIGRATIONS)
}

/// Brings the file to [`latest`].
pub(super) async fn run(pool: &SqlitePool, path: &str) -> Result<()> {
    let mut steps = SqliteSteps {
        path,
        pool,
        tx: None,
    };
    migrate::run(&mut steps, MIGRATIONS).await
}

struct SqliteSteps<'a> {
    path: &'a str,
    pool: &'a SqlitePool,
    tx: Option<Transaction<'static, Sqlite>>,
}

impl SqliteSteps<'_> {
    fn tx(&mut self) -> Result<&mut sqlx::SqliteConnection> {
        match self.tx.as_mut() {
            Some(tx) => Ok(&mut **tx),
            None => Err(Error::backend(
                "SQLite migrations: a step ran outside the transaction",
            )),
        }
    }
}

#[async_trait]
impl Steps for SqliteSteps<'_> {
    async fn lock(&mut self) -> Result<()> {
        let err = |what: &str, e| db_error(self.path, what, e);
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _toast_migrations (
                version INTEGER PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at INTEGER NOT NULL)",
        )
        .execute(self.pool)
        .await
        .map_err(|e| err("create the migrations table", e))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| err("begin the migrations", e))?;
        // A write as the first statement takes SQLite's write lock for the whole
        // transaction: concurrent processes migrate one at a time.
        sqlx::query("UPDATE _toast_migrations SET version = version WHERE 0")
            .execute(&mut *tx)
            .await
            .map_err(|e| err("lock the database for migrations", e))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _toast_migration_checksums (
                version INTEGER PRIMARY KEY,
                checksum TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| err("create the migration checksums table", e))?;
        self.tx = Some(tx);
        Ok(())
    }

    async fn applied(&mut self) -> Result<Vec<Applied>> {
        let path = self.path;
        let rows = sqlx::query(
            "SELECT m.version, c.checksum FROM _toast_migrations m \
             LEFT JOIN _toast_migration_checksums c ON c.version = m.version",
        )
        .fetch_all(self.tx()?)
        .await
        .map_err(|e| db_error(path, "read the schema version", e))?;
        rows.iter()
            .map(|row| {
                Ok(Applied {
                    version: row
                        .try_get(0)
                        .map_err(|e| db_error(path, "read the schema version", e))?,
                    checksum: row
                        .try_get(1)
                        .map_err(|e| db_error(path, "read the schema version", e))?,
                })
            })
            .collect()
    }

    async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<()> {
        let path = self.path;
        let version = migration.version;
        let err = |what: &str, e| db_error(path, &format!("{what} migration {version}"), e);
        let conn = self.tx()?;
        // `Executor::execute` on the connection, not `sqlx::raw_sql`, whose
        // future fails the higher-ranked `Send` check inside a boxed future.
        conn.execute(migration.sql)
            .await
            .map_err(|e| err("apply", e))?;
        sqlx::query(
            "INSERT INTO _toast_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        )
        .bind(version)
        .bind(migration.name)
        .bind(Utc::now().timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(|e| err("record", e))?;
        sqlx::query("INSERT INTO _toast_migration_checksums (version, checksum) VALUES (?, ?)")
            .bind(version)
            .bind(checksum)
            .execute(&mut *conn)
            .await
            .map_err(|e| err("record the checksum of", e))?;
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => tx
                .commit()
                .await
                .map_err(|e| db_error(self.path, "commit the migrations", e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::backend::sqlite::SqliteBackend;
    use crate::backend::Backend;
    use crate::url::ConnectUrl;

    #[tokio::test]
    async fn checksums_are_recorded_verified_and_a_changed_migration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let url = ConnectUrl::parse(&url).unwrap();
        let backend = SqliteBackend::connect(&url).await.unwrap();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, checksum FROM _toast_migration_checksums ORDER BY version",
        )
        .fetch_all(&backend.pool)
        .await
        .unwrap();
        let shipped: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, migrate::hex(&Sha256::digest(m.sql.as_bytes()))))
            .collect();
        assert_eq!(rows, shipped);

        // A changed migration is refused, before anything is written.
        sqlx::query("UPDATE _toast_migration_checksums SET checksum = ? WHERE version = 2")
            .bind("ab".repeat(32))
            .execute(&backend.pool)
            .await
            .unwrap();
        backend.close().await.unwrap();
        let err = SqliteBackend::connect(&url).await.unwrap_err();
        assert!(err.is_validation(), "{err:?}");
        assert!(err.to_string().contains("migration 2"), "{err}");
        assert!(err.to_string().contains("was changed"), "{err}");

        // Rows without a checksum, as earlier releases left them, are taken
        // as applied.
        let pool = SqlitePool::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
            .await
            .unwrap();
        sqlx::query("DELETE FROM _toast_migration_checksums")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let again = SqliteBackend::connect(&url).await.unwrap();
        assert_eq!(again.schema_version().await.unwrap(), latest());
    }
}
