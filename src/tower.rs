//! Per-request scopes for tower and axum (feature `tower`).
//!
//! [`ScopeLayer`] wraps every request in a toast scope (see [`crate::scope`]):
//! the handler, and everything it serializes (an axum `Json` response
//! included), runs with the request's [`Store`] as its context, and the
//! records it buffered are flushed **before** the response leaves the
//! service. A client therefore never receives a reference whose record is
//! not stored.
//!
//! # The tenant
//!
//! The layer is built from a [`Store`] and, optionally, a function that reads
//! the tenant from the request (a header, an authentication extension put
//! there by an outer layer, …). The request then runs against
//! `store.tenant(name)`: everything it stores or loads belongs to that tenant
//! alone. Handlers reach that store with [`crate::current`]`()`
//! (`.store()`), or simply use `toast::to_json`, `toast::from_json`,
//! `External<T>` and `#[serde(with = "toast::external")]`, which find it on
//! their own.
//!
//! When the function returns `None` the request still runs in a scope, over
//! the layer's store as given (its own tenant, the tenant `default`
//! unless you picked one with [`Store::tenant`]). That leaves the decision to
//! the application: its authentication extractor answers `401` before any
//! storage is touched, and public routes keep working. Call
//! [`ScopeLayer::require_tenant`] to have the layer itself answer
//! `401 Unauthorized` (empty body, inner service not called) instead.
//!
//! # Flushing, and what a failed flush does
//!
//! The scope ends when the inner service's future completes, i.e. when the
//! handler has produced its response. The buffered records are then saved
//! with one [`crate::Backend::save`] call (none when nothing was buffered).
//! If that save fails, the response the handler produced is **dropped** (it
//! may carry references to records that were not stored) and the client gets
//! an empty `500 Internal Server Error` instead; the failure is logged with
//! `tracing::error!` (method, path and the error, which never contains a
//! password; the tenant is not logged, as it may come from a credential).
//!
//! The response body must be produced inside the handler, as axum's `Json`
//! does. A streaming body that serializes externals lazily, after the
//! handler returned, runs outside the scope and fails.
//!
//! # Requirements
//!
//! The response body type must implement `Default` (to build the `500` and
//! `401` responses; `axum::body::Body` does) and is left unchanged. The
//! inner service must be `Clone + Send` with a `Send` future, as every axum
//! route is. The error type is the inner service's (`Infallible` for axum).
//!
//! # Examples
//!
//! ```
//! use axum::{body::Body, routing::post, Json, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Note { title: String, #[serde(with = "toast::external")] body: String }
//!
//! // The handler answers with a reference to the stored body; the layer
//! // flushes it before the response leaves the service.
//! async fn create() -> Json<Note> {
//!     Json(Note { title: "hello".into(), body: "a long text".repeat(100) })
//! }
//!
//! fn user(request: &Request<Body>) -> Option<String> {
//!     let value = request.headers().get("x-user")?.to_str().ok()?;
//!     Some(value.to_owned())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = toast::Store::memory();
//! let app = Router::new()
//!     .route("/notes", post(create))
//!     .layer(toast::tower::ScopeLayer::with_tenant(store.clone(), user));
//!
//! let request = Request::post("/notes").header("x-user", "ada").body(Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let bytes = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
//! let json: serde_json::Value = serde_json::from_slice(&bytes)?;
//! let reference: toast::Reference = serde_json::from_value(json["body"].clone())?;
//!
//! // Stored in ada's tenant by the time the response was returned.
//! let body: String = store.tenant("ada").get(&reference).await?;
//! assert!(body.starts_with("a long text"));
//! assert!(store.get::<String>(&reference).await.unwrap_err().is_not_found());
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::store::Store;

/// Where a [`ScopeLayer`] finds the tenant of a request.
///
/// Implemented for every `Fn(&Request<B>) -> Option<String> + Send + Sync +
/// 'static` (annotate the closure's parameter, e.g.
/// `|request: &Request<axum::body::Body>| …`), and by [`StoreTenant`].
/// `None` means the request names no tenant: see the [module docs](self).
pub trait TenantSource<B>: Send + Sync + 'static {
    /// The tenant of `request`, if it names one.
    fn tenant(&self, request: &Request<B>) -> Option<String>;
}

impl<B, F> TenantSource<B> for F
where
    F: Fn(&Request<B>) -> Option<String> + Send + Sync + 'static,
{
    fn tenant(&self, request: &Request<B>) -> Option<String> {
        self(request)
    }
}

/// The [`TenantSource`] of [`ScopeLayer::new`]: every request uses the
/// store's own tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTenant;

impl<B> TenantSource<B> for StoreTenant {
    fn tenant(&self, _request: &Request<B>) -> Option<String> {
        None
    }
}

/// A tower [`Layer`] that runs each request in a toast scope and flushes its
/// writes before the response is returned. See the [module docs](self).
pub struct ScopeLayer<T = StoreTenant> {
    store: Store,
    tenant: Arc<T>,
    require_tenant: bool,
}

impl ScopeLayer<StoreTenant> {
    /// Every request runs in a scope over `store` (its own tenant).
    ///
    /// # Examples
    ///
    /// ```
    /// let app: axum::Router = axum::Router::new()
    ///     .layer(toast::tower::ScopeLayer::new(toast::Store::memory().tenant("shared")));
    /// ```
    pub fn new(store: Store) -> Self {
        ScopeLayer {
            store,
            tenant: Arc::new(StoreTenant),
            require_tenant: false,
        }
    }
}

impl<T> ScopeLayer<T> {
    /// Each request runs in a scope over `store.tenant(name)`, with `name`
    /// taken from the request by `tenant`; over `store` itself when `tenant`
    /// returns `None` (unless [`ScopeLayer::require_tenant`] is set).
    pub fn with_tenant(store: Store, tenant: T) -> Self {
        ScopeLayer {
            store,
            tenant: Arc::new(tenant),
            require_tenant: false,
        }
    }

    /// Requests for which the tenant source returns `None` get an empty
    /// `401 Unauthorized` from the layer; the inner service never sees them.
    pub fn require_tenant(mut self) -> Self {
        self.require_tenant = true;
        self
    }

    /// The store requests run against (before the tenant is applied).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl<T> Clone for ScopeLayer<T> {
    fn clone(&self) -> Self {
        ScopeLayer {
            store: self.store.clone(),
            tenant: Arc::clone(&self.tenant),
            require_tenant: self.require_tenant,
        }
    }
}

impl<T> fmt::Debug for ScopeLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeLayer")
            .field("store", &self.store)
            .field("tenant", &std::any::type_name::<T>())
            .field("require_tenant", &self.require_tenant)
            .finish()
    }
}

impl<S, T> Layer<S> for ScopeLayer<T> {
    type Service = ScopeService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeService {
            inner,
            store: self.store.clone(),
            tenant: Arc::clone(&self.tenant),
            require_tenant: self.require_tenant,
        }
    }
}

/// The [`Service`] a [`ScopeLayer`] wraps around the inner one.
pub struct ScopeService<S, T = StoreTenant> {
    inner: S,
    store: Store,
    tenant: Arc<T>,
    require_tenant: bool,
}

impl<S: Clone, T> Clone for ScopeService<S, T> {
    fn clone(&self) -> Self {
        ScopeService {
            inner: self.inner.clone(),
            store: self.store.clone(),
            tenant: Arc::clone(&self.tenant),
            require_tenant: self.require_tenant,
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for ScopeService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeService")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .field("tenant", &std::any::type_name::<T>())
            .field("require_tenant", &self.require_tenant)
            .finish()
    }
}

/// The future of [`ScopeService`]: the inner response once the scope's
/// writes are stored, or a `500` when storing them failed.
pub type ResponseFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for ScopeService<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    T: TenantSource<ReqBody>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Use the service that was driven to readiness; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        let store = match self.tenant.tenant(&request) {
            Some(name) => self.store.tenant(name),
            None if self.require_tenant => {
                return Box::pin(async { Ok(empty_response(StatusCode::UNAUTHORIZED)) })
            }
            None => self.store.clone(),
        };
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let ctx = store.context(None);
        // A service may do work in `call` itself, not only in its future.
        let future = ctx.sync_scope(|| inner.call(request));
        Box::pin(async move {
            match ctx.scope(future).await {
                Ok(result) => result,
                Err(error) => {
                    tracing::error!(
                        %method,
                        %path,
                        %error,
                        "toast: storing the request's buffered writes failed; \
                         answering 500 instead of a response that would name unstored records"
                    );
                    Ok(empty_response(StatusCode::INTERNAL_SERVER_ERROR))
                }
            }
        })
    }
}

fn empty_response<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}
