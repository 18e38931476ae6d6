//! Store URLs: parsing, validation, and redaction of the password.

use std::fmt;

use crate::error::{Error, Result};

/// A parsed store URL (`memory://`, `sqlite://PATH`, `postgres://…`, `redis://…`).
///
/// `Display` and `Debug` print the URL with its password replaced by `***`;
/// only [`ConnectUrl::dangerous_full_url`] gives the original back, for the
/// backend that has to connect with it.
///
/// # Examples
///
/// ```
/// let url = toast::ConnectUrl::parse("postgres://app:s3cret@db:5432/app").unwrap();
/// assert_eq!(url.scheme(), "postgres");
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/app");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectUrl {
    raw: String,
    parsed: url::Url,
    redacted: String,
}

impl ConnectUrl {
    /// Parses and checks a store URL.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when the text is not a URL with a scheme.
    pub fn parse(raw: &str) -> Result<Self> {
        let redacted = redact(raw);
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Error::validation(
                "empty store URL: expected something like sqlite://data.db, memory://, \
                 postgres://user@host/db or redis://host:6379/",
            ));
        }
        let parsed = url::Url::parse(raw).map_err(|e| {
            Error::validation(format!(
                "malformed store URL '{redacted}': {e} (expected scheme://…, \
                 e.g. sqlite://data.db)"
            ))
        })?;
        if !raw.contains("://") {
            return Err(Error::validation(format!(
                "malformed store URL '{redacted}': expected '{}://…'",
                parsed.scheme()
            )));
        }
        let secret_param = parsed.query_pairs().any(|(k, _)| is_secret_param(&k));
        let redacted = if parsed.password().is_some() || secret_param {
            let mut shown = parsed.clone();
            if shown.password().is_some() {
                // Setting a password only fails for URLs that cannot have one,
                // and this one has one.
                let _ = shown.set_password(Some("***"));
            }
            if secret_param {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_param(&k) {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                shown.query_pairs_mut().clear().extend_pairs(pairs);
            }
            shown.to_string()
        } else {
            redacted
        };
        Ok(ConnectUrl {
            raw: raw.to_owned(),
            parsed,
            redacted,
        })
    }

    /// The scheme, lower-case (`sqlite`, `postgres`, …).
    pub fn scheme(&self) -> &str {
        self.parsed.scheme()
    }

    /// The URL as text with the password replaced by `***`: safe for errors and logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The parsed URL. It still holds the password: never log it.
    pub fn dangerous_url(&self) -> &url::Url {
        &self.parsed
    }

    /// The original text, password included: for connecting, never for logging.
    pub fn dangerous_full_url(&self) -> &str {
        &self.raw
    }

    /// The part after `scheme://` and before `?`, as written (for `sqlite://PATH`).
    pub fn opaque_path(&self) -> &str {
        let rest = self
            .raw
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        rest.split(['?', '#']).next().unwrap_or_default()
    }

    /// The value of one query parameter (`?pool=8`), percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A query parameter parsed as a number, with a clear error when it is not one.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the parameter when the value does not parse.
    pub fn query_number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.query_param(name) {
            None => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| {
                Error::validation(format!(
                    "store URL '{}': query parameter {name}={v} is not a valid number",
                    self.redacted
                ))
            }),
        }
    }
}

impl fmt::Display for ConnectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for ConnectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectUrl").field(&self.redacted).finish()
    }
}

/// Query parameters whose value is a secret (`?password=…`, as sqlx accepts).
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "pwd", "secret", "token"]
        .iter()
        .any(|s| name.contains(s))
}

/// Redacts the password of a URL given as text, even a malformed one:
/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn redact(raw: &str) -> String {
    let shown = redact_userinfo(raw);
    // Mask `?password=…`-style parameters too, even in text that does not parse.
    let Some((head, query)) = shown.split_once('?') else {
        return shown;
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", masked.join("&"))
}

fn redact_userinfo(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    // The authority ends at the first '/', '?' or '#'; userinfo ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return raw.to_owned();
    };
    let userinfo = &authority[..at];
    let shown_userinfo = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{shown_userinfo}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_even_in_malformed_urls() {
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("x:// u:p w@h"), "x:// u:***@h");
        assert_eq!(redact("p://[h?password=pw&a=1"), "p://[h?password=***&a=1");
    }

    #[test]
    fn parse_errors_never_show_the_password() {
        let err = ConnectUrl::parse("postgres://u:hunter2@[bad/db").unwrap_err();
        assert!(err.is_validation());
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn password_query_parameters_are_redacted() {
        let u =
            ConnectUrl::parse("postgres://h/db?user=app&password=hunter2&sslmode=require").unwrap();
        assert!(!u.to_string().contains("hunter2"), "{u}");
        assert!(u.to_string().contains("password=***"), "{u}");
        assert!(u.to_string().contains("sslmode=require"), "{u}");
        assert!(!format!("{u:?}").contains("hunter2"));
        assert_eq!(u.query_param("password").as_deref(), Some("hunter2"));
    }

    #[test]
    fn opaque_path_and_query() {
        let u = ConnectUrl::parse("sqlite://./data/x.db?pool=3").unwrap();
        assert_eq!(u.opaque_path(), "./data/x.db");
        assert_eq!(u.query_number::<u32>("pool").unwrap(), Some(3));
        assert!(u.query_number::<u32>("missing").unwrap().is_none());
        let bad = ConnectUrl::parse("sqlite://x.db?pool=many").unwrap();
        assert!(bad.query_number::<u32>("pool").unwrap_err().is_validation());
    }
}
