//! The one place tenant and class names are escaped for PostgreSQL `text`,
//! which cannot hold NUL: `\0` → `\u{1}0`, `\u{1}` → `\u{1}1`, everything
//! else as it is. Injective, so distinct names never collide.

use std::borrow::Cow;

#[cfg(test)]
use crate::error::{Error, Result};

const ESCAPE: char = '\u{1}';

/// The stored form of a name.
pub(super) fn encode(name: &str) -> Cow<'_, str> {
    if !name.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '\0' => {
                out.push(ESCAPE);
                out.push('0');
            }
            ESCAPE => {
                out.push(ESCAPE);
                out.push('1');
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The name a stored form stands for (loads reuse the caller's keys, so
/// only the tests read names back).
#[cfg(test)]
pub(super) fn decode(stored: &str) -> Result<Cow<'_, str>> {
    if !stored.contains(ESCAPE) {
        return Ok(Cow::Borrowed(stored));
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some('1') => out.push(ESCAPE),
            _ => {
                return Err(Error::validation(format!(
                    "stored name {stored:?} is corrupted: a U+0001 escape must be \
                     followed by '0' or '1'"
                )))
            }
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_collides() {
        let names = [
            "",
            "plain",
            "\0",
            "\u{1}",
            "\u{1}0",
            "\u{1}1",
            "a\0b",
            "a\u{1}0b",
            "\0\0",
            "\u{1}\0",
            "\0\u{1}",
            "x'; DROP TABLE records; --",
        ];
        let mut stored = std::collections::HashSet::new();
        for name in names {
            let enc = encode(name);
            assert!(!enc.contains('\0'), "{enc:?}");
            assert_eq!(decode(&enc).unwrap(), name);
            assert!(stored.insert(enc.into_owned()), "collision for {name:?}");
        }
        assert!(matches!(encode("plain"), Cow::Borrowed(_)));
        assert!(decode("bad\u{1}").unwrap_err().is_validation());
        assert!(decode("bad\u{1}x").unwrap_err().is_validation());
    }
}
