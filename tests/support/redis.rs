#![cfg(feature = "redis")]
//! Throwaway Redis servers and the shared server URL (see issue 4).
//!
//! - [`shared_url`]: the shared server (`TOAST_TEST_REDIS_URL`, default
//!   `redis://127.0.0.1:6379/`). Use it only with unique prefixes or tenants;
//!   never flush or reconfigure it.
//! - [`ThrowawayRedis`]: a private `redis-server` (from `PATH`, or
//!   `TOAST_TEST_REDIS_SERVER`) on a free port in a temp dir, for tests that
//!   stop, pause, restart or reconfigure the server. Killed and its dir
//!   removed on drop, even when the test fails.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared server's URL.
pub fn shared_url() -> String {
    std::env::var("TOAST_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// The shared server's URL with `extra` query options (`"prefix=x&ttl=1"`).
pub fn shared_url_with(extra: &str) -> String {
    let base = shared_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{extra}")
}

/// A key prefix no other test (or earlier run) uses: `t` + 16 hex digits.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// A synchronous admin connection to a server URL (for `INFO`, `CONFIG`, key checks).
pub fn admin(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).unwrap_or_else(|e| panic!("bad redis URL: {e}"));
    client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach the Redis server at {} ({e}); start one (redis-server) or set \
                 TOAST_TEST_REDIS_URL",
                toast::backend::ConnectUrl::parse(url)
                    .map(|u| u.redacted().to_owned())
                    .unwrap_or_else(|_| "an unparseable URL".to_owned())
            )
        })
}

/// A stored value taken apart by the layout documented in
/// `toast::backend::redis` (parsed here independently of the library).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub magic: u8,
    pub layout: u8,
    pub schema_version: u32,
    pub created_ns: i64,
    pub updated_ns: i64,
    pub refs: Vec<u8>,
    pub data: Vec<u8>,
}

impl RawValue {
    /// Parses `bytes`; panics (this is test code) when they do not fit the layout.
    pub fn parse(bytes: &[u8]) -> RawValue {
        assert!(
            bytes.len() >= 26,
            "value of {} bytes: {bytes:?}",
            bytes.len()
        );
        let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let refs_end = 26 + u32_at(22) as usize;
        RawValue {
            magic: bytes[0],
            layout: bytes[1],
            schema_version: u32_at(2),
            created_ns: i64_at(6),
            updated_ns: i64_at(14),
            refs: bytes[26..refs_end].to_vec(),
            data: bytes[refs_end..].to_vec(),
        }
    }

    /// `GET key` on `conn`, parsed.
    pub fn get(conn: &mut redis::Connection, key: &str) -> RawValue {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query(conn)
            .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        RawValue::parse(&bytes)
    }
}

/// A `redis-server` of the test's own.
pub struct ThrowawayRedis {
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn server_binary() -> PathBuf {
    std::env::var_os("TOAST_TEST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free TCP port: {e}"))
}

impl ThrowawayRedis {
    /// Starts a server with no password.
    pub fn start() -> ThrowawayRedis {
        ThrowawayRedis::start_inner(None)
    }

    /// Starts a server that requires `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> ThrowawayRedis {
        ThrowawayRedis::start_inner(Some(password.to_owned()))
    }

    fn start_inner(password: Option<String>) -> ThrowawayRedis {
        // A port taken between picking and binding is possible: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = ThrowawayRedis {
                port: free_port(),
                password: password.clone(),
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}")),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a throwaway redis-server: {last_error}");
    }

    /// Starts the process on `self.port` and waits until it answers PING.
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(server_binary());
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if let Some(pw) = &self.password {
            cmd.arg("--requirepass").arg(pw);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {:?} ({e}): install redis-server (apt-get install redis-server) \
                     or set TOAST_TEST_REDIS_SERVER",
                    server_binary()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = std::fs::read_to_string(self.dir.path().join("redis.log"))
                        .unwrap_or_default();
                    return Err(format!("redis-server exited with {status}: {log}"));
                }
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("redis-server did not answer PING within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The URL with another user and password (`user` may be empty).
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    /// An admin connection (authenticated when the server has a password).
    pub fn admin(&self) -> redis::Connection {
        admin(&self.url())
    }

    /// The `INFO commandstats` counters as `(command, calls)`, e.g. `("evalsha", 1)`.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.admin())
            .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
        info.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// How often `name` (lower case, e.g. `"set"`, `"script|load"`) ran
    /// since the last [`ThrowawayRedis::reset_stats`].
    pub fn calls_of(&self, name: &str) -> u64 {
        calls_in(&self.command_calls(), name)
    }

    /// Resets the `INFO commandstats` counters.
    pub fn reset_stats(&self) {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut self.admin())
            .unwrap_or_else(|e| panic!("CONFIG RESETSTAT: {e}"));
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`ThrowawayRedis::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stops the process (SIGSTOP): it keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("the throwaway server is not running"));
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill {sig}` ({e}): install procps"));
        assert!(status.success(), "kill {sig} {pid} failed");
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_ref() {
            // A paused server cannot die of SIGKILL any slower, but resume anyway.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// How many calls of command `name` a `command_calls()` list counts (0 if none).
pub fn calls_in(calls: &[(String, u64)], name: &str) -> u64 {
    calls.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
}

#[allow(unused_imports)] // not every test binary that includes `support` uses each
pub use store::{full_text, nested_doc, Doc, Leaf, Middle, Top};

/// What the Redis test files share: a nested document and the full text of
/// an error.
mod store {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Leaf {
        pub text: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Middle {
        pub name: String,
        #[serde(with = "toast::external")]
        pub leaves: Vec<Leaf>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Top {
        pub n: u32,
        #[serde(with = "toast::external")]
        pub middles: Vec<Middle>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Doc {
        pub title: String,
        #[serde(with = "toast::external")]
        pub top: Top,
    }

    /// A document with externals three levels deep: `top` (level 1), its
    /// `middles` (level 2), and each middle's `leaves` (level 3).
    pub fn nested_doc(middles: usize) -> Doc {
        Doc {
            title: "nested".into(),
            top: Top {
                n: 7,
                middles: (0..middles)
                    .map(|m| Middle {
                        name: format!("m{m}"),
                        leaves: (0..3)
                            .map(|l| Leaf {
                                text: format!("leaf {m}/{l} {}", "x".repeat(200)),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        }
    }

    /// Display, Debug and the whole source chain of an error.
    pub fn full_text(err: &toast::Error) -> String {
        let mut text = format!("{err} | {err:?}");
        let mut source = std::error::Error::source(err);
        while let Some(e) = source {
            text.push_str(&format!(" | {e} | {e:?}"));
            source = e.source();
        }
        text
    }
}

/// A store over `backend` (what `RedisBackend::into_store` was), shown as
/// its redacted URL.
pub fn store_of(backend: toast::backend::redis::RedisBackend) -> toast::Store {
    let url = backend.url().to_owned();
    toast::Store::from_arc(std::sync::Arc::new(backend), url)
}
