//! How Redis failures become toast errors.

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use std::time::Duration;

use crate::error::Error;

/// What an error names of the backend it came from.
pub(super) struct Origin<'a> {
    /// The store's URL, redacted.
    pub(super) url: &'a str,
    /// `host:port`, for the hint.
    pub(super) host_port: &'a str,
    /// The bound of one operation.
    pub(super) bound: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
}

/// The server's error code (`NOAUTH`, `WRONGPASS`, …), also when it came
/// back inside a pipeline's error, which the driver only keeps as text.
fn server_code(e: &RedisError) -> Option<String> {
    if let Some(code) = e.code() {
        return Some(code.to_owned());
    }
    let text = e.to_string();
    ["NOAUTH", "WRONGPASS", "NOPERM"]
        .into_iter()
        .find(|code| text.contains(code))
        .map(str::to_owned)
}

/// Whether the error says the connection was dead (so a fresh one may work).
pub(super) fn is_dead_connection(e: &RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped()) && !e.is_timeout()
}

impl Origin<'_> {
    pub(super) fn deadline_error(&self, what: &str) -> Error {
        Error::connection(
            self.url,
            format!(
                "Redis {what} timed out after {:.1} s — is Redis running at {} and reachable? \
                 (raise ?timeout= or ?connect_timeout= in the URL if the server is just slow)",
                self.bound.as_secs_f64(),
                self.host_port
            ),
        )
    }

    pub(super) fn map_err(&self, what: &str, e: RedisError) -> Error {
        let hp = self.host_port;
        let code = server_code(&e);
        let kind = e.kind();
        if kind == ErrorKind::AuthenticationFailed || code.as_deref() == Some("WRONGPASS") {
            return Error::connection_with(
                self.url,
                format!(
                    "Redis at {hp} refused the credentials (authentication failed) — check the \
                     user name and password in the store URL (redis://USER:PASSWORD@host:port/ \
                     or redis://:PASSWORD@host:port/)"
                ),
                e,
            );
        }
        if code.as_deref() == Some("NOAUTH") {
            return Error::connection_with(
                self.url,
                format!(
                    "Redis at {hp} requires a password — put it in the store URL: \
                     redis://:PASSWORD@host:port/ (or redis://USER:PASSWORD@… for an ACL user)"
                ),
                e,
            );
        }
        if kind == ErrorKind::InvalidClientConfig {
            return Error::validation_with(
                format!("Redis {what}: invalid configuration in the store URL: {e}"),
                e,
            );
        }
        let unavailable = matches!(
            kind,
            ErrorKind::Server(
                ServerErrorKind::ClusterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
            )
        );
        if e.is_timeout() {
            return Error::connection_with(
                self.url,
                format!(
                    "Redis {what} timed out (connect_timeout {:.1} s, timeout {:.1} s) — is Redis \
                     running at {hp} and reachable?",
                    self.connect_timeout.as_secs_f64(),
                    self.response_timeout.as_secs_f64()
                ),
                e,
            );
        }
        if e.is_connection_refusal() {
            return Error::connection_with(
                self.url,
                format!("Redis {what} failed: connection refused — is Redis running at {hp}?"),
                e,
            );
        }
        if e.is_io_error() || e.is_connection_dropped() || unavailable {
            return Error::connection_with(
                self.url,
                format!("Redis {what} failed: {e} — is Redis running at {hp}?"),
                e,
            );
        }
        if code.as_deref() == Some("NOPERM") {
            return Error::backend_with(
                format!(
                    "Redis {what} failed: the Redis user lacks a permission ({e}); toast needs \
                     +@read +@write +@keyspace +@scripting on its key prefix"
                ),
                e,
            );
        }
        Error::backend_with(format!("Redis {what} failed: {e}"), e)
    }
}

/// A reply of a shape Redis never gives to the command.
pub(super) fn unexpected(what: &str, value: &Value) -> Error {
    Error::backend(format!("unexpected reply from Redis to {what}: {value:?}"))
}
