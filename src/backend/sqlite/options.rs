//! The options of a `sqlite://` URL.

use std::time::Duration;

use crate::backend::support::Known;
use crate::error::{Error, Result};
use crate::url::ConnectUrl;

/// The query options SQLite takes (all of them toast's own).
pub(super) static OPTIONS: Known = Known {
    backend: "SQLite",
    own: &["pool_max", "busy_timeout"],
    driver: &[],
    driver_families: &[],
};

/// Connections in the pool unless `?pool_max=` says otherwise.
const DEFAULT_POOL_MAX: u64 = 4;

/// How long a writer waits for the write lock unless `?busy_timeout=` says otherwise.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a `sqlite://` URL asks for.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) path: String,
    pub(super) pool_max: u32,
    pub(super) busy_timeout: Duration,
}

impl Settings {
    pub(super) fn from_url(url: &ConnectUrl) -> Result<Settings> {
        let options = OPTIONS.check(url)?;
        let path = url.opaque_path();
        if path.is_empty() {
            return Err(Error::validation(format!(
                "store URL '{url}' has no path: use sqlite://data.db (relative) or \
                 sqlite:///var/lib/app.db (absolute)"
            )));
        }
        let parsed = url.dangerous_url();
        if parsed.password().is_some() || parsed.port().is_some() {
            // The path would show the password in errors and `Debug`.
            return Err(options.invalid(
                "sqlite://PATH takes no user name, password or port (is this URL meant \
                 for another backend?)",
            ));
        }
        let pool_max = options
            .whole("pool_max", 1, "connections")?
            .unwrap_or(DEFAULT_POOL_MAX);
        Ok(Settings {
            path: path.to_owned(),
            pool_max: u32::try_from(pool_max).unwrap_or(u32::MAX),
            busy_timeout: options
                .seconds("busy_timeout")?
                .unwrap_or(DEFAULT_BUSY_TIMEOUT),
        })
    }

    /// How long an operation waits for a free connection: a writer's wait
    /// for the lock, and some more.
    pub(super) fn acquire_timeout(&self) -> Duration {
        self.busy_timeout.max(Duration::from_secs(1)) + Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<Settings> {
        Settings::from_url(&ConnectUrl::parse(url)?)
    }

    #[test]
    fn options_are_checked() {
        let s = settings("sqlite://a.db?pool_max=2&busy_timeout=0.5").unwrap();
        assert_eq!((s.path.as_str(), s.pool_max), ("a.db", 2));
        assert_eq!(s.busy_timeout, Duration::from_millis(500));
        let d = settings("sqlite://a.db").unwrap();
        assert_eq!((d.pool_max, d.busy_timeout), (4, Duration::from_secs(5)));
        for bad in [
            "sqlite://a.db?pool_mx=2",
            "sqlite://a.db?pool_max=0",
            "sqlite://a.db?pool_max=lots",
            "sqlite://a.db?busy_timeout=-1",
            "sqlite://a.db?busy_timeout=soon",
            "sqlite://",
            "sqlite://u:pw@a.db",
            "sqlite://u:5/pw@a.db",
        ] {
            let err = settings(bad).unwrap_err();
            assert!(err.is_validation(), "{bad}: {err}");
        }
        let err = settings("sqlite://a.db?pool_mx=2").unwrap_err().to_string();
        assert!(err.contains("unknown option 'pool_mx'"), "{err}");
        assert!(err.contains("pool_max, busy_timeout"), "{err}");
    }
}
