//! How PostgreSQL failures become toast errors: what the messages need
//! to know about the server and the pool, and the mapping of driver errors.

use std::time::Duration;

use crate::error::Error;

/// What error messages need: where the server is and how the pool is set up.
#[derive(Debug)]
pub(super) struct Diagnostics {
    /// The URL, redacted.
    pub(super) url: String,
    pub(super) endpoint: String,
    pub(super) database: String,
    pub(super) username: String,
    pub(super) pool_max: u32,
    pub(super) acquire_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
}

impl Diagnostics {
    /// A statement that got no answer within `statement_timeout`.
    pub(super) fn timed_out(&self, operation: &str) -> Error {
        Error::connection(
            &self.url,
            format!(
                "postgres {operation}: no answer within {:?} (statement_timeout) — is \
                 PostgreSQL at {} still reachable? The connection was closed; raise \
                 statement_timeout if the statement is only slow",
                self.statement_timeout, self.endpoint
            ),
        )
    }

    /// Maps a driver error: unreachable, refused, shut down or exhausted →
    /// [`Error::Connection`] with a hint; bad input → [`Error::Validation`];
    /// anything else → [`Error::Backend`] with the driver's error as source.
    pub(super) fn error(&self, operation: &str, e: sqlx::Error) -> Error {
        let endpoint = &self.endpoint;
        let running = format!("is PostgreSQL running at {endpoint}?");
        let connection = |message: String, e: sqlx::Error| {
            Error::connection_with(&self.url, format!("postgres {operation}: {message}"), e)
        };
        match &e {
            sqlx::Error::Io(io) => {
                let cause = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof => format!("connection lost ({io})"),
                    std::io::ErrorKind::TimedOut => format!("timed out ({io})"),
                    _ => format!("cannot reach the server ({io})"),
                };
                connection(format!("{cause} — {running}"), e)
            }
            sqlx::Error::Tls(tls) => connection(
                format!(
                    "TLS failed ({tls}) — check sslmode (disable, prefer, require, verify-ca, \
                     verify-full) and sslrootcert, and that the server at {endpoint} has TLS on"
                ),
                e,
            ),
            sqlx::Error::PoolTimedOut => connection(
                format!(
                    "no connection within {:?} (acquire_timeout) — {running} If it is, all \
                     {} connections (pool_max) are busy: raise pool_max or acquire_timeout",
                    self.acquire_timeout, self.pool_max
                ),
                e,
            ),
            sqlx::Error::PoolClosed => connection(
                "the store was closed (Store::close); connect a new one".to_owned(),
                e,
            ),
            sqlx::Error::WorkerCrashed => {
                connection(format!("the connection worker crashed — {running}"), e)
            }
            sqlx::Error::Configuration(cause) => {
                Error::validation(format!("store URL '{}': {cause}", self.url))
            }
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = db.message().to_owned();
                match code.as_str() {
                    "28P01" | "28000" => connection(
                        format!(
                            "authentication failed for user '{}' ({message}) — check the user \
                             name and password in the URL, and pg_hba.conf on the server",
                            self.username
                        ),
                        e,
                    ),
                    "3D000" => connection(
                        format!(
                            "database '{}' does not exist ({message}) — create it \
                             (CREATE DATABASE) or fix the URL",
                            self.database
                        ),
                        e,
                    ),
                    "53300" => connection(
                        format!(
                            "the server has too many connections ({message}) — lower pool_max \
                             or raise max_connections on the server"
                        ),
                        e,
                    ),
                    "57014" => connection(
                        format!(
                            "the server cancelled the statement ({message}) — it ran over \
                             statement_timeout ({:?}); raise statement_timeout if it is only slow",
                            self.statement_timeout
                        ),
                        e,
                    ),
                    c if c.starts_with("08") || c.starts_with("57P") => connection(
                        format!("the server closed the connection ({message}) — {running}"),
                        e,
                    ),
                    "22P05" => Error::validation_with(
                        format!(
                            "postgres {operation}: a value holds a character PostgreSQL cannot \
                             store ({message}); JSONB cannot hold \\u0000"
                        ),
                        e,
                    ),
                    "3F000" | "42P01" => Error::backend_with(
                        format!(
                            "postgres {operation}: {message} — the toast tables are missing \
                             (was the schema changed by hand?); drop the whole schema and \
                             connect again to re-create it"
                        ),
                        e,
                    ),
                    _ => Error::backend_with(
                        format!("postgres {operation} failed: {message} (SQLSTATE {code})"),
                        e,
                    ),
                }
            }
            _ => Error::backend_with(format!("postgres {operation} failed: {e}"), e),
        }
    }
}
