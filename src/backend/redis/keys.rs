//! Keys: `{prefix}:{escape(tenant)}:{escape(class_name)}:{id}`, written
//! into commands without a `String` per key.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use redis::{RedisWrite, ToRedisArgs};
use uuid::Uuid;

use super::codec::put;
use crate::backend::support::Recent;
use crate::record::Key;

/// `{prefix}:{escape(tenant)}:{escape(class)}:`, what every key of one
/// tenant's class starts with.
pub(super) fn key_head(prefix: &str, tenant: &str, class_name: &str) -> String {
    // Pushed piece by piece rather than `format!`ed: a head is made per save
    // and load, and formatting cost ten times as much as the copies.
    let mut head = String::with_capacity(prefix.len() + tenant.len() + class_name.len() + 8);
    head.push_str(prefix);
    head.push(':');
    push_escaped(&mut head, tenant);
    head.push(':');
    push_escaped(&mut head, class_name);
    head.push(':');
    head
}

/// Writes the keys of a batch: `{prefix}:{escape(tenant)}:{escape(class)}:`
/// is escaped once per (tenant, class) pair of the batch — the few most
/// recent pairs are kept, as a flush interleaves its classes (a value's
/// externals come just before it) —,
/// then each key is that head plus the id.
pub(super) struct KeyHeads<'a> {
    prefix: &'a str,
    heads: Recent<TenantClass<'a>, KEY_HEADS>,
}

/// A key's tenant and class name.
type TenantClass<'a> = (&'a str, &'a str);

/// What a key head in [`MADE_HEADS`] is of: its prefix, tenant and class.
type HeadOf = (Box<str>, Box<str>, Box<str>);

thread_local! {
    /// The key heads this thread made last: a save or load of one record
    /// (a `put`, a `get`) makes one batch of one key, and escaping its head
    /// anew each time cost more than the rest of the command.
    static MADE_HEADS: RefCell<Recent<HeadOf, KEY_HEADS>> = const { RefCell::new(Recent::new()) };
}

/// The head of the keys of `tenant`'s `class_name` under `prefix`: this
/// thread's copy when it made one lately (compared by content, so it never
/// mixes up two backends), else made and kept.
pub(super) fn made_head(prefix: &str, tenant: &str, class_name: &str) -> Arc<str> {
    let make = || Arc::from(key_head(prefix, tenant, class_name));
    let is = |(p, t, c): &HeadOf| **c == *class_name && **t == *tenant && **p == *prefix;
    let of = || ((prefix.into(), tenant.into(), class_name.into()), make());
    MADE_HEADS
        .try_with(|made| made.borrow_mut().get_or_keep(is, of).cloned())
        .ok()
        .flatten()
        .unwrap_or_else(make)
}

/// How many (tenant, class) heads [`KeyHeads`] and [`MADE_HEADS`] keep.
pub(super) const KEY_HEADS: usize = 8;

impl<'a> KeyHeads<'a> {
    pub(super) fn new(prefix: &'a str) -> Self {
        KeyHeads {
            prefix,
            heads: Recent::new(),
        }
    }

    /// The key of `key` as a command argument (no `String` per key).
    pub(super) fn arg(&mut self, key: &'a Key) -> KeyArg<'_> {
        let pair = (&*key.tenant, &*key.class_name);
        let prefix = self.prefix;
        let head = self
            .heads
            .get_or_keep(|p| *p == pair, || (pair, made_head(prefix, pair.0, pair.1)));
        KeyArg {
            head: head.map_or(&[][..], |head| head.as_bytes()),
            id: key.id,
        }
    }
}

/// One key as a command argument: its escaped head and its id, the same
/// bytes as [`super::RedisBackend::key_of`].
#[derive(Clone, Copy)]
pub(super) struct KeyArg<'a> {
    head: &'a [u8],
    id: Uuid,
}

impl KeyArg<'_> {
    /// The key's length in bytes (a hyphenated UUID is 36).
    pub(super) fn len(&self) -> usize {
        self.head.len() + 36
    }

    pub(super) fn write_to(&self, w: &mut impl std::io::Write) {
        put(w, self.head);
        let mut buf = Uuid::encode_buffer();
        put(w, self.id.hyphenated().encode_lower(&mut buf).as_bytes());
    }
}

impl ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        self.write_to(&mut out.writer_for_next_arg());
    }
}
/// Escapes a tenant or class name for use inside a key (see the module docs):
/// `%`, `:`, `*`, `?`, `[`, `]`, `\`, `{`, `}`, ASCII control characters and
/// DEL become `%XX`; everything else is kept.
///
/// # Examples
///
/// ```
/// use toast::backend::redis::escape;
/// assert_eq!(escape("acme"), "acme");
/// assert_eq!(escape("a:b*"), "a%3Ab%2A");
/// assert_eq!(escape("50%"), "50%25");
/// assert_eq!(escape("Vec<Item>"), "Vec<Item>");
/// ```
pub fn escape(part: &str) -> String {
    escaped(part).into_owned()
}

/// Whether `b` is escaped by [`escape`]; all such characters are ASCII, so
/// a byte of a multi-byte UTF-8 sequence (0x80 and up) never is.
fn is_escaped(b: u8) -> bool {
    matches!(
        b,
        b'%' | b':' | b'*' | b'?' | b'[' | b']' | b'\\' | b'{' | b'}' | 0..=0x1f | 0x7f
    )
}

/// [`escape`], borrowing `part` when nothing in it needs escaping (the usual
/// tenant or class name): a key head is made per save and load.
pub(super) fn escaped(part: &str) -> Cow<'_, str> {
    if !part.bytes().any(is_escaped) {
        return Cow::Borrowed(part);
    }
    let mut out = String::with_capacity(part.len() + 8);
    push_escaped(&mut out, part);
    Cow::Owned(out)
}

/// Appends [`escape`]`(part)` to `out`: the runs between escaped bytes as
/// they are (every escaped byte is ASCII, so they end on character
/// boundaries), each escaped byte as `%XX`.
pub(super) fn push_escaped(out: &mut String, part: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = part;
    while let Some(at) = rest.bytes().position(is_escaped) {
        let b = rest.as_bytes()[at];
        out.push_str(&rest[..at]);
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Escapes the glob metacharacters of `SCAN … MATCH` with a backslash.
pub(super) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
