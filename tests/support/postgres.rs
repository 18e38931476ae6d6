//! PostgreSQL for tests: the shared server's URL, fresh databases on it, and
//! throwaway servers started from the system binaries that a test may stop.
//!
//! - [`shared_url`]: `TOAST_TEST_POSTGRES_URL`, or
//!   `postgres://postgres@127.0.0.1:5432/test`. Never stop or reconfigure it.
//! - [`FreshDatabase`] (feature `postgres`): an empty database on the shared
//!   server, dropped when the guard goes.
//! - [`ThrowawayPostgres`]: `initdb` + `pg_ctl` on a free port in a temp dir,
//!   with password authentication over TCP and every statement logged to a
//!   file; `stop()`, `start()`, and on drop an immediate stop and the removal
//!   of the directory. PostgreSQL refuses to run as root, so when the tests run
//!   as root the server runs as the `postgres` system user (`runuser`), which
//!   then owns the temp dir. The binaries are found in `TOAST_TEST_PG_BIN`, or
//!   the newest `/usr/lib/postgresql/*/bin`, or `pg_config --bindir`, or `PATH`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The shared server's URL.
pub fn shared_url() -> String {
    std::env::var("TOAST_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` with one more query option (`name=value`).
pub fn with_option(url: &str, option: &str) -> String {
    if url.contains('?') {
        format!("{url}&{option}")
    } else {
        format!("{url}?{option}")
    }
}

/// A schema name no other test (or earlier run) uses.
pub fn unique_schema(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Where the PostgreSQL server binaries are.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TOAST_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    PathBuf::new() // rely on PATH
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

/// A PostgreSQL server of the test's own, on a free port in a temp dir.
pub struct ThrowawayPostgres {
    dir: Option<tempfile::TempDir>,
    bin: PathBuf,
    port: u16,
    password: String,
    /// Run the binaries as this system user (when the tests run as root).
    run_as: Option<String>,
    running: bool,
}

impl ThrowawayPostgres {
    /// Creates a cluster (`initdb`) and starts it. Panics with the server's
    /// output when that fails: the test needs it.
    pub fn start_new() -> ThrowawayPostgres {
        let bin = bin_dir();
        let run_as = running_as_root().then(|| "postgres".to_owned());
        // As root, the server user must be able to reach the directory: /tmp
        // is, whatever TMPDIR says.
        let mut builder = tempfile::Builder::new();
        builder.prefix("toast-pg-");
        let dir = match run_as {
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .expect("cannot create a temp dir");
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("cannot give the temp dir to the postgres user");
        }
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("cannot write the password file");
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown pwfile");
        }
        let mut server = ThrowawayPostgres {
            dir: Some(dir),
            bin,
            port: free_port(),
            password,
            run_as,
            running: false,
        };
        let data = server.data_dir();
        let out = server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", path_str(&pwfile)),
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", show(&out));
        let _ = std::fs::remove_file(&pwfile);
        let conf = format!(
            "\n# serde-toast test server\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 100\n\
             log_statement = 'all'\n\
             log_min_messages = warning\n",
            port = server.port,
            sock = path_str(server.root()),
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        server.start();
        server
    }

    /// Starts the server (again) on the same port and data, and waits until
    /// it accepts connections.
    pub fn start(&mut self) {
        let data = self.data_dir();
        let log = self.log_path();
        let out = self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-l", path_str(&log), "-W", "start"],
        );
        assert!(out.status.success(), "pg_ctl start failed: {}", show(&out));
        self.running = true;
        self.wait_ready(Duration::from_secs(30));
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits until it is down.
    pub fn stop(&mut self) {
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "fast", "-w", "stop"],
        );
        assert!(out.status.success(), "pg_ctl stop failed: {}", show(&out));
        self.running = false;
    }

    /// The superuser URL with its password, for `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server logged so far (every statement: `log_statement = 'all'`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls with real connection attempts (`pg_isready`) until the server
    /// accepts connections; panics with its log after `limit`.
    fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let port = self.port.to_string();
        loop {
            let out = self.run(
                "pg_isready",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-t",
                    "1",
                ],
            );
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "throwaway PostgreSQL on port {} not ready after {limit:?}: {}\n{}",
                self.port,
                show(&out),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).expect("temp dir gone")
    }

    fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root().join("server.log")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(self.root())
            .stdin(Stdio::null())
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST");
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        if self.dir.is_none() {
            return;
        }
        if self.running {
            let data = self.data_dir();
            let out = self.run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "10",
                    "stop",
                ],
            );
            if !out.status.success() {
                // Last resort: kill the postmaster named in its pid file.
                if let Ok(pidfile) = std::fs::read_to_string(data.join("postmaster.pid")) {
                    if let Some(pid) = pidfile.lines().next() {
                        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                    }
                }
            }
        }
        // TempDir removes the directory (root or the owner may remove it).
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn running_as_root() -> bool {
    // The owner of a file this process just created is its effective user.
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().expect("cannot create a temp file");
    probe
        .as_file()
        .metadata()
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "no system user '{user}' to run PostgreSQL as (tests run as root; \
                     install the postgresql package, which creates it)"
                )
            })
    };
    (id("-u"), id("-g"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("non-UTF-8 temp path")
}

fn show(out: &Output) -> String {
    format!(
        "status {}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(feature = "postgres")]
#[allow(unused_imports)] // not every test binary that includes `support` uses it
pub use fresh::FreshDatabase;

#[cfg(feature = "postgres")]
mod fresh {
    use sqlx::Connection;

    /// An empty database on the shared server, dropped (with its
    /// connections) when the guard goes, even when the test fails.
    pub struct FreshDatabase {
        name: String,
        admin_url: String,
        url: String,
    }

    impl FreshDatabase {
        /// Creates `toast_test_<random>` on the server `admin_url` names.
        pub async fn create(admin_url: &str) -> FreshDatabase {
            let name = super::unique_schema("toast_test");
            let mut conn = sqlx::PgConnection::connect(admin_url)
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL test server at {admin_url} is not reachable: {e}")
                });
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .expect("CREATE DATABASE");
            let _ = conn.close().await;
            let mut url = url::Url::parse(admin_url).expect("admin URL");
            url.set_path(&format!("/{name}"));
            FreshDatabase {
                name,
                admin_url: admin_url.to_owned(),
                url: url.to_string(),
            }
        }

        /// Its URL.
        pub fn url(&self) -> &str {
            &self.url
        }

        /// Its name.
        pub fn name(&self) -> &str {
            &self.name
        }
    }

    impl Drop for FreshDatabase {
        fn drop(&mut self) {
            let admin = self.admin_url.clone();
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            // Drop may run inside a runtime: do the async work on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::Executor::execute(&mut conn, sql.as_str())
                        .await
                        .ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
        }
    }
}

#[cfg(feature = "postgres")]
#[allow(unused_imports)] // not every test binary that includes `support` uses each
pub use store::{connect, drop_schema, nested, raw, record, Leaf, Mid, TestResult, Top};

/// What the PostgreSQL test files share: a nested document, connections to a
/// server, and records built by hand.
#[cfg(feature = "postgres")]
mod store {
    use serde::{Deserialize, Serialize};
    use sqlx::Connection;
    use toast::backend::{Key, Record};
    use toast::Store;
    use uuid::Uuid;

    pub type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Leaf {
        pub n: u64,
        #[serde(with = "toast::external")]
        pub blob: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Mid {
        pub name: String,
        #[serde(with = "toast::external")]
        pub leaves: Vec<Leaf>,
        #[serde(with = "toast::external")]
        pub note: Leaf,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Top {
        pub id: u64,
        #[serde(with = "toast::external")]
        pub mids: Vec<Mid>,
        #[serde(with = "toast::external")]
        pub extra: Mid,
    }

    /// Three levels of externals: Top → (Vec<Mid>, Mid) → (Vec<Leaf>, Leaf) → String.
    pub fn nested(seed: &str) -> Top {
        let leaf = |n: u64| Leaf {
            n,
            blob: format!("{seed}-blob-{n}-{}", "x".repeat(200)),
        };
        let mid = |m: u64| Mid {
            name: format!("{seed}-mid-{m}"),
            leaves: (0..3).map(|i| leaf(m * 10 + i)).collect(),
            note: leaf(m * 10 + 9),
        };
        Top {
            id: 7,
            mids: (0..3).map(mid).collect(),
            extra: mid(5),
        }
    }

    pub async fn connect(url: &str) -> Store {
        Store::connect(url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL test server not usable at {url}: {e}"))
    }

    pub async fn raw(url: &str) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL test server not reachable at {url}: {e}"))
    }

    pub async fn drop_schema(url: &str, schema: &str) {
        let mut conn = raw(url).await;
        let _ = sqlx::Executor::execute(
            &mut conn,
            format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str(),
        )
        .await;
    }

    pub fn record(tenant: &str, class: &str, id: Uuid, data: &str) -> Record {
        Record::new(Key::new(tenant, class, id), data.to_owned(), vec![])
    }
}
