//! The URL-scheme → backend registry behind [`crate::Store::connect`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::url::ConnectUrl;

/// The future a backend factory returns.
pub type BackendFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>>> + Send + 'static>>;

/// A backend factory: connects a backend for a parsed URL.
pub type BackendFactory = Arc<dyn Fn(ConnectUrl) -> BackendFuture + Send + Sync + 'static>;

static REGISTRY: LazyLock<RwLock<BTreeMap<String, BackendFactory>>> =
    LazyLock::new(|| RwLock::new(builtins()));

fn builtins() -> BTreeMap<String, BackendFactory> {
    let mut map: BTreeMap<String, BackendFactory> = BTreeMap::new();
    map.insert(
        "memory".into(),
        Arc::new(|url: ConnectUrl| -> BackendFuture {
            Box::pin(async move { crate::backend::memory::connect(&url) })
        }),
    );
    #[cfg(feature = "sqlite")]
    map.insert(
        "sqlite".into(),
        Arc::new(|url: ConnectUrl| -> BackendFuture {
            Box::pin(async move { crate::backend::sqlite::connect(&url).await })
        }),
    );
    #[cfg(feature = "postgres")]
    for scheme in ["postgres", "postgresql"] {
        map.insert(
            scheme.into(),
            Arc::new(|url: ConnectUrl| -> BackendFuture {
                Box::pin(async move { crate::backend::postgres::connect(&url).await })
            }),
        );
    }
    #[cfg(feature = "redis")]
    for scheme in ["redis", "rediss"] {
        map.insert(
            scheme.into(),
            Arc::new(|url: ConnectUrl| -> BackendFuture {
                Box::pin(async move { crate::backend::redis::connect(&url).await })
            }),
        );
    }
    map
}

/// Registers `factory` for URLs with `scheme`, replacing any earlier
/// registration for it (a built-in one included).
///
/// # Errors
///
/// [`Error::Validation`] when `scheme` is not a valid URL scheme
/// (a letter, then letters, digits, `+`, `-` or `.`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// use std::sync::Arc;
/// toast::register_backend("scratch", |_url: toast::backend::ConnectUrl| async {
///     Ok(Arc::new(toast::backend::memory::MemoryBackend::new()) as Arc<dyn toast::Backend>)
/// })?;
/// let store = toast::Store::connect("scratch://anything").await?;
/// let r = store.put(&String::from("hello")).await?;
/// assert_eq!(store.get::<String>(&r).await?, "hello");
/// # Ok(()) }
/// ```
pub fn register_backend<F, Fut>(scheme: &str, factory: F) -> Result<()>
where
    F: Fn(ConnectUrl) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn Backend>>> + Send + 'static,
{
    let scheme = scheme.to_ascii_lowercase();
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !valid {
        return Err(Error::validation(format!(
            "'{scheme}' is not a valid URL scheme (a letter, then letters, digits, '+', '-' or '.')"
        )));
    }
    let factory: BackendFactory = Arc::new(move |url| -> BackendFuture { Box::pin(factory(url)) });
    REGISTRY
        .write()
        .map_err(|_| Error::backend("the backend registry is poisoned"))?
        .insert(scheme, factory);
    Ok(())
}

/// The schemes [`crate::Store::connect`] accepts right now, sorted.
pub fn registered_schemes() -> Vec<String> {
    REGISTRY
        .read()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

pub(crate) fn factory_for(scheme: &str) -> Result<BackendFactory> {
    let map = REGISTRY
        .read()
        .map_err(|_| Error::backend("the backend registry is poisoned"))?;
    match map.get(scheme) {
        Some(f) => Ok(Arc::clone(f)),
        None => {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            let hint = match scheme {
                "postgres" | "postgresql" => " (enable the cargo feature `postgres`)",
                "redis" | "rediss" => " (enable the cargo feature `redis`)",
                "sqlite" => " (enable the cargo feature `sqlite`)",
                _ => " (register one with toast::register_backend)",
            };
            Err(Error::validation(format!(
                "unknown store URL scheme '{scheme}'{hint}; registered schemes: {}",
                known.join(", ")
            )))
        }
    }
}
