//! The options of a `redis://` URL: toast's own, and the driver's.

use std::time::Duration;

use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT};
use crate::backend::support::Known;
use crate::error::Result;
use crate::url::ConnectUrl;

/// The options Redis takes: toast's own (not passed to the driver), and the
/// driver's.
pub(super) static OPTIONS: Known = Known {
    backend: "Redis",
    own: &["prefix", "ttl", "timeout", "connect_timeout"],
    driver: &["protocol"],
    driver_families: &[],
};

/// The options toast reads from the URL, and the URL for the driver.
pub(super) struct Options {
    pub(super) prefix: String,
    pub(super) ttl: Option<Duration>,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    /// The URL without toast's options. It holds the password: never show it.
    pub(super) dangerous_driver_url: String,
}

pub(super) fn parse_options(url: &ConnectUrl) -> Result<Options> {
    let options = OPTIONS.check(url)?;
    let prefix = options
        .get("prefix")
        .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !prefix_ok {
        return Err(options.invalid(format!(
            "prefix '{prefix}' must be 1 to 64 characters from A-Z a-z 0-9 _ - ."
        )));
    }
    Ok(Options {
        prefix,
        // 0 means none.
        ttl: options.seconds("ttl")?.filter(|d| !d.is_zero()),
        connect_timeout: options
            .positive_seconds("connect_timeout")?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        response_timeout: options
            .positive_seconds("timeout")?
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
        dangerous_driver_url: options.dangerous_driver_url().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver_url(url: &ConnectUrl) -> String {
        parse_options(url).unwrap().dangerous_driver_url
    }

    #[test]
    fn driver_url_drops_toast_options_only() {
        let u =
            ConnectUrl::parse("redis://:pw@h:1/2?prefix=p&ttl=3&protocol=resp3&timeout=1").unwrap();
        assert_eq!(driver_url(&u), "redis://:pw@h:1/2?protocol=resp3");
        let u = ConnectUrl::parse("redis://h:1/?prefix=p").unwrap();
        assert_eq!(driver_url(&u), "redis://h:1/");
    }

    #[test]
    fn options_are_checked() {
        let bad = [
            "redis://h/?prefix=a:b",
            "redis://h/?prefix=",
            "redis://h/?ttl=-1",
            "redis://h/?ttl=soon",
            "redis://h/?timeout=0",
            "redis://h/?connect_timeout=nan",
            "redis://h/?tll=5",
        ];
        for raw in bad {
            let err = parse_options(&ConnectUrl::parse(raw).unwrap())
                .err()
                .unwrap_or_else(|| panic!("{raw} accepted"));
            assert!(err.is_validation(), "{raw}: {err}");
        }
        let ok = parse_options(
            &ConnectUrl::parse("redis://h/?prefix=app.v1&ttl=60&timeout=0.5").unwrap(),
        )
        .unwrap();
        assert_eq!(ok.prefix, "app.v1");
        assert_eq!(ok.ttl, Some(Duration::from_secs(60)));
        assert_eq!(ok.response_timeout, Duration::from_millis(500));
        assert_eq!(ok.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }
}
