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
//! # Keys and values
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
//! The value is a HASH with the fields
//!
//! | field | content |
//! | --- | --- |
//! | `data` | the value's JSON bytes |
//! | `refs` | the references inside it, as a JSON list of `{"class_name","id"}` |
//! | `schema_version` | the record layout version, decimal |
//! | `created_at` | RFC 3339 UTC with nanoseconds, e.g. `2024-05-01T12:00:00.123456789Z` |
//! | `updated_at` | the same format |
//!
//! # Round trips
//!
//! - `save` of N records is one `EVALSHA` of a Lua script: one round trip,
//!   atomic (no other client sees half a flush). The script first checks
//!   that no key holds something other than a hash (and fails without writing
//!   anything if one does), then for each record sets `created_at` with
//!   `HSETNX` (so an update keeps the first `created_at`, decided on the
//!   server, never by reading first), sets the other fields with `HSET`, and
//!   applies the store's TTL with `PEXPIRE` — or `PERSIST` when the store has no
//!   TTL, so the record's lifetime is the one of the store that saved it last.
//! - `load` of N keys is one `EVALSHA` of a read-only script that returns
//!   every hash's fields: one round trip per nesting level.
//! - `delete` of N keys is one `DEL`, which returns the count.
//! - `list` runs `SCAN 0 MATCH {prefix}:{tenant}:{class}:* COUNT 1000` until
//!   the cursor comes back to 0 (never `KEYS`), then fetches every found
//!   key's timestamps in one pipeline, sorts them newest first (`created_at`
//!   descending, then id descending) and applies offset and limit. Listing
//!   is therefore O(number of keys in the database) on the server for `SCAN`,
//!   and O(records of that tenant and class) in memory: fine for thousands,
//!   not for millions.
//!
//! Both scripts are loaded at connect (`SCRIPT LOAD`), so the steady state is
//! one round trip each. After the server restarts (or `SCRIPT FLUSH`), the
//! first call to each script is answered `NOSCRIPT` and is sent again after
//! `SCRIPT LOAD`. Only standalone Redis (and compatible servers, e.g. Valkey)
//! is supported, not Redis Cluster: a flush touches keys of many slots.
//!
//! # Connections, timeouts and reconnection
//!
//! One [`redis::aio::ConnectionManager`] per connected backend, made at
//! connect and shared by every clone, tenant view and TTL variant of the
//! store: a single multiplexed connection that pipelines concurrent requests,
//! never a connection per operation. When the connection drops, the manager
//! reconnects (3 attempts, each bounded by `connect_timeout`, with a short
//! backoff). Every operation — connect included — is bounded: each round trip
//! fails with [`Error::Connection`] after at most `connect_timeout + timeout`
//! (7 s by default), whether the server is down, unreachable or stopped; it
//! never hangs. Once the server is back, the same store works again. `save`,
//! `load` and `list` are idempotent, so when the connection turns out to be
//! dead as they are sent, they are sent once more on the new connection
//! (within the same bound); `delete` is not retried.
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
//!   as its source (e.g. a key of the toast prefix holding a non-hash value,
//!   or an ACL user lacking a permission).
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

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use uuid::Uuid;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::{Key, ListEntry, ListQuery, Record};
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

/// Saves records. KEYS: the record keys. ARGV[1]: TTL in ms (0: none), then
/// per record: data, refs, schema_version, created_at, updated_at.
const SAVE_SCRIPT: &str = r"
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE toast: key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a toast record (a hash); nothing was written')
  end
end
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  local k = KEYS[i]
  local a = 1 + (i - 1) * 5
  redis.call('HSETNX', k, 'created_at', ARGV[a + 4])
  redis.call('HSET', k, 'data', ARGV[a + 1], 'refs', ARGV[a + 2], 'schema_version', ARGV[a + 3], 'updated_at', ARGV[a + 5])
  if ttl > 0 then
    redis.call('PEXPIRE', k, ttl)
  else
    redis.call('PERSIST', k)
  end
end
return #KEYS
";

/// Loads records. KEYS: the record keys. Returns, per key, the fields
/// data, refs, schema_version, created_at, updated_at (nil when absent).
const LOAD_SCRIPT: &str = r"
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HMGET', KEYS[i], 'data', 'refs', 'schema_version', 'created_at', 'updated_at')
end
return out
";

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
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%'
            | ':'
            | '*'
            | '?'
            | '['
            | ']'
            | '\\'
            | '{'
            | '}'
            | '\u{0}'..='\u{1f}'
            | '\u{7f}' => {
                out.push_str(&format!("%{:02X}", u32::from(c)));
            }
            _ => out.push(c),
        }
    }
    out
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
}

struct Shared {
    url: String,
    host_port: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    save: Script,
    load: Script,
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
            save: Script::new(SAVE_SCRIPT),
            load: Script::new(LOAD_SCRIPT),
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
        };
        // Loads both scripts; the first command also tells whether the
        // server wants a password we did not give.
        for script in [&backend.shared.save, &backend.shared.load] {
            backend
                .run("connect", false, |mut conn| async move {
                    script.load_async(&mut conn).await
                })
                .await?;
        }
        Ok(backend)
    }

    /// The same backend (sharing the connection) with another TTL: records
    /// saved through it expire `ttl` after their last save; `None` keeps them
    /// until deleted. Sub-second precision is kept (Redis `PEXPIRE`).
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
        format!(
            "{}:{}:{}:{}",
            self.prefix,
            escape(&key.tenant),
            escape(&key.class_name),
            key.id.hyphenated()
        )
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

    fn record_from(&self, key: &Key, fields: Vec<Option<Vec<u8>>>) -> Result<Option<Record>> {
        let mut fields = fields.into_iter();
        let mut next = || fields.next().flatten();
        let (data, refs, version, created, updated) = (next(), next(), next(), next(), next());
        let Some(data) = data else {
            return Ok(None);
        };
        let corrupted = |what: &str| {
            Error::validation(format!(
                "stored record {} (Redis key {}) is corrupted: {what}",
                key.id,
                self.key_of(key)
            ))
        };
        let text = |v: Option<Vec<u8>>, name: &str| -> Result<String> {
            v.ok_or_else(|| corrupted(&format!("field {name} is missing")))
                .and_then(|b| {
                    String::from_utf8(b).map_err(|_| corrupted(&format!("{name} is not UTF-8")))
                })
        };
        let time = |v: Option<Vec<u8>>, name: &str| -> Result<DateTime<Utc>> {
            let t = text(v, name)?;
            DateTime::parse_from_rfc3339(&t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| corrupted(&format!("{name} '{t}' is not an RFC 3339 time")))
        };
        let refs_text = text(refs, "refs")?;
        let version_text = text(version, "schema_version")?;
        Ok(Some(Record {
            key: key.clone(),
            data: Bytes::from(data),
            refs: Record::parse_refs(Some(&refs_text))?,
            schema_version: version_text.parse().map_err(|_| {
                corrupted(&format!("schema_version '{version_text}' is not a number"))
            })?,
            created_at: time(created, "created_at")?,
            updated_at: time(updated, "updated_at")?,
        }))
    }
}

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// One level of a script's reply: an array of bulk strings or nils.
fn byte_fields(value: Value) -> Result<Vec<Option<Vec<u8>>>> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Nil => Ok(None),
                Value::BulkString(b) => Ok(Some(b)),
                Value::SimpleString(s) => Ok(Some(s.into_bytes())),
                other => Err(Error::backend_msg(format!(
                    "unexpected reply from the Redis load script: {other:?}"
                ))),
            })
            .collect(),
        other => Err(Error::backend_msg(format!(
            "unexpected reply from the Redis load script: {other:?}"
        ))),
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn save(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let ttl_ms = self.ttl.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let mut invocation = self.shared.save.prepare_invoke();
        invocation.arg(ttl_ms);
        for record in records {
            invocation
                .key(self.shared.key_of(&record.key))
                .arg(record.data.as_ref())
                .arg(record.refs_json())
                .arg(record.schema_version)
                .arg(timestamp(&record.created_at))
                .arg(timestamp(&record.updated_at));
        }
        let invocation = &invocation;
        self.run("save", true, |mut conn| async move {
            invocation.invoke_async::<u64>(&mut conn).await
        })
        .await?;
        Ok(())
    }

    async fn load(&self, keys: &[Key]) -> Result<Vec<Record>> {
        let mut seen = BTreeSet::new();
        let keys: Vec<&Key> = keys.iter().filter(|k| seen.insert(*k)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.shared.load.prepare_invoke();
        for key in &keys {
            invocation.key(self.shared.key_of(key));
        }
        let invocation = &invocation;
        let reply: Vec<Value> = self
            .run("load", true, |mut conn| async move {
                invocation.invoke_async::<Vec<Value>>(&mut conn).await
            })
            .await?;
        if reply.len() != keys.len() {
            return Err(Error::backend_msg(format!(
                "the Redis load script answered {} entries for {} keys",
                reply.len(),
                keys.len()
            )));
        }
        let mut records = Vec::with_capacity(keys.len());
        for (key, value) in keys.into_iter().zip(reply) {
            if let Some(record) = self.shared.record_from(key, byte_fields(value)?)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn delete(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("DEL");
        let mut seen = BTreeSet::new();
        for key in keys.iter().filter(|k| seen.insert(*k)) {
            cmd.arg(self.shared.key_of(key));
        }
        let cmd = &cmd;
        self.run("delete", false, |mut conn| async move {
            cmd.query_async::<u64>(&mut conn).await
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ListEntry>> {
        let head = format!(
            "{}:{}:{}:",
            self.shared.prefix,
            escape(&query.tenant),
            escape(&query.class_name)
        );
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
        let mut pipe = redis::pipe();
        for (_, key) in &found {
            pipe.cmd("HMGET")
                .arg(key)
                .arg("created_at")
                .arg("updated_at");
        }
        let pipe = &pipe;
        let times: Vec<(Option<String>, Option<String>)> = self
            .run("list", true, |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        let mut entries = Vec::with_capacity(found.len());
        for ((id, key), (created, updated)) in found.into_iter().zip(times) {
            // A key that expired or was deleted since the SCAN is skipped.
            let (Some(created), Some(updated)) = (created, updated) else {
                continue;
            };
            let parse = |t: &str| {
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        Error::validation(format!(
                            "stored record {id} (Redis key {key}) is corrupted: \
                             '{t}' is not an RFC 3339 time"
                        ))
                    })
            };
            entries.push(ListEntry {
                id,
                created_at: parse(&created)?,
                updated_at: parse(&updated)?,
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
