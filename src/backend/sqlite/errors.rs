//! How SQLite's errors become toast's.

use crate::error::Error;

/// Maps a driver error met while trying to `what` on the file at `path`:
/// the file or the pool unreachable, or the write lock held past the busy
/// timeout → [`Error::Connection`]; anything else → [`Error::Backend`].
pub(super) fn db_error(path: &str, what: &str, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            Error::connection_with(
                format!("sqlite://{}", path),
                format!("cannot {what}: {e} — is the database file still reachable?"),
                e,
            )
        }
        sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Error::connection_with(
            format!("sqlite://{}", path),
            format!(
                "cannot {what}: the database stayed locked longer than busy_timeout \
                 ({db}) — another connection or process holds its write lock; raise \
                 busy_timeout if that is expected"
            ),
            sqlx::Error::Database(db),
        ),
        other => Error::backend_with(format!("SQLite: cannot {what}: {other}"), other),
    }
}

/// Whether an SQLite result code (extended or not) is `SQLITE_BUSY` or
/// `SQLITE_LOCKED`: the lock stayed taken past the busy timeout.
pub(super) fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}
