//! Support for the web tests: a small HTTP/1.1 client over hyper, the same
//! requests through `tower::ServiceExt::oneshot`, a fresh database per test,
//! and backends that slow down or fail `save` to observe when a flush
//! happens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use toast::backend::{Key, ListEntry, ListQuery, Record};
use toast::{Backend, Store};
use tower::ServiceExt;

/// A response, read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request it answers, `METHOD /path?query`, for failure messages.
    pub request: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: status {}: body is not JSON ({e}): {:?}",
                self.request,
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Where requests go: a server over real HTTP, or a router in process.
#[derive(Clone, Debug)]
pub enum Client {
    /// HTTP/1.1 over TCP, one connection per request.
    Http(SocketAddr),
    /// `tower::ServiceExt::oneshot` on a clone of the router.
    Router(axum::Router),
}

impl Client {
    /// Sends one request; `user` becomes `Authorization: Bearer <user>`,
    /// and a body goes with `Content-Type: application/json`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let bearer = user.map(|user| format!("Bearer {user}"));
        let mut headers = Vec::new();
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_bytes()));
        }
        if body.is_some() {
            headers.push(("content-type", b"application/json".as_slice()));
        }
        self.request(method, path, &headers, body.map(str::as_bytes))
            .await
    }

    /// Sends one request with exactly these headers (values as bytes, so
    /// that a test can send what `HeaderValue` accepts but `&str` cannot
    /// hold) and this body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = Bytes::copy_from_slice(body.unwrap_or_default());
        match self {
            Client::Http(addr) => {
                let request = builder
                    .uri(format!("http://{addr}{path}"))
                    .header("host", addr.to_string())
                    .body(http_body_util::Full::new(body))
                    .unwrap();
                http_send(*addr, request).await
            }
            Client::Router(router) => {
                let request = format!("{method} {path}");
                let response = router
                    .clone()
                    .oneshot(builder.body(Body::from(body)).unwrap())
                    .await
                    .unwrap();
                let (parts, body) = response.into_parts();
                Reply {
                    request,
                    status: parts.status,
                    headers: parts.headers,
                    body: body.collect().await.unwrap().to_bytes(),
                }
            }
        }
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        self.send("GET", path, Some(user), None).await
    }

    pub async fn post(&self, path: &str, user: &str, body: &str) -> Reply {
        self.send("POST", path, Some(user), Some(body)).await
    }
}

/// One HTTP/1.1 request on a new connection.
pub async fn http_send(addr: SocketAddr, request: Request<http_body_util::Full<Bytes>>) -> Reply {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let described = format!("{} {target}", request.method());
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("{described}: {e}"));
    let (parts, body) = response.into_parts();
    Reply {
        request: described,
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// A database for one test: a fresh SQLite file, or a fresh schema on the
/// shared PostgreSQL server (and users, i.e. tenants, of its own either way).
pub struct Db {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "postgres")]
    _schema: Option<PgSchema>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("todo.db").display());
        Db {
            url,
            _dir: Some(dir),
            #[cfg(feature = "postgres")]
            _schema: None,
        }
    }

    /// A fresh schema on the shared server, dropped at the end of the test.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Db {
        let schema = PgSchema::new("todo_test");
        Db {
            url: schema.url.clone(),
            _dir: None,
            _schema: Some(schema),
        }
    }

    pub async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
    }
}

/// A backend that delegates to another one, and can delay or fail `save`.
#[derive(Debug, Clone)]
pub struct Intercepted {
    pub inner: Arc<dyn Backend>,
    pub save_delay: Duration,
    pub fail_saves: Arc<AtomicBool>,
    /// Notified each time a save starts.
    pub save_started: Arc<tokio::sync::Notify>,
}

impl Intercepted {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Intercepted {
            inner,
            save_delay: Duration::ZERO,
            fail_saves: Arc::new(AtomicBool::new(false)),
            save_started: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.save_delay = delay;
        self
    }
}

#[async_trait::async_trait]
impl Backend for Intercepted {
    async fn save(&self, records: &[Record]) -> toast::Result<()> {
        self.save_started.notify_one();
        if !self.save_delay.is_zero() {
            tokio::time::sleep(self.save_delay).await;
        }
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(toast::Error::backend(
                "disk full (injected by the test backend)",
            ));
        }
        self.inner.save(records).await
    }
    async fn load(&self, keys: &[Key]) -> toast::Result<Vec<Record>> {
        self.inner.load(keys).await
    }
    async fn delete(&self, keys: &[Key]) -> toast::Result<u64> {
        self.inner.delete(keys).await
    }
    async fn list(&self, query: &ListQuery) -> toast::Result<Vec<ListEntry>> {
        self.inner.list(query).await
    }
    async fn close(&self) -> toast::Result<()> {
        self.inner.close().await
    }
}

/// A schema of its own on the shared PostgreSQL server (`?schema=<unique>`),
/// dropped with everything in it when the guard goes, even on failure.
#[cfg(feature = "postgres")]
pub struct PgSchema {
    /// The store URL naming the schema.
    pub url: String,
    admin_url: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    pub fn new(prefix: &str) -> PgSchema {
        let admin_url = super::postgres::shared_url();
        let name = super::postgres::unique_schema(prefix);
        PgSchema {
            url: super::postgres::with_option(&admin_url, &format!("schema={name}")),
            admin_url,
            name,
        }
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgSchema {
    fn drop(&mut self) {
        use sqlx::Connection;
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::Executor::execute(&mut conn, sql.as_str())
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}
