//! The one migration runner, for SQLite and PostgreSQL.
//!
//! Written once, as sqlx's migrator is: each database implements only the
//! [`Steps`] (take the lock, read the applied rows, apply one migration in
//! the transaction and record it, commit). The runner refuses a database
//! whose schema is newer than this release knows before anything is
//! written, verifies the checksum of every applied migration (the SHA-256
//! of its SQL, as shipped) and refuses one that changed, then applies the
//! missing ones in one transaction.
//!
//! Rows recorded before checksums were verified are accepted as follows: a
//! checksum in the form an earlier release wrote ([`Steps::legacy_checksum`],
//! PostgreSQL's BLAKE3) is verified in that form; a row with no checksum
//! (SQLite's, which kept none) or with text that is no digest at all is
//! taken as applied.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One versioned migration shipped in the crate.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Its version, from 1 up, without gaps.
    pub(crate) version: i64,
    /// A short description, recorded with it.
    pub(crate) name: &'static str,
    /// Its SQL, as shipped (a PostgreSQL migration's `{schema}` is replaced
    /// when it runs; the checksum is of the text as shipped).
    pub(crate) sql: &'static str,
}

impl Migration {
    /// The SHA-256 of its SQL, in lower-case hex.
    pub(crate) fn checksum(&self) -> String {
        hex(&Sha256::digest(self.sql.as_bytes()))
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A migration recorded as applied in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Its version.
    pub(crate) version: i64,
    /// The checksum recorded with it, if any.
    pub(crate) checksum: Option<String>,
}

/// What one database does for the runner.
#[async_trait]
pub(crate) trait Steps: Send {
    /// The applied migrations read without taking the lock, so that an
    /// up-to-date database costs one read; `None` when there is no record
    /// yet or the database always takes the lock.
    async fn peek(&mut self) -> Result<Option<Vec<Applied>>> {
        Ok(None)
    }

    /// Begins the transaction and takes the lock that makes concurrent
    /// processes migrate one at a time; creates the table of applied
    /// migrations when missing.
    async fn lock(&mut self) -> Result<()>;

    /// The applied migrations, read under the lock.
    async fn applied(&mut self) -> Result<Vec<Applied>>;

    /// Runs one migration in the transaction and records it with `checksum`.
    async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<()>;

    /// Commits the transaction.
    async fn commit(&mut self) -> Result<()>;

    /// The checksum an earlier release recorded for `migration`, when it
    /// wrote one of another form.
    fn legacy_checksum(&self, _migration: &Migration) -> Option<String> {
        None
    }
}

/// Brings a database to the last of `migrations` (see the module docs).
///
/// # Errors
///
/// [`Error::Validation`] for a schema newer than `migrations` or a changed
/// migration; whatever a step returns.
pub(crate) async fn run<S: Steps>(steps: &mut S, migrations: &[Migration]) -> Result<()> {
    if let Some(applied) = steps.peek().await? {
        if check(&*steps, &applied, migrations)? {
            return Ok(());
        }
    }
    steps.lock().await?;
    let applied = steps.applied().await?;
    // On an error the transaction is dropped, and with it rolled back.
    if check(&*steps, &applied, migrations)? {
        return steps.commit().await;
    }
    for migration in migrations {
        if applied.iter().any(|a| a.version == migration.version) {
            continue;
        }
        steps.apply(migration, &migration.checksum()).await?;
    }
    steps.commit().await
}

/// The newest version of `migrations`.
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

/// Refuses a newer schema and a changed migration; whether every one of
/// `migrations` is applied.
fn check<S: Steps + ?Sized>(
    steps: &S,
    applied: &[Applied],
    migrations: &[Migration],
) -> Result<bool> {
    let latest = latest(migrations);
    if let Some(newest) = applied.iter().map(|a| a.version).max() {
        check_not_newer(newest, latest)?;
    }
    for row in applied {
        let Some(migration) = migrations.iter().find(|m| m.version == row.version) else {
            continue;
        };
        verify(steps, row, migration)?;
    }
    Ok(migrations
        .iter()
        .all(|m| applied.iter().any(|a| a.version == m.version)))
}

/// The error for a database whose schema is newer than this release knows.
pub(crate) fn check_not_newer(version: i64, latest: i64) -> Result<()> {
    if version > latest {
        return Err(Error::validation(format!(
            "database schema version {version} is newer than this toast release supports \
             ({latest}); upgrade serde-toast"
        )));
    }
    Ok(())
}

fn verify<S: Steps + ?Sized>(steps: &S, row: &Applied, migration: &Migration) -> Result<()> {
    let Some(recorded) = row.checksum.as_deref() else {
        return Ok(());
    };
    let expected = migration.checksum();
    if recorded == expected
        || steps.legacy_checksum(migration).as_deref() == Some(recorded)
        || !is_digest(recorded)
    {
        return Ok(());
    }
    Err(Error::validation(format!(
        "database schema migration {} ({}) was changed after it was applied to this \
         database: its recorded checksum is {recorded}, this release's is {expected}; a \
         shipped migration must never change (restore it, or use the release that applied it)",
        migration.version, migration.name
    )))
}

/// Whether `text` looks like a digest (hex, at least 32 digits): rows with
/// anything else were not written by a runner that checksums.
fn is_digest(text: &str) -> bool {
    text.len() >= 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE one (x int);",
        },
        Migration {
            version: 2,
            name: "two",
            sql: "CREATE TABLE two (x int);",
        },
    ];

    /// Steps over a list, recording what the runner asks for.
    #[derive(Default)]
    struct Fake {
        rows: Vec<Applied>,
        peeked: bool,
        calls: Vec<String>,
    }

    #[async_trait]
    impl Steps for Fake {
        async fn peek(&mut self) -> Result<Option<Vec<Applied>>> {
            self.calls.push("peek".into());
            Ok(self.peeked.then(|| self.rows.clone()))
        }
        async fn lock(&mut self) -> Result<()> {
            self.calls.push("lock".into());
            Ok(())
        }
        async fn applied(&mut self) -> Result<Vec<Applied>> {
            Ok(self.rows.clone())
        }
        async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<()> {
            self.calls.push(format!("apply {}", migration.version));
            self.rows.push(Applied {
                version: migration.version,
                checksum: Some(checksum.to_owned()),
            });
            Ok(())
        }
        async fn commit(&mut self) -> Result<()> {
            self.calls.push("commit".into());
            Ok(())
        }
        fn legacy_checksum(&self, migration: &Migration) -> Option<String> {
            Some(format!("{:0>64}", migration.version))
        }
    }

    fn row(version: i64, checksum: Option<&str>) -> Applied {
        Applied {
            version,
            checksum: checksum.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn applies_the_missing_ones_and_records_their_sha256() {
        let mut steps = Fake::default();
        run(&mut steps, MIGRATIONS).await.unwrap();
        assert_eq!(
            steps.calls,
            ["peek", "lock", "apply 1", "apply 2", "commit"]
        );
        // The SHA-256 of the SQL as shipped.
        assert_eq!(
            steps.rows[0].checksum.as_deref(),
            Some(hex(&Sha256::digest(b"CREATE TABLE one (x int);")).as_str())
        );
        assert_eq!(steps.rows[0].checksum.as_deref().map(str::len), Some(64));
        // Again: nothing applied; with a peek, not even the lock.
        steps.calls.clear();
        run(&mut steps, MIGRATIONS).await.unwrap();
        assert_eq!(steps.calls, ["peek", "lock", "commit"]);
        steps.peeked = true;
        steps.calls.clear();
        run(&mut steps, MIGRATIONS).await.unwrap();
        assert_eq!(steps.calls, ["peek"]);
    }

    #[tokio::test]
    async fn a_changed_migration_is_refused_before_anything_is_applied() {
        let mut steps = Fake {
            rows: vec![row(1, Some(&"ab".repeat(32)))],
            ..Fake::default()
        };
        let err = run(&mut steps, MIGRATIONS).await.unwrap_err();
        assert!(err.is_validation(), "{err}");
        assert!(
            err.to_string().contains("migration 1 (one) was changed"),
            "{err}"
        );
        assert_eq!(steps.calls, ["peek", "lock"]);
    }

    #[tokio::test]
    async fn old_rows_are_verified_in_their_own_form_or_taken_as_applied() {
        for checksum in [
            None,
            Some("v1".to_owned()),
            Some(format!("{:0>64}", 1)),
            Some(MIGRATIONS[0].checksum()),
        ] {
            let mut steps = Fake {
                rows: vec![Applied {
                    version: 1,
                    checksum: checksum.clone(),
                }],
                ..Fake::default()
            };
            run(&mut steps, MIGRATIONS).await.unwrap();
            assert_eq!(
                steps.calls,
                ["peek", "lock", "apply 2", "commit"],
                "{checksum:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_before_anything_is_written() {
        for peeked in [false, true] {
            let mut steps = Fake {
                rows: vec![row(1, None), row(99, Some("y"))],
                peeked,
                ..Fake::default()
            };
            let err = run(&mut steps, MIGRATIONS).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "database schema version 99 is newer than this toast release supports (2); \
                 upgrade serde-toast"
            );
            assert!(!steps
                .calls
                .iter()
                .any(|c| c.starts_with("apply") || c == "commit"));
        }
    }
}
