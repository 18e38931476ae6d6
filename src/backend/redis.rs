//! The Redis backend (`redis://`, and `rediss://` with the `redis-tls` feature).
//!
//! # URL
//!
//! ```text
//! redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=toast&ttl=SECONDS&timeout=SECONDS&connect_timeout=SECONDS]
//! rediss://…                          (TLS; cargo feature `redis-tls`)
//! ```
//!
//! - `redis://:PASSWORD@host:6379/0` authenticates with `AUTH PASSWORD`;
//!   `redis://USER:PASSWORD@host:6379/0` with an ACL user (`AUTH USER PASSWORD`).
//!   Percent-encode special characters in either.
//! - `/DB` selects the logical database (default 0).
//! - `prefix` (default `toast`): the first part of every key, 1 to 64 characters
//!   from `A-Z a-z 0-9 _ - .`. Stores with different prefixes never see each
//!   other's records.
//! - `ttl` (whole seconds, default none; `0` also means none): every record
//!   saved by this store expires that long after its last save. Set it per
//!   [`crate::Store`] in code with [`RedisBackend::with_ttl`].
//! - `timeout` (seconds, decimals allowed, default [`DEFAULT_RESPONSE_TIMEOUT`]
//!   = 5 s): how long one command may wait for its answer.
//! - `connect_timeout` (seconds, decimals allowed, default
//!   [`DEFAULT_CONNECT_TIMEOUT`] = 2 s): how long one connection attempt may take.
//! - `protocol` (`resp2`, `resp3`) is passed on to the driver; any other
//!   query parameter is rejected, so that a typo (`?tll=60`) is not silently ignored.
//!
//! With `redis-tls`, `rediss://` verifies the server certificate against the
//! webpki roots. rustls needs a process-wide crypto provider: the first
//! `rediss://` connect installs ring's unless the application installed one.
//!
//! # Keys
//!
//! A record lives under the key
//!
//! ```text
//! {prefix}:{escape(tenant)}:{escape(class_name)}:{id}
//! ```
//!
//! e.g. `toast:acme:Vec<Item>:0b6f1c2e-…` (the id as a lower-case hyphenated
//! UUID). [`escape`] replaces each of the bytes `%` `:` `*` `?` `[` `]` `\`
//! `{` `}`, the ASCII control characters (0x00–0x1F) and DEL (0x7F) by `%`
//! and its two upper-case hex digits, and leaves every other character as it is:
//! tenant `a:b*` is written `a%3Ab%2A`. Escaping is injective and the escaped
//! parts contain no `:`, so two distinct `(tenant, class_name, id)` never
//! share a key, and no tenant name (with `:` or `*` or anything else) can
//! name, overwrite, delete or list another tenant's keys. The escaped parts
//! hold no glob metacharacter either, so they are used as they are in
//! `SCAN … MATCH` patterns. [`RedisBackend::key_of`] gives the exact key.
//!
//! # Values
//!
//! Each record is one Redis STRING: a fixed 26-byte header, the record's
//! references, then its JSON data. Integers are big-endian; offsets are in
//! bytes from the start of the value.
//!
//! | offset | size | content |
//! | ---: | ---: | --- |
//! | 0 | 1 | [`MAGIC`] `0xF7` (never the first byte of UTF-8 text, so no JSON or text written by someone else passes for a record) |
//! | 1 | 1 | [`LAYOUT_VERSION`] `1` |
//! | 2 | 4 | `schema_version`, u32 |
//! | 6 | 8 | `created_at`, i64 nanoseconds since 1970-01-01T00:00:00Z (UTC) |
//! | 14 | 8 | `updated_at`, the same |
//! | 22 | 4 | `R`, the length of the refs, u32 |
//! | 26 | `R` | the refs: the references inside the value ([`Record::refs`]) as a compact JSON list of `{"class_name","id"}`; empty (`R` = 0) when there are none |
//! | 26 + `R` | rest | the data: the value's JSON bytes |
//!
//! The timestamps sit at fixed offsets so that the update script can keep
//! `created_at` by splicing 8 bytes. Times outside what an i64 of
//! nanoseconds holds (before 1677 or after 2262) cannot be saved
//! ([`Error::Validation`]). Reading is total: a value that is shorter than
//! the header, has another magic byte or layout version, or whose refs run
//! past its end or are not a list of references is an [`Error::Validation`]
//! saying that the stored record (class, id and Redis key named) is
//! corrupted — never a panic, and nothing is allocated beyond the value
//! itself.
//!
//! A key of the toast prefix that holds another type (a hash, a list, … —
//! among them the HASH values of toast's earlier, unreleased layout) is not
//! a record: `MGET` answers nil for it (and a `GET`'s `WRONGTYPE` is taken
//! as nil), so `load` does not find it, and
//! `list` skips it; a `save` to that key fails (see below) and leaves it as
//! it is.
//!
//! # Round trips
//!
//! - `save` of N records is sent in chunks of at most [`SAVE_CHUNK_BYTES`]
//!   (2 MiB) of values and [`SAVE_CHUNK_RECORDS`] records, one after the
//!   other, so a huge flush never builds one giant command (the chunk size
//!   was measured: bigger chunks raise the client's peak memory). Per chunk:
//!   1. one pipeline of `SET key value NX` (`SET key value NX PX ttl_ms`
//!      for a store with a TTL; a chunk of one record sends the `SET`
//!      alone, not in a pipeline). A new key is written at once, with the
//!      store's TTL or none. The replies tell which keys already existed.
//!   2. only if some did (updates, and rewrites of content-addressed
//!      records): one `EVALSHA` of a small update script for those keys.
//!      It first reads the header of each (`GETRANGE key 0 25`) and, if one
//!      is not a toast record — another type, an empty string or a string
//!      without the magic byte and layout version —, fails with an error
//!      saying "… not a toast record …" and writes nothing of this call.
//!      Then it writes each new value with the stored `created_at` spliced
//!      in (so an update keeps the first `created_at`, decided on the
//!      server; a key that vanished since step 1 is written as it is), by a
//!      `SET` with `PX ttl_ms` for a store with a TTL and without for a store
//!      without one, which removes any TTL: a record's lifetime is the one
//!      of the store that saved it last.
//!
//!   Records are sent in the order `save` gets them, and `load` asks for
//!   keys in the order it gets them. From a scope that is the order the
//!   values were serialized in and the order a document's references come
//!   in when it is read, so a document read back reads the server's memory
//!   in the order it was allocated, and the client decodes the replies in
//!   the order they arrived. (Until toast's write buffer kept its order,
//!   both were sorted by id instead: an `MGET` of 1,000 keys in document
//!   order of records written in id order took 330–390 µs of server time
//!   against 220–230 µs in id order. In document order throughout it takes
//!   141–147 µs against 139–150 µs sorted, and toast's decoding of the
//!   document about 30 µs less: BENCHMARKS.md, round 7.)
//!
//!   So the common flush — all records new — is **one round trip** with no
//!   script at all; a flush with updates is two. Each key is written
//!   atomically, but a flush is not atomic across keys: another client may
//!   see some records of a flush before the others (toast hands out no
//!   reference before its flush is complete), and when a flush fails in
//!   step 2, its new records of step 1 stay stored. The alternative, one
//!   Lua script per chunk doing `SET … NX` per key and the splice only for
//!   taken keys (always one round trip, atomic), was measured and is
//!   slower: 3.76 ms of server time per 1,000-record save against 0.49 ms
//!   for the pipelined `SET`s (`INFO commandstats`), and `write_1k` at
//!   1.94–2.11 × the raw-driver baseline against 1.32–1.47 ×.
//!   Re-sending step 1 after a dead connection is safe: a key the first
//!   attempt wrote simply takes step 2.
//! - `load` of N keys is one `MGET` per [`LOAD_CHUNK_KEYS`] (1,000) distinct
//!   keys (a `GET` for one key): one round trip per nesting level for up to 1,000 references.
//!   Chunks run one after the other and each reply is decoded into records
//!   before the next is sent, so a big load holds one chunk's reply at a
//!   time. The first [`ZERO_COPY_BYTES`] (4 MiB) of values of a load become
//!   records without a copy (the data is a slice of the reply's bytes); the
//!   rest is copied once, on the caller's thread, and the reply freed at once
//!   — zero-copy slices of a big load would keep every loaded record in the
//!   malloc arena of the connection's thread (`big_doc`: peak RSS 3.2 × the
//!   payload instead of 2.3 ×). A nil (missing or expired key, or a key
//!   holding another type) is simply not found.
//! - `delete` of N keys is one `DEL`, which returns the count.
//! - `list` runs `SCAN 0 MATCH {prefix}:{tenant}:{class}:* COUNT 1000` until
//!   the cursor comes back to 0 (never `KEYS`), then reads every found key's
//!   header only (`GETRANGE key 0 25`, never the data) in one pipeline,
//!   parses it with the same header parser (a broken header is an
//!   [`Error::Validation`]), sorts newest first (`created_at`
//!   descending, then id descending) and applies offset and limit. Listing
//!   is therefore O(number of keys in the database) on the server for `SCAN`,
//!   and O(records of that tenant and class) in memory: fine for thousands,
//!   not for millions.
//!
//! The update script is loaded at connect (`SCRIPT LOAD`). After the server
//! restarts (or `SCRIPT FLUSH`), its next call is answered `NOSCRIPT` and is
//! sent again after `SCRIPT LOAD`. Only standalone Redis (and compatible
//! servers, e.g. Valkey) is supported, not Redis Cluster: a flush touches
//! keys of many slots.
//!
//! # Connections, timeouts and reconnection
//!
//! One [`redis::aio::ConnectionManager`] per connected backend, made at
//! connect and shared by every clone, tenant view and TTL variant of the
//! store: a single multiplexed connection that pipelines concurrent requests,
//! never a connection per operation. When the connection drops, the manager
//! reconnects (3 attempts, each bounded by `connect_timeout`, with a short
//! backoff). Every operation — connect included — is bounded: each round trip
//! (each chunk of a big save or load is one) fails with [`Error::Connection`]
//! after at most `connect_timeout + timeout` (7 s by default), whether the
//! server is down, unreachable or stopped; it never hangs. Once the server is
//! back, the same store works again. `save`, `load` and `list` are
//! idempotent, so when the connection turns out to be dead as one of their
//! round trips is sent, it is sent once more on the new connection (within
//! the same bound); `delete` is not retried.
//!
//! # Errors
//!
//! - [`Error::Validation`]: a bad URL or option, `rediss://` without the
//!   `redis-tls` feature, a stored record that is corrupted.
//! - [`Error::Connection`] (the URL's password replaced by `***`): server
//!   unreachable, connection refused or dropped, a timeout, a server that is
//!   loading or a cluster that is down — with the hint "is Redis running at
//!   HOST:PORT?" —, and a refused password or a password missing where the
//!   server requires one. No message ever contains the password.
//! - [`Error::Backend`]: any other error from Redis, with the driver's error
//!   as its source (e.g. a save to a key of the toast prefix that holds
//!   something that is not a toast record, or an ACL user lacking a
//!   permission).
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> toast::Result<()> {
//! // Through the registry: records expire an hour after their last save.
//! let store = toast::Store::connect("redis://127.0.0.1:6379/0?prefix=app&ttl=3600").await?;
//!
//! // Or directly, to give one store its own TTL while sharing the connection.
//! use std::time::Duration;
//! use toast::backend::redis::RedisBackend;
//! let backend = RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
//! let forever = backend.clone().into_store();
//! let cache = backend.with_ttl(Some(Duration::from_secs(60))).into_store();
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisWrite, Script, ServerErrorKind, ToRedisArgs, Value};
use uuid::Uuid;

use crate::backend::batch::{self, distinct};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::reference::{Recent, Reference};
use crate::url::ConnectUrl;

/// The key prefix when the URL gives none.
pub const DEFAULT_PREFIX: &str = "toast";

/// How long one connection attempt may take unless `?connect_timeout=` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one command may wait for its answer unless `?timeout=` says otherwise.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection attempts after the first one fails.
const RECONNECT_RETRIES: usize = 2;

/// The query parameters toast reads itself; they are not passed to the driver.
const TOAST_OPTIONS: [&str; 4] = ["prefix", "ttl", "timeout", "connect_timeout"];

/// The query parameters passed to the driver.
const DRIVER_OPTIONS: [&str; 1] = ["protocol"];

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 1000;

/// The first byte of every stored value. 0xF7 never starts UTF-8 text, so no
/// JSON or other text written by someone else is mistaken for a record.
pub const MAGIC: u8 = 0xF7;

/// The second byte of every stored value: the layout described in the
/// [module docs](self#values).
pub const LAYOUT_VERSION: u8 = 1;

/// The length of the fixed part of the header (before the refs).
pub const HEADER_LEN: usize = 26;

/// Offsets of the header fields (see the [module docs](self#values)).
const OFF_SCHEMA_VERSION: usize = 2;
const OFF_CREATED_AT: usize = 6;
const OFF_UPDATED_AT: usize = 14;
const OFF_REFS_LEN: usize = 22;

/// A save is sent in chunks of at most this many bytes of encoded values
/// (a single bigger record goes alone); see the [module docs](self#round-trips).
pub const SAVE_CHUNK_BYTES: usize = 2 * 1024 * 1024;
/// … and of at most this many records.
pub const SAVE_CHUNK_RECORDS: usize = 10_000;
/// A load asks for at most this many keys per `MGET`.
pub const LOAD_CHUNK_KEYS: usize = 1000;

/// The first this many bytes of values a load receives become records
/// without a copy (slices of the reply's buffers); the rest is copied once.
///
/// The reply's buffers are allocated on the connection's thread. Records
/// that slice them keep that memory in that thread's malloc arena while the
/// memory the caller freed (e.g. after `to_json`) sits unused in its own:
/// `big_doc` (100 MiB) peaked at 3.2 × the payload zero-copy and at 2.3 ×
/// with the copy. For a small load the copy costs more than it saves
/// (`read_1k`, 1 MiB: 1.46 × baseline zero-copy against 1.54 × copied, means
/// of six alternating runs), so it is zero-copy up to this bound.
pub const ZERO_COPY_BYTES: usize = 4 * 1024 * 1024;

/// Rewrites records whose `SET … NX` found the key taken. KEYS: those keys.
/// `ARGV[1]`: TTL in ms (0: none); `ARGV[i + 1]`: the new value of `KEYS[i]`.
/// First checks every key (and writes nothing if one is not a toast record),
/// then writes each new value with the old `created_at` spliced in (bytes
/// 7–14, Lua's 1-based positions of offset 6..14); a key that vanished since
/// the `SET … NX` is written as it is.
const UPDATE_SCRIPT: &str = r"
local created = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local head = redis.pcall('GETRANGE', k, 0, 25)
  if type(head) == 'table' then
    local t = redis.call('TYPE', k)['ok']
    return redis.error_reply('WRONGTYPE toast: key ' .. k .. ' holds a ' .. t .. ', not a toast record (a string starting with byte 0xF7); nothing of this update was written')
  end
  if #head == 0 then
    if redis.call('EXISTS', k) == 1 then
      return redis.error_reply('WRONGTYPE toast: key ' .. k .. ' holds an empty string, not a toast record; nothing of this update was written')
    end
    created[i] = false
  elseif #head < 26 or string.byte(head, 1) ~= 247 or string.byte(head, 2) ~= 1 then
    return redis.error_reply('WRONGTYPE toast: key ' .. k .. ' holds a string that is not a toast record (layout 1: first bytes 0xF7 0x01, at least 26 bytes); nothing of this update was written')
  else
    created[i] = string.sub(head, 7, 14)
  end
end
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  local v = ARGV[i + 1]
  if created[i] then
    v = string.sub(v, 1, 6) .. created[i] .. string.sub(v, 15)
  end
  if ttl > 0 then
    redis.call('SET', KEYS[i], v, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], v)
  end
end
return #KEYS
";

/// The fixed part of a stored value's header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    schema_version: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    refs_len: u32,
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

fn be_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

/// Parses the fixed header at the start of `value` (which may be just the
/// header, as `GETRANGE` returns it). The error says what is wrong.
fn parse_header(value: &[u8]) -> std::result::Result<Header, String> {
    match value {
        [] => return Err("the value is empty".to_owned()),
        [first, ..] if *first != MAGIC => {
            return Err(format!(
                "the value does not start with toast's magic byte 0x{MAGIC:02X} (found 0x{first:02X}), \
                 so it is not a toast record of this layout"
            ))
        }
        [_, version, ..] if *version != LAYOUT_VERSION => {
            return Err(format!(
                "unknown layout version {version} (this release reads {LAYOUT_VERSION})"
            ))
        }
        _ => {}
    }
    let short = || {
        format!(
            "the value is {} bytes, shorter than the {HEADER_LEN}-byte header",
            value.len()
        )
    };
    let schema_version = be_u32(value, OFF_SCHEMA_VERSION).ok_or_else(short)?;
    let created = be_i64(value, OFF_CREATED_AT).ok_or_else(short)?;
    let updated = be_i64(value, OFF_UPDATED_AT).ok_or_else(short)?;
    let refs_len = be_u32(value, OFF_REFS_LEN).ok_or_else(short)?;
    // Every i64 of nanoseconds is an instant chrono can hold. A record never
    // updated has both the same (its calendar date is worked out once).
    let created_at = DateTime::from_timestamp_nanos(created);
    let updated_at = if updated == created {
        created_at
    } else {
        DateTime::from_timestamp_nanos(updated)
    };
    Ok(Header {
        schema_version,
        created_at,
        updated_at,
        refs_len,
    })
}

/// Parses a whole stored value: its header, and where its refs and data lie.
fn parse_value(value: &[u8]) -> std::result::Result<(Header, Range<usize>), String> {
    let header = parse_header(value)?;
    let refs_end = usize::try_from(header.refs_len)
        .ok()
        .and_then(|n| HEADER_LEN.checked_add(n))
        .filter(|end| *end <= value.len())
        .ok_or_else(|| {
            format!(
                "its refs length {} runs past the end of the {}-byte value",
                header.refs_len,
                value.len()
            )
        })?;
    Ok((header, HEADER_LEN..refs_end))
}

/// A record encoded for Redis: the header and refs (small, owned) and the
/// data (borrowed), written into the command as one argument without an
/// intermediate copy of the data.
struct Encoded<'a> {
    head: [u8; HEADER_LEN],
    refs: Vec<u8>,
    data: &'a [u8],
}

impl Encoded<'_> {
    fn len(&self) -> usize {
        HEADER_LEN + self.refs.len() + self.data.len()
    }
}

fn nanos(t: &DateTime<Utc>, name: &str, key: &Key) -> Result<i64> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        Error::validation(format!(
            "record {} {}: {name} {t} cannot be stored in Redis (nanoseconds since 1970 must \
             fit in an i64: years 1677 to 2262)",
            key.class_name, key.id
        ))
    })
}

fn encode(record: &Record) -> Result<Encoded<'_>> {
    let refs = if record.refs.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(&record.refs)
            .map_err(|e| Error::validation_with("cannot encode a record's references", e))?
    };
    let refs_len = u32::try_from(refs.len()).map_err(|_| {
        Error::validation(format!(
            "record {} {}: its reference list is larger than 4 GiB",
            record.key.class_name, record.key.id
        ))
    })?;
    let created = nanos(&record.created_at, "created_at", &record.key)?;
    let updated = nanos(&record.updated_at, "updated_at", &record.key)?;
    let mut head = [0u8; HEADER_LEN];
    head[0] = MAGIC;
    head[1] = LAYOUT_VERSION;
    head[OFF_SCHEMA_VERSION..OFF_CREATED_AT].copy_from_slice(&record.schema_version.to_be_bytes());
    head[OFF_CREATED_AT..OFF_UPDATED_AT].copy_from_slice(&created.to_be_bytes());
    head[OFF_UPDATED_AT..OFF_REFS_LEN].copy_from_slice(&updated.to_be_bytes());
    head[OFF_REFS_LEN..HEADER_LEN].copy_from_slice(&refs_len.to_be_bytes());
    Ok(Encoded {
        head,
        refs,
        data: record.data.as_ref(),
    })
}

/// Writing into a command buffer cannot fail; the `io::Result` is moot.
fn put(w: &mut impl std::io::Write, bytes: &[u8]) {
    let _ = w.write_all(bytes);
}

impl ToRedisArgs for &Encoded<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        let mut w = out.writer_for_next_arg();
        put(&mut w, &self.head);
        put(&mut w, &self.refs);
        put(&mut w, self.data);
    }
}

/// `{prefix}:{escape(tenant)}:{escape(class)}:`, what every key of one
/// tenant's class starts with.
fn key_head(prefix: &str, tenant: &str, class_name: &str) -> String {
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
struct KeyHeads<'a> {
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
fn made_head(prefix: &str, tenant: &str, class_name: &str) -> Arc<str> {
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
const KEY_HEADS: usize = 8;

impl<'a> KeyHeads<'a> {
    fn new(prefix: &'a str) -> Self {
        KeyHeads {
            prefix,
            heads: Recent::new(),
        }
    }

    /// The key of `key` as a command argument (no `String` per key).
    fn arg(&mut self, key: &'a Key) -> KeyArg<'_> {
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

/// `SET key value NX [PX ttl_ms]`: stores a new record, or leaves a taken
/// key as it is (an update then goes through the update script).
fn set_new<'a>(
    heads: &mut KeyHeads<'a>,
    record: &'a Record,
    value: &Encoded<'_>,
    ttl_ms: u64,
) -> redis::Cmd {
    let key = heads.arg(&record.key);
    // Sized up front: the buffer never grows while the data is copied in.
    let mut cmd = redis::Cmd::with_capacity(6, key.len() + value.len() + 32);
    cmd.arg("SET").arg(key).arg(value).arg("NX");
    if ttl_ms > 0 {
        cmd.arg("PX").arg(ttl_ms);
    }
    cmd
}

/// One key as a command argument: its escaped head and its id, the same
/// bytes as [`RedisBackend::key_of`].
#[derive(Clone, Copy)]
struct KeyArg<'a> {
    head: &'a [u8],
    id: Uuid,
}

impl KeyArg<'_> {
    /// The key's length in bytes (a hyphenated UUID is 36).
    fn len(&self) -> usize {
        self.head.len() + 36
    }

    fn write_to(&self, w: &mut impl std::io::Write) {
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

/// How big the batches of one backend are (smaller in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) save_chunk_bytes: usize,
    pub(crate) save_chunk_records: usize,
    pub(crate) load_chunk_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            save_chunk_bytes: SAVE_CHUNK_BYTES,
            save_chunk_records: SAVE_CHUNK_RECORDS,
            load_chunk_keys: LOAD_CHUNK_KEYS,
        }
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
fn escaped(part: &str) -> Cow<'_, str> {
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
fn push_escaped(out: &mut String, part: &str) {
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
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The Redis backend: a shared connection manager plus this store's key
/// prefix and TTL. See the [module docs](self) for the URL, the key format,
/// the timeouts and the errors.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    shared: Arc<Shared>,
    ttl: Option<Duration>,
    limits: Limits,
}

struct Shared {
    url: String,
    host_port: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    update: Script,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.shared.url)
            .field("prefix", &self.shared.prefix)
            .field("ttl", &self.ttl)
            .field("connect_timeout", &self.shared.connect_timeout)
            .field("response_timeout", &self.shared.response_timeout)
            .finish()
    }
}

pub(crate) async fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(RedisBackend::connect_url(url).await?))
}

/// The options toast reads from the URL.
struct Options {
    prefix: String,
    ttl: Option<Duration>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

fn parse_seconds(url: &ConnectUrl, name: &str, default: Duration) -> Result<Duration> {
    match url.query_number::<f64>(name)? {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(Error::validation(format!(
            "store URL '{url}': {name}={s} must be a number of seconds above 0 and at most 86400"
        ))),
    }
}

fn parse_options(url: &ConnectUrl) -> Result<Options> {
    for (name, _) in url.dangerous_url().query_pairs() {
        if !TOAST_OPTIONS.contains(&&*name) && !DRIVER_OPTIONS.contains(&&*name) {
            return Err(Error::validation(format!(
                "store URL '{url}': unknown option '{name}' (known: {}, {})",
                TOAST_OPTIONS.join(", "),
                DRIVER_OPTIONS.join(", ")
            )));
        }
    }
    let prefix = url
        .query_param("prefix")
        .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !prefix_ok {
        return Err(Error::validation(format!(
            "store URL '{url}': prefix '{prefix}' must be 1 to 64 characters from A-Z a-z 0-9 _ - ."
        )));
    }
    let ttl = match url.query_number::<u64>("ttl")? {
        None | Some(0) => None,
        Some(s) => Some(Duration::from_secs(s)),
    };
    Ok(Options {
        prefix,
        ttl,
        connect_timeout: parse_seconds(url, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)?,
        response_timeout: parse_seconds(url, "timeout", DEFAULT_RESPONSE_TIMEOUT)?,
    })
}

/// The URL handed to the driver: toast's own options removed.
fn driver_url(url: &ConnectUrl) -> String {
    let mut driver = url.dangerous_url().clone();
    let kept: Vec<(String, String)> = url
        .dangerous_url()
        .query_pairs()
        .filter(|(k, _)| !TOAST_OPTIONS.contains(&&**k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        driver.set_query(None);
    } else {
        driver.query_pairs_mut().clear().extend_pairs(kept);
    }
    driver.to_string()
}

impl RedisBackend {
    /// Connects to the server a `redis://` (or `rediss://`) URL names, loads
    /// the scripts, and checks the credentials.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad URL or option; [`Error::Connection`]
    /// when the server cannot be reached within `connect_timeout + timeout` or
    /// refuses the credentials.
    pub async fn connect(url: &str) -> Result<RedisBackend> {
        RedisBackend::connect_url(&ConnectUrl::parse(url)?).await
    }

    /// [`RedisBackend::connect`] for an already parsed URL.
    ///
    /// # Errors
    ///
    /// As [`RedisBackend::connect`].
    pub async fn connect_url(url: &ConnectUrl) -> Result<RedisBackend> {
        match url.scheme() {
            "redis" => {}
            "rediss" if cfg!(feature = "redis-tls") => {}
            "rediss" => {
                return Err(Error::validation(format!(
                    "store URL '{url}': rediss:// (TLS) needs the cargo feature `redis-tls`"
                )))
            }
            other => {
                return Err(Error::validation(format!(
                "store URL '{url}': the Redis backend takes redis:// or rediss://, not {other}://"
            )))
            }
        }
        let options = parse_options(url)?;
        #[cfg(feature = "redis-tls")]
        if url.scheme() == "rediss" {
            // rustls needs a process-wide crypto provider; install ring's
            // unless the application already installed one (then this does nothing).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let parsed = url.dangerous_url();
        let host_port = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(6379)
        );
        let client = redis::Client::open(driver_url(url)).map_err(|e| {
            // The driver's configuration errors name the problem, never the password.
            Error::validation_with(
                format!("store URL '{url}' is not a valid Redis URL: {e}"),
                e,
            )
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let shared = Arc::new(Shared {
            url: url.redacted().to_owned(),
            host_port,
            prefix: options.prefix,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            update: Script::new(UPDATE_SCRIPT),
        });
        let bound = shared.bound();
        let conn =
            match tokio::time::timeout(bound, ConnectionManager::new_with_config(client, config))
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(shared.map_err("connect", e)),
                Err(_) => return Err(shared.deadline_error("connect")),
            };
        let backend = RedisBackend {
            conn,
            shared,
            ttl: options.ttl,
            limits: Limits::default(),
        };
        // Loads the update script; this first command also tells whether
        // the server wants a password we did not give.
        let script = &backend.shared.update;
        backend
            .run("connect", false, |mut conn| async move {
                script.load_async(&mut conn).await
            })
            .await?;
        Ok(backend)
    }

    /// The same backend (sharing the connection) with another TTL: records
    /// saved through it expire `ttl` after their last save; `None` keeps them
    /// until deleted. Sub-second precision is kept (`SET … PX`).
    ///
    /// Wrap it into a store with [`RedisBackend::into_store`] (or
    /// [`crate::Store::from_arc`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// use std::time::Duration;
    /// let backend = toast::backend::redis::RedisBackend::connect("redis://127.0.0.1:6379/").await?;
    /// let cache = backend.with_ttl(Some(Duration::from_secs(30))).into_store();
    /// let r = cache.put(&"gone in 30 s").await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Duration>) -> RedisBackend {
        RedisBackend {
            conn: self.conn.clone(),
            shared: Arc::clone(&self.shared),
            ttl: ttl.filter(|d| !d.is_zero()),
            limits: self.limits,
        }
    }

    /// The same backend with other batch limits (small ones in tests).
    #[cfg(test)]
    pub(crate) fn with_limits(&self, limits: Limits) -> RedisBackend {
        RedisBackend {
            limits,
            ..self.clone()
        }
    }

    /// A [`crate::Store`] over this backend (default tenant, fresh counters),
    /// shown in errors by its redacted URL.
    pub fn into_store(self) -> crate::Store {
        let url = self.shared.url.clone();
        crate::Store::from_arc(Arc::new(self), url)
    }

    /// The TTL applied to records saved through this backend, if any.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The key prefix (`?prefix=`, default [`DEFAULT_PREFIX`]).
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The URL with its password redacted.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// How long one connection attempt may take.
    pub fn connect_timeout(&self) -> Duration {
        self.shared.connect_timeout
    }

    /// How long one command may wait for its answer.
    pub fn response_timeout(&self) -> Duration {
        self.shared.response_timeout
    }

    /// The longest any single round trip can take before it fails with
    /// [`Error::Connection`]: `connect_timeout + timeout`.
    pub fn operation_timeout(&self) -> Duration {
        self.shared.bound()
    }

    /// The exact Redis key of a record:
    /// `{prefix}:{escape(tenant)}:{escape(class_name)}:{id}`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// let backend = toast::backend::redis::RedisBackend::connect("redis://127.0.0.1:6379/").await?;
    /// let key = toast::Key::new("a:b", "Item", uuid::Uuid::nil());
    /// assert_eq!(backend.key_of(&key), "toast:a%3Ab:Item:00000000-0000-0000-0000-000000000000");
    /// # Ok(()) }
    /// ```
    pub fn key_of(&self, key: &Key) -> String {
        self.shared.key_of(key)
    }

    /// Runs one round trip (one call of `op`) within the operation bound,
    /// retrying once on a dead connection when `idempotent`, and maps errors.
    async fn run<T, F, Fut>(&self, what: &str, idempotent: bool, op: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            match op(self.conn.clone()).await {
                Err(e) if idempotent && is_dead_connection(&e) => op(self.conn.clone()).await,
                other => other,
            }
        };
        match tokio::time::timeout(self.shared.bound(), attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.shared.map_err(what, e)),
            Err(_) => Err(self.shared.deadline_error(what)),
        }
    }
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
fn is_dead_connection(e: &RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped()) && !e.is_timeout()
}

impl Shared {
    fn bound(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }

    fn key_of(&self, key: &Key) -> String {
        let head = key_head(&self.prefix, &key.tenant, &key.class_name);
        format!("{head}{}", key.id.hyphenated())
    }

    fn deadline_error(&self, what: &str) -> Error {
        Error::connection(
            &self.url,
            format!(
                "Redis {what} timed out after {:.1} s — is Redis running at {} and reachable? \
                 (raise ?timeout= or ?connect_timeout= in the URL if the server is just slow)",
                self.bound().as_secs_f64(),
                self.host_port
            ),
            None,
        )
    }

    fn map_err(&self, what: &str, e: RedisError) -> Error {
        let hp = &self.host_port;
        let code = server_code(&e);
        let kind = e.kind();
        if kind == ErrorKind::AuthenticationFailed || code.as_deref() == Some("WRONGPASS") {
            return Error::connection(
                &self.url,
                format!(
                    "Redis at {hp} refused the credentials (authentication failed) — check the \
                     user name and password in the store URL (redis://USER:PASSWORD@host:port/ \
                     or redis://:PASSWORD@host:port/)"
                ),
                Some(Box::new(e)),
            );
        }
        if code.as_deref() == Some("NOAUTH") {
            return Error::connection(
                &self.url,
                format!(
                    "Redis at {hp} requires a password — put it in the store URL: \
                     redis://:PASSWORD@host:port/ (or redis://USER:PASSWORD@… for an ACL user)"
                ),
                Some(Box::new(e)),
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
            return Error::connection(
                &self.url,
                format!(
                    "Redis {what} timed out (connect_timeout {:.1} s, timeout {:.1} s) — is Redis \
                     running at {hp} and reachable?",
                    self.connect_timeout.as_secs_f64(),
                    self.response_timeout.as_secs_f64()
                ),
                Some(Box::new(e)),
            );
        }
        if e.is_connection_refusal() {
            return Error::connection(
                &self.url,
                format!("Redis {what} failed: connection refused — is Redis running at {hp}?"),
                Some(Box::new(e)),
            );
        }
        if e.is_io_error() || e.is_connection_dropped() || unavailable {
            return Error::connection(
                &self.url,
                format!("Redis {what} failed: {e} — is Redis running at {hp}?"),
                Some(Box::new(e)),
            );
        }
        if code.as_deref() == Some("NOPERM") {
            return Error::backend(
                format!(
                    "Redis {what} failed: the Redis user lacks a permission ({e}); toast needs \
                     +@read +@write +@keyspace +@scripting on its key prefix"
                ),
                e,
            );
        }
        Error::backend(format!("Redis {what} failed: {e}"), e)
    }

    fn key_heads(&self) -> KeyHeads<'_> {
        KeyHeads::new(&self.prefix)
    }

    fn corrupted(&self, key: &Key, what: &str) -> Error {
        Error::validation(corrupted_text(
            &key.class_name,
            key.id,
            &self.key_of(key),
            what,
        ))
    }

    /// Decodes one stored value (see the module docs), taking its bytes. With
    /// `zero_copy` the record's data is a slice of them; without, a copy
    /// (see [`ZERO_COPY_BYTES`] for why both).
    fn decode(&self, key: &Key, value: Vec<u8>, zero_copy: bool) -> Result<Record> {
        let (header, refs) = parse_value(&value).map_err(|what| self.corrupted(key, &what))?;
        let data_start = refs.end;
        let refs = match value.get(refs) {
            None | Some([]) => Vec::new(),
            Some(text) => serde_json::from_slice::<Vec<Reference>>(text).map_err(|e| {
                Error::validation_with(
                    corrupted_text(
                        &key.class_name,
                        key.id,
                        &self.key_of(key),
                        "its reference list is not a JSON list of {\"class_name\",\"id\"}",
                    ),
                    e,
                )
            })?,
        };
        let data = if zero_copy {
            // Advanced, not sliced: a slice would make the buffer shared (an
            // allocation and two atomic operations per record) before anyone
            // shares it.
            let mut data = Bytes::from(value);
            data.advance(data_start.min(data.len()));
            data
        } else {
            Bytes::copy_from_slice(value.get(data_start..).unwrap_or_default())
        };
        Ok(Record {
            key: key.clone(),
            data,
            refs,
            schema_version: header.schema_version,
            created_at: header.created_at,
            updated_at: header.updated_at,
        })
    }
}

/// The message of a stored record that cannot be read back.
fn corrupted_text(class_name: &str, id: Uuid, redis_key: &str, what: &str) -> String {
    format!("stored record {class_name} {id} (Redis key {redis_key}) is corrupted: {what}")
}

fn unexpected(what: &str, value: &Value) -> Error {
    Error::backend_msg(format!("unexpected reply from Redis to {what}: {value:?}"))
}

impl RedisBackend {
    fn ttl_ms(&self) -> u64 {
        self.ttl.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        })
    }

    /// One chunk of a save: the `SET … NX` pipeline, then the update script
    /// for the keys it found taken.
    async fn save_chunk(&self, records: &[(&Record, Encoded<'_>)]) -> Result<()> {
        let ttl_ms = self.ttl_ms();
        let mut heads = self.shared.key_heads();
        let replies: Vec<Value> = if let [(record, value)] = records {
            // One record (a `put`): the command alone, as a pipeline of one
            // costs the client a second reply vector and its bookkeeping.
            let cmd = &set_new(&mut heads, record, value, ttl_ms);
            let reply = self
                .run("save", true, |mut conn| async move {
                    cmd.query_async(&mut conn).await
                })
                .await?;
            vec![reply]
        } else {
            let mut pipe = redis::Pipeline::with_capacity(records.len());
            for (record, value) in records {
                pipe.add_command(set_new(&mut heads, record, value, ttl_ms));
            }
            let pipe = &pipe;
            self.run("save", true, |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
            .await?
        };
        if replies.len() != records.len() {
            return Err(Error::backend_msg(format!(
                "Redis answered {} replies to a pipeline of {} SET commands",
                replies.len(),
                records.len()
            )));
        }
        // The records whose keys were taken (usually none: new ids).
        let mut taken = Vec::new();
        for (record, reply) in records.iter().zip(&replies) {
            match reply {
                Value::Okay => {}
                Value::Nil => taken.push(record),
                other => return Err(unexpected("SET … NX", other)),
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        let mut invocation = self.shared.update.prepare_invoke();
        invocation.arg(ttl_ms);
        for (record, value) in taken {
            invocation.key(heads.arg(&record.key)).arg(value);
        }
        let invocation = &invocation;
        self.run("save (update)", true, |mut conn| async move {
            invocation.invoke_async::<i64>(&mut conn).await
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Sent in the order given (a flush's: the order its values were
        // serialized in; see the module docs), so of two records with the
        // same key the later one is written last and wins. Every record is
        // encoded (and checked) before anything is sent.
        let encoded = records
            .iter()
            .map(|r| Ok((r, encode(r)?)))
            .collect::<Result<Vec<_>>>()?;
        let chunks = batch::chunks(
            &encoded,
            |(_, value)| value.len(),
            self.limits.save_chunk_bytes,
            self.limits.save_chunk_records,
        );
        for chunk in chunks {
            self.save_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // In the order given (a document's references in document order;
        // see the module docs).
        let keys = distinct(keys);
        let mut heads = self.shared.key_heads();
        let mut records = Vec::with_capacity(keys.len());
        let mut zero_copy_left = ZERO_COPY_BYTES;
        // One MGET per chunk, one after the other, each decoded before the
        // next is sent: the client holds one chunk's reply at a time.
        for chunk in keys.chunks(self.limits.load_chunk_keys.max(1)) {
            let key_len = chunk.first().map_or(0, |k| heads.arg(k).len());
            let mut cmd = redis::Cmd::with_capacity(chunk.len() + 1, 4 + chunk.len() * key_len);
            // One key (a `get`): GET, whose reply is the value alone rather
            // than an array of one.
            cmd.arg(if chunk.len() == 1 { "GET" } else { "MGET" });
            for key in chunk {
                cmd.arg(heads.arg(key));
            }
            let (cmd, single) = (&cmd, chunk.len() == 1);
            let reply: Vec<Value> = self
                .run("load", true, |mut conn| async move {
                    if !single {
                        return cmd.query_async(&mut conn).await;
                    }
                    match cmd.query_async(&mut conn).await {
                        Ok(value) => Ok(vec![value]),
                        // A key of another type (not a record): nil, as
                        // MGET answers for it.
                        Err(e) if e.code() == Some("WRONGTYPE") => Ok(vec![Value::Nil]),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if reply.len() != chunk.len() {
                return Err(Error::backend_msg(format!(
                    "Redis answered MGET of {} keys with {} values",
                    chunk.len(),
                    reply.len()
                )));
            }
            for (key, value) in chunk.iter().zip(reply) {
                match value {
                    Value::Nil => {}
                    Value::BulkString(bytes) => {
                        let zero_copy = bytes.len() <= zero_copy_left;
                        if zero_copy {
                            zero_copy_left -= bytes.len();
                        }
                        records.push(self.shared.decode(key, bytes, zero_copy)?);
                    }
                    other => return Err(unexpected("MGET", &other)),
                }
            }
        }
        Ok(records)
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("DEL");
        let mut heads = self.shared.key_heads();
        for key in distinct(keys) {
            cmd.arg(heads.arg(key));
        }
        let cmd = &cmd;
        self.run("delete", false, |mut conn| async move {
            cmd.query_async::<u64>(&mut conn).await
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let head = key_head(&self.shared.prefix, &query.tenant, &query.class_name);
        let pattern = format!("{}*", glob_escape(&head));
        // SCAN until the cursor comes back to 0; duplicates are possible.
        let mut found: BTreeSet<(Uuid, String)> = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let pattern = &pattern;
            let (next, keys): (u64, Vec<String>) = self
                .run("list (SCAN)", true, |mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            for key in keys {
                // Only keys of exactly this tenant and class with a UUID tail.
                let id = key
                    .strip_prefix(&head)
                    .filter(|tail| tail.len() == 36)
                    .and_then(|tail| Uuid::parse_str(tail).ok());
                if let Some(id) = id {
                    found.insert((id, key));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<(Uuid, String)> = found.into_iter().collect();
        // Only the fixed header of each value, never its data.
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (_, key) in &found {
            pipe.cmd("GETRANGE").arg(key).arg(0).arg(HEADER_LEN - 1);
        }
        let pipe = &pipe;
        let heads: Vec<Value> = self
            .run("list", true, |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        if heads.len() != found.len() {
            return Err(Error::backend_msg(format!(
                "Redis answered {} replies to a pipeline of {} GETRANGE commands",
                heads.len(),
                found.len()
            )));
        }
        let mut entries = Vec::with_capacity(found.len());
        for ((id, key), head) in found.into_iter().zip(heads) {
            let bytes = match head {
                // Expired or deleted since the SCAN.
                Value::BulkString(b) if b.is_empty() => continue,
                Value::BulkString(b) => b,
                // Not a string: not a toast record, and load does not find it either.
                Value::ServerError(e) if e.code() == "WRONGTYPE" => continue,
                Value::ServerError(e) => return Err(self.shared.map_err("list", e.into())),
                other => return Err(unexpected("GETRANGE", &other)),
            };
            let header = parse_header(&bytes).map_err(|what| {
                Error::validation(corrupted_text(&query.class_name, id, &key, &what))
            })?;
            entries.push(ListEntry {
                id,
                created_at: header.created_at,
                updated_at: header.updated_at,
            });
        }
        entries.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        Ok(entries.into_iter().skip(offset).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::batch::chunk_ranges;

    fn shared() -> Shared {
        Shared {
            url: "redis://127.0.0.1:6379/".to_owned(),
            host_port: "127.0.0.1:6379".to_owned(),
            prefix: "toast".to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            update: Script::new(UPDATE_SCRIPT),
        }
    }

    fn sample(refs: Vec<Reference>) -> Record {
        let mut r = Record::new(
            Key::new("acme", "Vec<Item>", Uuid::new_v4()),
            Bytes::from_static(br#"[{"a":1}]"#),
            refs,
        );
        r.schema_version = 7;
        r.created_at = DateTime::from_timestamp_nanos(1_700_000_000_123_456_789);
        r.updated_at = DateTime::from_timestamp_nanos(1_700_000_001_987_654_321);
        r
    }

    fn bytes_of(record: &Record) -> Vec<u8> {
        let e = encode(record).unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(&e.head);
        out.extend_from_slice(&e.refs);
        out.extend_from_slice(e.data);
        assert_eq!(out.len(), e.len());
        out
    }

    #[test]
    fn the_layout_is_exactly_as_documented() {
        let r = sample(Vec::new());
        let v = bytes_of(&r);
        assert_eq!(v[0], 0xF7);
        assert_eq!(v[1], 1);
        assert_eq!(v[2..6], 7u32.to_be_bytes());
        assert_eq!(v[6..14], 1_700_000_000_123_456_789i64.to_be_bytes());
        assert_eq!(v[14..22], 1_700_000_001_987_654_321i64.to_be_bytes());
        assert_eq!(v[22..26], 0u32.to_be_bytes());
        assert_eq!(&v[26..], br#"[{"a":1}]"#);

        let refs = vec![Reference::new("Leaf", Uuid::nil())];
        let v = bytes_of(&sample(refs));
        let json = br#"[{"class_name":"Leaf","id":"00000000-0000-0000-0000-000000000000"}]"#;
        assert_eq!(v[22..26], u32::try_from(json.len()).unwrap().to_be_bytes());
        assert_eq!(&v[26..26 + json.len()], json);
        assert_eq!(&v[26 + json.len()..], br#"[{"a":1}]"#);
    }

    #[test]
    fn decode_inverts_encode() {
        let s = shared();
        for refs in [
            Vec::new(),
            vec![
                Reference::new("A<b>", Uuid::new_v4()),
                Reference::new("C", Uuid::new_v4()),
            ],
        ] {
            let r = sample(refs);
            for zero_copy in [true, false] {
                let value = bytes_of(&r);
                let (start, len) = (value.as_ptr() as usize, value.len());
                let back = s.decode(&r.key, value, zero_copy).unwrap();
                assert_eq!(back, r);
                // Inside the value's own buffer, or a copy elsewhere.
                let at = back.data.as_ptr() as usize;
                let sliced = at > start && at < start + len;
                assert_eq!(sliced, zero_copy, "zero_copy {zero_copy}");
            }
        }
        // A record never updated: both timestamps the same instant.
        let mut fresh = sample(Vec::new());
        fresh.updated_at = fresh.created_at;
        let back = s.decode(&fresh.key, bytes_of(&fresh), true).unwrap();
        assert_eq!(back, fresh);
    }

    #[test]
    fn the_header_parser_rejects_truncated_and_garbage_values() {
        let s = shared();
        let r = sample(vec![Reference::new("Leaf", Uuid::new_v4())]);
        let value = bytes_of(&r);
        let refs_end = HEADER_LEN + usize::try_from(be_u32(&value, OFF_REFS_LEN).unwrap()).unwrap();
        // Every truncation that cuts the header or the refs.
        for len in 0..refs_end {
            let err = s.decode(&r.key, value[..len].to_vec(), false).unwrap_err();
            assert!(err.is_validation(), "{len}: {err}");
            let text = err.to_string();
            assert!(text.contains("is corrupted"), "{len}: {text}");
            assert!(
                text.contains("Vec<Item>") && text.contains(&r.key.id.to_string()),
                "{text}"
            );
        }
        // Cut right after the refs: a record with empty data (not JSON, but
        // the layout is intact; the type's deserializer reports it).
        assert!(s.decode(&r.key, value[..refs_end].to_vec(), true).is_ok());

        let mut bad: Vec<(&str, Vec<u8>)> = vec![
            ("json text", br#"{"not":"a record"}"#.to_vec()),
            ("empty", Vec::new()),
            ("magic only", vec![MAGIC]),
            ("old hash-era text", b"1".to_vec()),
        ];
        let mut wrong_version = value.clone();
        wrong_version[1] = 2;
        bad.push(("wrong version", wrong_version));
        let mut wrong_magic = value.clone();
        wrong_magic[0] = b'{';
        bad.push(("wrong magic", wrong_magic));
        let mut long_refs = value.clone();
        long_refs[OFF_REFS_LEN..HEADER_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
        bad.push(("refs length past the end", long_refs));
        let mut garbage_refs = value.clone();
        garbage_refs[HEADER_LEN] = b'!';
        bad.push(("refs not JSON", garbage_refs));
        let mut not_refs = bytes_of(&sample(Vec::new()));
        let junk = br#"{"x":1}"#;
        not_refs[OFF_REFS_LEN..HEADER_LEN].copy_from_slice(&7u32.to_be_bytes());
        not_refs.splice(HEADER_LEN..HEADER_LEN, junk.iter().copied());
        bad.push(("refs JSON of another shape", not_refs));
        for (what, v) in bad {
            let err = s.decode(&r.key, v, true).unwrap_err();
            assert!(err.is_validation(), "{what}: {err}");
            assert!(err.to_string().contains("is corrupted"), "{what}: {err}");
        }
        // The fixed header alone (what list reads) parses; shorter does not.
        let head = parse_header(&value[..HEADER_LEN]).unwrap();
        assert_eq!(head.created_at, r.created_at);
        assert_eq!(head.updated_at, r.updated_at);
        assert!(parse_header(&value[..HEADER_LEN - 1]).is_err());
    }

    #[test]
    fn timestamps_outside_i64_nanoseconds_are_validation_errors() {
        let mut r = sample(Vec::new());
        r.created_at = DateTime::from_timestamp(i64::from(i32::MAX) * 10, 0).unwrap();
        let err = encode(&r).err().unwrap();
        assert!(err.is_validation(), "{err}");
        assert!(err.to_string().contains("created_at"), "{err}");
        // The extremes that do fit round-trip exactly.
        let s = shared();
        for ns in [i64::MIN, -1, 0, i64::MAX] {
            let mut r = sample(Vec::new());
            r.created_at = DateTime::from_timestamp_nanos(ns);
            r.updated_at = r.created_at;
            assert_eq!(s.decode(&r.key, bytes_of(&r), true).unwrap(), r);
        }
    }

    #[test]
    fn chunks_respect_bytes_and_counts() {
        assert!(chunk_ranges([], 10, 10).is_empty());
        assert_eq!(chunk_ranges([3, 3, 3, 3], 6, 10), vec![0..2, 2..4]);
        assert_eq!(chunk_ranges([3, 3, 3, 3], 7, 10), vec![0..2, 2..4]);
        assert_eq!(chunk_ranges([1; 5], 100, 2), vec![0..2, 2..4, 4..5]);
        // A record bigger than the byte limit goes alone.
        assert_eq!(chunk_ranges([1, 50, 1], 10, 10), vec![0..1, 1..2, 2..3]);
        assert_eq!(chunk_ranges([50], 10, 10), vec![0..1]);
        let ranges = chunk_ranges(vec![1024; 5000], 2 * 1024 * 1024, SAVE_CHUNK_RECORDS);
        assert_eq!(ranges, vec![0..2048, 2048..4096, 4096..5000]);
        let ranges = chunk_ranges(vec![1; 25_000], SAVE_CHUNK_BYTES, 10_000);
        assert_eq!(ranges, vec![0..10_000, 10_000..20_000, 20_000..25_000]);
    }

    #[test]
    fn key_args_are_the_bytes_of_key_of() {
        let s = shared();
        for (tenant, class) in [
            ("acme", "Vec<Item>"),
            ("a:b*c", "x%y"),
            ("", ""),
            ("ü:ß\n\u{7f}[]{}?\\", "%%"),
        ] {
            let key = Key::new(tenant, class, Uuid::new_v4());
            let mut heads = s.key_heads();
            let mut bytes = Vec::new();
            let arg = heads.arg(&key);
            arg.write_to(&mut bytes);
            assert_eq!(arg.len(), bytes.len());
            assert_eq!(String::from_utf8(bytes).unwrap(), s.key_of(&key));
        }
        // Heads are kept per (tenant, class) pair, also beyond KEY_HEADS pairs.
        let mut keys = vec![
            Key::new("a", "X", Uuid::new_v4()),
            Key::new("a", "X", Uuid::new_v4()),
            Key::new("a:b", "X", Uuid::new_v4()),
            Key::new("a:b", "Y*", Uuid::new_v4()),
            Key::new("a", "X", Uuid::new_v4()),
        ];
        for i in 0..3 * KEY_HEADS {
            keys.push(Key::new(
                "t",
                format!("C{}", i % (KEY_HEADS + 3)),
                Uuid::new_v4(),
            ));
        }
        let mut heads = s.key_heads();
        for key in &keys {
            let mut bytes = Vec::new();
            heads.arg(key).write_to(&mut bytes);
            assert_eq!(String::from_utf8(bytes).unwrap(), s.key_of(key));
        }
    }

    #[test]
    fn distinct_keeps_order_and_drops_only_equal_keys() {
        let id = Uuid::new_v4();
        let keys = [
            Key::new("a", "X", id),
            Key::new("b", "X", id),
            Key::new("a", "Y", Uuid::new_v4()),
            Key::new("a", "X", id),
        ];
        let got: Vec<Key> = distinct(&keys).into_iter().cloned().collect();
        assert_eq!(got, keys[..3].to_vec());
        assert_eq!(distinct(&keys[..3]).len(), 3);
        assert!(distinct(&[]).is_empty());
        // Past the pairwise size: the same answer through the sets.
        let many: Vec<Key> = (0..30)
            .map(|i| keys[i % 3].clone())
            .chain((0..10).map(|_| Key::new("a", "X", Uuid::new_v4())))
            .collect();
        let got: Vec<Key> = distinct(&many).into_iter().cloned().collect();
        let mut want = keys[..3].to_vec();
        want.extend_from_slice(&many[30..]);
        assert_eq!(got, want);
    }

    /// A backend on the shared server (`TOAST_TEST_REDIS_URL`) under a fresh
    /// prefix, with records expiring after an hour.
    async fn live(limits: Limits) -> RedisBackend {
        let base = std::env::var("TOAST_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
        let sep = if base.contains('?') { '&' } else { '?' };
        let prefix = format!("u{}", &Uuid::new_v4().simple().to_string()[..16]);
        let url = format!("{base}{sep}prefix={prefix}&ttl=3600");
        RedisBackend::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("the shared Redis server is not reachable: {e}"))
            .with_limits(limits)
    }

    #[tokio::test]
    async fn a_save_in_many_chunks_mixing_new_and_existing_keys() {
        let backend = live(Limits {
            save_chunk_bytes: 200,
            save_chunk_records: 4,
            load_chunk_keys: 3,
        })
        .await;
        let old = chrono::Utc::now() - chrono::Duration::hours(1);
        let records: Vec<Record> = (0..23)
            .map(|i| {
                let mut r = Record::new(
                    Key::new("t", "Chunked", Uuid::new_v4()),
                    Bytes::from(format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(i * 7))),
                    vec![Reference::new("Ref", Uuid::new_v4())],
                );
                r.created_at = old;
                r.updated_at = old;
                r
            })
            .collect();
        // Every third record exists before the big save.
        let existing: Vec<Record> = records.iter().step_by(3).cloned().collect();
        backend.save(&existing).await.unwrap();
        assert!(chunk_ranges(records.iter().map(|r| encode(r).unwrap().len()), 200, 4).len() > 5);

        let now = chrono::Utc::now();
        let mut updated: Vec<Record> = records.clone();
        for r in &mut updated {
            r.created_at = now;
            r.updated_at = now;
            r.data = Bytes::from(format!("[{}]", r.data.len()));
        }
        // The same key twice in one save: the later one wins.
        let mut twice = updated[1].clone();
        twice.data = Bytes::from_static(b"\"second\"");
        updated.push(twice);
        backend.save(&updated).await.unwrap();

        let mut keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
        keys.push(keys[0].clone());
        keys.push(Key::new("t", "Chunked", Uuid::new_v4()));
        let loaded = backend.load(&keys).await.unwrap();
        assert_eq!(loaded.len(), records.len());
        for (i, r) in records.iter().enumerate() {
            let got = loaded.iter().find(|l| l.key == r.key).unwrap();
            let want_created = if i % 3 == 0 { old } else { now };
            assert_eq!(got.created_at, want_created, "record {i}");
            assert_eq!(got.updated_at, now, "record {i}");
            assert_eq!(got.refs, r.refs, "record {i}");
            if i == 1 {
                assert_eq!(&got.data[..], b"\"second\"");
            } else {
                assert_eq!(got.data, updated[i].data, "record {i}");
            }
        }
        assert_eq!(backend.delete(&keys).await.unwrap(), 23);
    }

    #[test]
    fn escape_is_injective_on_tricky_names() {
        let names = [
            "", "a", "a:b", "a%3Ab", "a%", "*", "a*", "\\*", "[x]", "{t}", "a\nb", "a%0Ab", "ü:ß",
        ];
        let escaped: BTreeSet<String> = names.iter().map(|n| escape(n)).collect();
        assert_eq!(escaped.len(), names.len());
        for e in &escaped {
            assert!(
                !e.contains([':', '*', '?', '[', ']', '\\', '{', '}', '\n']),
                "{e}"
            );
        }
        assert_eq!(
            escape("a:b*c?[d]\\{e}%\u{7f}"),
            "a%3Ab%2Ac%3F%5Bd%5D%5C%7Be%7D%25%7F"
        );
        assert_eq!(escape("\u{0}\u{1f} é€"), "%00%1F é€");
        // Names with nothing to escape are borrowed, not copied.
        assert!(matches!(super::escaped("bench-ü<Item>"), Cow::Borrowed(_)));
        assert!(matches!(super::escaped("a:b"), Cow::Owned(_)));
    }

    #[test]
    fn a_thread_keeps_the_heads_it_made_by_prefix_tenant_and_class() {
        let a = super::made_head("toast", "acme", "app::Item");
        assert_eq!(a.as_bytes(), b"toast:acme:app%3A%3AItem:");
        // Kept: the same bytes, not made again.
        assert!(Arc::ptr_eq(
            &a,
            &super::made_head("toast", "acme", "app::Item")
        ));
        // Another backend's prefix, tenant or class is another head.
        assert_eq!(
            super::made_head("other", "acme", "app::Item").as_bytes(),
            b"other:acme:app%3A%3AItem:"
        );
        assert_eq!(
            super::made_head("toast", "acme:x", "app::Item").as_bytes(),
            b"toast:acme%3Ax:app%3A%3AItem:"
        );
        assert_eq!(
            super::made_head("toast", "acme", "Item").as_bytes(),
            b"toast:acme:Item:"
        );
        // More pairs than are kept: the oldest goes, and is made again, equal.
        for i in 0..2 * super::KEY_HEADS {
            super::made_head("toast", "acme", &format!("C{i}"));
        }
        let again = super::made_head("toast", "acme", "app::Item");
        assert!(!Arc::ptr_eq(&a, &again));
        assert_eq!(a, again);
    }

    #[test]
    fn glob_escape_escapes_metacharacters() {
        assert_eq!(glob_escape("toast:a:b:"), "toast:a:b:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
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
