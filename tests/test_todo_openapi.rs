//! The Todo service's OpenAPI document (`GET /openapi.json`), checked three
//! ways:
//!
//! - **valid**: against the official OpenAPI 3.1 JSON schema (vendored in
//!   `tests/openapi/`), every Schema Object against the JSON Schema 2020-12
//!   meta-schema, every `$ref` resolving, path templates and their
//!   parameters agreeing, security requirements naming a defined scheme;
//! - **true**: every operation it lists (its paths × methods) answers a
//!   valid request built from the document with a status the document lists
//!   for it, in the shape and with the headers it documents, and every
//!   status it lists but 500 is produced by some request;
//! - **robust** (proptest): random methods, paths, queries, headers and
//!   bodies thrown at every operation never get a 5xx, every 4xx body is
//!   `{"error": string}`, and every answer to an operation's method and
//!   path has a status the document lists for it.
//!
//! Through `oneshot` on memory, and over HTTP on SQLite and, with the
//! `postgres` feature, on PostgreSQL.
#![cfg(all(feature = "tower", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "../examples/todo_service.rs"]
#[allow(dead_code)]
mod todo_service;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use axum::http::{header, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use support::unique;
use support::web::{Client, Db, Reply};
use toast::Store;
use uuid::Uuid;

/// The operations the service has, as `METHOD /path`.
const OPERATIONS: [&str; 8] = [
    "POST /todos",
    "GET /todos",
    "GET /todos/{id}",
    "PUT /todos/{id}",
    "DELETE /todos/{id}",
    "POST /todos/{id}/toggle",
    "GET /details/{id}",
    "GET /openapi.json",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The official OpenAPI 3.1 schema.
fn oas_schema() -> Value {
    serde_json::from_str(include_str!("openapi/oas-3.1.schema.json")).unwrap()
}

// ---------------------------------------------------------------- clients

/// Runs `test` through `oneshot` on memory, or against a server on a free
/// port over `db`.
async fn with_client<F: Future<Output = ()>>(db: Option<Db>, test: impl FnOnce(Client) -> F) {
    let Some(db) = db else {
        return test(Client::Router(todo_service::app(Store::memory()))).await;
    };
    let store = db.connect().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(todo_service::serve(listener, store.clone(), async {
        let _ = stopped.await;
    }));
    test(Client::Http(addr)).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    store.close().await.unwrap();
}

/// Runs a test body through `oneshot` on memory, over HTTP on SQLite, and
/// over HTTP on PostgreSQL with the feature.
macro_rules! on_every_client {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_through_oneshot() {
                super::with_client(None, super::$test).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_over_http() {
                super::with_client(Some(super::Db::sqlite()), super::$test).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_over_http() {
                super::with_client(Some(super::Db::postgres()), super::$test).await;
            }
        }
    )*};
}

on_every_client!(
    the_served_document_is_the_generated_one,
    every_operation_answers_what_the_document_lists,
);

// ---------------------------------------------------------------- the document

/// The document as `GET /openapi.json` serves it (no authentication).
async fn served_document(client: &Client) -> Value {
    let reply = client.send("GET", "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    reply.json()
}

/// One operation of the document.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    spec: Value,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn id(&self) -> &str {
        self.spec["operationId"].as_str().unwrap()
    }

    fn statuses(&self) -> BTreeSet<u16> {
        self.spec["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|status| {
                status
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: status {status:?}", self.name()))
            })
            .collect()
    }

    fn parameters(&self, location: &str) -> Vec<&Value> {
        self.spec["parameters"]
            .as_array()
            .map(|all| all.iter().filter(|p| p["in"] == location).collect())
            .unwrap_or_default()
    }

    /// Whether it needs the bearer user: its own `security`, else the
    /// document's.
    fn needs_bearer(&self, document: &Value) -> bool {
        let security = self.spec.get("security").unwrap_or(&document["security"]);
        let requirements = security.as_array().unwrap();
        // An empty requirement ({}) makes authentication optional.
        !requirements.is_empty()
            && requirements
                .iter()
                .all(|r| r.as_object().unwrap().contains_key("bearer"))
    }

    fn request_schema(&self) -> Option<&Value> {
        self.spec
            .get("requestBody")
            .map(|body| &body["content"]["application/json"]["schema"])
    }
}

/// The document's operations, paths × methods.
fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(spec) = item.get(method) {
                found.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    spec: spec.clone(),
                });
            }
        }
    }
    found
}

/// A validator for `schema`, a Schema Object of `document` whose `$ref`s
/// point into the document's components.
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        other => panic!("not a schema object: {other}"),
    };
    root.insert("components".into(), document["components"].clone());
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("cannot compile {schema}: {e}"))
}

fn errors_of(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// The `{name}`s of a path template.
fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

async fn the_served_document_is_the_generated_one(client: Client) {
    let served = served_document(&client).await;
    assert_eq!(
        served,
        serde_json::to_value(todo_service::openapi()).unwrap(),
        "GET /openapi.json serves the document generated from the handlers"
    );
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = serde_json::to_value(todo_service::openapi()).unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );

    // The official schema: the document's structure.
    let schema = oas_schema();
    assert_eq!(
        schema["$id"],
        "https://spec.openapis.org/oas/3.1/schema/2025-11-23"
    );
    let oas = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let problems = errors_of(&oas, &document);
    assert!(problems.is_empty(), "not valid OpenAPI 3.1: {problems:#?}");
    // It does catch a broken document.
    let breaks: [fn(&mut Value); 3] = [
        |d| {
            d["paths"]["/todos"]["get"]["responses"]["200"]
                .as_object_mut()
                .unwrap()
                .remove("description");
        },
        |d| d["paths"]["/todos"]["get"]["parameters"][0]["in"] = json!("body"),
        |d| d["components"]["securitySchemes"]["bearer"]["type"] = json!("token"),
    ];
    for break_it in breaks {
        let mut broken = document.clone();
        break_it(&mut broken);
        assert!(!errors_of(&oas, &broken).is_empty(), "{broken}");
    }

    // Schema Objects, which the official schema leaves to their dialect.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert!(!schemas.is_empty());
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components.schemas.{name} is not a JSON Schema: {e}");
        }
    }

    // Every `$ref` resolves inside the document.
    let mut targets = Vec::new();
    references(&document, &mut targets);
    assert!(!targets.is_empty());
    for target in &targets {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("$ref {target:?} points outside the document"));
        assert!(
            document.pointer(pointer).is_some(),
            "$ref {target:?} resolves to nothing"
        );
    }

    // Every operation, and only those, with a unique id; path parameters
    // are the template's, required.
    let operations = operations(&document);
    let names: BTreeSet<String> = operations.iter().map(Operation::name).collect();
    assert_eq!(names, OPERATIONS.iter().map(|&o| o.to_owned()).collect());
    let ids: BTreeSet<&str> = operations.iter().map(Operation::id).collect();
    assert_eq!(ids.len(), operations.len(), "operationIds are unique");
    for operation in &operations {
        let name = operation.name();
        let declared: BTreeSet<String> = operation
            .parameters("path")
            .iter()
            .map(|p| {
                assert_eq!(p["required"], true, "{name}: {p}");
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(declared, template_names(&operation.path), "{name}");
        assert!(operation.spec["summary"].is_string(), "{name}: a summary");
    }

    // The bearer scheme, required by every operation but the document's.
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "user name",
            "description": document["components"]["securitySchemes"]["bearer"]["description"],
        })
    );
    for operation in &operations {
        let name = operation.name();
        let security = operation
            .spec
            .get("security")
            .unwrap_or(&document["security"]);
        for requirement in security.as_array().unwrap() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    document["components"]["securitySchemes"]
                        .get(scheme)
                        .is_some(),
                    "{name}: security scheme {scheme} is not defined"
                );
            }
        }
        let statuses = operation.statuses();
        if name == "GET /openapi.json" {
            assert!(!operation.needs_bearer(&document), "{name} is public");
            assert_eq!(statuses, BTreeSet::from([200]), "{name}");
            continue;
        }
        assert!(operation.needs_bearer(&document), "{name} needs the bearer");
        let unauthorized = &operation.spec["responses"]["401"];
        assert!(
            unauthorized["headers"].get("WWW-Authenticate").is_some(),
            "{name}: 401 documents WWW-Authenticate"
        );
        assert!(statuses.contains(&500), "{name}: documents 500");
        // Every error is an ErrorBody.
        for status in statuses.iter().filter(|&&s| s >= 400) {
            assert_eq!(
                operation.spec["responses"][status.to_string()]["content"]["application/json"]
                    ["schema"],
                json!({"$ref": "#/components/schemas/ErrorBody"}),
                "{name}: {status}"
            );
        }
        if !operation.parameters("path").is_empty() {
            assert!(statuses.is_superset(&BTreeSet::from([400, 404])), "{name}");
        }
        if let Some(body) = operation.spec.get("requestBody") {
            assert_eq!(body["required"], true, "{name}");
            assert!(operation.request_schema().unwrap().is_object(), "{name}");
            assert!(
                statuses.is_superset(&BTreeSet::from([400, 413, 415])),
                "{name}"
            );
        }
    }
}

// ---------------------------------------------------------------- requests

/// A request to send.
#[derive(Clone)]
struct Sent {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// Headers and body as text, the body cut at 300 bytes.
impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.target)?;
        for (name, value) in &self.headers {
            write!(f, " [{name}: {:?}]", String::from_utf8_lossy(value))?;
        }
        if let Some(body) = &self.body {
            let shown = &body[..body.len().min(300)];
            write!(
                f,
                " body ({} bytes): {:?}",
                body.len(),
                String::from_utf8_lossy(shown)
            )?;
        }
        Ok(())
    }
}

impl Sent {
    async fn send(&self, client: &Client) -> Reply {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        client
            .request(&self.method, &self.target, &headers, self.body.as_deref())
            .await
    }
}

/// The path of `operation` with its parameters filled from `values`.
fn fill(operation: &Operation, values: &BTreeMap<&str, String>) -> String {
    let mut path = operation.path.clone();
    for name in template_names(&operation.path) {
        let value = values
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{}: no value for {{{name}}}", operation.name()));
        path = path.replace(&format!("{{{name}}}"), value);
    }
    path
}

/// A valid body for the operation with this id.
fn valid_body(operation_id: &str) -> Value {
    match operation_id {
        "create_todo" => json!({
            "title": "From the document",
            "details": {"notes": "n", "checklist": [{"text": "t", "done": true}]},
        }),
        "update_todo" => json!({"title": "Changed", "completed": true}),
        other => panic!("no valid body for {other}: add one"),
    }
}

/// A valid request for `operation` by `user`, its `{id}` the todo `id`:
/// query parameters at their defaults, the body checked against the
/// document's schema.
fn valid_request(document: &Value, operation: &Operation, user: &str, id: &str) -> Sent {
    let name = operation.name();
    let mut target = fill(operation, &BTreeMap::from([("id", id.to_owned())]));
    let query: Vec<String> = operation
        .parameters("query")
        .iter()
        .filter_map(|p| {
            let default = p["schema"].get("default");
            assert!(
                default.is_some() || p["required"] != true,
                "{name}: required query parameter {p} without a default"
            );
            Some(format!("{}={}", p["name"].as_str()?, default?))
        })
        .collect();
    if !query.is_empty() {
        target = format!("{target}?{}", query.join("&"));
    }
    let mut headers = Vec::new();
    if operation.needs_bearer(document) {
        headers.push((
            "authorization".into(),
            format!("Bearer {user}").into_bytes(),
        ));
    }
    let body = operation.request_schema().map(|schema| {
        let body = valid_body(operation.id());
        let problems = errors_of(&validator(document, schema), &body);
        assert!(
            problems.is_empty(),
            "{name}: {body} is not valid: {problems:?}"
        );
        headers.push(("content-type".into(), b"application/json".to_vec()));
        serde_json::to_vec(&body).unwrap()
    });
    Sent {
        method: operation.method.clone(),
        target,
        headers,
        body,
    }
}

/// Checks `reply` against what the document says of `operation`: a status
/// it lists, a JSON body matching that response's schema, its headers.
fn check_answer(document: &Value, operation: &Operation, sent: &Sent, reply: &Reply) {
    let name = operation.name();
    let status = reply.status.as_u16();
    let response = operation.spec["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| {
            panic!(
                "{name}: {sent:?} answered {status}, which the document does not list: {}",
                reply.text()
            )
        });
    if let Some(headers) = response["headers"].as_object() {
        for header in headers.keys() {
            assert!(
                reply.headers.contains_key(header.as_str()),
                "{name}: {status} without its header {header}"
            );
        }
    }
    match response["content"]["application/json"].get("schema") {
        // 500 may come with an empty body (a failed flush).
        Some(_) if status == 500 && reply.body.is_empty() => {}
        Some(schema) => {
            assert_eq!(
                reply.headers.get(header::CONTENT_TYPE).unwrap(),
                "application/json",
                "{name}: {status}"
            );
            let problems = errors_of(&validator(document, schema), &reply.json());
            assert!(
                problems.is_empty(),
                "{name}: {status} {} does not match its schema: {problems:?}",
                reply.text()
            );
        }
        None => assert!(reply.body.is_empty(), "{name}: {status}: {}", reply.text()),
    }
}

async fn create_todo(client: &Client, user: &str) -> String {
    let reply = client.post("/todos", user, r#"{"title": "fixture"}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["id"].as_str().unwrap().to_owned()
}

async fn every_operation_answers_what_the_document_lists(client: Client) {
    let document = served_document(&client).await;
    let user = unique("doc");
    let operations = operations(&document);
    assert_eq!(operations.len(), OPERATIONS.len());
    for operation in &operations {
        let name = operation.name();
        let mut seen = BTreeSet::new();
        let mut answer = |sent: &Sent, reply: Reply| {
            check_answer(&document, operation, sent, &reply);
            seen.insert(reply.status.as_u16());
            reply
        };

        // A valid request, on a todo of the caller's: a success.
        let id = create_todo(&client, &user).await;
        let sent = valid_request(&document, operation, &user, &id);
        let reply = answer(&sent, sent.send(&client).await);
        assert!(reply.status.is_success(), "{name}: {}", reply.status);

        // Without the bearer user.
        if operation.needs_bearer(&document) {
            let mut anonymous = valid_request(&document, operation, &user, &id);
            anonymous
                .headers
                .retain(|(name, _)| name != "authorization");
            answer(&anonymous, anonymous.send(&client).await);
        }
        // A bad id, and a todo that is not there.
        if !operation.parameters("path").is_empty() {
            let bad = valid_request(&document, operation, &user, "not-a-uuid");
            answer(&bad, bad.send(&client).await);
            let missing = valid_request(&document, operation, &user, &Uuid::new_v4().to_string());
            answer(&missing, missing.send(&client).await);
        }
        // A bad query.
        if !operation.parameters("query").is_empty() {
            let mut bad = valid_request(&document, operation, &user, &id);
            bad.target = format!("{}?limit=101", operation.path);
            answer(&bad, bad.send(&client).await);
        }
        // Bodies: not JSON, not the type, too large.
        if operation.request_schema().is_some() {
            let id = create_todo(&client, &user).await;
            let mut bad = valid_request(&document, operation, &user, &id);
            bad.body = Some(b"{".to_vec());
            answer(&bad, bad.send(&client).await);
            let mut plain = valid_request(&document, operation, &user, &id);
            plain.headers.retain(|(name, _)| name != "content-type");
            plain
                .headers
                .push(("content-type".into(), b"text/plain".to_vec()));
            answer(&plain, plain.send(&client).await);
            let mut huge = valid_request(&document, operation, &user, &id);
            huge.body = Some(vec![b' '; 2 * 1024 * 1024 + 1]);
            answer(&huge, huge.send(&client).await);
        }

        // Every status it lists is one a client can get, but 500 (a storage
        // failure; see test_todo_service's failed flush).
        let mut listed = operation.statuses();
        listed.remove(&500);
        assert_eq!(seen, listed, "{name}: statuses seen and listed");
    }
}

// ---------------------------------------------------------------- the fuzzer

/// How a fuzzed request fills the `{id}` of a path.
#[derive(Debug, Clone)]
enum IdPart {
    /// The fuzzing user's todo.
    Own,
    Random(Uuid),
    /// A path segment: URI characters and percent escapes.
    Text(String),
}

/// How a fuzzed request authenticates.
#[derive(Debug, Clone)]
enum Auth {
    Nothing,
    /// `Bearer <the fuzzing user>`.
    User,
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Case {
    operation: usize,
    /// Another method than the operation's.
    method: Option<&'static str>,
    id: IdPart,
    query: Option<String>,
    auth: Auth,
    content_type: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// Bytes `HeaderValue` accepts.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![8 => 0x20u8..=0x7e, 1 => 0x80u8..=0xff, 1 => Just(b'\t')],
        0..40,
    )
}

/// Strings, biased towards what the service checks.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z ]{0,12}",
        2 => any::<String>(),
        3 => "[a-z]{0,3}\u{0}[a-z]{0,3}",
        1 => Just(String::new()),
        1 => Just("  ".to_owned()),
        1 => "x{499,502}",
        1 => Just(Uuid::nil().to_string()),
        1 => Just("Details".to_owned()),
    ]
}

/// Keys, biased towards the service's own.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "title", "details", "notes", "checklist", "text", "done", "completed", "id",
            "class_name", "created_at", "updated_at",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// One change to a valid body.
#[derive(Debug, Clone)]
enum Edit {
    /// Sets `key` (at the top, or in `details`) to a value.
    Set(bool, String, Value),
    /// Takes `key` out (at the top, or in `details`).
    Remove(bool, String),
    /// Sets one of the strings the service stores (title, notes, a
    /// checklist text) to a string.
    Text(usize, String),
}

fn edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        3 => (any::<bool>(), key(), json_value()).prop_map(|(d, k, v)| Edit::Set(d, k, v)),
        1 => (any::<bool>(), key()).prop_map(|(d, k)| Edit::Remove(d, k)),
        3 => text_edit(),
    ]
    .boxed()
}

/// An edit that keeps the body valid but for the string it sets.
fn text_edit() -> BoxedStrategy<Edit> {
    (0..3usize, text())
        .prop_map(|(at, text)| Edit::Text(at, text))
        .boxed()
}

/// A valid body with some fields changed, added or taken out.
fn mutated_body(base: Value, edit: BoxedStrategy<Edit>) -> impl Strategy<Value = Value> {
    proptest::collection::vec(edit, 1..4).prop_map(move |edits| {
        let mut body = base.clone();
        for edit in edits {
            match edit {
                Edit::Set(details, key, value) => {
                    fields(&mut body, details).insert(key, value);
                }
                Edit::Remove(details, key) => {
                    fields(&mut body, details).remove(&key);
                }
                Edit::Text(0, text) => body["title"] = json!(text),
                Edit::Text(1, text) => body["details"] = json!({"notes": text}),
                Edit::Text(_, text) => {
                    body["details"] = json!({"checklist": [{"text": text, "done": false}]});
                }
            }
        }
        body
    })
}

/// The fields of `body`, or of its `details` when it has them and `details`.
fn fields(body: &mut Value, details: bool) -> &mut serde_json::Map<String, Value> {
    let body = if details && body["details"].is_object() {
        &mut body["details"]
    } else {
        body
    };
    body.as_object_mut().unwrap()
}

/// Bodies for an operation whose valid body is `base`; with `huge`,
/// sometimes one over the limit.
fn body(base: Value, huge: bool) -> impl Strategy<Value = Option<Vec<u8>>> {
    let encode = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    // Not over HTTP: a server that answers before reading the whole body
    // (401, 415, 405) closes the connection while the client still writes.
    let huge = if huge { 1 } else { 0 };
    prop_oneof![
        2 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        2 => json_value().prop_map(encode),
        1 => Just(encode(base.clone())),
        3 => mutated_body(base.clone(), edit()).prop_map(encode),
        3 => mutated_body(base, text_edit()).prop_map(encode),
        huge => Just(Some(vec![b'['; 2 * 1024 * 1024 + 1])),
    ]
}

/// Header names that would change how the request is framed or routed.
const FRAMING: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "keep-alive",
    "authorization",
    "content-type",
];

fn case(operations: &[Operation], huge: bool) -> impl Strategy<Value = Case> {
    // The operations that store what they are sent, three times as often.
    let picks: Vec<usize> = (0..operations.len())
        .flat_map(|i| {
            let weight = if operations[i].request_schema().is_some() {
                3
            } else {
                1
            };
            std::iter::repeat_n(i, weight)
        })
        .collect();
    let method = prop_oneof![
        6 => Just(None),
        1 => prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO",
        ])
        .prop_map(Some),
    ];
    let id = prop_oneof![
        3 => Just(IdPart::Own),
        1 => any::<u128>().prop_map(|n| IdPart::Random(Uuid::from_u128(n))),
        2 => "(%[0-9A-Fa-f]{2}|[A-Za-z0-9._~!$&'()*+,;=:@-]){1,40}".prop_map(IdPart::Text),
    ];
    let query = prop::option::of(prop_oneof![
        "(limit|offset)=-?[0-9]{0,25}(&(limit|offset)=[0-9a-z.%+-]{0,8})?",
        "([a-z%0-9]{0,8}(=[-0-9a-zA-Z%.+]{0,24})?&?){0,4}",
    ]);
    let auth = prop_oneof![
        1 => Just(Auth::Nothing),
        8 => Just(Auth::User),
        1 => header_value().prop_map(Auth::Raw),
    ];
    let content_type = prop_oneof![
        8 => Just(Some(b"application/json".to_vec())),
        1 => Just(None),
        1 => Just(Some(b"text/plain".to_vec())),
        1 => header_value().prop_map(Some),
    ];
    let headers = proptest::collection::vec(("[a-z][a-z0-9-]{0,15}", header_value()), 0..3)
        .prop_map(|headers| {
            headers
                .into_iter()
                .filter(|(name, _)| {
                    !FRAMING.contains(&name.as_str()) && !name.starts_with("proxy-")
                })
                .collect()
        });
    let bases: Vec<Value> = operations
        .iter()
        .map(|operation| match operation.request_schema() {
            Some(_) => valid_body(operation.id()),
            None => valid_body("create_todo"),
        })
        .collect();
    let operation = prop::sample::select(picks)
        .prop_flat_map(move |operation| (Just(operation), body(bases[operation].clone(), huge)));
    (operation, method, id, query, auth, content_type, headers).prop_map(
        |((operation, body), method, id, query, auth, content_type, headers)| Case {
            operation,
            method,
            id,
            query,
            auth,
            content_type,
            headers,
            body,
        },
    )
}

/// The request a case describes.
fn request(operations: &[Operation], case: &Case, user: &str, own: &str) -> (Sent, bool) {
    let operation = &operations[case.operation];
    let id = match &case.id {
        IdPart::Own => own.to_owned(),
        IdPart::Random(id) => id.to_string(),
        IdPart::Text(text) => text.clone(),
    };
    let mut target = fill(operation, &BTreeMap::from([("id", id)]));
    if let Some(query) = &case.query {
        target = format!("{target}?{query}");
    }
    let mut headers = case.headers.clone();
    match &case.auth {
        Auth::Nothing => {}
        Auth::User => headers.push((
            "authorization".into(),
            format!("Bearer {user}").into_bytes(),
        )),
        Auth::Raw(raw) => headers.push(("authorization".into(), raw.clone())),
    }
    if let Some(content_type) = &case.content_type {
        headers.push(("content-type".into(), content_type.clone()));
    }
    let method = case.method.map_or(operation.method.clone(), str::to_owned);
    let its_own = method == operation.method;
    let sent = Sent {
        method,
        target,
        headers,
        body: case.body.clone(),
    };
    (sent, its_own)
}

/// Throws `cases` random requests at every operation of the document.
fn fuzz(db: Option<Db>, cases: u32) {
    let huge = db.is_none();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(with_client(db, |client| async move {
        let document = served_document(&client).await;
        let operations = operations(&document);
        let user = unique("fuzz");
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        // The runner is synchronous: each case runs on a thread of its own
        // with a handle onto this runtime.
        let handle = tokio::runtime::Handle::current();
        let outcome = tokio::task::spawn_blocking(move || {
            let strategy = case(&operations, huge);
            let mut runner = TestRunner::new(config);
            runner
                .run(&strategy, |case| {
                    // A todo of the caller's for this case alone: earlier
                    // cases may have deleted the previous one.
                    let own = match case.id {
                        IdPart::Own => handle.block_on(create_todo(&client, &user)),
                        _ => String::new(),
                    };
                    let (sent, its_own) = request(&operations, &case, &user, &own);
                    let reply = handle.block_on(sent.send(&client));
                    check_fuzzed(
                        &document,
                        &operations[case.operation],
                        &sent,
                        its_own,
                        &reply,
                    )
                })
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    }));
}

fn check_fuzzed(
    document: &Value,
    operation: &Operation,
    sent: &Sent,
    its_own: bool,
    reply: &Reply,
) -> Result<(), TestCaseError> {
    let status = reply.status;
    prop_assert!(
        !status.is_server_error(),
        "{sent:?} answered {status}: {}",
        reply.text()
    );
    if status.is_client_error() {
        if sent.method == "HEAD" {
            prop_assert!(reply.body.is_empty(), "{sent:?}: a HEAD answer with a body");
        } else {
            prop_assert_eq!(
                reply
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                Some("application/json"),
                "{:?} answered {}",
                sent,
                status
            );
            let body: Value = serde_json::from_slice(&reply.body).map_err(|e| {
                TestCaseError::fail(format!("{sent:?} answered {status}: not JSON ({e})"))
            })?;
            let keys: Vec<&String> = body
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            prop_assert!(
                keys == ["error"] && body["error"].is_string(),
                "{sent:?} answered {status} with {body}, not {{\"error\": string}}"
            );
        }
    }
    if its_own {
        let listed = operation.statuses();
        prop_assert!(
            listed.contains(&status.as_u16()),
            "{sent:?} to {} answered {status}, which the document does not list ({listed:?}): {}",
            operation.name(),
            reply.text()
        );
        if status.is_success() {
            let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check_answer(document, operation, sent, reply)
            }));
            prop_assert!(
                check.is_ok(),
                "{sent:?}: the answer does not match the document"
            );
        }
    }
    Ok(())
}

#[test]
fn fuzzed_requests_through_oneshot_on_memory() {
    fuzz(None, 768);
}

#[test]
fn fuzzed_requests_over_http_on_sqlite() {
    fuzz(Some(Db::sqlite()), 384);
}

#[cfg(feature = "postgres")]
#[test]
fn fuzzed_requests_over_http_on_postgres() {
    fuzz(Some(Db::postgres()), 384);
}
