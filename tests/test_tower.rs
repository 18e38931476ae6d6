//! `toast::tower::ScopeLayer`: each request runs in a scope over the request's
//! tenant, its writes are stored before the response is returned, and a
//! failed flush becomes a 500 (logged), never a response with dangling
//! references.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use support::unique;
use support::web::{Client, Intercepted, Reply};
use toast::tower::{ScopeLayer, ScopeService, StoreTenant};
use toast::{Reference, Store};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Doc {
    title: String,
    #[serde(with = "toast::external")]
    body: Vec<String>,
}

/// Answers with a document whose body (the request text, 50 times) is an
/// external: the `Json` response serializes it inside the scope.
async fn create(text: String) -> Json<Doc> {
    Json(Doc {
        title: "doc".into(),
        body: vec![text; 50],
    })
}

/// Answers with the tenant the request's scope uses.
async fn whoami() -> String {
    toast::current()
        .map(|ctx| ctx.store().tenant_name().to_owned())
        .unwrap_or_else(|| "no scope".to_owned())
}

fn user(request: &Request<Body>) -> Option<String> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

fn app(store: Store) -> Router {
    Router::new()
        .route("/docs", post(create))
        .route("/whoami", get(whoami))
        .layer(ScopeLayer::with_tenant(store, user))
}

fn reference_in(reply: &Reply) -> Reference {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    serde_json::from_value(reply.json()["body"].clone()).unwrap()
}

/// The body shared by the memory, SQLite and PostgreSQL variants: the
/// reference in every response is loadable at the moment the response
/// arrives, in the caller's tenant only, and one flush per request.
async fn reference_is_loadable_when_the_response_arrives(store: Store) {
    let client = Client::Router(app(store.clone()));
    let ada = unique("ada");
    let bob = unique("bob");
    for round in 0..5 {
        let text = format!("round {round} {}", unique("text"));
        let before = store.stats();
        let reply = client.post("/docs", &ada, &text).await;
        let reference = reference_in(&reply);
        assert_eq!(reference.class_name, "Vec<String>");
        // Loadable right now, through a store that shares nothing with the
        // request's scope but the backend.
        let body: Vec<String> = store.tenant(&ada).get(&reference).await.unwrap();
        assert_eq!(body, vec![text; 50]);
        assert!(store
            .tenant(&bob)
            .get::<Vec<String>>(&reference)
            .await
            .unwrap_err()
            .is_not_found());
        assert!(store
            .get::<Vec<String>>(&reference)
            .await
            .unwrap_err()
            .is_not_found());
        assert_eq!(store.stats().since(&before).save_calls, 1);
    }
}

#[tokio::test]
async fn memory_reference_is_loadable_when_the_response_arrives() {
    reference_is_loadable_when_the_response_arrives(Store::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reference_is_loadable_when_the_response_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tower.db").display());
    let store = Store::connect(&url).await.unwrap();
    reference_is_loadable_when_the_response_arrives(store.clone()).await;
    store.close().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reference_is_loadable_when_the_response_arrives() {
    let schema = support::web::PgSchema::new("tower_test");
    let store = Store::connect(&schema.url)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL test server must be running: {e}"));
    reference_is_loadable_when_the_response_arrives(store.clone()).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_response_waits_for_a_slow_save() {
    let memory: Arc<dyn toast::Backend> = Arc::new(toast::backend::memory::MemoryBackend::new());
    let slow = Intercepted::new(Arc::clone(&memory)).delayed(Duration::from_millis(300));
    let store = Store::from_backend(slow);
    let direct = Store::from_arc(memory, "memory://");
    let client = Client::Router(app(store));

    let started = Instant::now();
    let reply = client.post("/docs", "ada", "slow").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let reference = reference_in(&reply);
    let body: Vec<String> = direct.tenant("ada").get(&reference).await.unwrap();
    assert_eq!(body.len(), 50);
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_flush_is_a_logged_500_without_the_original_body() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let memory: Arc<dyn toast::Backend> = Arc::new(toast::backend::memory::MemoryBackend::new());
    let flaky = Intercepted::new(Arc::clone(&memory));
    let failing = Arc::clone(&flaky.fail_saves);
    let store = Store::from_backend(flaky);
    let client = Client::Router(app(store.clone()));
    let secret_user = "token-that-must-not-be-logged";

    failing.store(true, Ordering::SeqCst);
    let reply = client.post("/docs?x=1", secret_user, "never stored").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty(), "{}", reply.text());
    assert_eq!(store.stats().save_calls, 1);
    assert_eq!(store.stats().records_saved, 1);
    // Nothing was stored, in any tenant.
    let direct = Store::from_arc(memory, "memory://");
    assert!(direct
        .tenant(secret_user)
        .list_of::<Vec<String>>(0, 10)
        .await
        .unwrap()
        .is_empty());

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("ERROR"), "{text}");
    assert!(
        text.contains("disk full (injected by the test backend)"),
        "{text}"
    );
    assert!(text.contains("POST") && text.contains("/docs"), "{text}");
    assert!(!text.contains(secret_user), "the tenant was logged: {text}");

    // A request that writes nothing does not flush, so it still succeeds.
    let reply = client.get("/whoami", "ada").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(store.stats().save_calls, 1);

    // Once the backend recovers, the next request works again.
    failing.store(false, Ordering::SeqCst);
    let reply = client.post("/docs", "ada", "stored").await;
    let reference = reference_in(&reply);
    assert_eq!(
        store
            .tenant("ada")
            .get::<Vec<String>>(&reference)
            .await
            .unwrap()
            .len(),
        50
    );
}

#[tokio::test]
async fn the_tenant_comes_from_the_request_or_falls_back_to_the_store() {
    let store = Store::memory().tenant("fallback");
    let client = Client::Router(app(store));
    assert_eq!(client.get("/whoami", "ada").await.text(), "ada");
    assert_eq!(client.get("/whoami", "bob").await.text(), "bob");
    let anonymous = client.send("GET", "/whoami", None, None).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.text(), "fallback");
}

#[tokio::test]
async fn new_runs_every_request_in_the_store_tenant() {
    let store = Store::memory();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(ScopeLayer::new(store.tenant("shared")));
    let client = Client::Router(app);
    assert_eq!(client.get("/whoami", "ada").await.text(), "shared");
    assert_eq!(
        client.send("GET", "/whoami", None, None).await.text(),
        "shared"
    );
}

#[tokio::test]
async fn require_tenant_answers_401_without_calling_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = Router::new()
        .route(
            "/whoami",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                whoami()
            }),
        )
        .layer(ScopeLayer::with_tenant(Store::memory(), user).require_tenant());
    let client = Client::Router(app);
    let reply = client.send("GET", "/whoami", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(client.get("/whoami", "ada").await.text(), "ada");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_that_writes_nothing_costs_no_save() {
    let store = Store::memory();
    let client = Client::Router(app(store.clone()));
    for _ in 0..3 {
        assert_eq!(client.get("/whoami", "ada").await.status, StatusCode::OK);
    }
    assert_eq!(store.stats().save_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_many_tenants_stay_apart() {
    let store = Store::memory();
    let client = Client::Router(app(store.clone()));
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let user = format!("user-{}", i % 6);
                let text = format!("text {i}");
                let reply = client.post("/docs", &user, &text).await;
                (user, text, reference_in(&reply))
            })
        })
        .collect();
    for task in tasks {
        let (user, text, reference) = task.await.unwrap();
        let body: Vec<String> = store.tenant(&user).get(&reference).await.unwrap();
        assert_eq!(body[0], text);
        let other = if user == "user-0" { "user-1" } else { "user-0" };
        assert!(store
            .tenant(other)
            .get::<Vec<String>>(&reference)
            .await
            .unwrap_err()
            .is_not_found());
    }
    assert_eq!(store.stats().save_calls, 60);
}

/// A plain tower service whose `call` serializes before returning its
/// future, and whose error type is not `Infallible`.
#[derive(Clone, Debug)]
struct Eager;

impl tower::Service<Request<Body>> for Eager {
    type Response = axum::http::Response<String>;
    type Error = String;
    type Future = std::future::Ready<Result<Self::Response, String>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), String>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() == "/fail" {
            return std::future::ready(Err("inner failure".to_owned()));
        }
        let doc = Doc {
            title: "eager".into(),
            body: vec!["in call".into()],
        };
        let json = serde_json::to_string(&doc).map_err(|e| e.to_string());
        std::future::ready(json.map(axum::http::Response::new))
    }
}

#[tokio::test]
async fn a_plain_service_that_serializes_in_call_and_its_errors() {
    use tower::{Layer, ServiceExt};

    let store = Store::memory();
    let service: ScopeService<Eager, _> = ScopeLayer::with_tenant(store.clone(), user).layer(Eager);
    let request = Request::get("/")
        .header("authorization", "Bearer ada")
        .body(Body::empty())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    let reference: Reference = serde_json::from_value(doc["body"].clone()).unwrap();
    assert_eq!(
        store
            .tenant("ada")
            .get::<Vec<String>>(&reference)
            .await
            .unwrap(),
        ["in call"]
    );

    let request = Request::get("/fail").body(Body::empty()).unwrap();
    assert_eq!(service.oneshot(request).await.unwrap_err(), "inner failure");
}

#[test]
fn layer_and_service_are_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    check::<ScopeLayer>();
    check::<ScopeLayer<StoreTenant>>();
    check::<ScopeService<Eager>>();
    fn future_is_send<F: std::future::Future + Send>(_: &F) {}
    use tower::{Layer, Service};
    let mut service = ScopeLayer::new(Store::memory()).layer(Eager);
    let future = service.call(Request::get("/").body(Body::empty()).unwrap());
    future_is_send(&future);
    let debug = format!("{:?}", ScopeLayer::with_tenant(Store::memory(), user));
    assert!(
        debug.contains("ScopeLayer") && debug.contains("memory://"),
        "{debug}"
    );
}
