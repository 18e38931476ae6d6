//! A Todo service on axum 0.8 with toast as its storage: every user is a
//! tenant, every request runs in a toast scope (`toast::tower::ScopeLayer`),
//! and each todo's large `details` value travels as an external.
//!
//! ```text
//! cargo run --example todo_service                    # sqlite://todo.db on 127.0.0.1:3000
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/todo \
//!     cargo run --example todo_service --features postgres
//! ```
//!
//! # Configuration (see `examples/.env.example`)
//!
//! - `TODO_ADDR`: where to listen (default `127.0.0.1:3000`).
//! - `DATABASE_URL`: the store (default `sqlite://todo.db`; `postgres://…`
//!   with the `postgres` feature, or any scheme toast knows). Migrations are
//!   applied by `Store::connect` at start.
//!
//! # API
//!
//! `GET /openapi.json` serves the OpenAPI 3.1 document of the API, generated
//! from the handlers and the types below (`utoipa`): every path, method,
//! parameter, body, status and the bearer authentication. The routes and
//! the document are registered together (`utoipa_axum::routes!`), so a route
//! cannot be served without being documented.
//!
//! Every other request needs `Authorization: Bearer <user>` (401 otherwise);
//! the user is the toast tenant, so a user never sees another user's todos:
//! they answer 404, exactly like todos that do not exist.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /todos` `{"title": "…", "details"?: {"notes": "…", "checklist": [{"text": "…", "done": false}]}}` | 201, the todo (`Location: /todos/{id}`) |
//! | `GET /todos?limit=&offset=` | 200, the caller's todos, newest first (`limit` 0..=100, default 20; `offset` default 0) |
//! | `GET /todos/{id}` | 200, the todo |
//! | `PUT /todos/{id}` `{"title"?, "completed"?, "details"?}` | 200, the updated todo |
//! | `DELETE /todos/{id}` | 204 (the todo and its details are deleted) |
//! | `POST /todos/{id}/toggle` | 200, the todo after the toggle |
//! | `GET /details/{id}` | 200, the details value a todo's `details` reference names |
//! | `GET /openapi.json` | 200, the OpenAPI document (no authentication) |
//!
//! A todo is
//!
//! ```json
//! {"id": "6f9c…", "title": "Write the report", "completed": false,
//!  "created_at": "2025-01-01T12:00:00.000001Z", "updated_at": "2025-01-01T12:00:00.000001Z",
//!  "details": {"class_name": "Details", "id": "6f9c…"}}
//! ```
//!
//! `details` is the toast reference of the todo's details (notes and a
//! checklist, possibly large), stored out of line in the caller's tenant
//! before the response leaves the service. Its id is the todo's id; a client
//! resolves it with `GET /details/{id}`. `PUT` accepts `details` either as a
//! new value or as the todo's own reference (unchanged), so a todo read with
//! `GET` can be sent back as it is; `id` (if given) must match the path, and
//! `created_at` / `updated_at` are read-only and ignored.
//!
//! Errors are `{"error": "<message>"}`, axum's own rejections included: 400
//! for malformed JSON, unknown fields, an empty title, a string holding NUL
//! (U+0000, which not every backend can store), an id that is not a UUID, a
//! path that does not decode or a bad query string; 401 without a bearer
//! user; 404 for anything that is not the caller's and for unknown routes;
//! 405 for a method a route does not have (with `Allow`); 413 for a body
//! over axum's default limit (2 MB); 415 for a body that is not
//! `Content-Type: application/json`; 500 (logged) when the storage fails,
//! with an empty body when storing a request's writes failed (the layer
//! drops the response that would have named them).
//!
//! On Ctrl-C or SIGTERM the server stops accepting connections, lets the
//! requests in flight finish (their writes are flushed by the layer), then
//! closes the store.

use std::future::Future;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use toast::tower::ScopeLayer;
use toast::{External, Reference, Store};
use tokio::net::TcpListener;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// `limit` when the query string gives none.
pub const DEFAULT_LIMIT: u64 = 20;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u64 = 100;
/// The longest title accepted, in characters.
pub const MAX_TITLE: usize = 500;

/// A todo as stored (one `External<Todo>` per todo, its id the todo's id)
/// and as sent to clients.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct Todo {
    /// The todo's id (also its details' id).
    pub id: Uuid,
    /// Its title, at most 500 characters.
    pub title: String,
    /// Whether it is done.
    pub completed: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// Stored out of line under the todo's id; serialized as its reference.
    #[schema(value_type = DetailsReference)]
    pub details: External<Details>,
}

/// The large part of a todo.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// Free text.
    #[serde(default)]
    pub notes: String,
    /// The checklist, in order.
    #[serde(default)]
    pub checklist: Vec<ChecklistItem>,
}

/// One line of a checklist.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// What to do.
    pub text: String,
    /// Whether it is done.
    #[serde(default)]
    pub done: bool,
}

/// A todo's `details` as sent to clients: the toast reference of the record
/// holding them (what `External<Details>` serializes to), resolved with
/// `GET /details/{id}`.
#[derive(Serialize, Deserialize, Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsReference {
    /// Always `Details`.
    pub class_name: DetailsClass,
    /// The todo's id.
    pub id: Uuid,
}

/// The class name of every details record.
#[derive(Serialize, Deserialize, Debug, ToSchema)]
pub enum DetailsClass {
    /// The class of [`Details`].
    Details,
}

/// `details` in an update: a new value, or the todo's own reference, meaning
/// "unchanged" (so that a todo read with `GET` can be sent back as it is).
#[derive(Deserialize, Debug, ToSchema)]
#[serde(untagged)]
pub enum DetailsUpdate {
    /// New details.
    Value(Details),
    /// The todo's own reference: the details stay as they are.
    Unchanged(DetailsReference),
}

/// Every error answer.
#[derive(Serialize, Deserialize, Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
}

// ---------------------------------------------------------------- the API

/// The OpenAPI document's frame; the paths and schemas come from `routes()`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Todo service",
        description = "Todos per user on toast; every user is a tenant and each todo's \
                       details are stored out of line.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "todos", description = "The caller's todos and their details"),
        (name = "meta", description = "The service itself"),
    ),
)]
struct ApiDoc;

/// The `bearer` security scheme every operation but `/openapi.json` requires.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("user name")
                    .description(Some(
                        "`Authorization: Bearer <user>`: the user (1 to 256 visible ASCII \
                         characters, no whitespace) is the caller's tenant.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, as `GET /openapi.json` serves it.
#[derive(Clone)]
struct Document(Arc<utoipa::openapi::OpenApi>);

/// Every route, each registered with its part of the document.
fn routes() -> OpenApiRouter<Document> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_todo, list_todos))
        .routes(routes!(get_todo, update_todo, delete_todo))
        .routes(routes!(toggle_todo))
        .routes(routes!(get_details))
        .routes(routes!(openapi_json))
}

/// The OpenAPI document of [`app`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The service: every route inside a toast scope over the caller's tenant.
pub fn app(store: Store) -> Router {
    let (router, document) = routes().split_for_parts();
    router
        .with_state(Document(Arc::new(document)))
        .fallback(|| async { ApiError::not_found("no such route") })
        // After the routes: it applies to the routes already added.
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        // The tenant is the bearer user; requests without one run over the
        // store's own tenant, and the `User` extractor answers 401 before
        // any handler touches storage.
        .layer(ScopeLayer::with_tenant(
            store,
            |request: &Request<axum::body::Body>| bearer_user(request.headers()),
        ))
}

/// Serves `app(store)` on `listener` until `shutdown` completes, then lets
/// the requests in flight finish (and flush) before returning.
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(store))
        .with_graceful_shutdown(shutdown)
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    let addr = std::env::var("TODO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://todo.db".to_owned());

    // Connects and applies the migrations. The error names the cause and the
    // remedy, with the password redacted from the URL.
    let store = match Store::connect(&url).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("cannot open DATABASE_URL: {error}");
            std::process::exit(1);
        }
    };
    let listener = TcpListener::bind(&addr).await?;
    tracing::info!(
        "todo service on http://{} with {}",
        listener.local_addr()?,
        store.url()
    );
    serve(listener, store.clone(), shutdown_signal()).await?;
    store.close().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

// ---------------------------------------------------------------- auth

/// The user of `Authorization: Bearer <user>`, if the header is there and
/// well-formed (a non-empty token of at most 256 visible characters).
pub fn bearer_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let valid = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && token.len() <= 256
        && !token.contains(char::is_whitespace);
    valid.then(|| token.to_owned())
}

/// The authenticated caller; its rejection is 401.
#[derive(Debug, Clone)]
pub struct User(pub String);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer_user(&parts.headers)
            .map(User)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl User {
    /// The request's store (the scope's), checked to be this user's tenant.
    fn store(&self) -> Result<Store, ApiError> {
        let ctx = toast::current()
            .ok_or_else(|| ApiError::internal("the request runs outside a toast scope"))?;
        if ctx.store().tenant_name() != self.0 {
            return Err(ApiError::internal(
                "the request's toast scope is not the caller's tenant",
            ));
        }
        Ok(ctx.store().clone())
    }
}

/// The `{id}` of the path, a UUID; its rejections are 400.
#[derive(Debug, Clone, Copy)]
pub struct TodoId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for TodoId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::rejected(e.status(), format!("invalid path: {}", e.body_text()))
            })?;
        parse_id(&text).map(TodoId)
    }
}

/// A JSON request body: `Content-Type: application/json` (415 otherwise), at
/// most axum's body limit (413), a `T` (400 otherwise, naming the problem).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: Request<axum::body::Body>,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with `Content-Type: application/json`",
            ));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
        parse_body(&body).map(JsonBody)
    }
}

/// Whether the request's `Content-Type` is `application/json` or
/// `application/*+json` (parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

// ---------------------------------------------------------------- errors

/// An error answer: `{"error": message}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or malformed `Authorization: Bearer <user>` header",
        )
    }

    /// One of axum's own rejections, in this service's shape. Those an
    /// extractor answers with a 5xx are the service's fault, not the
    /// client's: logged, and answered as any internal error.
    fn rejected(status: StatusCode, message: String) -> Self {
        if status.is_server_error() {
            return ApiError::internal(&message);
        }
        ApiError::new(status, message)
    }

    fn internal(message: &str) -> Self {
        tracing::error!("{message}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// A storage error: 404 for a missing record, 500 (logged) otherwise.
    fn storage(error: toast::Error, what: &str, id: Uuid) -> Self {
        if error.is_not_found() {
            return ApiError::not_found(format!("{what} {id} not found"));
        }
        tracing::error!(%error, "storage failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

// ---------------------------------------------------------------- input

/// A new todo.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTodo {
    /// 1 to 500 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 500)]
    title: String,
    /// Empty notes and checklist when not given.
    #[serde(default)]
    #[schema(value_type = Option<Details>)]
    details: Option<Value>,
}

/// Changes to a todo: at least one of `title`, `completed`, `details`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateTodo {
    /// If given, the id of the path.
    #[serde(default)]
    id: Option<Uuid>,
    /// 1 to 500 characters, not only whitespace.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    title: Option<String>,
    #[serde(default)]
    completed: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<DetailsUpdate>)]
    details: Option<Value>,
    /// Read-only: accepted (so that a todo read with GET can be sent back)
    /// and ignored.
    #[serde(default, rename = "created_at")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    _created_at: Option<Value>,
    /// Read-only: accepted and ignored.
    #[serde(default, rename = "updated_at")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    _updated_at: Option<Value>,
}

/// The page of `GET /todos`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// How many todos at most.
    #[param(default = json!(DEFAULT_LIMIT), minimum = 0, maximum = 100)]
    limit: Option<u64>,
    /// How many of the newest todos to skip.
    #[param(default = json!(0), minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    offset: Option<u64>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::bad_request(format!("invalid id {text:?}: expected a UUID")))
}

/// Refuses NUL (U+0000) in a string the service stores: PostgreSQL cannot
/// hold it, and the failure would only show when the request's writes are
/// flushed, as a 500.
fn check_text(what: &str, text: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "{what} must not contain NUL (U+0000) characters"
        )));
    }
    Ok(())
}

fn check_title(title: &str) -> Result<(), ApiError> {
    if title.trim().is_empty() {
        return Err(ApiError::bad_request("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::bad_request(format!(
            "title is longer than {MAX_TITLE} characters"
        )));
    }
    check_text("title", title)
}

/// What the client sent as `details`: a new value, or the todo's own
/// reference (meaning: unchanged).
enum DetailsInput {
    Value(Details),
    Unchanged,
}

fn parse_details(value: Value, own: Option<&Reference>) -> Result<DetailsInput, ApiError> {
    let is_reference = matches!(&value, Value::Object(map)
        if map.len() == 2 && map.contains_key("class_name") && map.contains_key("id"));
    if is_reference {
        let reference: Reference = serde_json::from_value(value)
            .map_err(|e| ApiError::bad_request(format!("invalid details reference: {e}")))?;
        return match own {
            Some(own) if *own == reference => Ok(DetailsInput::Unchanged),
            _ => Err(ApiError::bad_request(
                "details must be a value {\"notes\", \"checklist\"}; a reference is only \
                 accepted when it is the todo's own",
            )),
        };
    }
    let details: Details = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid details: {e}")))?;
    check_text("details.notes", &details.notes)?;
    for item in &details.checklist {
        check_text("details.checklist[].text", &item.text)?;
    }
    Ok(DetailsInput::Value(details))
}

// ---------------------------------------------------------------- storage

fn todo_reference(id: Uuid) -> Reference {
    Reference::new(&*toast::class_name::<Todo>(), id)
}

fn details_reference(id: Uuid) -> Reference {
    Reference::new(&*toast::class_name::<Details>(), id)
}

/// Loads the todo `id` of the scope's tenant (and its details) into the
/// request's scope: one round trip per nesting level, and the response can
/// re-serialize the details without writing them again.
async fn load_todo(id: Uuid) -> Result<Todo, ApiError> {
    let reference = serde_json::to_value(todo_reference(id))
        .map_err(|_| ApiError::internal("cannot encode a reference"))?;
    toast::from_value::<External<Todo>>(reference)
        .await
        .map(External::into_inner)
        .map_err(|e| ApiError::storage(e, "todo", id))
}

/// Buffers the todo (and its details if they changed) in the request's
/// scope; the layer stores them before the response leaves the service.
fn stage(todo: Todo) -> Result<Todo, ApiError> {
    let id = todo.id;
    let stored = External::with_id(todo, id);
    serde_json::to_value(&stored)
        .map_err(|e| ApiError::storage(toast::Error::from(e), "todo", id))?;
    Ok(stored.into_inner())
}

// ---------------------------------------------------------------- handlers

/// Creates a todo.
#[utoipa::path(
    post,
    path = "/todos",
    tag = "todos",
    request_body(content = CreateTodo, content_type = "application/json"),
    responses(
        (status = 201, description = "The new todo", body = Todo,
            headers(("Location" = String, description = "`/todos/{id}` of the new todo"))),
        (status = 400, description = "Malformed JSON, an unknown field, a bad title or details", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 413, description = "A body over 2 MB", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json`", body = ErrorBody),
        (status = 500, description = "Storage failed (logged); empty body when storing the todo failed", body = ErrorBody),
    ),
)]
async fn create_todo(
    user: User,
    JsonBody(input): JsonBody<CreateTodo>,
) -> Result<Response, ApiError> {
    check_title(&input.title)?;
    let details = match input.details {
        None => Details::default(),
        Some(value) => match parse_details(value, None)? {
            DetailsInput::Value(details) => details,
            DetailsInput::Unchanged => Details::default(),
        },
    };
    user.store()?;
    let id = Uuid::new_v4();
    let now = Utc::now();
    let todo = Todo {
        id,
        title: input.title,
        completed: false,
        created_at: now,
        updated_at: now,
        details: External::with_id(details, id),
    };
    let todo = stage(todo)?;
    let location = HeaderValue::from_str(&format!("/todos/{id}"))
        .map_err(|_| ApiError::internal("cannot encode the Location header"))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(todo),
    )
        .into_response())
}

/// Lists the caller's todos, newest first.
#[utoipa::path(
    get,
    path = "/todos",
    tag = "todos",
    params(ListParams),
    responses(
        (status = 200, description = "A page of the caller's todos, newest first", body = Vec<Todo>),
        (status = 400, description = "A bad query string, `limit` over 100 or `offset` over 2^63 - 1", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 500, description = "Storage failed (logged)", body = ErrorBody),
    ),
)]
async fn list_todos(
    user: User,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Vec<Todo>>, ApiError> {
    let Query(params) = query
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    if i64::try_from(offset).is_err() {
        return Err(ApiError::bad_request("offset is too large"));
    }
    let store = user.store()?;
    let references = store
        .list_of::<Todo>(offset, limit)
        .await
        .map_err(|e| ApiError::storage(e, "todo list", Uuid::nil()))?;
    // Every todo, then every details value: two round trips for the page.
    toast::prefetch(references.clone())
        .await
        .map_err(|e| ApiError::storage(e, "todo list", Uuid::nil()))?;
    let mut todos = Vec::with_capacity(references.len());
    for reference in references {
        match load_todo(reference.id).await {
            Ok(todo) => todos.push(todo),
            // Deleted since it was listed.
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Json(todos))
}

/// Reads a todo.
#[utoipa::path(
    get,
    path = "/todos/{id}",
    tag = "todos",
    params(("id" = Uuid, Path, description = "The todo's id")),
    responses(
        (status = 200, description = "The todo", body = Todo),
        (status = 400, description = "An id that is not a UUID", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such todo of the caller's", body = ErrorBody),
        (status = 500, description = "Storage failed (logged)", body = ErrorBody),
    ),
)]
async fn get_todo(user: User, TodoId(id): TodoId) -> Result<Json<Todo>, ApiError> {
    user.store()?;
    load_todo(id).await.map(Json)
}

/// Changes a todo's title, completion or details.
#[utoipa::path(
    put,
    path = "/todos/{id}",
    tag = "todos",
    params(("id" = Uuid, Path, description = "The todo's id")),
    request_body(content = UpdateTodo, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated todo", body = Todo),
        (status = 400, description = "An id that is not a UUID or does not match the body's, \
            malformed JSON, an unknown field, nothing to update, a bad title or details, \
            another todo's reference", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such todo of the caller's", body = ErrorBody),
        (status = 413, description = "A body over 2 MB", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json`", body = ErrorBody),
        (status = 500, description = "Storage failed (logged); empty body when storing the todo failed", body = ErrorBody),
    ),
)]
async fn update_todo(
    user: User,
    TodoId(id): TodoId,
    JsonBody(input): JsonBody<UpdateTodo>,
) -> Result<Json<Todo>, ApiError> {
    if input.id.is_some_and(|given| given != id) {
        return Err(ApiError::bad_request(
            "the id in the body does not match the id in the path",
        ));
    }
    if input.title.is_none() && input.completed.is_none() && input.details.is_none() {
        return Err(ApiError::bad_request(
            "nothing to update: give title, completed or details",
        ));
    }
    if let Some(title) = &input.title {
        check_title(title)?;
    }
    let details = match input.details {
        None => DetailsInput::Unchanged,
        Some(value) => parse_details(value, Some(&details_reference(id)))?,
    };
    user.store()?;
    let mut todo = load_todo(id).await?;
    if let Some(title) = input.title {
        todo.title = title;
    }
    if let Some(completed) = input.completed {
        todo.completed = completed;
    }
    if let DetailsInput::Value(details) = details {
        *todo.details = details;
    }
    todo.updated_at = Utc::now();
    stage(todo).map(Json)
}

/// Deletes a todo and its details.
#[utoipa::path(
    delete,
    path = "/todos/{id}",
    tag = "todos",
    params(("id" = Uuid, Path, description = "The todo's id")),
    responses(
        (status = 204, description = "Deleted, with its details"),
        (status = 400, description = "An id that is not a UUID", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such todo of the caller's", body = ErrorBody),
        (status = 500, description = "Storage failed (logged)", body = ErrorBody),
    ),
)]
async fn delete_todo(user: User, TodoId(id): TodoId) -> Result<StatusCode, ApiError> {
    let store = user.store()?;
    // The todo and its details in one backend call.
    let deleted = store
        .delete_many(&[todo_reference(id), details_reference(id)])
        .await
        .map_err(|e| ApiError::storage(e, "todo", id))?;
    if deleted == 0 {
        return Err(ApiError::not_found(format!("todo {id} not found")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Flips a todo's `completed`; a request body is ignored.
#[utoipa::path(
    post,
    path = "/todos/{id}/toggle",
    tag = "todos",
    params(("id" = Uuid, Path, description = "The todo's id")),
    responses(
        (status = 200, description = "The todo after the toggle", body = Todo),
        (status = 400, description = "An id that is not a UUID", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such todo of the caller's", body = ErrorBody),
        (status = 500, description = "Storage failed (logged); empty body when storing the todo failed", body = ErrorBody),
    ),
)]
async fn toggle_todo(user: User, TodoId(id): TodoId) -> Result<Json<Todo>, ApiError> {
    user.store()?;
    let mut todo = load_todo(id).await?;
    todo.completed = !todo.completed;
    todo.updated_at = Utc::now();
    stage(todo).map(Json)
}

/// Reads the details a todo's `details` reference names.
#[utoipa::path(
    get,
    path = "/details/{id}",
    tag = "todos",
    params(("id" = Uuid, Path, description = "The todo's id (the reference's `id`)")),
    responses(
        (status = 200, description = "The details", body = Details),
        (status = 400, description = "An id that is not a UUID", body = ErrorBody),
        (status = 401, description = "No `Authorization: Bearer <user>`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such todo of the caller's", body = ErrorBody),
        (status = 500, description = "Storage failed (logged)", body = ErrorBody),
    ),
)]
async fn get_details(user: User, TodoId(id): TodoId) -> Result<Json<Details>, ApiError> {
    user.store()?;
    let reference = serde_json::to_value(details_reference(id))
        .map_err(|_| ApiError::internal("cannot encode a reference"))?;
    toast::from_value::<External<Details>>(reference)
        .await
        .map(|details| Json(details.into_inner()))
        .map_err(|e| ApiError::storage(e, "details", id))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document of this service", body = Object)),
)]
async fn openapi_json(State(Document(document)): State<Document>) -> Response {
    // Serialized here, from a borrow: an `Arc` is `Serialize` only with
    // serde's `rc` feature.
    Json(document.as_ref()).into_response()
}
