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
//! - `ttl` (seconds, decimals allowed, default none; `0` also means none):
//!   every record saved by this store expires that long after its last save.
//!   Set it per [`crate::Store`] in code with [`RedisBackend::with_ttl`].
//! - `timeout` (seconds, decimals allowed, above 0, default
//!   [`DEFAULT_RESPONSE_TIMEOUT`] = 5 s): how long one command may wait for
//!   its answer.
//! - `connect_timeout` (seconds, decimals allowed, above 0, default
//!   [`DEFAULT_CONNECT_TIMEOUT`] = 2 s): how long one connection attempt may take.
//! - `protocol` (`resp2`, `resp3`) is passed on to the driver; any other
//!   query option is refused with [`Error::Validation`] naming it, so that a
//!   typo (`?tll=60`) is not silently ignored.
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
//! Tenant names and class names are escaped by [`escape`].
//!
//! # Values
//!
//! Each record is one Redis STRING: a fixed 26-byte header, the record's
//! references, then its JSON data. Integers are big-endian; offsets are in
//! bytes from the start of the value.
//!
//! | offset | size | content |
//! | ---: | ---: | --- |
//! | 0 | 1 | magic byte `0xF7` (never the first byte of UTF-8 text, so no JSON or text written by someone else passes for a record) |
//! | 1 | 1 | layout version `1` |
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
//! A key of the toast prefix that holds another type (a hash, a list, …) is
//! not a record: `MGET` answers nil for it (and a `GET`'s `WRONGTYPE` is taken
//! as nil), so `load` does not find it, and
//! `list` skips it; a `save` to that key fails (see below) and leaves it as
//! it is.
//!
//! # Round trips
//!
//! - `save` of N records is sent in chunks of at most 2 MiB of values and
//!   10,000 records, one after the other, so a huge flush never builds one
//!   giant command (bigger chunks raise the client's peak memory). Per chunk:
//!   1. one pipeline of `SET key value NX` (`SET key value NX PX ttl_ms`
//!      for a store with a TTL; a chunk of one record sends the `SET`
//!      alone, not in a pipeline). A new key is written at once, with the
//!      store's TTL or none. The replies tell which keys already existed.
//!   2. only if some did (updates, and rewrites of content-addressed
//!      records): one `EVALSHA` of a small update script (`update.lua`) for
//!      those keys.
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
//!   the order they arrived.
//!
//!   So the common flush — all records new — is **one round trip** with no
//!   script at all; a flush with updates is two. Each key is written
//!   atomically, but a flush is not atomic across keys: another client may
//!   see some records of a flush before the others (toast hands out no
//!   reference before its flush is complete), and when a flush fails in
//!   step 2, its new records of step 1 stay stored (one script per chunk
//!   doing both steps would be atomic, and costs the server several times
//!   as much as the pipelined `SET`s). Re-sending step 1 after a dead connection is safe: a key the first
//!   attempt wrote simply takes step 2.
//! - `load` of N keys is one `MGET` per 1,000 distinct keys (a `GET` for one key): one round trip per nesting level for up to 1,000 references.
//!   Chunks run one after the other and each reply is decoded into records
//!   before the next is sent, so a big load holds one chunk's reply at a
//!   time. The first 4 MiB of values of a load become records without a
//!   copy (the data is a slice of the reply's bytes); the rest is copied
//!   once, on the caller's thread, and the reply freed at once — zero-copy
//!   slices of a big load would keep every loaded record in the malloc arena
//!   of the connection's thread. A nil (missing or expired key, or a key
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
//! after at most `connect_timeout + timeout` (7 s with the defaults), whether the
//! server is down, unreachable or stopped, or its reply is lost on the way
//! (a stalled network); it never hangs. Once the server is
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
//! let cache = backend.with_ttl(Some(Duration::from_secs(60)));
//! let url = backend.url().to_owned();
//! let forever = toast::Store::from_arc(std::sync::Arc::new(backend), url.clone());
//! let cache = toast::Store::from_arc(std::sync::Arc::new(cache), url);
//! # Ok(()) }
//! ```
mod codec;
mod errors;
mod keys;
mod list;
mod load;
mod options;
mod save;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
use crate::url::ConnectUrl;

pub use keys::escape;

use errors::{is_dead_connection, Origin};
use keys::{key_head, KeyHeads};
use options::parse_options;

/// The key prefix when the URL gives none.
pub const DEFAULT_PREFIX: &str = "toast";

/// How long one connection attempt may take unless `?connect_timeout=` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one command may wait for its answer unless `?timeout=` says otherwise.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection attempts after the first one fails.
const RECONNECT_RETRIES: usize = 2;

/// A save is sent in chunks of at most this many bytes of encoded values
/// (a single bigger record goes alone); see the [module docs](self#round-trips).
const SAVE_CHUNK_BYTES: usize = 2 * 1024 * 1024;
/// … and of at most this many records.
const SAVE_CHUNK_RECORDS: usize = 10_000;
/// A load asks for at most this many keys per `MGET`.
const LOAD_CHUNK_KEYS: usize = 1000;

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
        let host_port = if url.hides_authority() {
            // Host and port were parsed out of text that seems to hold the
            // password: not shown.
            "the server named in the URL (percent-encode '/', '?' and '#' in its password)"
                .to_owned()
        } else {
            format!(
                "{}:{}",
                parsed.host_str().unwrap_or("localhost"),
                parsed.port().unwrap_or(6379)
            )
        };
        let client = redis::Client::open(options.dangerous_driver_url.as_str()).map_err(|e| {
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
    /// Wrap it into a store with [`crate::Store::from_arc`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> toast::Result<()> {
    /// use std::time::Duration;
    /// let backend = toast::backend::redis::RedisBackend::connect("redis://127.0.0.1:6379/").await?;
    /// let cache = backend.with_ttl(Some(Duration::from_secs(30)));
    /// let url = cache.url().to_owned();
    /// let cache = toast::Store::from_arc(std::sync::Arc::new(cache), url);
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
    /// let key = toast::backend::Key::new("a:b", "Item", uuid::Uuid::nil());
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
        F: Fn(ConnectionManager) -> Fut + Send + Sync,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
        T: Send,
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

/// The update script (`update.lua`): rewrites the records whose `SET … NX`
/// found the key taken, keeping their `created_at`.
const UPDATE_SCRIPT: &str = include_str!("update.lua");

impl Shared {
    pub(super) fn bound(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }

    /// What an error from this backend names.
    fn origin(&self) -> Origin<'_> {
        Origin {
            url: &self.url,
            host_port: &self.host_port,
            bound: self.bound(),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
        }
    }

    pub(super) fn map_err(&self, what: &str, e: redis::RedisError) -> Error {
        self.origin().map_err(what, e)
    }

    pub(super) fn deadline_error(&self, what: &str) -> Error {
        self.origin().deadline_error(what)
    }

    fn key_of(&self, key: &Key) -> String {
        let head = key_head(&self.prefix, &key.tenant, &key.class_name);
        format!("{head}{}", key.id.hyphenated())
    }

    fn key_heads(&self) -> KeyHeads<'_> {
        KeyHeads::new(&self.prefix)
    }

    /// Decodes one stored value of `key` (see [`codec::decode`]).
    fn decode(&self, key: &Key, value: Vec<u8>, zero_copy: bool) -> Result<Record> {
        codec::decode(key, value, zero_copy, &|| self.key_of(key))
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        self.save_records(records).await
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        self.load_records(keys).await
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        self.delete_records(keys).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        self.list_page(query).await
    }
}
