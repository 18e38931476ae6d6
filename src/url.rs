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
/// let url = toast::backend::ConnectUrl::parse("postgres://app:s3cret@db:5432/app").unwrap();
/// assert_eq!(url.scheme(), "postgres");
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/app");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectUrl {
    raw: String,
    parsed: url::Url,
    redacted: String,
    hides_authority: bool,
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
        // An '@' after the authority is most likely the end of a password
        // holding an unencoded '/', '?' or '#' (`postgres://app:55/pw@db/x`
        // parses with host `app` and path `/pw@db/x`): shown as text that
        // does not parse, with everything up to the last '@' hidden.
        let hides_authority = stray_at(&parsed);
        let redacted = if hides_authority {
            redacted
        } else {
            redact_parsed(&parsed)
        };
        Ok(ConnectUrl {
            raw: raw.to_owned(),
            parsed,
            redacted,
            hides_authority,
        })
    }

    /// Whether [`ConnectUrl::redacted`] hides everything between `://` and
    /// the last `@` (a URL whose password seems to hold an unencoded `/`,
    /// `?` or `#`): then the host, port, user and path parsed from it may
    /// hold pieces of the password and must not be shown either.
    pub(crate) fn hides_authority(&self) -> bool {
        self.hides_authority
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

/// Whether a query option's value is a secret: its name contains (in any
/// case) `password`, `passwd`, `pwd`, `secret`, `token` or `key`. The one
/// redaction rule of toast: such values, and the URL's password, are shown
/// as `***`.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "pwd", "secret", "token", "key"]
        .iter()
        .any(|s| name.contains(s))
}

/// Whether the path, query or fragment of a parsed URL holds an `@`.
fn stray_at(parsed: &url::Url) -> bool {
    parsed.path().contains('@')
        || parsed.query().is_some_and(|q| q.contains('@'))
        || parsed.fragment().is_some_and(|f| f.contains('@'))
}

/// A parsed URL with its password and its secret query options as `***`.
fn redact_parsed(parsed: &url::Url) -> String {
    let secret_param = parsed.query_pairs().any(|(k, _)| is_secret_param(&k));
    if parsed.password().is_none() && !secret_param {
        return parsed.to_string();
    }
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
}

/// Redacts a URL given as text, even a malformed one: the password
/// (`scheme://user:secret@host` → `scheme://user:***@host`; when what
/// precedes the last `@` holds a `/`, `?` or `#`, all of it:
/// `redis://:pw#1@host/` → `redis://***@host/`) and the value of every
/// secret query option (`?password=…`, `?api_key=…`, …).
pub fn redact(raw: &str) -> String {
    let (head, tail) = redact_userinfo(raw);
    format!("{head}{}", mask_pairs(tail))
}

/// The text up to and including the redacted user part, and the rest.
fn redact_userinfo(raw: &str) -> (String, &str) {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return (String::new(), raw);
    };
    let Some(at) = rest.rfind('@') else {
        return (format!("{scheme}://"), rest);
    };
    let userinfo = &rest[..at];
    let shown = if userinfo.contains(['/', '?', '#']) {
        "***".to_owned()
    } else {
        match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***"),
            None => userinfo.to_owned(),
        }
    };
    (format!("{scheme}://{shown}"), &rest[at..])
}

/// `name=value` pieces of `text` (between `?`, `&`, `;` and `#`) with a
/// secret name get `***` for their value.
fn mask_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let end = rest.find(['?', '&', ';', '#']).unwrap_or(rest.len());
        let piece = &rest[..end];
        match piece.split_once('=') {
            Some((k, _)) if is_secret_param(k) => {
                out.push_str(k);
                out.push_str("=***");
            }
            _ => out.push_str(piece),
        }
        let Some(delimiter) = rest[end..].chars().next() else {
            return out;
        };
        out.push(delimiter);
        rest = &rest[end + delimiter.len_utf8()..];
    }
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

    #[test]
    fn every_secret_looking_option_is_redacted() {
        let u = ConnectUrl::parse(
            "postgres://u:pw1@h/db?sslpassword=pw2&API_Key=pw3&token=pw4&client_secret=pw5\
             &passwd=pw6&pwd=pw7&sslmode=require",
        )
        .unwrap();
        for shown in [u.to_string(), format!("{u:?}")] {
            for n in 1..=7 {
                assert!(!shown.contains(&format!("pw{n}")), "{shown}");
            }
            assert!(shown.contains("sslmode=require"), "{shown}");
            assert!(shown.contains("API_Key=***"), "{shown}");
        }
        assert!(!u.hides_authority());
    }

    #[test]
    fn a_password_with_unencoded_delimiters_is_hidden_up_to_the_last_at() {
        for (raw, shown) in [
            ("redis://:hunter#2secret@host/", "redis://***@host/"),
            ("rediss://u:a/b?c@host:1/0", "rediss://***@host:1/0"),
            (
                "postgres://app:5555/Secret9@host/db",
                "postgres://***@host/db",
            ),
            (
                "postgresql://app:5555?Secret9@host/db",
                "postgresql://***@host/db",
            ),
            ("sqlite://u:x/Secret9@file.db", "sqlite://***@file.db"),
            ("memory://u:5/Secret9@name", "memory://***@name"),
            (
                "postgres://u:1/Secret9@h/db?password=Secret9&a=1",
                "postgres://***@h/db?password=***&a=1",
            ),
        ] {
            assert_eq!(redact(raw), shown, "{raw}");
            match ConnectUrl::parse(raw) {
                Ok(u) => {
                    assert_eq!(u.redacted(), shown, "{raw}");
                    assert!(u.hides_authority(), "{raw}");
                    assert!(!format!("{u:?}").contains("Secret9"), "{raw}");
                }
                Err(e) => {
                    let text = format!("{e} {e:?}");
                    assert!(text.contains(shown), "{raw}: {text}");
                    assert!(
                        !text.contains("Secret9") && !text.contains("2secret"),
                        "{text}"
                    );
                }
            }
        }
    }
}
