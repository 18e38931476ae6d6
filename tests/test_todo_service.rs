//! The Todo service of `examples/todo_service.rs`, driven over HTTP on a free
//! port (and through `tower::ServiceExt::oneshot`), on SQLite and, with the
//! `postgres` feature, on PostgreSQL (`TOAST_TEST_POSTGRES_URL`): one test
//! per endpoint and behaviour (each run over HTTP on every database and
//! through `oneshot` on memory, and failing with the endpoint's name), the
//! error answers (axum's rejections included), isolation between users,
//! persistence across a restart, concurrent creates, references loadable when
//! a response arrives, and graceful shutdown. The OpenAPI document is checked
//! in `test_todo_openapi.rs`.
#![cfg(all(feature = "tower", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "../examples/todo_service.rs"]
#[allow(dead_code)]
mod todo_service;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use futures_util::FutureExt;
use serde_json::{json, Value};
use support::unique;
use support::web::{Client, Db, Intercepted, Reply};
use toast::{Reference, Store};
use todo_service::Details;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The service on a free port, stopped through its graceful-shutdown signal.
struct Server {
    addr: SocketAddr,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(db: &Db) -> Server {
        Server::start_with(db.connect().await).await
    }

    async fn start_with(store: Store) -> Server {
        // Bound before the task starts: connections queue until it accepts.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(todo_service::serve(listener, store.clone(), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            store,
            stop: Some(stop),
            task,
        }
    }

    fn client(&self) -> Client {
        Client::Http(self.addr)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .unwrap();
        self.store.close().await.unwrap();
    }
}

/// Runs a test body against SQLite, and against PostgreSQL with the feature.
macro_rules! on_each_database {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(super::Db::sqlite()).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(super::Db::postgres()).await;
            }
        }
    )*};
}

on_each_database!(
    users_are_isolated,
    pages_are_newest_first,
    todos_survive_a_restart,
    concurrent_creates_land_with_their_users,
    references_are_loadable_when_the_response_arrives,
    graceful_shutdown_lets_a_request_in_flight_finish,
);

fn sample_details() -> Value {
    json!({
        "notes": "a long note ".repeat(200),
        "checklist": [{"text": "milk", "done": true}, {"text": "bread"}],
    })
}

fn create_body(title: &str) -> String {
    json!({"title": title, "details": sample_details()}).to_string()
}

fn expect(reply: &Reply, status: StatusCode) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{}: body: {}",
        reply.request,
        reply.text()
    );
    if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    }
}

fn expect_error(reply: &Reply, status: StatusCode, needle: &str) {
    let body = expect(reply, status);
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no error message: {body}", reply.request));
    assert!(
        message.contains(needle),
        "{}: {message:?} does not mention {needle:?}",
        reply.request
    );
}

fn id_of(todo: &Value) -> String {
    todo["id"].as_str().unwrap().to_owned()
}

fn details_ref(todo: &Value) -> Reference {
    serde_json::from_value(todo["details"].clone()).unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(id_of).collect()
}

async fn create(client: &Client, user: &str, title: &str) -> Value {
    expect(
        &client.post("/todos", user, &create_body(title)).await,
        StatusCode::CREATED,
    )
}

// ------------------------------------------------------------ one test per endpoint

/// Runs each endpoint test over HTTP on each database (SQLite, and
/// PostgreSQL with the feature) and through `oneshot` on memory; a failure
/// names the endpoint (`named`).
macro_rules! on_every_client {
    ($($test:ident: $endpoint:literal),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_over_http() {
                super::over_http(super::Db::sqlite(), $endpoint, super::$test).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_over_http() {
                super::over_http(super::Db::postgres(), $endpoint, super::$test).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_through_oneshot() {
                super::through_oneshot($endpoint, super::$test).await;
            }
        }
    )*};
}

on_every_client!(
    post_todos_creates_a_todo: "POST /todos",
    post_todos_without_details_stores_empty_details: "POST /todos",
    post_todos_rejects_malformed_input: "POST /todos",
    get_todos_lists_newest_first: "GET /todos",
    get_todos_rejects_a_bad_query: "GET /todos",
    get_todo_answers_the_todo: "GET /todos/{id}",
    get_details_answers_the_details: "GET /details/{id}",
    put_todo_changes_only_what_is_given: "PUT /todos/{id}",
    put_todo_takes_back_a_todo_read_with_get: "PUT /todos/{id}",
    put_todo_rejects_malformed_input: "PUT /todos/{id}",
    toggle_todo_flips_completed: "POST /todos/{id}/toggle",
    delete_todo_removes_it_and_its_details: "DELETE /todos/{id}",
    bad_ids_answer_400: "every /{id} route with a bad id",
    every_route_requires_a_bearer_user: "every route without a bearer user",
    unknown_routes_answer_404: "an unknown route",
    bodies_must_be_json: "POST /todos and PUT /todos/{id} without JSON",
    bodies_over_the_limit_answer_413: "POST /todos and PUT /todos/{id} over 2 MB",
    undecodable_path_ids_answer_400: "every /{id} route with an undecodable id",
    other_methods_answer_405: "a method a route does not have",
    nul_in_stored_strings_answers_400: "POST /todos and PUT /todos/{id} with NUL",
);

/// `test` against a server on a free port over `db`.
async fn over_http<F: Future<Output = ()>>(db: Db, endpoint: &str, test: fn(Client) -> F) {
    let server = Server::start(&db).await;
    named(endpoint, test(server.client())).await;
    server.stop().await;
}

/// `test` through `tower::ServiceExt::oneshot` on a memory store.
async fn through_oneshot<F: Future<Output = ()>>(endpoint: &str, test: fn(Client) -> F) {
    let client = Client::Router(todo_service::app(Store::memory()));
    named(endpoint, test(client)).await;
}

/// Runs `test`; when it fails, fails again with `endpoint` in front of the
/// message.
async fn named(endpoint: &str, test: impl Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(test).catch_unwind().await {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(a panic without a message)");
        panic!("{endpoint}: {message}");
    }
}

async fn post_todos_creates_a_todo(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let reply = client
        .post("/todos", user, &create_body("Write the report"))
        .await;
    let todo = expect(&reply, StatusCode::CREATED);
    let id = id_of(&todo);
    assert_eq!(
        reply.headers.get(header::LOCATION).unwrap(),
        &format!("/todos/{id}")
    );
    assert_eq!(todo["title"], "Write the report");
    assert_eq!(todo["completed"], false);
    assert_eq!(todo["created_at"], todo["updated_at"]);
    assert!(todo["created_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .is_ok());
    let details = details_ref(&todo);
    assert_eq!(details.class_name, "Details");
    assert_eq!(details.id.to_string(), id);
    let keys: HashSet<&str> = todo
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from([
            "id",
            "title",
            "completed",
            "created_at",
            "updated_at",
            "details"
        ])
    );
}

async fn post_todos_without_details_stores_empty_details(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let bare = expect(
        &client
            .post("/todos", user, r#"{"title": "No details"}"#)
            .await,
        StatusCode::CREATED,
    );
    let empty = expect(
        &client
            .get(&format!("/details/{}", id_of(&bare)), user)
            .await,
        StatusCode::OK,
    );
    assert_eq!(empty, json!({"notes": "", "checklist": []}));
}

async fn post_todos_rejects_malformed_input(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    expect_error(
        &client.post("/todos", user, r#"{"title": "#).await,
        StatusCode::BAD_REQUEST,
        "invalid JSON body",
    );
    expect_error(
        &client.post("/todos", user, "not json").await,
        StatusCode::BAD_REQUEST,
        "invalid JSON body",
    );
    expect_error(
        &client.post("/todos", user, "").await,
        StatusCode::BAD_REQUEST,
        "invalid JSON body",
    );
    expect_error(
        &client.post("/todos", user, r#"{"titel": "x"}"#).await,
        StatusCode::BAD_REQUEST,
        "unknown field `titel`",
    );
    expect_error(
        &client.post("/todos", user, r#"{"title": 7}"#).await,
        StatusCode::BAD_REQUEST,
        "invalid type",
    );
    expect_error(
        &client.post("/todos", user, r#"{"details": {}}"#).await,
        StatusCode::BAD_REQUEST,
        "missing field `title`",
    );
    expect_error(
        &client.post("/todos", user, r#"{"title": "  "}"#).await,
        StatusCode::BAD_REQUEST,
        "title must not be empty",
    );
    expect_error(
        &client
            .post(
                "/todos",
                user,
                &json!({"title": "x".repeat(501)}).to_string(),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "longer than 500",
    );
    expect_error(
        &client
            .post("/todos", user, r#"{"title": "x", "details": {"notes": 1}}"#)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid details",
    );
    expect_error(
        &client
            .post(
                "/todos",
                user,
                r#"{"title": "x", "details": {"checklist": [{"done": true}]}}"#,
            )
            .await,
        StatusCode::BAD_REQUEST,
        "missing field `text`",
    );
    expect_error(
        &client
            .post(
                "/todos",
                user,
                &json!({"title": "x", "details": todo["details"]}).to_string(),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "reference is only accepted",
    );
    // None of that created a todo.
    let list = expect(&client.get("/todos", user).await, StatusCode::OK);
    assert_eq!(ids(&list), [id_of(&todo)]);
}

async fn get_todos_lists_newest_first(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let bare = expect(
        &client
            .post("/todos", user, r#"{"title": "No details"}"#)
            .await,
        StatusCode::CREATED,
    );
    let list = expect(&client.get("/todos", user).await, StatusCode::OK);
    assert_eq!(ids(&list), [id_of(&bare), id.clone()]);
    assert_eq!(list[1], todo);
}

async fn get_todos_rejects_a_bad_query(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    for bad in [
        "/todos?limit=x",
        "/todos?offset=-1",
        "/todos?limit=",
        "/todos?limit=1.5",
    ] {
        expect_error(
            &client.get(bad, user).await,
            StatusCode::BAD_REQUEST,
            "invalid query string",
        );
    }
    expect_error(
        &client.get("/todos?limit=101", user).await,
        StatusCode::BAD_REQUEST,
        "at most 100",
    );
    expect_error(
        &client
            .get(&format!("/todos?offset={}", u64::MAX), user)
            .await,
        StatusCode::BAD_REQUEST,
        "offset is too large",
    );
}

async fn get_todo_answers_the_todo(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let fetched = expect(
        &client.get(&format!("/todos/{id}"), user).await,
        StatusCode::OK,
    );
    assert_eq!(fetched, todo);
}

async fn get_details_answers_the_details(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let fetched_details = expect(
        &client.get(&format!("/details/{id}"), user).await,
        StatusCode::OK,
    );
    assert_eq!(fetched_details["notes"], sample_details()["notes"]);
    assert_eq!(
        fetched_details["checklist"],
        json!([{"text": "milk", "done": true}, {"text": "bread", "done": false}])
    );
}

async fn put_todo_changes_only_what_is_given(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let path = format!("/todos/{id}");
    let updated = expect(
        &client
            .send(
                "PUT",
                &path,
                Some(user),
                Some(r#"{"title": "Send the report"}"#),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(updated["title"], "Send the report");
    assert_eq!(updated["completed"], false);
    assert_eq!(updated["created_at"], todo["created_at"]);
    assert_ne!(updated["updated_at"], todo["updated_at"]);
    assert_eq!(updated["details"], todo["details"]);
    let updated = expect(
        &client
            .send("PUT", &path, Some(user), Some(r#"{"completed": true}"#))
            .await,
        StatusCode::OK,
    );
    assert_eq!(updated["completed"], true);
    assert_eq!(updated["title"], "Send the report");
    let new_details = json!({"notes": "short", "checklist": []});
    let updated = expect(
        &client
            .send(
                "PUT",
                &path,
                Some(user),
                Some(&json!({"details": new_details}).to_string()),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        updated["details"], todo["details"],
        "the details keep their id"
    );
    assert_eq!(
        expect(
            &client.get(&format!("/details/{id}"), user).await,
            StatusCode::OK
        ),
        new_details
    );
}

async fn put_todo_takes_back_a_todo_read_with_get(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let path = format!("/todos/{id}");
    let new_details = json!({"notes": "short", "checklist": []});
    expect(
        &client
            .send(
                "PUT",
                &path,
                Some(user),
                Some(&json!({"details": new_details}).to_string()),
            )
            .await,
        StatusCode::OK,
    );
    // A todo read with GET can be sent back as it is (details as its own reference).
    let mut round_trip = expect(&client.get(&path, user).await, StatusCode::OK);
    round_trip["title"] = json!("Round trip");
    let updated = expect(
        &client
            .send("PUT", &path, Some(user), Some(&round_trip.to_string()))
            .await,
        StatusCode::OK,
    );
    assert_eq!(updated["title"], "Round trip");
    assert_eq!(
        expect(
            &client.get(&format!("/details/{id}"), user).await,
            StatusCode::OK
        ),
        new_details
    );
}

async fn put_todo_rejects_malformed_input(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let bare = expect(
        &client
            .post("/todos", user, r#"{"title": "No details"}"#)
            .await,
        StatusCode::CREATED,
    );
    let path = format!("/todos/{}", id_of(&todo));
    expect_error(
        &client.send("PUT", &path, Some(user), Some("{")).await,
        StatusCode::BAD_REQUEST,
        "invalid JSON body",
    );
    expect_error(
        &client.send("PUT", &path, Some(user), Some("{}")).await,
        StatusCode::BAD_REQUEST,
        "nothing to update",
    );
    expect_error(
        &client
            .send("PUT", &path, Some(user), Some(r#"{"completed": "yes"}"#))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid type",
    );
    expect_error(
        &client
            .send(
                "PUT",
                &path,
                Some(user),
                Some(&json!({"id": id_of(&bare), "title": "x"}).to_string()),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "does not match",
    );
    expect_error(
        &client
            .send(
                "PUT",
                &path,
                Some(user),
                Some(&json!({"details": bare["details"]}).to_string()),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "reference is only accepted",
    );
    // The todo is untouched by all of that.
    let after = expect(&client.get(&path, user).await, StatusCode::OK);
    assert_eq!(after, todo);
}

async fn toggle_todo_flips_completed(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let path = format!("/todos/{}", id_of(&todo));
    expect(
        &client
            .send("PUT", &path, Some(user), Some(r#"{"completed": true}"#))
            .await,
        StatusCode::OK,
    );
    let toggled = expect(
        &client.post(&format!("{path}/toggle"), user, "").await,
        StatusCode::OK,
    );
    assert_eq!(toggled["completed"], false);
    let toggled = expect(
        &client
            .send("POST", &format!("{path}/toggle"), Some(user), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(toggled["completed"], true);
    assert_eq!(
        expect(&client.get(&path, user).await, StatusCode::OK)["completed"],
        true
    );
}

async fn delete_todo_removes_it_and_its_details(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let bare = expect(
        &client
            .post("/todos", user, r#"{"title": "No details"}"#)
            .await,
        StatusCode::CREATED,
    );
    let path = format!("/todos/{id}");
    // DELETE /todos/{id}: 204, then 404 everywhere.
    let reply = client.send("DELETE", &path, Some(user), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    expect_error(
        &client.send("DELETE", &path, Some(user), None).await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    expect_error(
        &client.get(&path, user).await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    expect_error(
        &client.get(&format!("/details/{id}"), user).await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    expect_error(
        &client.post(&format!("{path}/toggle"), user, "").await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    expect_error(
        &client
            .send("PUT", &path, Some(user), Some(r#"{"title": "x"}"#))
            .await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    assert_eq!(
        ids(&expect(&client.get("/todos", user).await, StatusCode::OK)),
        [id_of(&bare)]
    );
}

async fn bad_ids_answer_400(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    for (method, bad) in [
        ("GET", "/todos/not-a-uuid"),
        ("PUT", "/todos/not-a-uuid"),
        ("DELETE", "/todos/42"),
        ("POST", "/todos/xyz/toggle"),
        ("GET", "/details/xyz"),
    ] {
        let body = (method == "PUT").then_some(r#"{"title": "x"}"#);
        expect_error(
            &client.send(method, bad, Some(user), body).await,
            StatusCode::BAD_REQUEST,
            "expected a UUID",
        );
    }
}

async fn every_route_requires_a_bearer_user(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let id = id_of(&todo);
    let path = format!("/todos/{id}");
    // Missing or malformed auth: 401 everywhere, before anything else.
    let anyone = [
        ("POST", "/todos".to_owned(), Some("{")),
        ("GET", "/todos".to_owned(), None),
        ("GET", path.clone(), None),
        ("PUT", path.clone(), Some(r#"{"title": "x"}"#)),
        ("DELETE", path.clone(), None),
        ("POST", format!("{path}/toggle"), None),
        ("GET", format!("/details/{id}"), None),
        ("GET", "/todos/not-a-uuid".to_owned(), None),
    ];
    for (method, target, body) in &anyone {
        let reply = client.send(method, target, None, *body).await;
        expect_error(&reply, StatusCode::UNAUTHORIZED, "Authorization: Bearer");
        assert_eq!(
            reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }
    for bad_auth in [
        "Basic YWRhOnNlY3JldA==",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "ada",
    ] {
        let reply = match &client {
            Client::Http(addr) => {
                let request = axum::http::Request::get(format!("http://{addr}/todos"))
                    .header("host", addr.to_string())
                    .header("authorization", bad_auth)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                support::web::http_send(*addr, request).await
            }
            Client::Router(_) => continue,
        };
        expect_error(&reply, StatusCode::UNAUTHORIZED, "Authorization: Bearer");
    }
    // The todo is untouched by all of that.
    let after = expect(&client.get(&path, user).await, StatusCode::OK);
    assert_eq!(after, todo);
    assert_eq!(
        ids(&expect(&client.get("/todos", user).await, StatusCode::OK)).len(),
        1
    );
}

async fn unknown_routes_answer_404(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    expect_error(
        &client.get("/no/such/route", user).await,
        StatusCode::NOT_FOUND,
        "no such route",
    );
}

// ------------------------------------------------- axum's rejections, as JSON

async fn bodies_must_be_json(client: Client) {
    let user = unique("ada");
    let bearer = format!("Bearer {user}");
    let auth = ("authorization", bearer.as_bytes());
    let todo = create(&client, &user, "Write the report").await;
    let path = format!("/todos/{}", id_of(&todo));
    let body = br#"{"title": "x"}"#.as_slice();
    for (method, target) in [("POST", "/todos"), ("PUT", path.as_str())] {
        for content_type in [
            None,
            Some(b"text/plain".as_slice()),
            Some(b"application/x-www-form-urlencoded".as_slice()),
            Some(b"application/jsonx".as_slice()),
            Some(b"json".as_slice()),
            Some(b"\xff".as_slice()),
        ] {
            let headers: Vec<(&str, &[u8])> = match content_type {
                None => vec![auth],
                Some(value) => vec![auth, ("content-type", value)],
            };
            expect_error(
                &client.request(method, target, &headers, Some(body)).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type: application/json",
            );
        }
        // JSON with parameters, in any case, and `+json` types are JSON.
        for content_type in [
            b"application/json; charset=utf-8".as_slice(),
            b"Application/JSON",
            b"application/merge-patch+json",
        ] {
            let headers = [auth, ("content-type", content_type)];
            let reply = client.request(method, target, &headers, Some(body)).await;
            assert!(
                reply.status.is_success(),
                "{}: {}",
                reply.request,
                reply.status
            );
        }
    }
    // Authentication still comes first.
    let reply = client
        .request(
            "POST",
            "/todos",
            &[("content-type", b"text/plain")],
            Some(body),
        )
        .await;
    expect_error(&reply, StatusCode::UNAUTHORIZED, "Authorization: Bearer");
}

async fn bodies_over_the_limit_answer_413(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let path = format!("/todos/{}", id_of(&todo));
    let huge = json!({"title": "x", "details": {"notes": "n".repeat(2 * 1024 * 1024)}}).to_string();
    for (method, target) in [("POST", "/todos"), ("PUT", path.as_str())] {
        expect_error(
            &client.send(method, target, Some(user), Some(&huge)).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit exceeded",
        );
    }
    assert_eq!(expect(&client.get(&path, user).await, StatusCode::OK), todo);
}

async fn undecodable_path_ids_answer_400(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    for (method, bad) in [
        ("GET", "/todos/%FF"),
        ("PUT", "/todos/%C3%28"),
        ("DELETE", "/todos/%ED%A0%80"),
        ("POST", "/todos/%FF%FE/toggle"),
        ("GET", "/details/%80"),
    ] {
        let body = (method == "PUT").then_some(r#"{"title": "x"}"#);
        expect_error(
            &client.send(method, bad, Some(user), body).await,
            StatusCode::BAD_REQUEST,
            "invalid path",
        );
    }
    // Percent-encoded, but a UUID once decoded: the todo.
    let todo = create(&client, user, "Write the report").await;
    let encoded: String = id_of(&todo).bytes().map(|b| format!("%{b:02X}")).collect();
    assert_eq!(
        expect(
            &client.get(&format!("/todos/{encoded}"), user).await,
            StatusCode::OK
        ),
        todo
    );
}

async fn other_methods_answer_405(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let path = format!("/todos/{}", id_of(&todo));
    for (method, target, allowed) in [
        ("PATCH", path.clone(), "PUT"),
        ("DELETE", "/todos".to_owned(), "POST"),
        ("GET", format!("{path}/toggle"), "POST"),
        ("POST", format!("/details/{}", id_of(&todo)), "GET"),
        ("OPTIONS", "/todos".to_owned(), "GET"),
        ("PUT", "/openapi.json".to_owned(), "GET"),
    ] {
        let reply = client.send(method, &target, Some(user), None).await;
        expect_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        let allow = reply.headers.get(header::ALLOW).unwrap().to_str().unwrap();
        assert!(
            allow.split(',').any(|m| m == allowed),
            "{}: Allow: {allow} without {allowed}",
            reply.request
        );
    }
}

async fn nul_in_stored_strings_answers_400(client: Client) {
    let user = unique("ada");
    let user = user.as_str();
    let todo = create(&client, user, "Write the report").await;
    let path = format!("/todos/{}", id_of(&todo));
    let with_nul = [
        json!({"title": "a\u{0}b"}),
        json!({"title": "x", "details": {"notes": "\u{0}"}}),
        json!({"title": "x", "details": {"checklist": [{"text": "milk\u{0}"}]}}),
    ];
    for body in &with_nul {
        expect_error(
            &client.post("/todos", user, &body.to_string()).await,
            StatusCode::BAD_REQUEST,
            "NUL",
        );
        expect_error(
            &client
                .send("PUT", &path, Some(user), Some(&body.to_string()))
                .await,
            StatusCode::BAD_REQUEST,
            "NUL",
        );
    }
    // An escaped backslash followed by `u0000` is text, not NUL.
    let text = expect(
        &client.post("/todos", user, r#"{"title": "\\u0000"}"#).await,
        StatusCode::CREATED,
    );
    assert_eq!(text["title"], "\\u0000");
    assert_eq!(expect(&client.get(&path, user).await, StatusCode::OK), todo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flush_per_write_and_one_load_per_level() {
    let store = Store::memory();
    let client = Client::Router(todo_service::app(store.clone()));
    let user = "counted";

    let before = store.stats();
    let todo = create(&client, user, "counted").await;
    let spent = store.stats().since(&before);
    assert_eq!(
        (spent.save_calls, spent.records_saved, spent.load_calls),
        (1, 2, 0)
    );

    let before = store.stats();
    expect(
        &client.get(&format!("/todos/{}", id_of(&todo)), user).await,
        StatusCode::OK,
    );
    let spent = store.stats().since(&before);
    assert_eq!(
        (spent.save_calls, spent.load_calls),
        (0, 2),
        "a read writes nothing"
    );

    // A title change stores the todo only; its details are unchanged.
    let before = store.stats();
    let path = format!("/todos/{}", id_of(&todo));
    expect(
        &client
            .send("PUT", &path, Some(user), Some(r#"{"title": "t"}"#))
            .await,
        StatusCode::OK,
    );
    let spent = store.stats().since(&before);
    assert_eq!((spent.save_calls, spent.records_saved), (1, 1));

    for i in 0..9 {
        create(&client, user, &format!("more {i}")).await;
    }
    let before = store.stats();
    let list = expect(&client.get("/todos?limit=100", user).await, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 10);
    let spent = store.stats().since(&before);
    assert_eq!(
        (spent.list_calls, spent.load_calls, spent.save_calls),
        (1, 2, 0)
    );
}

async fn users_are_isolated(db: Db) {
    let server = Server::start(&db).await;
    let client = server.client();
    let users: Vec<String> = (0..3).map(|i| unique(&format!("user{i}"))).collect();
    let mut owned: Vec<Vec<Value>> = Vec::new();
    for user in &users {
        let mut todos = Vec::new();
        for i in 0..3 {
            todos.push(create(&client, user, &format!("{user} #{i}")).await);
        }
        owned.push(todos);
    }
    for (a, todos) in owned.iter().enumerate() {
        for (b, intruder) in users.iter().enumerate() {
            if a == b {
                continue;
            }
            for todo in todos {
                let path = format!("/todos/{}", id_of(todo));
                expect_error(
                    &client.get(&path, intruder).await,
                    StatusCode::NOT_FOUND,
                    "not found",
                );
                expect_error(
                    &client
                        .send(
                            "PUT",
                            &path,
                            Some(intruder),
                            Some(r#"{"title": "mine now"}"#),
                        )
                        .await,
                    StatusCode::NOT_FOUND,
                    "not found",
                );
                expect_error(
                    &client.send("DELETE", &path, Some(intruder), None).await,
                    StatusCode::NOT_FOUND,
                    "not found",
                );
                expect_error(
                    &client.post(&format!("{path}/toggle"), intruder, "").await,
                    StatusCode::NOT_FOUND,
                    "not found",
                );
                expect_error(
                    &client
                        .get(&format!("/details/{}", id_of(todo)), intruder)
                        .await,
                    StatusCode::NOT_FOUND,
                    "not found",
                );
            }
        }
    }
    for (user, todos) in users.iter().zip(&owned) {
        let list = expect(&client.get("/todos?limit=100", user).await, StatusCode::OK);
        let mut expected: Vec<String> = todos.iter().map(id_of).collect();
        expected.reverse();
        assert_eq!(ids(&list), expected, "{user} sees exactly their own todos");
        // Unchanged by the intruders.
        for (listed, original) in list.as_array().unwrap().iter().zip(todos.iter().rev()) {
            assert_eq!(listed, original);
        }
    }
    server.stop().await;
}

async fn pages_are_newest_first(db: Db) {
    let server = Server::start(&db).await;
    let client = server.client();
    let user = unique("pager");
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(id_of(&create(&client, &user, &format!("#{i}")).await));
    }
    created.reverse();
    let page = |q: &'static str| {
        let client = client.clone();
        let user = user.clone();
        async move {
            ids(&expect(
                &client.get(&format!("/todos{q}"), &user).await,
                StatusCode::OK,
            ))
        }
    };
    assert_eq!(page("").await, created);
    assert_eq!(page("?limit=3").await, created[0..3]);
    assert_eq!(page("?limit=3&offset=3").await, created[3..6]);
    assert_eq!(page("?offset=6&limit=3").await, created[6..]);
    assert!(page("?offset=7").await.is_empty());
    assert!(page("?limit=0").await.is_empty());
    assert!(page("?offset=1000").await.is_empty());
    // Updating a todo does not move it.
    let oldest = created[6].clone();
    expect(
        &client
            .send(
                "PUT",
                &format!("/todos/{oldest}"),
                Some(&user),
                Some(r#"{"title": "edited"}"#),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(page("").await, created);
    server.stop().await;
}

async fn todos_survive_a_restart(db: Db) {
    let ada = unique("ada");
    let bob = unique("bob");
    let server = Server::start(&db).await;
    let client = server.client();
    let mut before = Vec::new();
    for (user, n) in [(&ada, 3), (&bob, 2)] {
        for i in 0..n {
            create(&client, user, &format!("{user} {i}")).await;
        }
    }
    let first = expect(&client.get("/todos", &ada).await, StatusCode::OK);
    let toggled = expect(
        &client
            .post(&format!("/todos/{}/toggle", id_of(&first[0])), &ada, "")
            .await,
        StatusCode::OK,
    );
    assert_eq!(toggled["completed"], true);
    for user in [&ada, &bob] {
        let list = expect(&client.get("/todos", user).await, StatusCode::OK);
        let mut details = Vec::new();
        for id in ids(&list) {
            details.push(expect(
                &client.get(&format!("/details/{id}"), user).await,
                StatusCode::OK,
            ));
        }
        before.push((list, details));
    }
    server.stop().await;

    // A new process: a new Store on the same database, a new port.
    let server = Server::start(&db).await;
    let client = server.client();
    for (user, (list, details)) in [&ada, &bob].into_iter().zip(&before) {
        let after = expect(&client.get("/todos", user).await, StatusCode::OK);
        assert_eq!(&after, list, "{user}'s todos after the restart");
        for (id, expected) in ids(&after).iter().zip(details) {
            assert_eq!(
                &expect(
                    &client.get(&format!("/details/{id}"), user).await,
                    StatusCode::OK
                ),
                expected
            );
        }
    }
    assert_eq!(
        expect(&client.get("/todos", &ada).await, StatusCode::OK)[0]["completed"],
        true
    );
    server.stop().await;
}

async fn concurrent_creates_land_with_their_users(db: Db) {
    let server = Server::start(&db).await;
    let client = server.client();
    let users: Vec<String> = (0..10).map(|i| unique(&format!("crowd{i}"))).collect();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let user = users[i % 10].clone();
            tokio::spawn(async move {
                let todo = create(&client, &user, &format!("{user} #{i}")).await;
                (user, id_of(&todo))
            })
        })
        .collect();
    let mut expected: Vec<HashSet<String>> = vec![HashSet::new(); 10];
    for task in tasks {
        let (user, id) = task.await.unwrap();
        let index = users.iter().position(|u| *u == user).unwrap();
        assert!(expected[index].insert(id));
    }
    for (user, expected) in users.iter().zip(&expected) {
        let list = expect(&client.get("/todos?limit=100", user).await, StatusCode::OK);
        let listed = ids(&list);
        assert_eq!(listed.len(), 20, "{user} has exactly 20 todos");
        assert_eq!(&listed.into_iter().collect::<HashSet<_>>(), expected);
        for todo in list.as_array().unwrap() {
            assert!(todo["title"].as_str().unwrap().starts_with(user.as_str()));
        }
    }
    server.stop().await;
}

async fn references_are_loadable_when_the_response_arrives(db: Db) {
    let server = Server::start(&db).await;
    let client = server.client();
    // An independent reader: its own connection pool, no shared cache.
    let reader = db.connect().await;
    let user = unique("reader");
    let mine = reader.tenant(&user);
    let other = reader.tenant(unique("someone-else"));
    for i in 0..10 {
        let notes = format!("notes {i} ").repeat(100);
        let body = json!({"title": format!("#{i}"), "details": {"notes": notes}}).to_string();
        let todo = expect(
            &client.post("/todos", &user, &body).await,
            StatusCode::CREATED,
        );
        let reference = details_ref(&todo);
        let details: Details = mine.get(&reference).await.unwrap();
        assert_eq!(details.notes, notes);
        assert!(other
            .get::<Details>(&reference)
            .await
            .unwrap_err()
            .is_not_found());

        // The todo itself, under its id.
        let stored: todo_service::Todo = mine
            .get(&Reference::new("Todo", reference.id))
            .await
            .unwrap();
        assert_eq!(stored.title, todo["title"].as_str().unwrap());
        assert_eq!(stored.details.notes, notes);

        // New details under the same reference, visible as soon as the PUT answers.
        let path = format!("/todos/{}", id_of(&todo));
        let changed = json!({"details": {"notes": format!("changed {i}")}}).to_string();
        let updated = expect(
            &client.send("PUT", &path, Some(&user), Some(&changed)).await,
            StatusCode::OK,
        );
        assert_eq!(details_ref(&updated), reference);
        let details: Details = mine.get(&reference).await.unwrap();
        assert_eq!(details.notes, format!("changed {i}"));
    }
    // Every reference in a listing too.
    let list = expect(&client.get("/todos?limit=100", &user).await, StatusCode::OK);
    let references: Vec<Reference> = list.as_array().unwrap().iter().map(details_ref).collect();
    assert_eq!(references.len(), 10);
    assert_eq!(
        mine.get_many::<Details>(&references).await.unwrap().len(),
        10
    );
    reader.close().await.unwrap();
    server.stop().await;
}

async fn graceful_shutdown_lets_a_request_in_flight_finish(db: Db) {
    let backend = Arc::clone(db.connect().await.backend());
    let slow = Intercepted::new(backend).delayed(Duration::from_millis(400));
    let save_started = Arc::clone(&slow.save_started);
    let server = Server::start_with(Store::from_backend(slow)).await;
    let client = server.client();
    let user = unique("late");

    let in_flight = tokio::spawn({
        let client = client.clone();
        let user = user.clone();
        async move {
            client
                .post("/todos", &user, &create_body("in flight"))
                .await
        }
    });
    // The request is in the handler's flush when the shutdown starts.
    tokio::time::timeout(Duration::from_secs(10), save_started.notified())
        .await
        .expect("the request reaches its flush");
    let addr = server.addr;
    let started = Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "stop waited for the request"
    );

    let reply = in_flight.await.unwrap();
    let todo = expect(&reply, StatusCode::CREATED);
    // Its writes were flushed: visible from a new store on the same database.
    let reader = db.connect().await;
    let details: Details = reader.tenant(&user).get(&details_ref(&todo)).await.unwrap();
    assert_eq!(details.checklist.len(), 2);
    // And the server no longer accepts connections.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    reader.close().await.unwrap();
}

/// The real signal: SIGTERM to this process stops `shutdown_signal()`, and
/// the request in flight still finishes with its writes stored.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_service_gracefully() {
    use tokio::signal::unix::{signal, SignalKind};
    // Our own listener first: from now on SIGTERM no longer kills the test
    // process, whichever listener is registered.
    let mut guard = signal(SignalKind::terminate()).unwrap();

    let db = Db::sqlite();
    let backend = Arc::clone(db.connect().await.backend());
    let slow = Intercepted::new(backend).delayed(Duration::from_millis(300));
    let save_started = Arc::clone(&slow.save_started);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(todo_service::serve(
        listener,
        Store::from_backend(slow),
        todo_service::shutdown_signal(),
    ));
    let client = Client::Http(addr);
    let user = unique("term");
    let in_flight = tokio::spawn({
        let client = client.clone();
        let user = user.clone();
        async move {
            client
                .post("/todos", &user, &create_body("signalled"))
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(10), save_started.notified())
        .await
        .expect("the request reaches its flush");

    // Signal until the server's own listener (registered when it first polled
    // the shutdown future) has seen one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the service did not stop on SIGTERM"
        );
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = tokio::time::timeout(Duration::from_millis(100), guard.recv()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.await.unwrap().unwrap();
    let todo = expect(&in_flight.await.unwrap(), StatusCode::CREATED);
    let reader = db.connect().await;
    let stored: Details = reader.tenant(&user).get(&details_ref(&todo)).await.unwrap();
    assert_eq!(stored.checklist[0].text, "milk");
    reader.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_answers_500_and_leaves_nothing_behind() {
    let memory: Arc<dyn toast::Backend> = Arc::new(toast::backend::memory::MemoryBackend::new());
    let flaky = Intercepted::new(Arc::clone(&memory));
    let failing = Arc::clone(&flaky.fail_saves);
    let client = Client::Router(todo_service::app(Store::from_backend(flaky)));
    let user = "unlucky";

    let kept = create(&client, user, "before the failure").await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let reply = client.post("/todos", user, &create_body("lost")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.body.is_empty(),
        "no todo, no reference: {}",
        reply.text()
    );
    let path = format!("/todos/{}", id_of(&kept));
    let reply = client.post(&format!("{path}/toggle"), user, "").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Reads still work, and show the state before the failures.
    let list = expect(&client.get("/todos", user).await, StatusCode::OK);
    assert_eq!(ids(&list), [id_of(&kept)]);
    assert_eq!(list[0]["completed"], false);
    let direct = Store::from_arc(memory, "memory://");
    assert_eq!(
        direct
            .tenant(user)
            .list_of::<Details>(0, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let toggled = expect(
        &client.post(&format!("{path}/toggle"), user, "").await,
        StatusCode::OK,
    );
    assert_eq!(toggled["completed"], true);
}
