//! The options of a `postgres://` URL: toast's own, and the driver's.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

use super::errors::Diagnostics;
use super::{DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_POOL_MAX, DEFAULT_SCHEMA, DEFAULT_STATEMENT_TIMEOUT};
use crate::backend::support::Known;
use crate::error::{Error, Result};
use crate::url::ConnectUrl;

/// The options PostgreSQL takes: toast's own (removed before the URL
/// reaches sqlx), and sqlx's (`options[NAME]` too).
pub(super) static OPTIONS: Known = Known {
    backend: "PostgreSQL",
    own: &[
        "pool_max",
        "acquire_timeout",
        "connect_timeout",
        "statement_timeout",
        "schema",
    ],
    driver: &[
        "sslmode",
        "ssl-mode",
        "sslrootcert",
        "ssl-root-cert",
        "ssl-ca",
        "sslcert",
        "ssl-cert",
        "sslkey",
        "ssl-key",
        "statement-cache-capacity",
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "application_name",
        "options",
    ],
    driver_families: &[("options[", "]")],
};

/// The settings a URL gives.
pub(super) struct Settings {
    pub(super) connect: PgConnectOptions,
    pub(super) redacted: String,
    /// Whether the URL's redaction hides its whole authority (see
    /// [`ConnectUrl::hides_authority`]): then host, user and database are
    /// not shown either.
    pub(super) hides_authority: bool,
    pub(super) schema: String,
    pub(super) pool_max: u32,
    pub(super) acquire_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
}

impl Settings {
    pub(super) fn from_url(url: &ConnectUrl) -> Result<Settings> {
        let options = OPTIONS.check(url)?;
        let redacted = url.redacted().to_owned();
        let pool_max = options
            .whole("pool_max", 1, "connections")?
            .map_or(DEFAULT_POOL_MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let acquire_timeout = options
            .positive_seconds("acquire_timeout")?
            .unwrap_or(DEFAULT_ACQUIRE_TIMEOUT);
        let connect_timeout = options
            .positive_seconds("connect_timeout")?
            .unwrap_or(acquire_timeout);
        let statement_timeout = options
            .positive_seconds("statement_timeout")?
            .unwrap_or(DEFAULT_STATEMENT_TIMEOUT);
        let schema = options
            .get("schema")
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        if !is_identifier(&schema) {
            return Err(options.invalid(format!(
                "schema={schema:?} is not a valid schema name (letters, digits and '_', \
                 not starting with a digit, at most 63 characters)"
            )));
        }

        let mut connect = PgConnectOptions::from_url(&options.dangerous_driver_url())
            .map_err(|e| Error::validation_with(format!("store URL '{redacted}': {e}"), e))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("serde-toast");
        }
        // The server cancels a statement that runs over the bound, too.
        let millis = statement_timeout.as_millis().max(1);
        connect = connect.options([("statement_timeout", format!("{millis}ms"))]);
        Ok(Settings {
            connect,
            redacted,
            hides_authority: url.hides_authority(),
            schema,
            pool_max,
            acquire_timeout,
            connect_timeout,
            statement_timeout,
        })
    }

    pub(super) fn diagnostics(&self) -> Diagnostics {
        let endpoint = match self.connect.get_socket() {
            Some(dir) => format!("{} (Unix socket)", dir.display()),
            None => {
                let host = self.connect.get_host();
                if host.contains(':') {
                    format!("[{host}]:{}", self.connect.get_port())
                } else {
                    format!("{host}:{}", self.connect.get_port())
                }
            }
        };
        let mut diag = Diagnostics {
            url: self.redacted.clone(),
            endpoint,
            database: self
                .connect
                .get_database()
                .unwrap_or(self.connect.get_username())
                .to_owned(),
            username: self.connect.get_username().to_owned(),
            pool_max: self.pool_max,
            acquire_timeout: self.acquire_timeout,
            connect_timeout: self.connect_timeout,
            statement_timeout: self.statement_timeout,
        };
        if self.hides_authority {
            // Host, port, user and database were parsed out of text that
            // seems to hold the password: none of them is shown.
            let hidden = "the server named in the URL (percent-encode '/', '?' and '#' in \
                          its password)";
            diag.endpoint = hidden.to_owned();
            diag.database = "***".to_owned();
            diag.username = "***".to_owned();
        }
        diag
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,62}$`
pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A validated identifier, double-quoted (it cannot contain a quote).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("toast"));
        assert!(is_identifier("_x9"));
        assert!(is_identifier(&"a".repeat(63)));
        assert!(!is_identifier(&"a".repeat(64)));
        assert!(!is_identifier(""));
        assert!(!is_identifier("9a"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("a\"b"));
        assert!(!is_identifier("tóast"));
    }

    fn settings(url: &str) -> Result<Settings> {
        Settings::from_url(&ConnectUrl::parse(url)?)
    }

    #[test]
    fn options_are_parsed_and_stripped() {
        let s = settings(
            "postgres://u:pw@h:6543/db?pool_max=3&acquire_timeout=0.5&schema=app_toast&sslmode=disable",
        )
        .unwrap();
        assert_eq!(s.pool_max, 3);
        assert_eq!(s.acquire_timeout, Duration::from_millis(500));
        assert_eq!(s.connect_timeout, Duration::from_millis(500));
        assert_eq!(s.statement_timeout, DEFAULT_STATEMENT_TIMEOUT);
        let t = settings("postgres://u@h/db?statement_timeout=1.5").unwrap();
        assert_eq!(t.statement_timeout, Duration::from_millis(1500));
        assert!(settings("postgres://u@h/db?statement_timeout=0").is_err());
        assert_eq!(s.schema, "app_toast");
        assert_eq!(s.connect.get_port(), 6543);
        assert_eq!(s.connect.get_database(), Some("db"));
        assert!(matches!(
            s.connect.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Disable
        ));
        assert_eq!(s.connect.get_application_name(), Some("serde-toast"));
        let d = settings("postgresql://u@h/db").unwrap();
        assert_eq!(d.pool_max, DEFAULT_POOL_MAX);
        assert_eq!(d.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
        assert_eq!(d.schema, DEFAULT_SCHEMA);
        assert_eq!(d.diagnostics().endpoint, "h:5432");
    }

    #[test]
    fn bad_options_are_validation_errors_without_the_password() {
        for url in [
            "postgres://u:hunter2@h/db?pool_max=0",
            "postgres://u:hunter2@h/db?pool_max=many",
            "postgres://u:hunter2@h/db?acquire_timeout=-1",
            "postgres://u:hunter2@h/db?connect_timeout=NaN",
            "postgres://u:hunter2@h/db?schema=x;drop",
            "postgres://u:hunter2@h/db?schema=",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
            "postgres://u:hunter2@h/db?pool_size=3",
            "postgres://u@h/db?password=hunter2&pool_size=3",
        ] {
            let err = settings(url).err().unwrap();
            assert!(err.is_validation(), "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }

    #[test]
    fn redaction_covers_the_query_password() {
        let url = ConnectUrl::parse("postgres://u:a@h/db?password=b&x=1").unwrap();
        let shown = url.redacted();
        assert_eq!(shown, "postgres://u:***@h/db?password=***&x=1");
    }
}
