//! The one option checker: every backend declares the query options it
//! knows, and any other is refused naming it and listing the known ones.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::url::ConnectUrl;

/// The most seconds a timeout or a TTL may be (100 years): far beyond any
/// use, and small enough that adding two of them never overflows.
pub(crate) const MAX_SECONDS: f64 = 3_153_600_000.0;

/// The query options one backend knows.
#[derive(Debug)]
pub(crate) struct Known {
    /// The backend, as the errors name it (`SQLite`, `PostgreSQL`, …).
    pub(crate) backend: &'static str,
    /// Options toast reads itself; they never reach the driver.
    pub(crate) own: &'static [&'static str],
    /// Options passed on to the driver as they are.
    pub(crate) driver: &'static [&'static str],
    /// Families of driver options, by prefix and suffix (`options[NAME]`).
    pub(crate) driver_families: &'static [(&'static str, &'static str)],
}

impl Known {
    /// Checks every query option of `url` against the known ones.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the first unknown option and listing
    /// the known ones.
    pub(crate) fn check<'u>(&'static self, url: &'u ConnectUrl) -> Result<Options<'u>> {
        for (name, _) in url.dangerous_url().query_pairs() {
            if !self.own.contains(&&*name) && !self.is_driver(&name) {
                // A URL whose redaction hides its authority may hold a piece
                // of its password anywhere, the option names included.
                let name = if url.hides_authority() {
                    "(hidden with the password)".into()
                } else {
                    format!("'{name}'")
                };
                return Err(Error::validation(format!(
                    "store URL '{url}': unknown option {name}; {} options: {}{}",
                    self.backend,
                    list(self.own),
                    self.driver_list()
                )));
            }
        }
        Ok(Options { url, known: self })
    }

    fn is_driver(&self, name: &str) -> bool {
        self.driver.contains(&name)
            || self.driver_families.iter().any(|(prefix, suffix)| {
                name.len() > prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            })
    }

    fn driver_list(&self) -> String {
        if self.driver.is_empty() && self.driver_families.is_empty() {
            return String::new();
        }
        let families = self
            .driver_families
            .iter()
            .map(|(prefix, suffix)| format!("{prefix}NAME{suffix}"));
        let all: Vec<String> = self
            .driver
            .iter()
            .map(|s| (*s).to_owned())
            .chain(families)
            .collect();
        format!("; driver options: {}", all.join(", "))
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// The options of a checked URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options<'u> {
    url: &'u ConnectUrl,
    #[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
    known: &'static Known,
}

impl<'u> Options<'u> {
    /// A [`Error::Validation`] about this URL: `store URL '…': {message}`.
    pub(crate) fn invalid(&self, message: impl std::fmt::Display) -> Error {
        Error::validation(format!("store URL '{}': {message}", self.url))
    }

    /// The value of one option, percent-decoded.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.url.query_param(name)
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    /// A whole number of at least `min`, `what` saying what it counts.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the option when it is not one.
    pub(crate) fn whole(&self, name: &str, min: u64, what: &str) -> Result<Option<u64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.trim().parse::<u64>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(self.invalid(format!(
                "{name}={v} is not a whole number of {what} ≥ {min}"
            ))),
        }
    }

    /// A number of seconds (the one rule for every timeout and TTL):
    /// decimals allowed (`0.5`), at least 0 and at most [`MAX_SECONDS`].
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the option for junk, a negative or
    /// non-finite number, or one too big.
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<Duration>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        parse_seconds(&v)
            .map(Some)
            .map_err(|why| self.invalid(format!("{name}={v} {why}")))
    }

    #[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
    /// [`Options::seconds`], above 0.
    ///
    /// # Errors
    ///
    /// As [`Options::seconds`], and for 0.
    pub(crate) fn positive_seconds(&self, name: &str) -> Result<Option<Duration>> {
        match self.seconds(name)? {
            Some(d) if d.is_zero() => Err(self.invalid(format!(
                "{name}={} must be a number of seconds above 0",
                self.get(name).unwrap_or_default()
            ))),
            other => Ok(other),
        }
    }

    #[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
    /// The driver's options, in their order (toast's own left out).
    pub(crate) fn driver_pairs(&self) -> Vec<(String, String)> {
        self.url
            .dangerous_url()
            .query_pairs()
            .filter(|(k, _)| !self.known.own.contains(&&**k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
    /// The URL for the driver: toast's own options removed. It still holds
    /// the password: never show it.
    pub(crate) fn dangerous_driver_url(&self) -> url::Url {
        let mut driver = self.url.dangerous_url().clone();
        let pairs = self.driver_pairs();
        if pairs.is_empty() {
            driver.set_query(None);
        } else {
            driver.query_pairs_mut().clear().extend_pairs(pairs);
        }
        driver
    }
}

/// Seconds as text → a duration, or why not.
fn parse_seconds(text: &str) -> std::result::Result<Duration, &'static str> {
    let s: f64 = text
        .trim()
        .parse()
        .map_err(|_| "is not a number of seconds (decimals allowed, e.g. 2.5)")?;
    if !s.is_finite() {
        return Err("is not a finite number of seconds");
    }
    if s < 0.0 {
        return Err("must not be negative");
    }
    if s > MAX_SECONDS {
        return Err("is more seconds than toast accepts (at most 3153600000, 100 years)");
    }
    Duration::try_from_secs_f64(s).map_err(|_| "is out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    static KNOWN: Known = Known {
        backend: "Test",
        own: &["pool_max", "timeout"],
        driver: &["sslmode"],
        driver_families: &[("options[", "]")],
    };

    fn url(text: &str) -> ConnectUrl {
        ConnectUrl::parse(text).unwrap()
    }

    #[test]
    fn unknown_options_are_refused_listing_the_known_ones() {
        let u = url("x://h/?pool_mx=3&password=hunter2");
        let err = KNOWN.check(&u).unwrap_err();
        assert!(err.is_validation());
        let text = err.to_string();
        assert!(text.contains("unknown option 'pool_mx'"), "{text}");
        assert!(text.contains("pool_max, timeout"), "{text}");
        assert!(text.contains("sslmode, options[NAME]"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        for ok in ["x://h/?pool_max=1&sslmode=x&options[a]=b", "x://h/"] {
            assert!(KNOWN.check(&url(ok)).is_ok(), "{ok}");
        }
        assert!(KNOWN.check(&url("x://h/?options[]=b")).is_err());
    }

    #[test]
    fn seconds_follow_one_rule() {
        let u = url("x://h/?timeout=0.25");
        let o = KNOWN.check(&u).unwrap();
        assert_eq!(
            o.seconds("timeout").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(o.seconds("pool_max").unwrap(), None);
        for bad in ["-1", "soon", "NaN", "inf", "1e300", ""] {
            let u = url(&format!("x://h/?timeout={bad}"));
            let err = KNOWN.check(&u).unwrap().seconds("timeout").unwrap_err();
            assert!(
                err.is_validation() && err.to_string().contains("timeout="),
                "{bad}: {err}"
            );
        }
        let u = url("x://h/?timeout=0");
        let o = KNOWN.check(&u).unwrap();
        assert_eq!(o.seconds("timeout").unwrap(), Some(Duration::ZERO));
        assert!(o.positive_seconds("timeout").unwrap_err().is_validation());
    }

    #[test]
    fn whole_numbers_and_the_driver_url() {
        let u = url("x://u:pw@h/?pool_max=3&sslmode=require");
        let o = KNOWN.check(&u).unwrap();
        assert_eq!(o.whole("pool_max", 1, "connections").unwrap(), Some(3));
        assert_eq!(
            o.dangerous_driver_url().as_str(),
            "x://u:pw@h/?sslmode=require"
        );
        let u = url("x://h/?pool_max=0");
        let err = KNOWN.check(&u).unwrap().whole("pool_max", 1, "connections");
        assert!(err.unwrap_err().to_string().contains("pool_max=0"));
    }
}
