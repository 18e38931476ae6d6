//! The doors: `to_json` and friends serialize then flush; `from_json` and
//! friends prefetch then deserialize.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::refs::references_in_json;
use crate::refs::walk::collect_references;
use crate::scope::read::reading;
use crate::scope::{current_or_err, Context};

/// Serializes `value` to JSON in the current scope, then flushes: when it
/// returns, every record the text references is stored.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope; the original error of an external
/// that failed; the backend's error when the flush fails (the text is then
/// not returned).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// #[derive(serde::Serialize)]
/// struct Doc { #[serde(with = "toast::external")] body: String }
///
/// let store = toast::Store::memory();
/// let json = toast::scope(store.clone(), async {
///     toast::to_json(&Doc { body: "x".repeat(10_000) }).await
/// }).await??;
/// assert!(json.len() < 120);
/// assert_eq!(store.stats().records_saved, 1);
/// # Ok(()) }
/// ```
pub async fn to_json<T: Serialize + Sync + ?Sized>(value: &T) -> Result<String> {
    let ctx = current_or_err()?;
    let text = encode(&ctx, || serde_json::to_string(value))?;
    ctx.flush().await?;
    Ok(text)
}

/// [`to_json`] into bytes.
///
/// # Errors
///
/// As [`to_json`].
pub async fn to_vec<T: Serialize + Sync + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let ctx = current_or_err()?;
    let bytes = encode(&ctx, || serde_json::to_vec(value))?;
    ctx.flush().await?;
    Ok(bytes)
}

/// [`to_json`] into a `serde_json::Value`.
///
/// # Errors
///
/// As [`to_json`].
pub async fn to_value<T: Serialize + Sync + ?Sized>(value: &T) -> Result<serde_json::Value> {
    let ctx = current_or_err()?;
    let value = encode(&ctx, || serde_json::to_value(value))?;
    ctx.flush().await?;
    Ok(value)
}

fn encode<R>(ctx: &Context, f: impl FnOnce() -> serde_json::Result<R>) -> Result<R> {
    ctx.clear_parked();
    f().map_err(|e| {
        ctx.recover(e, |e| {
            Error::validation_with(format!("cannot serialize: {e}"), e)
        })
    })
}

fn decode<R>(ctx: &Context, f: impl FnOnce() -> serde_json::Result<R>) -> Result<R> {
    f().map_err(|e| {
        ctx.recover(e, |e| {
            Error::validation_with(format!("invalid document: {e}"), e)
        })
    })
}

/// Deserializes JSON text in the current scope: first loads every reference
/// in it (one backend round trip per nesting level), then deserializes in
/// memory.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope, for malformed JSON or references,
/// a class-name mismatch, or stored data that no longer fits; [`Error::NotFound`]
/// for a reference with no record; the backend's error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// #[derive(serde::Deserialize, Debug)]
/// struct Doc { #[serde(with = "toast::external")] body: String }
///
/// let text = r#"{"body": {"class_name": "String", "id": "00000000-0000-0000-0000-000000000001"}}"#;
/// let err = toast::scope(toast::Store::memory(), toast::from_json::<Doc>(text)).await?.unwrap_err();
/// assert!(err.is_not_found());
/// # Ok(()) }
/// ```
pub async fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    // Parsed as a `str`: serde_json then reads its strings without checking
    // each one's UTF-8 again (a reference alone is four strings).
    read_document(text.as_bytes(), || serde_json::from_str(text)).await
}

/// [`from_json`] from bytes.
///
/// # Errors
///
/// As [`from_json`].
pub async fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // UTF-8 is checked once; bytes that are not UTF-8 are parsed as bytes, so
    // that serde_json reports where the bad sequence is.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => from_json(text).await,
        Err(_) => read_document(bytes, || serde_json::from_slice(bytes)).await,
    }
}

/// Loads every reference in the JSON document `bytes`, then deserializes it
/// with `parse` in the current scope.
async fn read_document<T>(
    bytes: &[u8],
    parse: impl FnOnce() -> serde_json::Result<T>,
) -> Result<T> {
    let ctx = current_or_err()?;
    ctx.clear_parked();
    let plan = ctx.prefetch_planned(references_in_json(bytes)?).await?;
    ctx.with_plan(plan, || reading(ctx.limits(), || decode(&ctx, parse)))
}

/// [`from_json`] from a `serde_json::Value`.
///
/// # Errors
///
/// As [`from_json`].
pub async fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    let ctx = current_or_err()?;
    ctx.clear_parked();
    let references = collect_references(&value)
        .map_err(|e| Error::validation_with(format!("invalid document: {e}"), e))?;
    ctx.prefetch(references).await?;
    reading(ctx.limits(), || {
        decode(&ctx, || serde_json::from_value(value))
    })
}

/// Loads the records `references` name (and those nested in them) into the
/// current scope's cache, one backend round trip per nesting level. Use it with
/// [`collect_references`] to read formats other than JSON without blocking.
///
/// # Errors
///
/// [`Error::Validation`] outside a scope; the backend's error.
pub async fn prefetch(references: Vec<Reference>) -> Result<()> {
    current_or_err()?.prefetch(references).await
}

/// Loads the value `reference` names through the current scope: its cache
/// first, then one backend round trip per nesting level for what is missing.
///
/// Unlike [`crate::Store::get`], which uses a context of its own, the loaded
/// records stay in the scope's cache, so serializing the value again in the
/// same scope writes nothing that did not change.
///
/// # Errors
///
/// As [`from_json`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> toast::Result<()> {
/// let store = toast::Store::memory();
/// let r = store.put(&vec![1u8, 2]).await?;
/// let v: Vec<u8> = toast::scope(store, toast::load(&r)).await??;
/// assert_eq!(v, [1, 2]);
/// # Ok(()) }
/// ```
pub async fn load<T: DeserializeOwned>(reference: &Reference) -> Result<T> {
    let mut values = load_many::<T>(std::slice::from_ref(reference)).await?;
    values
        .pop()
        .ok_or_else(|| Error::not_found(&reference.class_name, reference.id))
}

/// [`load`] for several references of one type, in their order, with one
/// backend round trip per nesting level for all of them together.
///
/// # Errors
///
/// As [`from_json`], for the first reference that fails.
pub async fn load_many<T: DeserializeOwned>(references: &[Reference]) -> Result<Vec<T>> {
    let ctx = current_or_err()?;
    ctx.clear_parked();
    ctx.load_many(references).await
}
